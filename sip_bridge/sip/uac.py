"""Requests we originate: outbound INVITE (B2BUA leg), re-INVITE, REFER (blind transfer), CANCEL, REGISTER."""

from __future__ import annotations

from collections.abc import Mapping

from . import events as ev
from .core import ALLOWED_METHODS, Call, CallRole, CallState, UserAgentCore
from .dialog import Dialog, new_call_id, new_tag, uri_destination
from .headers import checked_headers, uri_with_headers
from .message import URI, Headers, NameAddr, Request, Response, SipSyntaxError, parse_number
from .transaction import ClientTransaction, InviteClientTransaction


class ClientSide(UserAgentCore):
    """UAC behaviour of the user agent (RFC 3261 8.1, 9.1, 10, 13.2, 14.1; RFC 3515 REFER)."""

    def reinvite(self, call_id: str, sdp: bytes) -> None:
        call = self._call(call_id)
        self._established(call)
        if call.reinvite_in is not None or call.reinvite_out is not None:
            raise ValueError(f"call {call_id!r} already has a re-INVITE in progress")

        answered: list[bool] = []

        def on_response(tx: ClientTransaction, response: Response) -> None:
            if response.status < 200:
                return
            if response.status in (401, 407):
                retry = self._retry_with_auth(tx, response, call)
                if isinstance(retry, InviteClientTransaction):
                    call.reinvite_out = retry
                    return
            call.reinvite_out = None
            if response.status < 300:
                self._send_ack_2xx(call, tx.request, response)
                if answered:
                    return  # a retransmitted 2xx only needs the ACK again
                answered.append(True)
                if call.dialog is not None:
                    call.dialog.refresh_target(response)
                self._events.append(ev.ReInviteAnswered(call.call_id, response.body))
            else:
                self._events.append(ev.ReInviteFailed(call.call_id, response.status))

        def on_timeout(tx: ClientTransaction) -> None:
            call.reinvite_out = None
            self._events.append(ev.ReInviteFailed(call.call_id, 408))

        tx = self._dialog_send(call, "INVITE", on_response, on_timeout, body=sdp)
        assert isinstance(tx, InviteClientTransaction)
        call.reinvite_out = tx

    def refer(
        self,
        call_id: str,
        target_uri: str,
        *,
        headers: Mapping[str, str] | None = None,
        target_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Blind transfer of the remote party to ``target_uri`` (RFC 3515). ``headers`` go on the REFER itself;
        ``target_headers`` are embedded, escaped, in the Refer-To URI, for the INVITE the transferee sends (RFC 3261
        19.1.1). Both are checked (:mod:`.headers`): ValueError before anything is sent."""
        call = self._call(call_id)
        dialog = self._established(call)
        URI.parse(target_uri)  # fail early on a bad target
        extra = dict(checked_headers(headers))
        refer_to = uri_with_headers(target_uri, target_headers)
        call.transfer_open = True
        self._timers[("refer", call.call_id)] = self.clock() + self.config.transfer_timeout_s

        def on_response(tx: ClientTransaction, response: Response) -> None:
            if response.status < 200:
                return
            if response.status in (401, 407) and self._retry_with_auth(tx, response, call):
                return
            if response.status < 300:
                self._events.append(ev.ReferAccepted(call.call_id))
            elif call.transfer_open:
                call.transfer_open = False
                self._timers.pop(("refer", call.call_id), None)
                self._events.append(ev.TransferFailed(call.call_id, response.status, response.reason))

        def on_timeout(tx: ClientTransaction) -> None:
            if call.transfer_open:
                call.transfer_open = False
                self._timers.pop(("refer", call.call_id), None)
                self._events.append(ev.TransferFailed(call.call_id, 408, "REFER timed out"))

        local = NameAddr.parse(dialog.local_party)
        referred_by = f"<{local.uri}>"
        self._dialog_send(
            call,
            "REFER",
            on_response,
            on_timeout,
            extra={"Refer-To": f"<{refer_to}>", "Referred-By": referred_by, **extra},
        )

    def invite(
        self,
        target_uri: str,
        sdp: bytes,
        *,
        transport: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Start an outbound call (UAC) to ``target_uri`` offering ``sdp``; returns its call_id. ``headers`` are
        extra fields for the INVITE (checked, :mod:`.headers`; ValueError before anything is sent)."""
        target = URI.parse(target_uri)
        if not target.is_sip:
            raise ValueError(f"not a SIP URI: {target_uri!r}")
        extra = checked_headers(headers)
        dest, chosen = uri_destination(target, transport or "udp")
        call_id = new_call_id(self.contact_host.strip("[]"))
        local_tag = new_tag()
        fields = Headers()
        fields.add("Via", self._via(chosen))
        fields.add("Max-Forwards", "70")
        fields.add("From", f"<sip:{self.config.user}@{self.contact_host}>;tag={local_tag}")
        fields.add("To", f"<{target_uri}>")
        fields.add("Call-ID", call_id)
        fields.add("CSeq", "1 INVITE")
        fields.add("Contact", self.contact(chosen))
        fields.add("Allow", ", ".join(ALLOWED_METHODS))
        for name, value in extra:
            fields.add(name, value)
        fields.add("Content-Type", "application/sdp")
        request = Request(headers=fields, method="INVITE", uri=target_uri, body=sdp)
        call = Call(
            call_id=call_id,
            role=CallRole.UAC,
            state=CallState.CALLING,
            invite=request,
            transport=chosen,
            peer=dest,
            local_tag=local_tag,
        )
        self._calls[call_id] = call
        tx = self._start_client(request, dest, chosen, self._on_invite_response, self._on_invite_timeout)
        assert isinstance(tx, InviteClientTransaction)
        call.client_tx = tx
        return call_id

    def _call_for_tx(self, tx: ClientTransaction) -> Call | None:
        call = self._calls.get(tx.request.call_id)
        return call if call is not None and call.role == CallRole.UAC else None

    def _on_invite_response(self, tx: ClientTransaction, response: Response) -> None:
        call = self._call_for_tx(tx)
        if call is None:
            return
        if response.status < 200:
            if call.state in (CallState.CALLING, CallState.PROCEEDING):
                call.state = CallState.PROCEEDING
                call.got_provisional = True
                if response.status > 100:
                    self._events.append(ev.OutboundCallProgress(call.call_id, response.status, response.body))
            if call.cancel_pending:
                call.cancel_pending = False
                self._send_cancel(call)
            return
        if response.status < 300:
            if call.last_ack is not None and call.dialog is not None:
                if response.to.tag == call.dialog.remote_tag:  # retransmitted 2xx: repeat the ACK
                    request, dest, transport = call.last_ack
                    self._send(request, dest, transport)
                else:
                    self._release_fork(tx.request, response, call)
                return
            call.dialog = Dialog.as_uac(tx.request, response, call.transport, call.peer)
            self._send_ack_2xx(call, tx.request, response)
            if call.state == CallState.ENDED:
                self._send_bye(call)  # answered after we hung up (CANCEL race)
                return
            call.state = CallState.ESTABLISHED
            self._events.append(ev.OutboundCallAnswered(call.call_id, response.body))
            return
        if (
            response.status in (401, 407)
            and call.state != CallState.ENDED
            and self._retry_with_auth(tx, response, call)
        ):
            return
        if call.state != CallState.ENDED:
            self._events.append(ev.OutboundCallFailed(call.call_id, response.status, response.reason))
            self._end(call, "failed", response.status, self.clock())

    def _release_fork(self, invite: Request, response: Response, call: Call) -> None:
        """A 2xx from a second fork of our INVITE: ACK it and end that extra dialog at once (RFC 3261 13.2.2.4)."""
        fork = Call(
            call_id=call.call_id,
            role=CallRole.UAC,
            state=CallState.ESTABLISHED,
            invite=invite,
            transport=call.transport,
            peer=call.peer,
            local_tag=call.local_tag,
            dialog=Dialog.as_uac(invite, response, call.transport, call.peer),
        )
        self._send_ack_2xx(fork, invite, response)
        self._send_bye(fork)

    def _on_invite_timeout(self, tx: ClientTransaction) -> None:
        call = self._call_for_tx(tx)
        if call is not None and call.state != CallState.ENDED:
            self._events.append(ev.OutboundCallFailed(call.call_id, 408, "Request Timeout"))
            self._end(call, "timeout", 408, self.clock())

    def _send_ack_2xx(self, call: Call, invite: Request, response: Response) -> None:
        """ACK for a 2xx is its own transaction-less request along the dialog (RFC 3261 13.2.2.4)."""
        dialog = call.dialog
        assert dialog is not None
        ack = dialog.build_request(
            "ACK", self._via(dialog.transport), self.contact(), cseq=invite.cseq.number
        )
        for name in ("Authorization", "Proxy-Authorization"):
            for value in invite.headers.lines(name):
                ack.headers.add(name, value)
        dest, transport = dialog.destination()
        call.last_ack = (ack, dest, transport) if invite is call.invite else call.last_ack
        self._send(ack, dest, transport)

    def _send_cancel(self, call: Call) -> None:
        """CANCEL with the INVITE's branch, Request-URI, Route and CSeq number (RFC 3261 9.1)."""
        invite = call.invite
        headers = Headers()
        headers.add("Via", invite.headers.values("Via")[0])
        for value in invite.headers.lines("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        headers.add("From", invite.headers.get("From") or "")
        headers.add("To", invite.headers.get("To") or "")
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        cancel = Request(headers=headers, method="CANCEL", uri=invite.uri)
        self._start_client(cancel, call.peer, call.transport, lambda tx, r: None, lambda tx: None)

    def _registrar_uri(self) -> URI | None:
        registrar = self.config.registrar
        if not registrar:
            return None
        return URI.parse(registrar if registrar.startswith(("sip:", "sips:")) else f"sip:{registrar}")

    def register(self, expires_s: int | None = None) -> None:
        """REGISTER our Contact at ``config.registrar`` as ``auth_username``; refreshed before expiry."""
        registrar = self._registrar_uri()
        if registrar is None:
            raise ValueError("config.registrar is not set")
        expires = self.config.register_expires_s if expires_s is None else expires_s
        self._reg_cseq += 1
        user = self.config.auth_username or self.config.user
        aor = f"<sip:{user}@{registrar.host}{f':{registrar.port}' if registrar.port else ''}>"
        dest, transport = uri_destination(registrar)
        headers = Headers()
        headers.add("Via", self._via(transport))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{aor};tag={self._reg_tag}")
        headers.add("To", aor)
        headers.add("Call-ID", self._reg_call_id)
        headers.add("CSeq", f"{self._reg_cseq} REGISTER")
        headers.add("Contact", self.contact(transport))
        headers.add("Expires", str(expires))
        registrar_uri = f"sip:{registrar.host}{f':{registrar.port}' if registrar.port else ''}"
        request = Request(headers=headers, method="REGISTER", uri=registrar_uri)
        self._timers.pop(("register", ""), None)
        self._start_client(request, dest, transport, self._on_register_response, self._on_register_timeout)

    def unregister(self) -> None:
        self.register(expires_s=0)

    def _on_register_response(self, tx: ClientTransaction, response: Response) -> None:
        if response.status < 200:
            return
        if response.status in (401, 407) and self._retry_with_auth(tx, response, None):
            self._reg_cseq = tx.request.cseq.number + 1
            return
        requested = int(tx.request.headers.get("Expires") or "0")
        min_expires = _number_or_none(response.headers.get("Min-Expires"))
        if response.status == 423 and min_expires is not None and requested < min_expires <= 86400:
            self.register(expires_s=min_expires)  # Interval Too Brief: ask again for what it allows
            return
        if 200 <= response.status < 300:
            self.registered = requested > 0
            expires = requested
            for contact in response.contacts:
                contact_expires = _number_or_none(contact.params.get("expires"))
                if contact.uri.port == self.local_port and contact_expires is not None:
                    expires = contact_expires
            header = _number_or_none(response.headers.get("Expires"))
            if header is not None and not response.contacts:
                expires = header
            if requested:
                self._timers[("register", "")] = self.clock() + max(1.0, expires * 0.8)
            self._events.append(ev.Registered(expires if requested else 0))
            return
        self._events.append(ev.RegistrationFailed(response.status, response.reason))
        if requested:
            self._timers[("register", "")] = self.clock() + max(30.0, float(self.config.retry_after_s))

    def _on_register_timeout(self, tx: ClientTransaction) -> None:
        self._events.append(ev.RegistrationFailed(408, "Request Timeout"))
        self._timers[("register", "")] = self.clock() + max(30.0, float(self.config.retry_after_s))


def _number_or_none(text: str | None) -> int | None:
    """A registrar's Expires/Min-Expires: ASCII digits or nothing (a junk value keeps what we asked for)."""
    try:
        return parse_number(text) if text is not None else None
    except SipSyntaxError:
        return None
