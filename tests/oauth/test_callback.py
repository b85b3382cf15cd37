"""The loopback redirect receiver: one well-formed answer; anything else changes nothing."""

from __future__ import annotations

import anyio
import httpx
import pytest

from scoped_mcp.oauth.callback import LoginRefused, LoopbackCallback

pytestmark = pytest.mark.anyio


async def test_hostile_requests_are_refused_and_the_real_answer_still_counts() -> None:
    """Wrong paths, methods, missing fields and huge lines get short errors; then a real
    redirect is accepted; only 127.0.0.1 is listened on."""
    callback = LoopbackCallback()
    await callback.start()
    base = callback.redirect_uri
    assert base.startswith("http://127.0.0.1:")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            assert (
                await http.get(base.replace("/callback", "/other") + "?code=c&state=s")
            ).status_code == 404
            assert (await http.post(base, content=b"code=c")).status_code == 400
            assert (await http.get(base + "?code=only")).status_code == 400
            assert (await http.get(base + "?code=" + "x" * 9000 + "&state=s")).status_code == 400
            ok = await http.get(base + "?code=the-code&state=the-state")
            assert ok.status_code == 200
            assert (await http.get(base + "?code=again&state=s")).status_code == 404
        with anyio.fail_after(5):
            result = await callback.wait()
        assert (result.code, result.state) == ("the-code", "the-state")
    finally:
        await callback.close()


async def test_an_error_answer_fails_the_login_with_a_short_message() -> None:
    """``error=access_denied`` ends the wait with LoginRefused naming the error code only."""
    callback = LoopbackCallback()
    await callback.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await http.get(callback.redirect_uri + "?error=access_denied<script>&state=s")
        with anyio.fail_after(5), pytest.raises(LoginRefused) as caught:
            await callback.wait()
        assert "access_deniedscript" in str(caught.value)
        assert "<" not in str(caught.value)
    finally:
        await callback.close()
