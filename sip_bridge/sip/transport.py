"""Thin asyncio transports for the sans-I/O :class:`UserAgent`: UDP, TCP (server and client connections), timers.

Everything SIP happens in the UA; this module only moves bytes, runs the UA's timers on ``loop.time()`` and hands
events to the glue (an ``asyncio.Queue`` plus an optional callback). Call-control methods on the endpoint call the
UA and flush what it wants to send, so the glue never touches sockets::

    endpoint = await SipEndpoint.start(settings.sip)
    event = await endpoint.next_event()          # IncomingCall(...)
    endpoint.answer(event.call_id, sdp_answer)
    ...
    await endpoint.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from voicebot.settings import SipSettings

from .events import Event
from .useragent import Address, UserAgent

logger = logging.getLogger(__name__)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.endpoint._receive(data, (str(addr[0]), int(addr[1])), "udp")

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.: SIP timers handle the loss
        logger.debug("UDP error: %s", exc)


class SipEndpoint:
    """UDP + TCP listener on ``settings.bind_host:settings.port`` (port 0 = a free port) driving one UA."""

    def __init__(
        self, settings: SipSettings, ua: UserAgent, on_event: Callable[[Event], None] | None
    ) -> None:
        self.settings = settings
        self.ua = ua
        self.on_event = on_event
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.port = 0
        self._loop = asyncio.get_running_loop()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.base_events.Server | None = None
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    async def start(
        cls,
        settings: SipSettings,
        ua: UserAgent | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        register: bool | None = None,
    ) -> SipEndpoint:
        """Bind the configured transports and start the UA; registers at once when a registrar is configured."""
        loop = asyncio.get_running_loop()
        ua = ua or UserAgent(settings, clock=loop.time)
        ua.clock = loop.time
        endpoint = cls(settings, ua, on_event)
        await endpoint._bind()
        ua.set_local_address(settings.bind_host, endpoint.port)
        if register if register is not None else bool(settings.registrar):
            ua.register()
        endpoint.flush()
        return endpoint

    async def _bind(self) -> None:
        attempts = 20 if self.settings.port == 0 else 1
        for attempt in range(attempts):
            port = self.settings.port
            try:
                if "udp" in self.settings.transports:
                    transport, _ = await self._loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(self), local_addr=(self.settings.bind_host, port)
                    )
                    self._udp = transport
                    port = transport.get_extra_info("sockname")[1]
                if "tcp" in self.settings.transports:
                    self._tcp_server = await asyncio.start_server(
                        self._accept, self.settings.bind_host, port, reuse_address=True
                    )
                    port = self._tcp_server.sockets[0].getsockname()[1]
                self.port = port
                return
            except OSError:
                if self._udp is not None:
                    self._udp.close()
                    self._udp = None
                if attempt == attempts - 1:
                    raise

    # -- input -------------------------------------------------------------------------------------

    def _receive(self, data: bytes, source: Address, transport: str) -> None:
        try:
            self.ua.receive(data, source, transport)
        except Exception:  # a bug must not take the listener down
            logger.exception("SIP message from %s crashed the UA", source)
        self.flush()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = (str(peer[0]), int(peer[1]))
        self._writers[address] = writer
        await self._read_loop(address, reader, writer)

    async def _read_loop(
        self, address: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while not self._closed:
                data = await reader.read(65536)
                if not data:
                    break
                self._receive(data, address, "tcp")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writers.get(address) is writer:
                del self._writers[address]
            self.ua.connection_lost(address)
            writer.close()

    # -- output ------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the UA queued, deliver its events, and re-arm the timer for its next deadline."""
        for out in self.ua.outgoing():
            if out.transport == "udp":
                if self._udp is not None:
                    self._udp.sendto(out.data, out.dest)
            else:
                self._send_tcp(out.data, out.dest)
        for peer in self.ua.broken_streams():
            writer = self._writers.pop(peer, None)
            if writer is not None:
                writer.close()  # after our 400 went out: framing is lost, the peer must reconnect
        for event in self.ua.next_events():
            self.events.put_nowait(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    logger.exception("SIP event callback failed for %r", event)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.ua.next_timer_deadline()
        if deadline is not None and not self._closed:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.ua.handle_timers(self._loop.time())
        except Exception:
            logger.exception("SIP timer handling failed")
        self.flush()

    def _send_tcp(self, data: bytes, dest: Address) -> None:
        writer = self._writers.get(dest)
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        if dest in self._connecting:
            self._connecting[dest].append(data)
            return
        self._connecting[dest] = [data]
        task = self._loop.create_task(self._connect(dest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, dest: Address) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(dest[0], dest[1]), 5.0)
        except (OSError, TimeoutError) as exc:
            logger.warning("SIP TCP connection to %s:%s failed: %s", dest[0], dest[1], exc)
            self._connecting.pop(dest, None)
            return  # the client transaction's timers report the failure as a timeout
        self._writers[dest] = writer
        for data in self._connecting.pop(dest, []):
            writer.write(data)
        await self._read_loop(dest, reader, writer)

    # -- call control (UA method + flush) -------------------------------------------------------------

    async def next_event(self) -> Event:
        return await self.events.get()

    def ringing(self, call_id: str) -> None:
        self.ua.ringing(call_id)
        self.flush()

    def answer(self, call_id: str, sdp: bytes) -> None:
        self.ua.answer(call_id, sdp)
        self.flush()

    def reject(self, call_id: str, code: int = 486, reason: str | None = None) -> None:
        self.ua.reject(call_id, code, reason)
        self.flush()

    def hangup(self, call_id: str) -> None:
        self.ua.hangup(call_id)
        self.flush()

    def refer(self, call_id: str, target_uri: str) -> None:
        self.ua.refer(call_id, target_uri)
        self.flush()

    def invite(self, target_uri: str, sdp: bytes, *, transport: str | None = None) -> str:
        call_id = self.ua.invite(target_uri, sdp, transport=transport)
        self.flush()
        return call_id

    def reinvite(self, call_id: str, sdp: bytes) -> None:
        self.ua.reinvite(call_id, sdp)
        self.flush()

    def answer_reinvite(self, call_id: str, sdp: bytes) -> None:
        self.ua.answer_reinvite(call_id, sdp)
        self.flush()

    def reject_reinvite(self, call_id: str, code: int = 488, reason: str | None = None) -> None:
        self.ua.reject_reinvite(call_id, code, reason)
        self.flush()

    def register(self) -> None:
        self.ua.register()
        self.flush()

    def unregister(self) -> None:
        self.ua.unregister()
        self.flush()

    async def close(self) -> None:
        """Stop listening, close connections and timers (calls are not hung up: do that first if needed)."""
        if self.ua.registered:
            self.ua.unregister()  # best effort: the PBX stops routing calls to a bot that is gone
            self.flush()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), 2.0)
