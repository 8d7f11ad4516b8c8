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

from .core import DEFAULT_SERVER_HEADER, usable_address
from .events import Event
from .policy import RateLimitedLog
from .useragent import Address, UserAgent

logger = logging.getLogger(__name__)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.endpoint._receive(data, (str(addr[0]), int(addr[1])), "udp")
        except Exception:  # nothing from one datagram may reach asyncio: it would close the transport
            logger.exception("SIP datagram from %s could not be handled", addr[0])

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.: SIP timers handle the loss
        logger.debug("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.endpoint._closed:
            logger.error("SIP over UDP stopped: the transport was closed (%s)", exc)


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
        self._send_log = RateLimitedLog(logger, 60.0)

    @classmethod
    async def start(
        cls,
        settings: SipSettings,
        ua: UserAgent | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        register: bool | None = None,
        server_header: str = DEFAULT_SERVER_HEADER,
    ) -> SipEndpoint:
        """Bind the configured transports and start the UA; registers at once when a registrar is configured.

        ``server_header`` is the Server/User-Agent value of a UA created here (empty: no such header).
        """
        loop = asyncio.get_running_loop()
        ua = ua or UserAgent(settings, clock=loop.time, server_header=server_header)
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

    @property
    def listeners(self) -> dict[str, bool]:
        """Per configured transport: is it really serving (UDP transport open, TCP server accepting)?"""
        state: dict[str, bool] = {}
        if "udp" in self.settings.transports:
            state["udp"] = self._udp is not None and not self._udp.is_closing()
        if "tcp" in self.settings.transports:
            state["tcp"] = self._tcp_server is not None and self._tcp_server.is_serving()
        return state

    @property
    def listening(self) -> bool:
        """Every configured listener is serving (what a health check should report)."""
        state = self.listeners
        return bool(state) and all(state.values())

    # -- input -------------------------------------------------------------------------------------

    def _receive(self, data: bytes, source: Address, transport: str) -> None:
        try:
            self.ua.receive(data, source, transport)
            # Timers due by now run here too: under steady traffic they must not wait for an idle loop turn.
            self.ua.handle_timers(self._loop.time())
        except Exception:  # a bug must not take the listener down
            logger.exception("SIP message from %s crashed the UA", source[0])
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
            if not usable_address(out.dest):  # the UA checks too; asyncio closes a transport on a bad one
                self._send_log.warning(
                    str(out.dest[0])[:64], "bad-address", "nothing sent", self._loop.time()
                )
                continue
            try:
                if out.transport == "udp":
                    if self._udp is not None:
                        self._udp.sendto(out.data, out.dest)
                else:
                    self._send_tcp(out.data, out.dest)
            except Exception as exc:  # one unsendable message must not stop the others
                self._send_log.warning(out.dest[0], "send-failed", repr(exc), self._loop.time())
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
        """Keep one loop timer at the UA's earliest deadline; re-arm only when that deadline moves earlier.

        Cancelling and re-arming on every datagram would starve the timer under steady traffic (a datagram
        arrives in every loop turn, and the new handle is never due in the turn it was made): no retransmission
        (G), no timeout (H) and no clean-up (J) would ever fire.
        """
        if self._closed:
            return
        deadline = self.ua.next_timer_deadline()
        if deadline is None:
            return  # a timer already armed fires once for nothing; cheaper than cancelling it now
        if self._timer is not None and not self._timer.cancelled() and self._timer.when() <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
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
