"""A credential never leaves the server: not in results, errors, stdout, stderr, audit or reprs.

The server runs as a real child process with the ``leaky_modules`` fixture module, whose tools
call a real HTTP server on 127.0.0.1 that echoes the Authorization header back, raise errors that
quote the token, return it in nested and typed values, and log it. The secret is random, made at
test time, and is looked for in every form an encoder could give it.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml
from pydantic import BaseModel, Field

from scoped_mcp.errors import BackendError
from scoped_mcp.opslog import JsonFormatter
from scoped_mcp.redaction import Redactor
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import FIXTURES, RawServer, call, child_env

stdio = [pytest.mark.anyio, pytest.mark.stdio]

TOOLS = [
    "leaky_echo",
    "leaky_ping",
    "leaky_echo_json",
    "leaky_echo_error",
    "leaky_echo_headers",
    "leaky_raise_backend_error",
    "leaky_raise_runtime_error",
    "leaky_nested",
    "leaky_as_model",
    "leaky_as_dataclass",
    "leaky_as_list_of_models",
    "leaky_log_it",
    "leaky_seed_style",
]


def make_secret(kind: str) -> str:
    """A fresh random secret; ``punctuated`` adds the characters encoders treat specially."""
    if kind == "plain":
        return "tok" + secrets.token_urlsafe(30)
    return secrets.token_urlsafe(16) + ' a+b/c=d"e\\f' + secrets.token_hex(8)


def forms(secret: str) -> set[str]:
    """Every form of ``secret`` that would let a reader recover it, as it could appear in text.

    Written out here rather than taken from ``scoped_mcp.redaction`` so that the test does not
    trust the code under test to know the encodings.
    """
    raw = secret.encode()
    out = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        out |= {text, text.rstrip("=")}
    out |= {quote(secret, safe=""), quote_plus(secret, safe=""), raw.hex(), raw.hex().upper()}
    # A JSON rendering of an escaped form (a repr inside a JSON log line) escapes it again.
    out |= {json.dumps(form)[1:-1] for form in list(out)}
    return out


def leaks(secret: str, where: str, text: str) -> list[str]:
    """Where and in how many forms ``secret`` occurs in ``text`` (the forms are not shown)."""
    found = [form for form in forms(secret) if form in text]
    return [f"{where}: {len(found)} form(s)"] if found else []


class Shown:
    """An object whose ``str`` holds a secret, as a library's response object might."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __str__(self) -> str:
        return f"Shown(secret={self.secret!r})"


def test_redactor_scrubs_json_and_repr_escaped_forms() -> None:
    """A secret with quotes and backslashes is scrubbed from JSON text and from reprs."""
    secret = make_secret("punctuated")
    redactor = Redactor()
    redactor.add(secret)
    text = json.dumps({"t": secret}) + json.dumps({"t": secret}, ensure_ascii=False) + repr(secret)
    assert not leaks(secret, "scrubbed text", redactor.scrub(text))


def test_ops_log_line_holds_no_secret_in_any_escaping() -> None:
    """An ops-log record holding a punctuated secret in its message (%s and %r), an extra and an
    object rendered by str() is written with every occurrence redacted."""
    secret = make_secret("punctuated")
    redactor = Redactor()
    redactor.add(secret)
    record = logging.LogRecord(
        "leaky", logging.WARNING, __file__, 1, "token %s or %r", (secret, secret), None
    )
    record.token = secret
    record.obj = Shown(secret)
    record.nested = {"a": [secret]}
    line = JsonFormatter(redactor).format(record)
    assert not leaks(secret, "the ops log", line)
    parsed = json.loads(line)
    assert parsed["message"] == "token [REDACTED] or '[REDACTED]'"
    assert parsed["token"] == "[REDACTED]"


class TokenModel(BaseModel):
    name: str
    token: str


@dataclasses.dataclass
class TokenRecord:
    name: str
    token: str


class Constrained(BaseModel):
    """A result type whose field cannot hold the redaction marker."""

    token: str = Field(pattern=r"^[A-Za-z0-9_-]+$")


