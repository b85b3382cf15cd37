"""Fixtures for the examples' tests: an OpenBao dev server with nothing of ours set up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.vault.conftest import Bao, _require_bao


class EmptyBao(Bao):
    """A dev server left as ``bao server -dev`` starts it: the example's own script sets it up."""

    def bootstrap(self, *agent_types: str, **settings: str) -> str:
        return ""


@pytest.fixture(scope="module")
def empty_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A fresh OpenBao dev server with no policy, role or AppRole mount of ours."""
    server = EmptyBao(_require_bao(), tmp_path_factory.mktemp("bao-empty"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
