"""Dialog state (RFC 3261 section 12): tags, CSeq counters, route set, remote target, and in-dialog requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .message import MAGIC_COOKIE, URI, Headers, NameAddr, Request, Response, SipSyntaxError

Address = tuple[str, int]


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def uri_destination(uri: URI, fallback_transport: str = "udp") -> tuple[Address, str]:
    """Where to send a request for ``uri``: (host, port) and transport (no DNS SRV: hosts are IPs or names)."""
    transport = (uri.params.get("transport") or fallback_transport).lower()
    maddr = uri.params.get("maddr")
    host = maddr or uri.host.strip("[]")
    return (host, uri.port or 5060), transport


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # our From/To value including our tag, as written on the wire
    remote_party: str  # theirs, including their tag
    remote_target: str  # URI text from the peer's Contact
    route_set: list[str] = field(default_factory=list)  # name-addr texts, in the order we put them in Route
    local_cseq: int = 0
    remote_cseq: int | None = None
    transport: str = "udp"
    peer: Address = ("", 0)  # the address the dialog's first message came from (reused for TCP connections)

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, transport: str, peer: Address) -> Dialog:
        """RFC 3261 12.1.1: route set = Record-Route as received, remote target = Contact."""
        from_ = invite.from_
        contacts = invite.contacts
        target = str(contacts[0].uri) if contacts else str(from_.uri)  # RFC 2543 peers may omit Contact
        to_value = (invite.headers.get("To") or "").strip()
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag or "",
            local_party=f"{to_value};tag={local_tag}" if invite.to.tag is None else to_value,
            remote_party=(invite.headers.get("From") or "").strip(),
            remote_target=target,
            route_set=invite.headers.values("Record-Route"),
            local_cseq=0,
            remote_cseq=invite.cseq.number,
            transport=transport,
            peer=peer,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, transport: str, peer: Address) -> Dialog:
        """RFC 3261 12.1.2: route set = Record-Route reversed, remote target = Contact of the response."""
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else invite.uri
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_party=(invite.headers.get("From") or "").strip(),
            remote_party=(response.headers.get("To") or "").strip(),
            remote_target=target,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_cseq=invite.cseq.number,
            remote_cseq=None,
            transport=transport,
            peer=peer,
        )

    def matches(self, request: Request) -> bool:
        try:
            return request.to.tag == self.local_tag and (request.from_.tag or "") == self.remote_tag
        except SipSyntaxError:
            return False

    def accept_remote_cseq(self, number: int) -> bool:
        """RFC 3261 12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, message: Request | Response) -> None:
        try:
            contacts = message.contacts
        except SipSyntaxError:
            return
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def destination(self) -> tuple[Address, str]:
        """Next hop for in-dialog requests: first Route, else the remote target; TCP reuses the peer's connection."""
        if self.route_set:
            try:
                return uri_destination(NameAddr.parse(self.route_set[0]).uri, self.transport)
            except SipSyntaxError:
                pass
        if self.transport != "udp" and self.peer[1]:
            return self.peer, self.transport
        try:
            address, _ = uri_destination(URI.parse(self.remote_target), self.transport)
        except SipSyntaxError:
            return self.peer, self.transport
        return address, self.transport

    def build_request(self, method: str, via: str, contact: str, *, cseq: int | None = None) -> Request:
        """An in-dialog request (loose routing: Request-URI = remote target, Route = route set)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        headers = Headers()
        headers.add("Via", via)
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.local_party)
        headers.add("To", self.remote_party)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if method not in ("ACK", "CANCEL", "BYE"):
            headers.add("Contact", contact)
        return Request(headers=headers, method=method, uri=self.remote_target)
