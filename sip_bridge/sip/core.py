"""Shared state and plumbing of the user agent: calls, outbox, events, timers, client transactions, digest retry.

Split from :mod:`useragent` (the public class and the server side) and :mod:`uac` (what we originate) so each
reads in one sitting; nothing here does I/O.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from . import events as ev
from .auth import DigestChallenger, authorization_header, parse_challenge
from .config import UserAgentConfig
from .dialog import Dialog, new_branch, new_call_id, new_tag
from .message import (
    Message,
    Request,
    Response,
    SipSyntaxError,
    build_response,
)
from .parser import MAX_MESSAGE_BYTES, StreamFramer
from .policy import NetworkSet, RateLimitedLog, SlidingWindowLimiter, SourceAllowList
from .transaction import (
    T1,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    ServerKey,
    ServerTransaction,
    Transaction,
)

logger = logging.getLogger(__name__)

Address = tuple[str, int]
ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "NOTIFY")
KNOWN_METHODS = (*ALLOWED_METHODS, "REGISTER", "REFER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "UPDATE", "PRACK")
ACCEPTED_BODIES = {
    "INVITE": ("application/sdp",),
    "ACK": ("application/sdp",),
    "NOTIFY": ("message/sipfrag",),
    "INFO": ("application/dtmf-relay", "application/dtmf"),
}
ACCEPT_HEADER = "application/sdp, message/sipfrag, application/dtmf-relay"
SUPPORTED: tuple[str, ...] = ()
SUPPORTED_DIGEST_ALGORITHMS = ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS")
ERROR_REPLIES_PER_SOURCE_PER_MINUTE = 60  # stateless 4xx/5xx to malformed or refused requests
REINVITE_ANSWER_TIMEOUT_S = 10.0  # a re-INVITE the glue does not answer gets 500 + Retry-After
UNANSWERED_TIMEOUT_S = 60.0  # an incoming call the glue neither answers nor rejects gets 480 after this
# Server transactions kept at once (each holds its request for up to 32 s). Out-of-dialog OPTIONS, in-dialog INFO
# and every other request answered at once are stateless, so only INVITEs, CANCELs and in-dialog BYE/NOTIFY count;
# beyond this: 503.
MAX_SERVER_TRANSACTIONS = 2000
# SIP INFO key presses per call and second, as for RFC 4733 digits (media.dtmf.DtmfDecoder.max_digits_per_s)
MAX_INFO_DIGITS_PER_S = 10
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_ZONE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def usable_address(address: tuple[object, object]) -> bool:
    """A destination a socket can take: an IP literal or a host name, and a port 1..65535.

    Anything else (port 99999 from a Via, a name with odd characters) raises inside the transport, and asyncio
    closes a datagram transport on such an error: one datagram would stop SIP over UDP for everyone.
    """
    host, port = address
    if not isinstance(host, str) or type(port) is not int or not 0 < port < 65536:
        return False
    address_part, percent, zone = host.partition("%")  # an IPv6 link-local source carries its zone
    if percent and not _ZONE.fullmatch(zone):
        return False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address_part)
            return True
        except (OSError, ValueError):
            continue
    return not percent and _HOSTNAME.fullmatch(host) is not None


class Outgoing(NamedTuple):
    data: bytes
    dest: Address
    transport: str


class CallRole(StrEnum):
    UAS = "uas"  # the peer called us
    UAC = "uac"  # we called (the B2BUA leg to staff)


class CallState(StrEnum):
    """Calls to us: INCOMING → ANSWERED (our 2xx) → CONFIRMED (its ACK). Our calls: CALLING → PROCEEDING →
    ESTABLISHED. Either may become ENDED at any point (kept a while to absorb retransmissions)."""

    INCOMING = "incoming"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    CALLING = "calling"
    PROCEEDING = "proceeding"
    ESTABLISHED = "established"
    ENDED = "ended"


IN_DIALOG_STATES = frozenset({CallState.ANSWERED, CallState.CONFIRMED, CallState.ESTABLISHED})


@dataclass
class Call:
    call_id: str
    role: CallRole
    state: CallState
    invite: Request
    transport: str
    peer: Address
    local_tag: str
    server_tx: InviteServerTransaction | None = None
    client_tx: InviteClientTransaction | None = None
    dialog: Dialog | None = None
    reinvite_in: InviteServerTransaction | None = None
    reinvite_out: InviteClientTransaction | None = None
    last_ack: tuple[Request, Address, str] | None = None
    cancel_pending: bool = False
    got_provisional: bool = False
    transfer_open: bool = False
    ended_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
    info_digit_times: deque[float] = field(default_factory=deque)  # arrivals of SIP INFO digits, last second


class UserAgentCore:
    """State and helpers every part of the UA uses; see :class:`~sip_bridge.sip.useragent.UserAgent`."""

    def __init__(
        self,
        config: UserAgentConfig,
        *,
        local_host: str | None = None,
        local_port: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.server_header = config.server_header  # Server/User-Agent value; empty: the header is left out
        self.local_host = local_host or config.bind_host
        self.local_port = local_port if local_port is not None else config.port
        self.max_message_bytes = min(config.max_message_bytes, MAX_MESSAGE_BYTES)
        self._events: list[ev.Event] = []
        self._outbox: list[Outgoing] = []
        self._server_tx: dict[ServerKey, ServerTransaction] = {}
        self._client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self._calls: dict[str, Call] = {}
        self._framers: dict[Address, StreamFramer] = {}
        self._broken_streams: list[Address] = []
        self._timers: dict[tuple[str, str], float] = {}
        # (deadline, tie-breaker, transaction) for every timer a transaction arms; entries whose timer was
        # cancelled stay until they come up and are skipped then (a lazy heap: O(log n) per timer, no scans).
        self._tx_timers: list[tuple[float, int, Transaction]] = []
        self._tx_timer_order = itertools.count()
        self._tag_key = secrets.token_bytes(16)  # keys the To tags of stateless answers
        self.max_server_transactions = MAX_SERVER_TRANSACTIONS
        self._allow = SourceAllowList(config.admitted_networks)
        self._invite_rate = SlidingWindowLimiter(config.invites_per_source_per_minute, 60.0)
        self._error_replies = SlidingWindowLimiter(ERROR_REPLIES_PER_SOURCE_PER_MINUTE, 60.0)
        self.log = RateLimitedLog(logger, 60.0)
        self._trusted = NetworkSet(config.trusted_networks)
        self._challenger: DigestChallenger | None = None
        if config.inbound_realm and config.inbound_username and config.inbound_password is not None:
            self._challenger = DigestChallenger(
                config.inbound_realm,
                config.inbound_username,
                config.inbound_password,
                config.inbound_nonce_ttl_s,
                max_failures=config.inbound_auth_max_failures,
                failure_window_s=config.inbound_auth_failure_window_s,
                lockout_s=config.inbound_auth_lockout_s,
                algorithms=config.inbound_digest_algorithms,
            )
        self._reg_call_id = new_call_id(self.local_host)
        self._reg_tag = new_tag()
        self._reg_cseq = 0
        self.registered = False

    def set_local_address(self, host: str, port: int) -> None:
        """Called by the transport once it knows the bound port (port 0 in the config = any free port)."""
        self.local_host, self.local_port = host, port

    @property
    def contact_host(self) -> str:
        host = self.config.public_host or self.local_host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def contact(self, transport: str = "udp") -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{self.config.user}@{self.contact_host}:{self.local_port}{suffix}>"

    def _via(self, transport: str) -> str:
        return (
            f"SIP/2.0/{transport.upper()} {self.contact_host}:{self.local_port};branch={new_branch()};rport"
        )

    def next_events(self) -> list[ev.Event]:
        events, self._events = self._events, []
        return events

    def outgoing(self) -> list[Outgoing]:
        out, self._outbox = self._outbox, []
        return out

    def active_calls(self) -> list[str]:
        return [call_id for call_id, call in self._calls.items() if call.state != CallState.ENDED]

    def _send(self, message: Message, dest: Address, transport: str) -> None:
        if not usable_address(dest):
            self.log.warning(
                str(dest[0])[:64], "bad-address", f"nothing sent to unusable {dest!r:.80}", self.clock()
            )
            return
        self._outbox.append(Outgoing(message.to_bytes(), dest, transport))

    def state_sizes(self) -> dict[str, int]:
        """How much per-peer state the UA holds (tests and monitoring: every entry must stay bounded)."""
        return {
            "server_transactions": len(self._server_tx),
            "client_transactions": len(self._client_tx),
            "calls": len(self._calls),
            "ua_timers": len(self._timers),
            "transaction_timers": len(self._tx_timers),
            "tcp_framers": len(self._framers),
        }

    def _track(self, tx: Transaction) -> None:
        """Let ``tx`` put its timers on our heap (before it arms any)."""
        tx.on_arm = self._schedule

    def _schedule(self, tx: Transaction, deadline: float) -> None:
        heapq.heappush(self._tx_timers, (deadline, next(self._tx_timer_order), tx))

    def broken_streams(self) -> list[Address]:
        """TCP peers whose stream could not be framed any more: the transport closes those connections."""
        broken, self._broken_streams = self._broken_streams, []
        return broken

    def connection_lost(self, peer: Address) -> None:
        """A TCP connection closed: forget its framing state."""
        self._framers.pop(peer, None)

    def next_timer_deadline(self) -> float | None:
        heap = self._tx_timers
        while heap and (heap[0][2].terminated or heap[0][0] not in heap[0][2].timers.values()):
            heapq.heappop(heap)  # a cancelled timer or a finished transaction
        deadlines = list(self._timers.values())
        if heap:
            deadlines.append(heap[0][0])
        return min(deadlines) if deadlines else None

    def _fire_transaction_timers(self, now: float) -> None:
        """Run every transaction timer due by ``now`` and drop transactions that ended."""
        heap = self._tx_timers
        while heap and heap[0][0] <= now:
            tx = heapq.heappop(heap)[2]
            if tx.terminated:
                continue
            tx.fire_timers(now)  # re-arming pushes new entries, always later than now
            if tx.terminated:
                self._forget_transaction(tx)

    def _forget_transaction(self, tx: Transaction) -> None:
        if isinstance(tx, ServerTransaction):
            key = tx.table_key
            if key is not None and self._server_tx.get(key) is tx:
                del self._server_tx[key]
        elif isinstance(tx, ClientTransaction):
            client_key = (tx.branch, tx.request.method)
            if self._client_tx.get(client_key) is tx:
                del self._client_tx[client_key]

    def _reply(
        self,
        tx: ServerTransaction,
        status: int,
        reason: str | None,
        now: float,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Mapping[str, str | Sequence[str]] | None = None,
        dialog_headers: bool = False,
    ) -> Response:
        response = build_response(
            tx.request, status, reason, to_tag=to_tag or (new_tag() if status > 100 else None)
        )
        if dialog_headers:
            for value in tx.request.headers.lines("Record-Route"):
                response.headers.add("Record-Route", value)
            response.headers.add("Contact", self.contact(tx.transport))
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        for name, values in (extra or {}).items():
            for value in [values] if isinstance(values, str) else values:  # a list: one header line each
                response.headers.add(name, value)
        if self.server_header:
            response.headers.add("Server", self.server_header)
        if body:
            response.headers.add("Content-Type", content_type or "application/sdp")
            response.body = body
        tx.respond(response, now)
        return response

    def _start_client(
        self,
        request: Request,
        dest: Address,
        transport: str,
        on_response: Callable[[ClientTransaction, Response], None],
        on_timeout: Callable[[ClientTransaction], None],
    ) -> ClientTransaction:
        if self.server_header:
            request.headers.add("User-Agent", self.server_header)
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        tx = cls(request, dest, transport, self._send, on_response, on_timeout)
        self._client_tx[(tx.branch, request.method)] = tx
        self._track(tx)
        tx.start(self.clock())
        return tx

    def _call(self, call_id: str) -> Call:
        call = self._calls.get(call_id)
        if call is None or call.state == CallState.ENDED:
            raise KeyError(f"no active call {call_id!r}")
        return call

    def _established(self, call: Call) -> Dialog:
        if call.dialog is None or call.state not in IN_DIALOG_STATES:
            raise ValueError(f"call {call.call_id!r} is not established")
        return call.dialog

    def _dialog_send(
        self,
        call: Call,
        method: str,
        on_response: Callable[[ClientTransaction, Response], None],
        on_timeout: Callable[[ClientTransaction], None],
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        extra: dict[str, str] | None = None,
    ) -> ClientTransaction:
        dialog = call.dialog
        assert dialog is not None
        request = dialog.build_request(method, self._via(dialog.transport), self.contact(dialog.transport))
        for name, value in (extra or {}).items():
            request.headers.add(name, value)
        if body:
            request.headers.add("Content-Type", content_type)
            request.body = body
        dest, transport = dialog.destination()
        return self._start_client(request, dest, transport, on_response, on_timeout)

    def _send_bye(self, call: Call) -> None:
        if call.dialog is None:
            return

        def on_response(tx: ClientTransaction, response: Response) -> None:
            if response.status in (401, 407):
                self._retry_with_auth(tx, response, call)  # some PBXs challenge in-dialog requests

        self._dialog_send(call, "BYE", on_response, lambda tx: None)

    def _retry_with_auth(
        self, tx: ClientTransaction, response: Response, call: Call | None
    ) -> ClientTransaction | None:
        """Resend ``tx.request`` with credentials for a 401/407 (once per request chain)."""
        username, password = self.config.auth_username, self.config.auth_password
        if username is None or password is None:
            return None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        challenge = _pick_digest_challenge(response.headers.lines(header))
        if challenge is None:
            return None
        previous = tx.request.headers.get(answer_header)
        if previous is not None:
            stale = challenge.get("stale", "").lower() == "true"
            if not stale or f'nonce="{challenge.get("nonce", "")}"' in previous:
                return (
                    None  # our credentials were refused already (only a new, stale-marked nonce is retried)
                )
        request = Request(headers=tx.request.headers.copy(), method=tx.request.method, uri=tx.request.uri)
        request.body = tx.request.body
        cseq = tx.request.cseq
        request.headers.set("CSeq", f"{cseq.number + 1} {cseq.method}")
        request.headers.set("Via", self._via(tx.transport))
        request.headers.remove("User-Agent")
        request.headers.remove(answer_header)
        request.headers.add(
            answer_header,
            authorization_header(
                challenge, username=username, password=password, method=request.method, uri=request.uri
            ),
        )
        if call is not None and call.dialog is not None:
            call.dialog.local_cseq = cseq.number + 1
        handlers = tx._on_response, tx._on_timeout
        new_tx = self._start_client(request, tx.peer, tx.transport, handlers[0], handlers[1])
        if call is not None and call.client_tx is tx and isinstance(new_tx, InviteClientTransaction):
            call.client_tx = new_tx
            call.invite = request
        return new_tx

    def _end(self, call: Call, reason: str, code: int | None, now: float) -> None:
        if call.state == CallState.ENDED:
            return
        call.state = CallState.ENDED
        call.ended_at = now
        for kind in ("refer", "unanswered", "reinvite"):
            self._timers.pop((kind, call.call_id), None)
        call.transfer_open = False
        if call.server_tx is not None:
            call.server_tx.stop_retransmitting()
        self._events.append(ev.CallEnded(call.call_id, reason, code))
        # keep the record a while to absorb late retransmissions (2xx, BYE), then forget it
        self._timers[("forget", call.call_id)] = now + 64 * T1


def _pick_digest_challenge(values: list[str]) -> dict[str, str] | None:
    """The first Digest challenge with an algorithm we implement (a server may offer SHA-256 and MD5)."""
    for value in values:
        try:
            scheme, params = parse_challenge(value)
        except SipSyntaxError:
            continue
        if scheme == "digest" and params.get("algorithm", "MD5").upper() in SUPPORTED_DIGEST_ALGORITHMS:
            return params
    return None
