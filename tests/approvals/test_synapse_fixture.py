"""The Synapse fixture itself: what it generates must never be read as a command-line option."""

from __future__ import annotations

import secrets

from tests.approvals.synapse import Synapse


def test_a_password_that_starts_with_a_dash_registers_and_logs_in(synapse: Synapse) -> None:
    # secrets.token_urlsafe() starts with "-" once in 64 draws; passed as "-p <value>" argparse
    # took it for an option and the whole session's Synapse failed to start (CI, stop 21).
    name = "dash" + secrets.token_hex(4)
    synapse.register(name, "-" + secrets.token_urlsafe(12))
    with synapse.client(name) as member:
        whoami = member.get("/_matrix/client/v3/account/whoami")
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["user_id"] == synapse.user_id(name)
