"""Real sipp against our SipEndpoint on 127.0.0.1: calls in, BYE from us, CANCEL, OPTIONS, REGISTER, auth."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from readiness import wait_until_bound

from sip_bridge.sip import (
    CallConfirmed,
    CallEnded,
    IncomingCall,
    OutboundCallAnswered,
    Registered,
    TransferFailed,
    TransferSucceeded,
)
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.transport import SipEndpoint

from .helpers import SDP_ANSWER
from .sipp import SippResult, free_udp_port, run_sipp

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def endpoint(**overrides: object) -> AsyncIterator[SipEndpoint]:
    settings = UserAgentConfig(bind_host="127.0.0.1", port=0, **overrides)  # type: ignore[arg-type]
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


async def answer_and_transfer(
    sip: SipEndpoint, seen: list[object], *, hang_up_on: type[TransferSucceeded | TransferFailed]
) -> None:
    """Test glue: answer, blind-transfer to a staff phone once confirmed, hang up on ``hang_up_on``."""
    while True:
        event = await sip.next_event()
        seen.append(event)
        if isinstance(event, IncomingCall):
            sip.answer(event.call_id, SDP_ANSWER)
        elif isinstance(event, CallConfirmed):
            sip.refer(event.call_id, "sip:staff@127.0.0.1:5070")
        elif isinstance(event, hang_up_on):
            sip.hangup(event.call_id)


async def sipp_against(
    sip: SipEndpoint,
    glue: Coroutine[Any, Any, None],
    scenario: str,
    workdir: Path,
    *,
    transport: str = "u1",
    extra: list[str] | None = None,
) -> SippResult:
    """Run sipp's ``scenario`` against ``sip`` while ``glue`` reacts to our events; the glue ends with sipp."""
    task = asyncio.create_task(glue)
    try:
        result = await run_sipp(
            sip.port, scenario=scenario, workdir=workdir, transport=transport, extra=extra
        )
        await _settled(sip)  # the last events (CallEnded) arrive just after sipp's final message
    finally:
        task.cancel()
    return result