def test_typed_results_are_scrubbed_rebuilt_or_withheld() -> None:
    """A model, dataclass or set holding a secret comes back scrubbed in its own type; one that
    cannot hold the marker is withheld; a result without a secret is returned as it was."""
    secret = make_secret("plain")
    redactor = Redactor()
    redactor.add(secret)
    model = redactor.result_scrubber(TokenModel)(TokenModel(name="t", token=secret))
    assert model == TokenModel(name="t", token="[REDACTED]")
    record = redactor.result_scrubber(TokenRecord)(TokenRecord(name="t", token=secret))
    assert record == TokenRecord(name="t", token="[REDACTED]")
    assert redactor.result_scrubber(set[str])({secret, "x"}) == {"[REDACTED]", "x"}
    assert redactor.result_scrubber()(frozenset({secret})) == ["[REDACTED]"]
    word = "tok" + secrets.token_hex(20)
    redactor.add(word)
    with pytest.raises(BackendError, match="withheld"):
        redactor.result_scrubber(Constrained)(Constrained(token=word))
    clean = TokenModel(name="t", token="nothing secret")
    assert redactor.result_scrubber(TokenModel)(clean) is clean


class EchoHandler(BaseHTTPRequestHandler):
    """Echoes the Authorization header and the bearer token in several encodings."""

    server: EchoServer

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        self.server.seen.append(token)
        raw = token.encode()
        echoed = {
            "authorization": auth,
            "raw": token,
            "base64": base64.b64encode(raw).decode(),
            "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
            "urlencoded": quote(token, safe=""),
            "hex": raw.hex(),
            "HEX": raw.hex().upper(),
        }
        if self.path == "/echo.json":
            status, body, kind = 200, json.dumps(echoed), "application/json"
        else:
            status = 401 if self.path == "/denied" else 200
            body = "\n".join(f"{k}: {v}" for k, v in echoed.items())
            kind = "text/plain"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class EchoServer(ThreadingHTTPServer):
    seen: list[str]


