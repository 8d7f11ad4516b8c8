"""The sans-I/O SIP user agent: bytes and a clock in, events and bytes-to-send out.

Drive it like this (``SipEndpoint`` in ``transport.py`` does exactly this over asyncio)::

    ua = UserAgent(UserAgentConfig(), local_host="127.0.0.1", local_port=5060, clock=loop.time)
    ua.receive(data, ("192.0.2.1", 5060), "udp")     # every datagram / TCP chunk (TCP is framed inside)
    for event in ua.next_events(): ...                # IncomingCall, CallEnded, ...
    for out in ua.outgoing(): send(out.data, out.dest, out.transport)
    ua.handle_timers(loop.time()); ua.next_timer_deadline()  # retransmissions, timeouts, refreshes

Call control (calls are named by their SIP Call-ID, the ``call_id`` in every event):

- ``answer(call_id, sdp)``: 180 Ringing then 200 OK with ``sdp`` (100 Trying went out on arrival);
  ``ringing(call_id)`` sends only the 180. ``CallConfirmed`` follows when the ACK arrives.
- ``reject(call_id, code=486, reason=None)``: final non-2xx to an unanswered incoming call (one left alone
  for 60 s gets 480 and ``CallEnded(reason="timeout")``).
- ``hangup(call_id)``: BYE for an established call, CANCEL for our own unanswered INVITE, 480 for an unanswered
  incoming call. Emits ``CallEnded(reason="local")`` at once.
- ``refer(call_id, target_uri, headers=None, target_headers=None)``: blind transfer (REFER with Refer-To/
  Referred-By; ``headers`` on the REFER, ``target_headers`` escaped into the Refer-To URI for the transferee's
  INVITE). Then ``ReferAccepted`` and ``TransferSucceeded``/``TransferFailed(code)`` (405/501/603 refusals, 408 on
  timeout or no final NOTIFY within ``config.transfer_timeout_s``).
- ``invite(target_uri, sdp, headers=None) -> call_id``: outbound call (UAC; B2BUA leg). ``OutboundCallProgress``,
  ``OutboundCallAnswered(sdp)`` (ACK sent) or ``OutboundCallFailed(code)``; 401/407 are answered with the
  ``auth_*`` credentials once.
- ``reinvite(call_id, sdp)``: hold/unhold/session refresh: ``ReInviteAnswered(sdp)`` or ``ReInviteFailed(code)``.
- ``answer_reinvite(call_id, sdp)`` / ``reject_reinvite(call_id, code=488)``: reply to a ``ReInvite`` event
  (within 10 s, else the UA answers 500 with Retry-After). ``ReInvite.sdp`` is empty for an offer-less
  re-INVITE: then ``answer_reinvite`` carries our offer.
- ``register()``: REGISTER to ``config.registrar`` with digest auth and refresh; ``Registered``/
  ``RegistrationFailed``. ``unregister()`` sends Expires: 0.
- ``active_calls()``: Call-IDs of calls not yet ended.

Call-control methods raise ``KeyError`` for an unknown or ended call and ``ValueError`` for a call in the wrong
state (e.g. ``answer`` twice) or an extra header field that ``headers.checked_headers`` refuses (a field the UA
writes itself, a value with CR/LF or another control character); ``hangup`` never raises. Every call (in or out) gets exactly one ``CallEnded``.

Events (``events.py``): ``IncomingCall`` (100 Trying already sent), ``CallConfirmed`` (ACK in), ``CallEnded(reason:
bye_remote | local | cancel | rejected | timeout | ack_timeout | failed)``, ``ReInvite``, ``ReInviteAnswered``,
``ReInviteFailed``, ``ReferAccepted``, ``TransferSucceeded``, ``TransferFailed(code)``, ``OutboundCallProgress``,
``OutboundCallAnswered(sdp)``, ``OutboundCallFailed(code)``, ``Registered(expires_s)``, ``RegistrationFailed``,
``DtmfInfo(digit, duration_ms)``.

Policy on inbound requests: source allow-list (``config.admitted_networks``: allowed plus trusted networks; 403,
without Server header), per-source INVITE rate (503 + Retry-After; sources in ``trusted_networks`` are exempt),
``max_calls`` and ``draining`` (503 + Retry-After; out-of-dialog OPTIONS get 503 + Retry-After then too, so a load
balancer's probe sees it), digest challenge of INVITEs when ``inbound_*`` are set (401; 503 + Retry-After
after repeated wrong answers, see ``auth.DigestChallenger``), oversized/malformed messages (400/505 where a response
can be built, else dropped; numbers are ASCII digits of bounded length, Call-IDs RFC 3261 words of at most 256
characters, headers UTF-8 without NUL), RFC 4475 application-layer answers (416, 420, 415, 406, 405/501), all logged
at most once per source and kind per minute. Error replies carry the standard reason phrase only (the detail goes to
the log). A 503 always carries Retry-After (also one the glue sends with ``reject``). Non-INVITE requests that are
answered at once (out-of-dialog OPTIONS, in-dialog INFO, refusals, 481s) are answered statelessly (RFC 3261 8.2.7),
so a flood keeps no state; at most ``max_server_transactions`` transactions are kept (then 503). SIP INFO digits are
capped like RFC 4733 ones: at most 10 per call and second reach the application (``DtmfInfo``), a retransmitted INFO
gives none. A reply to an address no socket can take (e.g. a Via port 99999) is never queued. Over TCP, an RFC 5626
CRLFCRLF keep-alive gets a CRLF pong (at most one per chunk) and counts as activity.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from . import events as ev
from .core import (
    ACCEPT_HEADER,
    ACCEPTED_BODIES,
    ALLOWED_METHODS,
    KNOWN_METHODS,
    MAX_INFO_DIGITS_PER_S,
    REINVITE_ANSWER_TIMEOUT_S,
    SUPPORTED,
    UNANSWERED_TIMEOUT_S,
    Address,
    Call,
    CallRole,
    CallState,
    Outgoing,
)
from .dialog import Dialog, new_tag
from .message import (
    REASONS,
    Request,
    Response,
    SipSyntaxError,
    Via,
    build_response,
    parse_number,
    split_outside_quotes,
)
from .parser import ParseError, StreamFramer, parse_datagram, validate_request, validate_response
from .transaction import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerKey,
    ServerTransaction,
    TransactionState,
)
from .uac import ClientSide

__all__ = ["Address", "Outgoing", "UserAgent"]

logger = logging.getLogger(__name__)


class UserAgent(ClientSide):
    """See the module docstring for the API; nothing here does I/O or reads the wall clock except ``clock``."""

    # Set by the application when it shuts down gracefully: new INVITEs get 503 + Retry-After and out-of-dialog
    # OPTIONS 503 (a load balancer stops sending calls here); calls in progress go on as before.
    draining: bool = False

    @property
    def takes_calls(self) -> bool:
        """Whether a new INVITE would be taken now (not draining, below ``max_calls``): the OPTIONS answer."""
        return not self.draining and len(self.active_calls()) < self.config.max_calls

    def receive(self, data: bytes, source: Address, transport: str = "udp") -> None:
        """One UDP datagram, or the next chunk of a TCP stream from ``source``. Never raises on bad input."""
        now = self.clock()
        host = source[0]
        if transport == "udp":
            if len(data) > self.max_message_bytes:
                self.log.warning(host, "oversized", f"{len(data)} byte datagram dropped", now)
                return
            if not data.strip(b"\r\n\x00 "):
                return  # keep-alive
            try:
                messages: list[Request | Response] = [parse_datagram(data)]
            except ParseError as exc:
                self._reject_unparsable(exc, source, transport, now)
                return
        else:
            framer = self._framers.setdefault(source, StreamFramer(self.max_message_bytes))
            pings = framer.keepalives
            try:
                messages = framer.feed(data)
            except ParseError as exc:
                self._framers.pop(source, None)
                self._broken_streams.append(source)
                self._reject_unparsable(exc, source, transport, now)
                return
            if framer.keepalives != pings:  # RFC 5626 3.5.1 ping: CRLF pong, at most one per chunk
                self._outbox.append(Outgoing(b"\r\n", source, transport))
        for message in messages:
            try:
                if isinstance(message, Request):
                    self._receive_request(message, source, transport, now)
                else:
                    self._receive_response(message, source, now)
            except SipSyntaxError as exc:
                self.log.warning(host, "malformed", str(exc), now)

    def _reject_unparsable(self, exc: ParseError, source: Address, transport: str, now: float) -> None:
        self.log.warning(source[0], "malformed", _printable(exc.reason), now)
        if exc.request is not None and exc.request.method != "ACK" and "Via" in exc.request.headers:
            self._respond_stateless(exc.request, exc.status, source, transport)

    def _response_address(self, request: Request, source: Address, transport: str) -> Address:
        """RFC 3261 18.2.2 with RFC 3581: reliable -> same connection; rport -> source port; else Via port.

        The host is always the packet's source (never a name from the Via), and a Via that does not parse
        (e.g. port 99999) gets its answer at the source address.
        """
        if transport != "udp":
            return source
        try:
            via = request.top_via
        except SipSyntaxError:
            return source
        if "rport" in via.params:
            return source
        return source[0], via.port or 5060

    def _stamp_via(self, request: Request, source: Address) -> None:
        """Add received=/rport= to the top Via so responses and retransmissions go back the way they came."""
        lines = request.headers.lines("Via")
        if not lines:
            return
        values = split_outside_quotes(lines[0], ",")
        via = Via.parse(values[0])
        if via.host.strip("[]") != source[0]:
            via.params["received"] = source[0]
        if "rport" in via.params:
            via.params["rport"] = str(source[1])
        values[0] = str(via)
        request.headers.replace_first("Via", ", ".join(v.strip() for v in values))

    def _respond_stateless(
        self,
        request: Request,
        status: int,
        source: Address,
        transport: str,
        extra: dict[str, str] | None = None,
        *,
        server_header: bool = True,
    ) -> None:
        """An error reply without a transaction, with the standard reason phrase (never the peer's text)."""
        if not self._error_replies.allow(source[0], self.clock()):
            return  # a flood of garbage gets a few answers per minute, not one each
        dest = self._response_address(request, source, transport)
        self._send_stateless(request, status, None, dest, transport, extra, server_header=server_header)

    def _send_stateless(
        self,
        request: Request,
        status: int,
        reason: str | None,
        dest: Address,
        transport: str,
        extra: dict[str, str] | None = None,
        *,
        server_header: bool = True,
    ) -> None:
        """A final response without a server transaction (RFC 3261 8.2.7): a retransmitted request is simply
        answered again, so nothing is kept per request."""
        to_tag = self._stateless_tag(request)
        response = build_response(request, status, reason or REASONS.get(status), to_tag=to_tag)
        for name, value in (extra or {}).items():
            response.headers.add(name, value)
        if server_header and self.server_header:
            response.headers.add("Server", self.server_header)
        self._send(response, dest, transport)

    def _stateless_tag(self, request: Request) -> str:
        """RFC 3261 8.2.7: a stateless UAS gives the same request the same To tag, so a retransmission gets the
        same answer; a keyed hash of what identifies the request keeps nothing in memory."""
        headers = request.headers
        identity = [request.method, request.uri, *headers.lines("Via")[:1]]
        identity += [headers.get(name) or "" for name in ("From", "Call-ID", "CSeq")]
        text = "\n".join(identity).encode("utf-8", errors="surrogateescape")
        return hmac.new(self._tag_key, text, hashlib.sha256).hexdigest()[:12]

    def _server_key(self, request: Request, method: str | None = None) -> ServerKey:
        via = request.top_via
        method = method or ("INVITE" if request.method == "ACK" else request.method)
        if via.has_rfc3261_branch:
            return ServerKey(via.branch or "", via.sent_by, method)
        # RFC 3261 17.2.3 for RFC 2543 peers: Request-URI, From tag, Call-ID, CSeq number, top Via (the ACK's To
        # tag is left out because the INVITE had none).
        return ServerKey(
            "",
            via.sent_by,
            method,
            (
                request.uri,
                request.from_.tag or "",
                request.call_id,
                str(request.cseq.number),
                via.branch or "",
            ),
        )

    def _receive_request(self, request: Request, source: Address, transport: str, now: float) -> None:
        host = source[0]
        if not self._allow.allows(host) and self._find_dialog_call(request) is None:
            self.log.warning(host, "forbidden-source", f"{_printable(request.method)} refused", now)
            if request.method != "ACK" and "Via" in request.headers:
                self._respond_stateless(request, 403, source, transport, server_header=False)
            return
        problem = validate_request(request)
        if problem is not None:
            self.log.warning(
                host, "malformed", f"{_printable(request.method)}: {_printable(problem[1])}", now
            )
            if request.method != "ACK":
                self._respond_stateless(request, problem[0], source, transport)
            return
        key = self._server_key(request)
        existing = self._server_tx.get(key)
        if existing is not None:
            if request.method == "ACK" and isinstance(existing, InviteServerTransaction):
                if existing.state == TransactionState.COMPLETED:
                    existing.receive_ack(now)
                    return
            elif request.method != "ACK":
                existing.receive_retransmission(now)
                return
        self._stamp_via(request, source)
        reply_to = self._response_address(request, source, transport)
        if request.method == "ACK":
            self._receive_ack(request, now)
            return
        if request.method != "INVITE":
            answer = self._stateless_answer(request)
            if answer is not None:
                status, reason, extra = answer
                self._send_stateless(request, status, reason, reply_to, transport, extra)
                return
        if request.method == "INFO":
            self._receive_info(request, reply_to, transport, now)
            return
        if len(self._server_tx) >= self.max_server_transactions:
            self.log.warning(host, "overload", "server transaction table full: 503", now)
            retry = {"Retry-After": str(self.config.retry_after_s)}
            self._respond_stateless(request, 503, source, transport, retry)
            return
        if request.method == "CANCEL":
            self._receive_cancel(request, key, reply_to, transport, now)
            return
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(request, reply_to, transport, self._send, self._server_timeout)
        else:
            tx = NonInviteServerTransaction(request, reply_to, transport, self._send)
        self._keep(key, tx)
        answer = self._application_check(request)
        if answer is not None:
            status, reason, extra = answer
            self._reply(tx, status, reason, now, extra=extra)
            return
        handler = getattr(self, f"_on_{request.method.lower()}")
        handler(request, tx, source, transport, now)

    def _keep(self, key: ServerKey, tx: ServerTransaction) -> None:
        tx.table_key = key
        self._server_tx[key] = tx
        self._track(tx)

    def _stateless_answer(self, request: Request) -> tuple[int, str | None, dict[str, str]] | None:
        """The final answer to a non-INVITE that needs no state (RFC 3261 8.2.7 allows a stateless UAS).

        Refusals of the application checks, out-of-dialog OPTIONS, a CANCEL for no INVITE, and in-dialog methods
        that name no dialog of ours: a flood of these keeps nothing in memory.
        """
        if request.method == "CANCEL":
            invite_tx = self._server_tx.get(self._server_key(request, "INVITE"))
            return None if isinstance(invite_tx, InviteServerTransaction) else (481, None, {})
        answer = self._application_check(request)
        if answer is not None:
            return answer
        if request.method == "OPTIONS" and request.to.tag is None:
            if (
                not self.takes_calls
            ):  # a load balancer's probe: send new calls elsewhere (Kamailio dispatcher)
                return 503, None, {**self._options_headers(), "Retry-After": str(self.config.retry_after_s)}
            return 200, "OK", self._options_headers()
        if request.method in ("BYE", "INFO", "NOTIFY") and self._find_dialog_call(request) is None:
            return 481, "Subscription Does Not Exist" if request.method == "NOTIFY" else None, {}
        return None

    def _options_headers(self) -> dict[str, str]:
        extra = {"Allow": ", ".join(ALLOWED_METHODS), "Accept": ACCEPT_HEADER}
        if SUPPORTED:
            extra["Supported"] = ", ".join(SUPPORTED)
        return extra

    def _application_check(self, request: Request) -> tuple[int, str, dict[str, str]] | None:
        """RFC 3261 8.2.1-8.2.3 in order: method, URI scheme, Require, body type, Accept."""
        allow = {"Allow": ", ".join(ALLOWED_METHODS)}
        if request.method == "REGISTER":
            # A registrar must reject a non-SIP AOR (RFC 4475 3.3.4); we are no registrar at all.
            if not request.to.uri.is_sip:
                return 400, "Bad Request", {}  # its To is no SIP URI
            return 405, "Method Not Allowed", allow
        if request.method not in ALLOWED_METHODS:
            if request.method in KNOWN_METHODS:
                return 405, "Method Not Allowed", allow
            return 501, "Not Implemented", allow
        if not request.request_uri.is_sip:
            return 416, "Unsupported URI Scheme", {}
        required = [v for v in request.headers.values("Require") if v and v not in SUPPORTED]
        if required and request.method not in ("ACK", "CANCEL"):
            return 420, "Bad Extension", {"Unsupported": ", ".join(required)}
        if request.body and request.content_type not in ACCEPTED_BODIES.get(request.method, ()):
            accepted = ", ".join(ACCEPTED_BODIES.get(request.method, ("application/sdp",)))
            return 415, "Unsupported Media Type", {"Accept": accepted}
        if request.method in ("INVITE", "OPTIONS") and "Accept" in request.headers:
            accepted_types = [v.split(";", 1)[0].strip().lower() for v in request.headers.values("Accept")]
            if accepted_types and not {"application/sdp", "application/*", "*/*"} & set(accepted_types):
                return 406, "Not Acceptable", {"Accept": "application/sdp"}
        return None

    def _find_dialog_call(self, request: Request) -> Call | None:
        call = self._calls.get(request.call_id)
        if call is None or call.dialog is None or not call.dialog.matches(request):
            return None
        return call

    def _on_invite(
        self, request: Request, tx: ServerTransaction, source: Address, transport: str, now: float
    ) -> None:
        assert isinstance(tx, InviteServerTransaction)
        if request.to.tag is not None:
            self._on_reinvite(request, tx, now)
            return
        host = source[0]
        earlier = self._calls.get(request.call_id)
        if earlier is not None and earlier.state != CallState.ENDED:
            self._reply(tx, 482, "Loop Detected", now)  # same Call-ID, new branch: merged request (8.2.2.2)
            return
        if earlier is not None:
            del self._calls[request.call_id]  # a new attempt after a rejected one
        trusted = host in self._trusted  # a trunk sends every call from one address: no per-source rate
        if not trusted and not self._invite_rate.allow(host, now):
            self.log.warning(host, "rate-limit", "INVITE rate exceeded", now)
            self._reply(tx, 503, None, now, extra={"Retry-After": str(self.config.retry_after_s)})
            return
        if self.draining:
            self.log.warning(host, "draining", "new call while draining", now)
            self._reply(tx, 503, None, now, extra={"Retry-After": str(self.config.retry_after_s)})
            return
        if len(self.active_calls()) >= self.config.max_calls:
            self.log.warning(host, "busy", "max_calls reached", now)
            self._reply(tx, 503, None, now, extra={"Retry-After": str(self.config.retry_after_s)})
            return
        if self._challenger is not None:
            verdict = self._challenger.check(
                request.headers.get("Authorization"), "INVITE", request.uri, now, lockable=not trusted
            )
            if verdict.retry_after_s:
                self.log.warning(host, "auth-lockout", "too many wrong digest answers", now)
                extra = {"Retry-After": str(verdict.retry_after_s)}
                self._reply(tx, 503, None, now, extra=extra)
                return
            if not verdict.accepted:
                challenges = self._challenger.challenges(now, stale=verdict.stale)
                self._reply(tx, 401, "Unauthorized", now, extra={"WWW-Authenticate": challenges})
                return
        self._reply(tx, 100, "Trying", now)
        call = Call(
            call_id=request.call_id,
            role=CallRole.UAS,
            state=CallState.INCOMING,
            invite=request,
            transport=transport,
            peer=source,
            local_tag=new_tag(),
            server_tx=tx,
        )
        self._calls[call.call_id] = call
        self._timers[("unanswered", call.call_id)] = now + UNANSWERED_TIMEOUT_S
        from_ = request.from_
        self._events.append(
            ev.IncomingCall(
                call_id=call.call_id,
                from_uri=str(from_.uri),
                from_display=from_.display_name,
                to_uri=str(request.to.uri),
                remote_addr=source,
                transport=transport,
                sdp=request.body if request.content_type == "application/sdp" else b"",
            )
        )

    def _on_reinvite(self, request: Request, tx: InviteServerTransaction, now: float) -> None:
        call = self._find_dialog_call(request)
        if call is None or call.dialog is None or call.state == CallState.ENDED:
            self._reply(tx, 481, None, now)
            return
        if call.reinvite_in is not None or call.reinvite_out is not None or call.state == CallState.ANSWERED:
            self._reply(tx, 491, "Request Pending", now, extra={"Retry-After": "1"})
            return
        if not call.dialog.accept_remote_cseq(request.cseq.number):
            self.log.warning(call.peer[0], "cseq-order", "re-INVITE with an old CSeq: 500", now)
            self._reply(tx, 500, None, now, extra={"Retry-After": "1"})
            return
        call.dialog.refresh_target(request)
        call.reinvite_in = tx
        self._timers[("reinvite", call.call_id)] = now + REINVITE_ANSWER_TIMEOUT_S
        self._events.append(ev.ReInvite(call.call_id, request.body))

    def _receive_ack(self, request: Request, now: float) -> None:
        call = self._calls.get(request.call_id)
        if call is None or call.dialog is None or not call.dialog.matches(request):
            return  # stray ACK: nothing to do, nothing to answer
        if call.reinvite_in is not None and call.reinvite_in.state == TransactionState.ACCEPTED:
            call.reinvite_in.receive_ack(now)
            call.reinvite_in = None
            return
        if call.server_tx is not None and call.state == CallState.ANSWERED:
            call.server_tx.receive_ack(now)
            call.state = CallState.CONFIRMED
            sdp = request.body if request.content_type == "application/sdp" else b""
            self._events.append(ev.CallConfirmed(call.call_id, sdp))

    def _receive_cancel(
        self, request: Request, key: ServerKey, reply_to: Address, transport: str, now: float
    ) -> None:
        invite_tx = self._server_tx.get(self._server_key(request, "INVITE"))
        assert isinstance(invite_tx, InviteServerTransaction)  # else _stateless_answer sent 481
        tx = NonInviteServerTransaction(request, reply_to, transport, self._send)
        self._keep(key, tx)
        self._reply(tx, 200, "OK", now)
        if invite_tx.final_sent:
            return
        call = self._calls.get(request.call_id)
        to_tag = call.local_tag if call is not None else None
        self._reply(invite_tx, 487, "Request Terminated", now, to_tag=to_tag)
        if call is not None and call.server_tx is invite_tx:
            self._end(call, "cancel", 487, now)
        elif call is not None and call.reinvite_in is invite_tx:
            call.reinvite_in = None

    def _on_bye(
        self, request: Request, tx: ServerTransaction, source: Address, transport: str, now: float
    ) -> None:
        call = self._find_dialog_call(request)
        if call is None:
            self._reply(tx, 481, None, now)
            return
        self._reply(tx, 200, "OK", now)
        if call.state == CallState.ENDED:
            return
        for pending in (call.server_tx, call.reinvite_in):  # an INVITE still unanswered when the BYE came
            if pending is not None and not pending.final_sent:
                self._reply(pending, 487, "Request Terminated", now, to_tag=call.local_tag)
        self._end(call, "bye_remote", None, now)

    def _on_options(
        self, request: Request, tx: ServerTransaction, source: Address, transport: str, now: float
    ) -> None:
        self._reply(tx, 200, "OK", now, extra=self._options_headers())

    def _receive_info(self, request: Request, reply_to: Address, transport: str, now: float) -> None:
        """In-dialog INFO (DTMF): answered statelessly, so a flood keeps no transaction and cannot fill the table
        that new INVITEs need; a retransmission (CSeq not above the last one) is answered again but gives no second
        digit, and at most ``MAX_INFO_DIGITS_PER_S`` digits per call and second reach the application."""
        call = self._find_dialog_call(request)
        assert call is not None and call.dialog is not None  # else _stateless_answer sent 481
        self._send_stateless(request, 200, None, reply_to, transport)
        dialog = call.dialog
        number = request.cseq.number
        if call.state == CallState.ENDED or (dialog.remote_cseq is not None and number <= dialog.remote_cseq):
            return
        dialog.remote_cseq = number
        digit, duration = _dtmf_of_info(request)
        if not digit:
            return
        times = call.info_digit_times
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) >= MAX_INFO_DIGITS_PER_S:
            self.log.warning(
                reply_to[0], "dtmf-rate", f"over {MAX_INFO_DIGITS_PER_S} INFO digits/s dropped", now
            )
            return
        times.append(now)
        self._events.append(ev.DtmfInfo(call.call_id, digit, duration))

    def _on_notify(
        self, request: Request, tx: ServerTransaction, source: Address, transport: str, now: float
    ) -> None:
        call = self._find_dialog_call(request)
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if call is None or event != "refer":
            self._reply(tx, 481, "Subscription Does Not Exist", now)
            return
        self._reply(tx, 200, "OK", now)
        match = re.match(rb"\s*SIP/2\.0 (\d{3})(?: ([^\r\n]*))?", request.body)
        if not match or not call.transfer_open:
            return
        code = int(match.group(1))
        if code < 200:
            return
        call.transfer_open = False
        self._timers.pop(("refer", call.call_id), None)
        if code < 300:
            self._events.append(ev.TransferSucceeded(call.call_id))
        else:
            reason = (match.group(2) or b"").decode("utf-8", "replace")
            self._events.append(ev.TransferFailed(call.call_id, code, reason))

    def _server_timeout(self, tx: ServerTransaction) -> None:
        """Timer H: our 2xx was never ACKed (RFC 3261 13.3.1.4): end the call with a BYE."""
        for call in self._calls.values():
            if call.server_tx is tx and call.state == CallState.ANSWERED:
                self._send_bye(call)
                self._end(call, "ack_timeout", None, self.clock())
            if call.reinvite_in is tx:
                call.reinvite_in = None

    def _receive_response(self, response: Response, source: Address, now: float) -> None:
        # No allow-list here: a response only counts when it names one of our unguessable branches. What the
        # transaction user will read is parsed first, so a bad response is dropped here and not half-handled.
        problem = validate_response(response)
        if problem is not None:
            self.log.warning(source[0], "malformed", f"response dropped: {_printable(problem)}", now)
            return
        tx = self._client_tx.get((response.vias[0].branch or "", response.cseq.method))
        if tx is None:
            return  # stray or late response: nothing waits for it
        tx.receive_response(response, now)

    def ringing(self, call_id: str) -> None:
        call = self._call(call_id)
        if call.role == CallRole.UAS and call.state == CallState.INCOMING and call.server_tx is not None:
            self._reply(
                call.server_tx, 180, "Ringing", self.clock(), to_tag=call.local_tag, dialog_headers=True
            )
            call.extra["ringing"] = "1"

    def in_call_with(self, host: str) -> bool:
        """True while a call not yet ended has ``host`` as its peer (its TCP connections are let in and kept)."""
        return any(call.state != CallState.ENDED and call.peer[0] == host for call in self._calls.values())

    def carries_call(self, peer: Address) -> bool:
        """True while a call not yet ended runs over the TCP connection from ``peer`` (no idle timeout then)."""
        return any(
            call.state != CallState.ENDED
            and call.transport != "udp"
            and (call.peer == peer or (call.dialog is not None and call.dialog.peer == peer))
            for call in self._calls.values()
        )

    def stream_progress(self, peer: Address) -> tuple[int, int]:
        """(messages and keep-alive pings framed so far, bytes of an unfinished message) on the TCP connection
        from ``peer``: a trunk that keeps an idle connection open with RFC 5626 pings keeps it."""
        framer = self._framers.get(peer)
        return (framer.framed + framer.keepalives, framer.pending_bytes) if framer is not None else (0, 0)

    def answer(self, call_id: str, sdp: bytes) -> None:
        """180 Ringing (unless sent) then 200 OK carrying ``sdp``; the dialog exists from here on."""
        call = self._call(call_id)
        if call.role != CallRole.UAS or call.state != CallState.INCOMING or call.server_tx is None:
            raise ValueError(f"call {call_id!r} is not an unanswered incoming call")
        if "ringing" not in call.extra:
            self.ringing(call_id)
        call.dialog = Dialog.as_uas(call.invite, call.local_tag, call.transport, call.peer)
        self._reply(
            call.server_tx, 200, "OK", self.clock(), to_tag=call.local_tag, body=sdp, dialog_headers=True
        )
        call.state = CallState.ANSWERED

    def reject(self, call_id: str, code: int = 486, reason: str | None = None) -> None:
        call = self._call(call_id)
        if call.role != CallRole.UAS or call.state != CallState.INCOMING or call.server_tx is None:
            raise ValueError(f"call {call_id!r} is not an unanswered incoming call")
        # every 503 says when to come back (RFC 3261 21.5.4), or a PBX may take the whole bot out of its route
        retry = {"Retry-After": str(self.config.retry_after_s)} if code == 503 else {}
        self._reply(call.server_tx, code, reason, self.clock(), to_tag=call.local_tag, extra=retry)
        self._end(call, "rejected", code, self.clock())

    def hangup(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None or call.state == CallState.ENDED:
            return
        now = self.clock()
        if call.role == CallRole.UAS and call.state == CallState.INCOMING and call.server_tx is not None:
            self._reply(call.server_tx, 480, "Temporarily Unavailable", now, to_tag=call.local_tag)
        elif call.role == CallRole.UAC and call.state in (CallState.CALLING, CallState.PROCEEDING):
            if call.got_provisional:
                self._send_cancel(call)
            else:
                call.cancel_pending = True  # RFC 3261 9.1: no CANCEL before a provisional response
        else:
            self._send_bye(call)
        self._end(call, "local", None, now)

    def answer_reinvite(self, call_id: str, sdp: bytes) -> None:
        call = self._call(call_id)
        tx = call.reinvite_in
        if tx is None or tx.final_sent:
            raise ValueError(f"call {call_id!r} has no re-INVITE waiting for an answer")
        assert call.dialog is not None
        self._reply(tx, 200, "OK", self.clock(), to_tag=call.dialog.local_tag, body=sdp, dialog_headers=True)

    def reject_reinvite(self, call_id: str, code: int = 488, reason: str | None = None) -> None:
        call = self._call(call_id)
        tx = call.reinvite_in
        if tx is None or tx.final_sent:
            raise ValueError(f"call {call_id!r} has no re-INVITE waiting for an answer")
        assert call.dialog is not None
        self._reply(tx, code, reason, self.clock(), to_tag=call.dialog.local_tag)
        call.reinvite_in = None

    def handle_timers(self, now: float | None = None) -> None:
        """Run what is due by ``now``: cheap when nothing is (the shell may call it on every datagram)."""
        now = self.clock() if now is None else now
        self._fire_transaction_timers(now)
        if not self._timers or min(self._timers.values()) > now:
            return
        for key, deadline in sorted(self._timers.items(), key=lambda item: item[1]):
            if deadline <= now and self._timers.get(key) == deadline:
                del self._timers[key]
                self._on_ua_timer(key, now)

    def _on_ua_timer(self, key: tuple[str, str], now: float) -> None:
        kind, name = key
        if kind == "forget":
            call = self._calls.get(name)
            if call is not None and call.state == CallState.ENDED:
                del self._calls[name]
        elif kind == "refer":
            call = self._calls.get(name)
            if call is not None and call.transfer_open:
                call.transfer_open = False
                self._events.append(ev.TransferFailed(name, 408, "no final NOTIFY"))
        elif kind == "register":
            self.register()
        elif kind == "unanswered":
            call = self._calls.get(name)
            if call is not None and call.state == CallState.INCOMING and call.server_tx is not None:
                self._reply(call.server_tx, 480, "Temporarily Unavailable", now, to_tag=call.local_tag)
                self._end(call, "timeout", 480, now)
        elif kind == "reinvite":
            call = self._calls.get(name)
            tx = call.reinvite_in if call is not None else None
            if call is not None and tx is not None and not tx.final_sent and call.dialog is not None:
                logger.warning("%s: the re-INVITE got no answer from the media side in time: 500", name)
                self._reply(
                    tx,
                    500,
                    None,
                    now,
                    to_tag=call.dialog.local_tag,
                    extra={"Retry-After": "2"},
                )
                call.reinvite_in = None


def _dtmf_of_info(request: Request) -> tuple[str, int]:
    """(digit, duration in ms) of an INFO body: application/dtmf-relay ``Signal=``/``Duration=`` lines or an
    application/dtmf single digit; ("", 0) when it carries none."""
    text = request.body.decode("utf-8", "replace")
    fields: dict[str, str] = {}
    if request.content_type == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            fields[name.strip().lower()] = value.strip()
    elif request.content_type == "application/dtmf":
        fields["signal"] = text.strip()[:1]
    digit = fields.get("signal", "")
    try:
        duration = parse_number(fields.get("duration", ""), max_digits=6)
    except SipSyntaxError:
        duration = 0
    return digit, duration


def _printable(text: str) -> str:
    """Peer text for the log: one short printable line."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:80])
