"""The bitwarden backend against the real ``bw`` (npm ``@bitwarden/cli``), on the paths that need
no server: not logged in, locked, an invalid session, and the shapes ``bw status`` prints.

Each ``bw`` run starts node (about a second), so these tests are few. A locked vault is made
without a server by writing the state file of an account that has a token but no unlocked key.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scoped_mcp.credentials.backends.bitwarden import BitwardenBackend
from scoped_mcp.credentials.backends.bitwarden.config import BitwardenSpec
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import AccessDenied

INSTALL = "npm install -g @bitwarden/cli"
USER_ID = "0b3c2a1e-5d4f-4e6a-9b8c-7d6e5f4a3b2c"
REF = SecretRef("bitwarden", "svc", "password")


@pytest.fixture(scope="module")
def real_bw() -> str:
    """The real bw on PATH: a failure in CI, and a skip naming the install elsewhere."""
    found = shutil.which("bw")
    version = ""
    if found is not None:
        done = subprocess.run([found, "--version"], capture_output=True, check=False, timeout=60)
        version = done.stdout.decode().strip()
    if found is None or not re.fullmatch(r"[0-9]{4}\.[0-9]+\.[0-9]+", version):
        message = f"the real Bitwarden CLI is not on PATH: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _jwt_part(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def locked_state(appdata: Path) -> None:
    """A bw state file for an account that is logged in (has a token) but whose vault is locked."""
    claims = {"sub": USER_ID, "email": "agent@example.test", "exp": 4102444800, "nbf": 0}
    token = _jwt_part({"alg": "RS256", "typ": "JWT"}) + "." + _jwt_part(claims) + ".sig"
    state = {
        "stateVersion": 79,
        "global_account_accounts": {
            USER_ID: {"email": "agent@example.test", "name": "agent", "emailVerified": True}
        },
        "global_account_activeAccountId": USER_ID,
        f"user_{USER_ID}_token_accessToken": token,
        f"user_{USER_ID}_token_refreshToken": "refresh",
    }
    appdata.mkdir(parents=True, exist_ok=True)
    (appdata / "data.json").write_text(json.dumps(state))


def backend(bw: str, appdata: Path, environ: dict[str, str]) -> BitwardenBackend:
    spec = BitwardenSpec.model_validate(
        {"bw_path": bw, "appdata_dir": str(appdata), "sync_interval": 0, "timeout": 60}
    )
    return BitwardenBackend(spec, {"PATH": os.environ["PATH"], "HOME": str(appdata), **environ})


def test_real_bw_not_logged_in_is_denied_with_the_login_command(
    real_bw: str, tmp_path: Path
) -> None:
    """A fresh bw (no account): the fetch is AccessDenied naming bw login, and describe reads
    the real 'bw status' as unauthenticated."""
    made = backend(real_bw, tmp_path / "fresh", {"BW_SESSION": "c2Vzc2lvbg=="})
    with pytest.raises(AccessDenied) as info:
        made.fetch(REF)
    assert "bw login" in info.value.diagnostics()
    assert made.describe().facts["vault"] == "unauthenticated"


@pytest.mark.parametrize("environ", [{}, {"BW_SESSION": "bm90LWEtc2Vzc2lvbg=="}])
def test_real_bw_locked_or_invalid_session_is_denied_with_the_unlock_command(
    real_bw: str, tmp_path: Path, environ: dict[str, str]
) -> None:
    """A logged-in account with no session, or an invalid one: the real bw says the vault is
    locked, and the backend denies with the bw unlock --raw fix; check reports 'locked'."""
    appdata = tmp_path / "locked"
    locked_state(appdata)
    made = backend(real_bw, appdata, environ)
    with pytest.raises(AccessDenied) as info:
        made.fetch(REF)
    assert "export BW_SESSION=$(bw unlock --raw)" in info.value.diagnostics()
    finding = made.check(REF)
    assert (finding.status, finding.facts["vault"]) == ("denied", "locked")
    assert "agent@example.test" not in json.dumps(finding.facts)