async def _settled(sip: SipEndpoint, timeout_s: float = 5.0) -> None:
    """Wait (bounded) until no call is left and the glue has taken every queued event."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while sip.ua.active_calls() or not sip.events.empty():
        if asyncio.get_running_loop().time() > deadline:
            return  # the test's own assertions then say what is missing
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # let the glue append the event it has just taken


async def test_sipp_uac_call_is_answered_and_ended_by_bye(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []
        result = await sipp_against(sip, answer_calls(sip, seen), "uac", tmp_path)
        assert result.returncode == 0, result.output
        kinds = [type(e).__name__ for e in seen]
        assert kinds == ["IncomingCall", "CallConfirmed", "CallEnded"], kinds
        ended = seen[-1]
        assert isinstance(ended, CallEnded) and ended.reason == "bye_remote"
        assert sip.ua.active_calls() == []


async def collect_until(sip: SipEndpoint, seen: list[object], kind: type, timeout_s: float = 10.0) -> None:
    async def wait() -> None:
        while not any(isinstance(e, kind) for e in seen):
            seen.append(await sip.next_event())

    await asyncio.wait_for(wait(), timeout_s)


async def test_sipp_uac_over_tcp(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []
        result = await sipp_against(sip, answer_calls(sip, seen), "uac", tmp_path, transport="t1")
        assert result.returncode == 0, result.output
        assert [type(e).__name__ for e in seen] == ["IncomingCall", "CallConfirmed", "CallEnded"]
        assert isinstance(seen[0], IncomingCall) and seen[0].transport == "tcp"


async def test_we_hang_up_with_bye(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []
        result = await sipp_against(
            sip, answer_calls(sip, seen, hangup_after_s=0.2), "uac_wait_bye.xml", tmp_path
        )
        assert result.returncode == 0, result.output
        assert seen[-1] == CallEnded(seen[0].call_id, "local", None)  # type: ignore[attr-defined]


async def test_caller_cancels_while_ringing(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []

        async def ring_only() -> None:
            while True:
                event = await sip.next_event()
                seen.append(event)
                if isinstance(event, IncomingCall):
                    sip.ringing(event.call_id)

        result = await sipp_against(sip, ring_only(), "uac_cancel.xml", tmp_path)
        assert result.returncode == 0, result.output
        assert [type(e).__name__ for e in seen] == ["IncomingCall", "CallEnded"]
        assert isinstance(seen[1], CallEnded) and seen[1].reason == "cancel"
        assert sip.ua.active_calls() == []


async def test_options_ping_from_a_pbx(tmp_path: Path) -> None:
    async with endpoint() as sip:
        result = await run_sipp(sip.port, scenario="options_ping.xml", workdir=tmp_path)
        assert result.returncode == 0, result.output


async def test_register_at_sipp_registrar_with_digest(tmp_path: Path) -> None:
    registrar_port = free_udp_port()
    registrar = asyncio.create_task(
        run_sipp(None, scenario="registrar_digest.xml", workdir=tmp_path, sipp_port=registrar_port)
    )
    await asyncio.to_thread(wait_until_bound, registrar_port, "udp")
    settings = {
        "registrar": f"sip:127.0.0.1:{registrar_port}",
        "auth_username": "2001",
        "auth_password": "geheim",
        "register_expires_s": 60,
    }
    async with endpoint(**settings) as sip:
        seen: list[object] = []
        await collect_until(sip, seen, Registered)
        result = await registrar
    assert result.returncode == 0, result.output
    assert seen == [Registered(60)]


async def test_inbound_invite_is_challenged_and_accepted_with_credentials(tmp_path: Path) -> None:
    # SIPp 3.6 knows only MD5 and reads only the first challenge, like some older PBXs: the operator's setting
    credentials = {"inbound_realm": "rathaus", "inbound_username": "pbx", "inbound_password": "geheim"}
    async with endpoint(**credentials, inbound_digest_algorithms=["MD5"]) as sip:
        seen: list[object] = []
        # the digest uri must be the Request-URI; SIPp's default is sip:<remote ip>:<port>
        auth_uri = ["-auth_uri", f"service@127.0.0.1:{sip.port}"]
        result = await sipp_against(sip, answer_calls(sip, seen), "uac_digest.xml", tmp_path, extra=auth_uri)
        assert result.returncode == 0, result.output
        assert [type(e).__name__ for e in seen] == ["IncomingCall", "CallConfirmed", "CallEnded"]


async def test_blind_transfer_accepted_by_the_pbx(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []

        result = await sipp_against(
            sip, answer_and_transfer(sip, seen, hang_up_on=TransferSucceeded), "uac_refer.xml", tmp_path
        )
        assert result.returncode == 0, result.output
        names = [type(e).__name__ for e in seen]
        assert names == ["IncomingCall", "CallConfirmed", "ReferAccepted", "TransferSucceeded", "CallEnded"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_outbound_call_to_a_sipp_uas_then_our_bye(tmp_path: Path, transport: str) -> None:
    """The bridged-transfer leg: we INVITE the staff phone (sipp UAS), it answers, we end it with BYE."""
    target_port = free_udp_port()
    sipp_transport = "t1" if transport == "tcp" else "u1"
    target = asyncio.create_task(
        run_sipp(
            None, scenario="uas_answer.xml", workdir=tmp_path, sipp_port=target_port, transport=sipp_transport
        )
    )
    await asyncio.to_thread(wait_until_bound, target_port, "tcp" if transport == "tcp" else "udp")
    async with endpoint() as sip:
        seen: list[object] = []
        suffix = ";transport=tcp" if transport == "tcp" else ""
        call_id = sip.invite(f"sip:staff@127.0.0.1:{target_port}{suffix}", SDP_ANSWER)
        await collect_until(sip, seen, OutboundCallAnswered)
        sip.hangup(call_id)
        result = await target
    assert result.returncode == 0, result.output
    assert [type(e).__name__ for e in seen] == ["OutboundCallProgress", "OutboundCallAnswered"]


async def test_blind_transfer_refused_by_the_pbx(tmp_path: Path) -> None:
    async with endpoint() as sip:
        seen: list[object] = []

        result = await sipp_against(
            sip, answer_and_transfer(sip, seen, hang_up_on=TransferFailed), "uac_refer_refused.xml", tmp_path
        )
        assert result.returncode == 0, result.output
        assert [type(e).__name__ for e in seen] == [
            "IncomingCall",
            "CallConfirmed",
            "TransferFailed",
            "CallEnded",
        ]
        failed = seen[2]
        assert isinstance(failed, TransferFailed) and failed.code == 405
