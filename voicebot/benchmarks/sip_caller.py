"""The benchmark's calling side: our own SIP user agent as a UAC (a second instance, on a free loopback port).

It only places calls and hangs up; it answers nothing. Each ``invite`` waits for the final response.
"""

from __future__ import annotations

import asyncio
import contextlib

from sip_bridge.sip import events as ev
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.transport import SipEndpoint

INVITE_TIMEOUT_S = 40.0


class SipCaller:
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self._answers: dict[str, asyncio.Future[bytes | str]] = {}
        self._ended: set[str] = set()
        self._refusals: dict[str, int] = {}  # call id → the SIP status of a refused INVITE (503, 486, …)
        self._task = asyncio.create_task(self._dispatch(), name="bench-caller-events")

    @classmethod
    async def start(cls) -> SipCaller:
        settings = UserAgentConfig(bind_host="127.0.0.1", port=0, transports=("udp",), user="bench-caller")
        return cls(await SipEndpoint.start(settings))

    async def _dispatch(self) -> None:
        while True:
            event = await self.endpoint.next_event()
            match event:
                case ev.OutboundCallAnswered(call_id=call_id, sdp=sdp):
                    self._resolve(call_id, sdp)
                case ev.OutboundCallFailed(call_id=call_id, code=code, reason=reason):
                    self._refusals[call_id] = code
                    self._resolve(call_id, f"call refused: {code} {reason}".strip())
                case ev.CallEnded(call_id=call_id, reason=reason):
                    self._ended.add(call_id)
                    self._resolve(call_id, f"call ended before answer: {reason}")
                case _:
                    pass

    def _resolve(self, call_id: str, value: bytes | str) -> None:
        future = self._answers.get(call_id)
        if future is not None and not future.done():
            future.set_result(value)

    async def invite(self, uri: str, sdp: bytes) -> tuple[str, bytes | str]:
        """(call id, the answer SDP) or (call id, an error text) once the call is answered or has failed."""
        call_id = self.endpoint.invite(uri, sdp)
        future = self._answers.setdefault(call_id, asyncio.get_running_loop().create_future())
        try:
            return call_id, await asyncio.wait_for(future, INVITE_TIMEOUT_S)
        except TimeoutError:
            return call_id, f"no final answer within {INVITE_TIMEOUT_S:.0f} s"
        finally:
            self._answers.pop(call_id, None)

    def refusal_status(self, call_id: str) -> int | None:
        """The SIP status the INVITE of ``call_id`` was refused with, or None (answered, or no answer at all)."""
        return self._refusals.get(call_id)

    def ended(self, call_id: str) -> bool:
        return call_id in self._ended

    def hangup(self, call_id: str) -> None:
        self.endpoint.hangup(call_id)

    async def stop(self) -> None:
        await asyncio.sleep(0.3)  # let the last BYEs get their 200
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.endpoint.close()
