"""RFC 3261 17 transaction timers on an explicit clock (no sockets, no sleeping)."""

from __future__ import annotations

from sip_bridge.sip.message import Message, Request, Response, build_response
from sip_bridge.sip.parser import parse_datagram
from sip_bridge.sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Transaction,
)

from .helpers import sip_request

PEER = ("127.0.0.1", 5099)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[float, Message]] = []
        self.now = 0.0

    def send(self, message: Message, dest: tuple[str, int], transport: str) -> None:
        self.sent.append((self.now, message))


def run(tx: Transaction, wire: Wire, until: float, step: float = 0.05) -> None:
    while wire.now < until:
        wire.now = round(wire.now + step, 3)
        tx.fire_timers(wire.now)


def request(method: str) -> Request:
    message = parse_datagram(sip_request(method))
    assert isinstance(message, Request)
    return message


def test_non_invite_client_retransmits_with_timer_e_capped_at_t2_and_times_out_with_f() -> None:
    wire, timeouts = Wire(), []
    tx = NonInviteClientTransaction(
        request("OPTIONS"), PEER, "udp", wire.send, lambda t, r: None, lambda t: timeouts.append(wire.now)
    )
    tx.start(0.0)
    run(tx, wire, 40.0)
    times = [t for t, _ in wire.sent]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [32.0] and tx.terminated


def test_non_invite_client_over_tcp_sends_once_and_completes_at_once() -> None:
    wire, responses = Wire(), []
    tx = NonInviteClientTransaction(
        request("OPTIONS"), PEER, "tcp", wire.send, lambda t, r: responses.append(r.status), lambda t: None
    )
    tx.start(0.0)
    run(tx, wire, 5.0)
    assert len(wire.sent) == 1
    tx.receive_response(build_response(tx.request, 200), 5.0)
    tx.fire_timers(5.0)
    assert responses == [200] and tx.terminated  # timer K is zero on reliable transports


def test_invite_client_doubles_timer_a_and_times_out_with_b() -> None:
    wire, timeouts = Wire(), []
    tx = InviteClientTransaction(
        request("INVITE"), PEER, "udp", wire.send, lambda t, r: None, lambda t: timeouts.append(wire.now)
    )
    tx.start(0.0)
    run(tx, wire, 40.0)
    assert [t for t, _ in wire.sent] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeouts == [32.0]


def test_invite_client_acks_non_2xx_and_absorbs_its_retransmission() -> None:
    wire, seen = Wire(), []
    tx = InviteClientTransaction(
        request("INVITE"), PEER, "udp", wire.send, lambda t, r: seen.append(r.status), lambda t: None
    )
    tx.start(0.0)
    tx.receive_response(build_response(tx.request, 180, to_tag="x"), 0.1)
    run(tx, wire, 2.0)
    assert len(wire.sent) == 1  # a provisional stops timer A
    busy = build_response(tx.request, 486, to_tag="x")
    tx.receive_response(busy, 2.0)
    tx.receive_response(busy, 2.5)
    acks = [m for _, m in wire.sent if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 2 and seen == [
        180,
        486,
    ]  # the TU hears the final once, the peer gets an ACK each time
    assert acks[0].top_via.branch == tx.request.top_via.branch and acks[0].to.tag == "x"
    run(tx, wire, 40.0)
    assert tx.terminated  # timer D


def test_invite_server_resends_2xx_until_ack_and_times_out_with_h() -> None:
    wire, timeouts = Wire(), []
    tx = InviteServerTransaction(
        request("INVITE"), PEER, "udp", wire.send, lambda t: timeouts.append(wire.now)
    )
    tx.respond(build_response(tx.request, 200, to_tag="a"), 0.0)
    run(tx, wire, 40.0)
    assert [t for t, _ in wire.sent] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [32.0]


def test_invite_server_stops_on_ack_and_absorbs_invite_retransmissions() -> None:
    wire = Wire()
    tx = InviteServerTransaction(request("INVITE"), PEER, "udp", wire.send, None)
    tx.respond(build_response(tx.request, 100), 0.0)
    tx.receive_retransmission(0.2)
    assert [m.status for _, m in wire.sent if isinstance(m, Response)] == [100, 100]
    tx.respond(build_response(tx.request, 486, to_tag="a"), 1.0)
    run(tx, wire, 2.0)  # timer G resent the 486 at 1.5
    tx.receive_ack(2.0)
    count = len(wire.sent)
    run(tx, wire, 10.0)
    assert len(wire.sent) == count and tx.terminated  # confirmed, then timer I (T4)


def test_non_invite_server_repeats_its_response_until_timer_j() -> None:
    wire = Wire()
    tx = NonInviteServerTransaction(request("OPTIONS"), PEER, "udp", wire.send, None)
    tx.respond(build_response(tx.request, 200, to_tag="a"), 0.0)
    tx.receive_retransmission(1.0)
    assert len(wire.sent) == 2 and wire.sent[0][1].to_bytes() == wire.sent[1][1].to_bytes()
    run(tx, wire, 31.9)
    assert not tx.terminated
    run(tx, wire, 32.1)
    assert tx.terminated
