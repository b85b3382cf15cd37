"""Routes for a misbehaving backend: echoes secrets in errors, rate limits, redirects, stalls."""

from __future__ import annotations

from tests.services.fake_http import Recorded, Reply


def echo_500(request: Recorded) -> Reply:
    """A 500 whose body, headers and error fields repeat the credential and the request URL."""
    auth = request.header("authorization") or ""
    target = request.target
    host = request.header("host") or ""
    echoed = f"{auth} http://{host}{target}"
    return Reply(
        500,
        {"error": f"boom: {echoed}", "errcode": echoed, "message": echoed, "code": echoed},
        headers={"X-Echo": echoed[:200].encode("latin-1", "replace").decode("latin-1")},
    )


def echo_401(request: Recorded) -> Reply:
    """A 401 whose plain-text body repeats the Authorization header and the request target."""
    return Reply(401, f"bad token {request.header('authorization')} for {request.target}")


def rate_limited(request: Recorded) -> Reply:
    """429 with a Retry-After of 17 seconds (and a JSON body that echoes the target)."""
    return Reply(429, {"retry_after": 17.0, "echo": request.target}, {"Retry-After": "17"})


def redirect(location: str) -> Reply:
    """A 302 to ``location``; a client that followed it would be caught by the other server."""
    return Reply(302, b"", {"Location": location})


def stall(request: Recorded) -> Reply:
    """Answers only after 3 seconds: longer than the tests' timeout."""
    return Reply(200, "late", delay=3.0)


def huge(request: Recorded) -> Reply:
    """Streams 8 MiB without a Content-Length."""
    return Reply(200, b"", stream_bytes=8 * 1024 * 1024)


def huge_declared(request: Recorded) -> Reply:
    """Declares a Content-Length far over any cap."""
    return Reply(200, b"x" * (2 * 1024 * 1024))
