"""Parsing ``--http``: loopback and unix sockets by default, anything else only remote-safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoped_mcp.errors import ConfigError
from scoped_mcp.http.bind import parse_bind
from scoped_mcp.http.guard import FailureLimiter, Limits


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("8765", "127.0.0.1", 8765), ("[::1]:9", "::1", 9), ("localhost:80", "localhost", 80)],
)
def test_loopback_forms(text: str, host: str, port: int) -> None:
    """A bare port, IPv6 loopback and localhost are loopback binds."""
    bind = parse_bind(text)
    assert (bind.host, bind.port, bind.loopback) == (host, port, True)


def test_unix_socket_path_is_absolute(tmp_path: Path) -> None:
    """unix:PATH binds a socket at the absolute path."""
    bind = parse_bind(f"unix:{tmp_path}/a.sock")
    assert (bind.uds, bind.loopback, str(bind)) == (tmp_path / "a.sock", True, f"unix:{bind.uds}")


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:70000", "host:", "unix:", "x"])
def test_malformed_addresses_are_refused(text: str) -> None:
    """Not [HOST:]PORT or unix:PATH: a ConfigError with an example."""
    with pytest.raises(ConfigError) as caught:
        parse_bind(text)
    assert "--http" in caught.value.diagnostics()


def test_remote_with_tls_is_allowed_and_cert_needs_key() -> None:
    """--allow-remote with both TLS files binds remotely; one TLS file alone is refused."""
    bind = parse_bind("10.0.0.5:443", allow_remote=True, tls_cert="c.pem", tls_key="k.pem")
    assert (bind.loopback, str(bind)) == (False, "https://10.0.0.5:443")
    with pytest.raises(ConfigError, match="go together"):
        parse_bind("127.0.0.1:8765", tls_cert="c.pem")


def test_failure_limiter_blocks_for_the_rest_of_the_window() -> None:
    """Failures up to the limit pass; then the client waits out the window, others do not."""
    now = [0.0]
    limiter = FailureLimiter(Limits(failures=3, window=10.0), clock=lambda: now[0])
    for _ in range(3):
        assert limiter.blocked("a") is None
        limiter.failed("a")
    now[0] = 4.0
    assert limiter.blocked("a") == pytest.approx(6.0)
    assert limiter.blocked("b") is None
    now[0] = 10.0
    assert limiter.blocked("a") is None