@pytest.fixture
def echo_url() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP echo server on 127.0.0.1; yields its URL and the tokens it received."""
    server = EchoServer(("127.0.0.1", 0), EchoHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen
    finally:
        server.shutdown()
        server.server_close()


def leaky_manifest(tmp_path: Path, url: str, source: str, secret: str) -> Path:
    """A manifest with the leaky module, its token served from ``source`` (env or file)."""
    credentials: dict[str, Any] = {"source": source}
    if source == "file":
        secrets_file = tmp_path / "secrets.yml"
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"API_TOKEN": secret}, handle)
        credentials["path"] = str(secrets_file)
    manifest = tmp_path / "leaky.yml"
    data = {
        "agent_type": "leaky",
        "credentials": credentials,
        "modules": {
            "leaky": {
                "type": "leaky_modules.leaky:LeakyModule",
                "mode": "read",
                "config": {"url": url},
            }
        },
    }
    write_manifest(manifest, data)
    return manifest


@pytest.mark.parametrize("kind", ["plain", "punctuated"])
@pytest.mark.parametrize("source", ["env", "file"])
@stdio[0]
@stdio[1]
async def test_no_tool_leaks_the_secret_to_the_client_stderr_or_audit(
    serve: Any, tmp_path: Path, echo_url: tuple[str, list[str]], source: str, kind: str
) -> None:
    """Every leaky tool's result or error, the server's stderr and the audit file hold no form of
    the secret, while the HTTP backend did receive it."""
    url, seen = echo_url
    secret = make_secret(kind)
    manifest = leaky_manifest(tmp_path, url, source, secret)
    env = {"PYTHONPATH": str(FIXTURES)}
    if source == "env":
        env["API_TOKEN"] = secret
    results: dict[str, str] = {}
    async with serve(manifest, env=env) as server:
        assert sorted(await server.tool_names()) == sorted(TOOLS)
        for name in TOOLS:
            result = await server.client.call_tool_mcp(name, {})
            results[name] = result.model_dump_json()
    found = [leak for name, text in results.items() for leak in leaks(secret, name, text)]
    assert seen, "the backend was never called"
    assert all(token == secret for token in seen), "the backend did not get the token"
    assert "[REDACTED]" in results["leaky_echo"]
    assert '"is_error":true' in results["leaky_echo_error"]
    stderr = server.stderr()
    assert "token is [REDACTED]" in stderr
    audit = server.audit_path.read_text()
    assert '"tool":"leaky_raise_backend_error"' in audit
    found += leaks(secret, "stderr", stderr) + leaks(secret, "the audit file", audit)
    assert not found


@stdio[0]
@stdio[1]
async def test_raw_stdout_holds_no_secret(tmp_path: Path, echo_url: tuple[str, list[str]]) -> None:
    """Byte for byte, nothing the server writes to stdout, stderr or the audit file during a
    session of leaky calls holds a form of the secret."""
    url, _ = echo_url
    secret = make_secret("punctuated")
    manifest = leaky_manifest(tmp_path, url, "env", secret)
    env = child_env(tmp_path / "home", AGENT_ID="leaky-01", AGENT_TYPE="leaky", API_TOKEN=secret)
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    try:
        server.handshake()
        for number, name in enumerate(TOOLS, start=10):
            reply = server.ask(call(number, name))
            assert "result" in reply, name
        assert server.close() == 0
    finally:
        server.kill()
    stdout = "".join(server.stdout_lines)
    assert "[REDACTED]" in stdout
    audit = tmp_path / "home" / "state" / "scoped-mcp" / "audit" / "leaky-01.jsonl"
    found = leaks(secret, "stdout", stdout) + leaks(secret, "stderr", server.stderr())
    assert not found + leaks(secret, "the audit file", audit.read_text())


def write_private_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML to a new file with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(data, handle)
    return path


@pytest.mark.anyio
async def test_no_secret_bearing_object_shows_its_value(tmp_path: Path) -> None:
    """repr() and str() of the broker, its views, sealed and open values, leases, fetch results,
    findings, backends, the redactor and the errors raised on the way hold no form of the secret."""
    from scoped_mcp.credentials.backends.env import EnvBackend
    from scoped_mcp.credentials.backends.file import FileBackend
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.credentials.lease import LeaseInfo, Sealer
    from scoped_mcp.credentials.plan import KeyPlan
    from scoped_mcp.credentials.refs import SecretRef
    from scoped_mcp.credentials.view import ModuleCredentials
    from scoped_mcp.errors import CredentialError

    secret = make_secret("punctuated")
    secrets_file = write_private_yaml(tmp_path / "s.yml", {"API_TOKEN": secret, "LIST": [secret]})
    broken = tmp_path / "broken.yml"
    write_private_yaml(broken, {})
    broken.write_text(f"API_TOKEN: [{secret}\n")
    env_ref = SecretRef("env", "API_TOKEN", None)
    file_ref = SecretRef("file", str(secrets_file), "API_TOKEN")
    plans = {
        "m": {
            "ENV_TOKEN": KeyPlan("m", "ENV_TOKEN", env_ref, required=True),
            "FILE_TOKEN": KeyPlan("m", "FILE_TOKEN", file_ref, required=True),
            "LIST": KeyPlan("m", "LIST", SecretRef("file", str(secrets_file), "LIST"), True),
            "BROKEN": KeyPlan("m", "BROKEN", SecretRef("file", str(broken), "API_TOKEN"), True),
        }
    }
    env_backend, file_backend = EnvBackend({"API_TOKEN": secret}), FileBackend()
    redactor = Redactor()
    broker = CredentialBroker(
        plans=plans, backends={"env": env_backend, "file": file_backend}, ttl=60, redactor=redactor
    )
    view = ModuleCredentials(broker, "m", frozenset())
    shown: list[object] = [broker, view, redactor, env_backend, file_backend, Sealer()]
    shown += [env_backend.fetch(env_ref), file_backend.fetch(file_ref)]
    shown += [env_backend.check(env_ref), file_backend.check(file_ref)]
    shown.append(LeaseInfo("database/creds/ro/abcdef123456", ttl=60, renewable=True))
    for key in ("ENV_TOKEN", "FILE_TOKEN"):
        async with view.use(key) as plain:
            assert plain.text() == secret
            shown.append(plain)
        plan = broker.plan("m", key)
        entry = broker._cache[plan.ref.source]
        shown += [plan, entry, *entry.fields.values(), broker.open("m", key)]
    for key in ("LIST", "BROKEN"):
        with pytest.raises(CredentialError) as caught:
            async with view.use(key):
                pass
        shown += [caught.value, caught.value.diagnostics()]
    shown.append(file_backend.check(plans["m"]["BROKEN"].ref))
    if importlib.util.find_spec("hvac") is not None:
        from scoped_mcp.credentials.backends.vault import VaultBackend
        from scoped_mcp.credentials.backends.vault.config import VaultSpec

        spec = VaultSpec(addr="http://127.0.0.1:9", auth="token", token_env="VT")
        vault = VaultBackend(spec, {"VT": secret})
        shown += [vault, *vars(vault).values()]
    found = [
        leak for obj in shown for leak in leaks(secret, type(obj).__name__, repr(obj) + str(obj))
    ]
    assert not found
