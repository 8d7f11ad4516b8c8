"""Real sipp against our SipEndpoint on 127.0.0.1: calls in, BYE from us, CANCEL, OPTIONS, REGISTER, auth."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sip_bridge.sip import CallConfirmed, CallEnded, IncomingCall
from sip_bridge.sip.transport import SipEndpoint
from voicebot.settings import SipSettings

from .helpers import SDP_ANSWER
from .sipp import run_sipp

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def endpoint(**overrides: object) -> AsyncIterator[SipEndpoint]:
    settings = SipSettings(bind_host="127.0.0.1", port=0, **overrides)  # type: ignore[arg-type]
    sip = await SipEndpoint.start(settings)
    try:
        yield sip
    finally:
        await sip.close()


async def answer_calls(sip: SipEndpoint, seen: list[object], *, hangup_after_s: float | None = None) -> None:
    """Test glue: answer every call with a static SDP; optionally hang up ourselves after a while."""
    while True:
        event = await sip.next_event()
        seen.append(event)
        if isinstance(event, IncomingCall):
            sip.answer(event.call_id, SDP_ANSWER)
        elif isinstance(event, CallConfirmed) and hangup_after_s is not None:
            await asyncio.sleep(hangup_after_s)
            sip.hangup(event.call_id)


async def test_sipp_uac_call_is_answered_and_ended_by_bye(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []
        glue = asyncio.create_task(answer_calls(sip, seen))
        try:
            result = await run_sipp(sip.port, scenario="uac", workdir=tmp_path)
            await asyncio.sleep(0.1)
        finally:
            glue.cancel()
        assert result.returncode == 0, result.output
        kinds = [type(e).__name__ for e in seen]
        assert kinds == ["IncomingCall", "CallConfirmed", "CallEnded"], kinds
        ended = seen[-1]
        assert isinstance(ended, CallEnded) and ended.reason == "bye_remote"
        assert sip.ua.active_calls() == []
