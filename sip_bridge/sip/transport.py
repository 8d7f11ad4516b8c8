"""Thin asyncio transports for the sans-I/O :class:`UserAgent`: UDP, TCP (server and client connections), timers.

Everything SIP happens in the UA; this module only moves bytes, runs the UA's timers on ``loop.time()`` and hands
events to the glue (an ``asyncio.Queue`` plus an optional callback). Call-control methods on the endpoint call the
UA and flush what it wants to send, so the glue never touches sockets::

    endpoint = await SipEndpoint.start(UserAgentConfig(port=0))
    event = await endpoint.next_event()          # IncomingCall(...)
    endpoint.answer(event.call_id, sdp_answer)
    ...
    await endpoint.close()

Inbound TCP is bounded (``policy.TcpLimits``): sources outside the allow-list and connections beyond the total or
per-source cap are closed at accept, before a byte is read; a connection without a complete message or an RFC 5626
CRLF keep-alive for ``idle_timeout_s`` is closed unless a call runs over it; an unfinished message must complete within
``read_timeout_s``. Accept errors (out of file descriptors) pause accepting briefly and are logged once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from .config import UserAgentConfig
from .core import usable_address
from .events import Event
from .policy import ConnectionCounter, RateLimitedLog, SourceAllowList, StreamActivity, TcpLimits
from .useragent import Address, UserAgent

logger = logging.getLogger(__name__)

ACCEPT_PAUSE_S = 0.5  # accepting pauses this long when the process is out of descriptors/buffers
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (every call and TCP connection holds descriptors); returns
    (soft, hard) afterwards. A no-op where the platform has no such limit."""
    try:
        import resource
    except ImportError:  # not POSIX
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open file limit from %s to %s: %s", soft, target, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


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
    """UDP + TCP listener on ``config.bind_host:config.port`` (port 0 = a free port) driving one UA."""

    def __init__(
        self, config: UserAgentConfig, ua: UserAgent, on_event: Callable[[Event], None] | None
    ) -> None:
        self.config = config
        self.ua = ua
        self.on_event = on_event
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.port = 0
        self._loop = asyncio.get_running_loop()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_listeners: list[socket.socket] = []
        self._accept_tasks: list[asyncio.Task[None]] = []  # one accept loop per listener, in the same order
        self.tcp_limits = TcpLimits(
            max_connections=config.tcp_max_connections,
            max_per_source=config.tcp_max_connections_per_source,
            idle_timeout_s=config.tcp_idle_timeout_s,
            read_timeout_s=config.tcp_read_timeout_s,
        )
        self._tcp_allow = SourceAllowList(config.admitted_networks)
        self._tcp_count = ConnectionCounter(self.tcp_limits.max_connections, self.tcp_limits.max_per_source)
        self._tcp_log = RateLimitedLog(logger, 60.0)
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._send_log = RateLimitedLog(logger, 60.0)

    @classmethod
    async def start(
        cls,
        config: UserAgentConfig,
        ua: UserAgent | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        register: bool | None = None,
    ) -> SipEndpoint:
        """Bind the configured transports and start the UA; registers at once when a registrar is configured."""
        loop = asyncio.get_running_loop()
        ua = ua or UserAgent(config, clock=loop.time)
        ua.clock = loop.time
        endpoint = cls(config, ua, on_event)
        await endpoint._bind()
        ua.set_local_address(config.bind_host, endpoint.port)
        if register if register is not None else bool(config.registrar):
            ua.register()
        endpoint.flush()
        return endpoint

    async def _bind(self) -> None:
        attempts = 20 if self.config.port == 0 else 1
        for attempt in range(attempts):
            port = self.config.port
            try:
                if "udp" in self.config.transports:
                    transport, _ = await self._loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(self), local_addr=(self.config.bind_host, port)
                    )
                    self._udp = transport
                    port = transport.get_extra_info("sockname")[1]
                if "tcp" in self.config.transports:
                    port = await self._listen_tcp(port)
                self.port = port
                return
            except OSError:
                if self._udp is not None:
                    self._udp.close()
                    self._udp = None
                self._close_tcp_listeners()
                if attempt == attempts - 1:
                    raise

    @property
    def listeners(self) -> dict[str, bool]:
        """Per configured transport: is it really serving (UDP transport open, TCP server accepting)?"""
        state: dict[str, bool] = {}
        if "udp" in self.config.transports:
            state["udp"] = self._udp is not None and not self._udp.is_closing()
        if "tcp" in self.config.transports:
            state["tcp"] = bool(self._tcp_listeners) and all(
                listener.fileno() >= 0 and not task.done()
                for listener, task in zip(self._tcp_listeners, self._accept_tasks, strict=False)
            )
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

    # -- TCP: listening, admission at accept, idle and read timeouts ---------------------------------------

    async def _listen_tcp(self, port: int) -> int:
        """Listening sockets for ``bind_host:port`` (each address it resolves to); returns the bound port."""
        infos = await self._loop.getaddrinfo(
            self.config.bind_host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[int, object]] = set()
        for family, kind, proto, _, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            listener = socket.socket(family, kind, proto)
            self._tcp_listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((sockaddr[0], port, *sockaddr[2:]))
            listener.listen(128)
            listener.setblocking(False)
            port = port or int(listener.getsockname()[1])  # port 0: every address gets the first free port
        for listener in self._tcp_listeners:
            self._accept_tasks.append(self._spawn(self._accept_loop(listener)))
        return port

    def _close_tcp_listeners(self) -> None:
        for listener in self._tcp_listeners:
            listener.close()
        self._tcp_listeners = []
        self._accept_tasks = []

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def tcp_connections(self) -> int:
        """Inbound TCP connections open now."""
        return self._tcp_count.total

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Our own accept loop (not ``start_server``): a refused source is closed before anything is read, and an
        out-of-descriptors error pauses accepting with one log line a minute instead of one per attempt."""
        while not self._closed:
            try:
                conn, peer = await self._loop.sock_accept(listener)
            except OSError as exc:
                if self._closed or listener.fileno() < 0:
                    return
                pause = ACCEPT_PAUSE_S if exc.errno in _OUT_OF_RESOURCES else 0.05
                self._tcp_log.warning(
                    "local", "accept-error", f"{exc}; accepting paused {pause} s", self._now()
                )
                await asyncio.sleep(pause)
                continue
            self._admit(conn, (str(peer[0]), int(peer[1])))

    def _now(self) -> float:
        return self._loop.time()

    def _admit(self, conn: socket.socket, address: Address) -> None:
        host = address[0]
        refusal = None
        if not self._tcp_allow.allows(host) and not self.ua.in_call_with(host):
            refusal = "forbidden-source"
        else:
            refusal = self._tcp_count.acquire(host)
        if refusal is not None:
            self._tcp_log.warning(host, refusal, "TCP connection closed at accept", self._now())
            conn.close()
            return
        self._spawn(self._serve_connection(conn, address))

    async def _serve_connection(self, conn: socket.socket, address: Address) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            self._writers[address] = writer
            await self._read_loop(address, reader, writer, StreamActivity(last_message_at=self._now()))
        except OSError:
            pass
        finally:
            if writer is None:  # the stream never took the socket over (error, or cancelled at shutdown)
                conn.close()
            self._tcp_count.release(address[0])

    async def _read_loop(
        self,
        address: Address,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        activity: StreamActivity | None = None,
    ) -> None:
        """Feed the UA until the peer closes; with ``activity`` (inbound connections) also until the idle or read
        timeout. Our own outbound connections have no timeout: there are only as many as we opened."""
        try:
            while not self._closed:
                if activity is None:
                    data: bytes | None = await reader.read(65536)
                else:
                    data = await self._read_within_limits(address, reader, activity)
                    if data is None:
                        writer.transport.abort()
                        break
                if not data:
                    break
                self._receive(data, address, "tcp")
                if activity is not None:
                    activity.update(self._now(), *self.ua.stream_progress(address))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writers.get(address) is writer:
                del self._writers[address]
            self.ua.connection_lost(address)
            writer.close()

    async def _read_within_limits(
        self, address: Address, reader: asyncio.StreamReader, activity: StreamActivity
    ) -> bytes | None:
        """The next chunk from an inbound connection, or None once it is past its idle or read deadline."""
        limits = self.tcp_limits
        while True:
            deadline = activity.deadline(limits, self.ua.carries_call(address))
            recheck = self._now() + limits.idle_timeout_s  # a call on it may end while we wait
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(recheck if deadline is None else min(recheck, deadline)):
                    return await reader.read(65536)
            reason = activity.expired(self._now(), limits, self.ua.carries_call(address))
            if reason is not None:
                self._tcp_log.warning(address[0], reason, "TCP connection closed", self._now())
                return None

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
        self._spawn(self._connect(dest))

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

    def refer(
        self,
        call_id: str,
        target_uri: str,
        *,
        headers: Mapping[str, str] | None = None,
        target_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.ua.refer(call_id, target_uri, headers=headers, target_headers=target_headers)
        self.flush()

    def invite(
        self,
        target_uri: str,
        sdp: bytes,
        *,
        transport: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        call_id = self.ua.invite(target_uri, sdp, transport=transport, headers=headers)
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
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._close_tcp_listeners()
