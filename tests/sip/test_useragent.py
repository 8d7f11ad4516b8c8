"""UserAgent flows with a scripted peer and a manual clock: no sockets, every byte parsed back."""

from __future__ import annotations

from sip_bridge.sip import events as ev
from sip_bridge.sip.auth import DigestChallenger, authorization_header, parse_challenge
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.message import Request, Response

from .helpers import PEER, SDP_ANSWER, SDP_OFFER, Harness, response_to, sip_request

CALL = "call-1@127.0.0.1"


def incoming_answered(harness: Harness, *, extra: str = "") -> str:
    """INVITE in, answered; returns our To tag."""
    harness.feed(sip_request("INVITE", body=SDP_OFFER, extra=extra))
    assert isinstance(harness.ua.next_events()[0], ev.IncomingCall)
    harness.ua.answer(CALL, SDP_ANSWER)
    final = harness.drain()[-1]
    assert final.status == 200
    return final.to.tag or ""


def established(harness: Harness, *, extra: str = "") -> str:
    tag = incoming_answered(harness, extra=extra)
    harness.feed(sip_request("ACK", branch="z9hG4bK-ack", to_tag=tag))
    assert [type(e) for e in harness.ua.next_events()] == [ev.CallConfirmed]
    return tag


def requests(messages: list, method: str) -> list[Request]:
    return [m for m in messages if isinstance(m, Request) and m.method == method]


def test_invite_gets_100_at_once_and_a_retransmission_is_absorbed() -> None:
    harness = Harness()
    first = harness.feed(sip_request("INVITE", body=SDP_OFFER))
    again = harness.feed(sip_request("INVITE", body=SDP_OFFER))
    assert [m.status for m in first] == [100] and [m.status for m in again] == [100]
    events = harness.ua.next_events()
    assert len(events) == 1 and isinstance(events[0], ev.IncomingCall)
    call = events[0]
    assert call.sdp == SDP_OFFER and call.from_display == "Bürger" and call.remote_addr == PEER


def test_answer_sends_180_then_200_and_resends_200_until_ack() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    harness.ua.next_events()
    harness.ua.answer(CALL, SDP_ANSWER)
    ringing, ok = harness.drain()
    assert (ringing.status, ok.status) == (180, 200)
    assert ringing.to.tag == ok.to.tag and ok.body == SDP_ANSWER and ok.content_type == "application/sdp"
    assert ok.contacts[0].uri.port == 5060
    resent = harness.advance(0.5) + harness.advance(1.0)
    assert [m.status for m in resent] == [200, 200]
    harness.feed(sip_request("ACK", branch="z9hG4bK-ack", to_tag=ok.to.tag))
    assert [type(e) for e in harness.ua.next_events()] == [ev.CallConfirmed]
    assert harness.run_timers_until(10.0) == []


def test_missing_ack_ends_the_call_with_a_bye() -> None:
    harness = Harness()
    incoming_answered(harness)
    sent = harness.run_timers_until(33.0)
    assert (
        len({bye.top_via.branch for bye in requests(sent, "BYE")}) == 1
    )  # one BYE (and its retransmissions)
    assert harness.ua.next_events() == [ev.CallEnded(CALL, "ack_timeout", None)]


def test_cancel_before_answer_gets_200_and_the_invite_487() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    harness.ua.next_events()
    sent = harness.feed(sip_request("CANCEL"))
    assert sorted((m.status, m.cseq.method) for m in sent) == [(200, "CANCEL"), (487, "INVITE")]
    assert harness.ua.next_events() == [ev.CallEnded(CALL, "cancel", 487)]
    tag = next(m for m in sent if m.status == 487).to.tag
    assert harness.feed(sip_request("ACK", to_tag=tag)) == []  # ACK for the 487 ends the transaction
    assert harness.run_timers_until(10.0) == [] and harness.ua.active_calls() == []


def test_remote_bye_and_unknown_bye() -> None:
    harness = Harness()
    tag = established(harness)
    sent = harness.feed(sip_request("BYE", branch="z9hG4bK-bye", cseq=2, to_tag=tag))
    assert [m.status for m in sent] == [200]
    assert harness.ua.next_events() == [ev.CallEnded(CALL, "bye_remote", None)]
    stray = harness.feed(sip_request("BYE", branch="z9hG4bK-bye2", cseq=3, to_tag="nope", call_id="other"))
    assert [m.status for m in stray] == [481]


def test_our_bye_follows_record_route_and_remote_target() -> None:
    harness = Harness()
    record_route = "Record-Route: <sip:proxy1.example:5080;lr>, <sip:127.0.0.2:5090;lr>\r\n"
    tag = established(harness, extra=record_route)
    harness.ua.hangup(CALL)
    bye = harness.drain()[0]
    assert isinstance(bye, Request) and bye.method == "BYE" and bye.uri == "sip:caller@127.0.0.1:5099"
    assert bye.headers.values("Route") == ["<sip:proxy1.example:5080;lr>", "<sip:127.0.0.2:5090;lr>"]
    assert bye.from_.tag == tag and bye.to.tag == "peer-tag" and bye.cseq.method == "BYE"
    assert harness.sent[-1][1] == ("proxy1.example", 5080)
    assert harness.ua.next_events() == [ev.CallEnded(CALL, "local", None)]
    harness.feed(response_to(bye, 200))
    assert harness.run_timers_until(40.0) == []  # answered: no retransmissions


def test_200_to_invite_copies_record_route() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER, extra="Record-Route: <sip:p.example;lr>\r\n"))
    harness.ua.next_events()
    harness.ua.answer(CALL, SDP_ANSWER)
    assert harness.drain()[-1].headers.values("Record-Route") == ["<sip:p.example;lr>"]


def test_options_keepalive_is_answered_with_capabilities() -> None:
    response = Harness().feed(sip_request("OPTIONS", call_id="ka"))[0]
    assert response.status == 200
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert "application/sdp" in (response.headers.get("Accept") or "")


def test_rport_answers_go_to_the_source_port_and_others_to_the_via_port() -> None:
    harness = Harness()
    harness.feed(sip_request("OPTIONS", call_id="a"), source=("127.0.0.1", 40000))
    assert harness.sent[-1][1] == ("127.0.0.1", 40000)
    assert harness.sent[-1][0].top_via.params["rport"] == "40000"
    plain = sip_request("OPTIONS", call_id="b", branch="z9hG4bK-2").replace(b";rport", b"")
    harness.feed(plain, source=("127.0.0.1", 40001))
    assert harness.sent[-1][1] == ("127.0.0.1", 5099)


def test_max_calls_answers_503_with_retry_after() -> None:
    harness = Harness(UserAgentConfig(max_calls=1, retry_after_s=17))
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    second = harness.feed(sip_request("INVITE", call_id="call-2", branch="z9hG4bK-2", body=SDP_OFFER))
    assert [(m.status, m.headers.get("Retry-After")) for m in second] == [(503, "17")]
    assert len(harness.ua.next_events()) == 1


def test_invite_rate_limit_per_source() -> None:
    harness = Harness(UserAgentConfig(invites_per_source_per_minute=2, max_calls=10))
    statuses = []
    for n in range(3):
        sent = harness.feed(sip_request("INVITE", call_id=f"c{n}", branch=f"z9hG4bK-{n}", body=SDP_OFFER))
        statuses.append(sent[0].status)
    assert statuses == [100, 100, 503]
    harness.clock.now += 61
    assert (
        harness.feed(sip_request("INVITE", call_id="c9", branch="z9hG4bK-9", body=SDP_OFFER))[0].status == 100
    )


def test_sources_outside_the_allow_list_are_refused() -> None:
    harness = Harness(UserAgentConfig(allowed_networks=["127.0.0.0/8"]))
    sent = harness.feed(sip_request("INVITE", body=SDP_OFFER), source=("10.1.2.3", 5060))
    assert [m.status for m in sent] == [403] and harness.ua.next_events() == []


def test_oversized_and_garbage_datagrams_are_dropped_and_logged_once() -> None:
    harness = Harness(UserAgentConfig(max_message_bytes=2000))
    big = sip_request("OPTIONS", body=b"x" * 3000, content_type="text/plain")
    for _ in range(3):
        assert harness.feed(big) == []
        assert harness.feed(b"\x16\x03\x01 garbage\r\n\r\n") == []
    assert harness.ua.log.suppressed == {("127.0.0.1", "oversized"): 2, ("127.0.0.1", "malformed"): 2}


def test_inbound_digest_challenge() -> None:
    settings = UserAgentConfig(inbound_realm="rathaus", inbound_username="pbx", inbound_password="geheim")
    harness = Harness(settings)
    challenge = harness.feed(sip_request("INVITE", body=SDP_OFFER))[0]
    assert challenge.status == 401 and harness.ua.next_events() == []
    harness.feed(sip_request("ACK", to_tag=challenge.to.tag))
    _, params = parse_challenge(challenge.headers.get("WWW-Authenticate") or "")
    wrong = authorization_header(params, username="pbx", password="falsch", method="INVITE", uri="sip:x")
    again = harness.feed(
        sip_request("INVITE", branch="z9hG4bK-2", cseq=2, body=SDP_OFFER, extra=f"Authorization: {wrong}\r\n")
    )
    assert again[0].status == 401
    uri = "sip:hotline@127.0.0.1:5060"
    right = authorization_header(params, username="pbx", password="geheim", method="INVITE", uri=uri)
    ok = harness.feed(
        sip_request("INVITE", branch="z9hG4bK-3", cseq=3, body=SDP_OFFER, extra=f"Authorization: {right}\r\n")
    )
    assert ok[0].status == 100 and isinstance(harness.ua.next_events()[0], ev.IncomingCall)


def test_incoming_reinvite_is_answered_with_the_callers_sdp() -> None:
    harness = Harness()
    tag = established(harness)
    hold = SDP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    harness.feed(sip_request("INVITE", branch="z9hG4bK-re", cseq=2, to_tag=tag, body=hold))
    assert harness.ua.next_events() == [ev.ReInvite(CALL, hold)]
    harness.ua.answer_reinvite(CALL, SDP_ANSWER + b"a=recvonly\r\n")
    ok = harness.drain()[-1]
    assert ok.status == 200 and ok.body.endswith(b"a=recvonly\r\n")
    harness.feed(sip_request("ACK", branch="z9hG4bK-re-ack", cseq=2, to_tag=tag))
    assert harness.run_timers_until(5.0) == []  # the ACK stopped the 2xx retransmission


def test_outgoing_reinvite_for_hold() -> None:
    harness = Harness()
    established(harness)
    harness.ua.reinvite(CALL, SDP_ANSWER)
    invite = harness.drain()[0]
    assert invite.method == "INVITE" and invite.cseq.number == 1 and invite.to.tag == "peer-tag"
    harness.feed(response_to(invite, 200, to_tag=None, body=SDP_OFFER))
    acks = requests(harness.drain() + [m for m, _, _ in harness.sent], "ACK")
    assert acks and acks[0].cseq.number == 1
    assert harness.ua.next_events() == [ev.ReInviteAnswered(CALL, SDP_OFFER)]


def refer_started(harness: Harness) -> Request:
    established(harness)
    harness.ua.refer(CALL, "sip:staff@127.0.0.1:5070")
    refer = harness.drain()[0]
    assert refer.method == "REFER" and refer.headers.get("Refer-To") == "<sip:staff@127.0.0.1:5070>"
    assert (refer.headers.get("Referred-By") or "").startswith("<sip:hotline@")
    return refer


def notify(tag: str, status_line: str, cseq: int) -> bytes:
    return sip_request(
        "NOTIFY",
        branch=f"z9hG4bK-n{cseq}",
        cseq=cseq,
        to_tag=tag,
        body=status_line.encode(),
        content_type="message/sipfrag;version=2.0",
        extra="Event: refer\r\nSubscription-State: active;expires=60\r\n",
    )


def test_refer_then_notify_sipfrag_success() -> None:
    harness = Harness()
    refer = refer_started(harness)
    harness.feed(response_to(refer, 202, "Accepted", to_tag=None))
    tag = refer.from_.tag or ""
    assert [m.status for m in harness.feed(notify(tag, "SIP/2.0 100 Trying\r\n", 2))] == [200]
    assert harness.feed(notify(tag, "SIP/2.0 200 OK\r\n", 3))[0].status == 200
    assert harness.ua.next_events() == [ev.ReferAccepted(CALL), ev.TransferSucceeded(CALL)]


def test_refer_refused_notify_failure_and_timeouts() -> None:
    harness = Harness()
    refer = refer_started(harness)
    harness.feed(response_to(refer, 405, "Method Not Allowed", to_tag=None))
    assert harness.ua.next_events() == [ev.TransferFailed(CALL, 405, "Method Not Allowed")]

    harness = Harness()
    refer = refer_started(harness)
    harness.feed(response_to(refer, 202, "Accepted", to_tag=None))
    harness.feed(notify(refer.from_.tag or "", "SIP/2.0 486 Busy Here\r\n", 2))
    assert harness.ua.next_events() == [ev.ReferAccepted(CALL), ev.TransferFailed(CALL, 486, "Busy Here")]

    harness = Harness(UserAgentConfig(transfer_timeout_s=60.0))
    refer_started(harness)
    harness.run_timers_until(33.0)  # no answer at all: timer F
    assert harness.ua.next_events() == [ev.TransferFailed(CALL, 408, "REFER timed out")]

    harness = Harness(UserAgentConfig(transfer_timeout_s=20.0))
    refer = refer_started(harness)
    harness.feed(response_to(refer, 202, "Accepted", to_tag=None))
    harness.run_timers_until(21.0)  # accepted, but no final NOTIFY
    assert harness.ua.next_events() == [
        ev.ReferAccepted(CALL),
        ev.TransferFailed(CALL, 408, "no final NOTIFY"),
    ]


def test_outbound_invite_answered_with_ack_and_retransmitted_2xx() -> None:
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    assert harness.sent[-1][1] == ("127.0.0.1", 5070) and invite.body == SDP_OFFER
    harness.feed(response_to(invite, 100, "Trying", to_tag=None))
    harness.feed(response_to(invite, 180, "Ringing"))
    ok = response_to(invite, 200, body=SDP_ANSWER)
    ack = harness.feed(ok)
    assert len(ack) == 1 and ack[0].method == "ACK" and ack[0].cseq.number == 1
    assert ack[0].top_via.branch != invite.top_via.branch and ack[0].uri == "sip:peer@127.0.0.1:5099"
    assert harness.feed(ok)[0].method == "ACK"  # retransmitted 2xx: ACK again, no new event
    assert harness.ua.next_events() == [
        ev.OutboundCallProgress(call_id, 180),
        ev.OutboundCallAnswered(call_id, SDP_ANSWER),
    ]
    harness.ua.hangup(call_id)
    assert requests(harness.drain(), "BYE")


def test_outbound_invite_rejected_or_unanswered() -> None:
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    ack = harness.feed(response_to(invite, 486, "Busy Here"))
    assert ack[0].method == "ACK" and ack[0].top_via.branch == invite.top_via.branch
    assert harness.ua.next_events() == [
        ev.OutboundCallFailed(call_id, 486, "Busy Here"),
        ev.CallEnded(call_id, "failed", 486),
    ]
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    harness.run_timers_until(33.0)
    assert harness.ua.next_events()[0] == ev.OutboundCallFailed(call_id, 408, "Request Timeout")


def test_outbound_invite_answers_a_proxy_challenge() -> None:
    harness = Harness(UserAgentConfig(auth_username="hotline", auth_password="pw"))
    harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    challenge = 'Proxy-Authenticate: Digest realm="pbx", nonce="abc", qop="auth"\r\n'
    sent = harness.feed(response_to(invite, 407, "Proxy Authentication Required", extra=challenge))
    retry = requests(sent, "INVITE")[0]
    assert retry.cseq.number == 2 and retry.call_id == invite.call_id and retry.from_.tag == invite.from_.tag
    assert 'username="hotline"' in (retry.headers.get("Proxy-Authorization") or "")


def test_hangup_before_any_provisional_waits_to_cancel() -> None:
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    harness.ua.hangup(call_id)
    assert requests(harness.drain(), "CANCEL") == []
    sent = harness.feed(response_to(invite, 180, "Ringing"))
    cancel = requests(sent, "CANCEL")[0]
    assert cancel.top_via.branch == invite.top_via.branch and cancel.cseq.number == invite.cseq.number
    harness.feed(response_to(cancel, 200))
    assert requests(harness.feed(response_to(invite, 487, "Request Terminated")), "ACK")
    assert harness.ua.next_events() == [ev.CallEnded(call_id, "local", None)]  # nothing after our hangup


def test_register_with_digest_and_refresh() -> None:
    settings = UserAgentConfig(
        registrar="sip:127.0.0.1:5080", auth_username="2001", auth_password="pw", register_expires_s=60
    )
    harness = Harness(settings)
    registrar = DigestChallenger("pbx", "2001", "pw")
    harness.ua.register()
    first = harness.drain()[0]
    assert (
        first.method == "REGISTER"
        and first.uri == "sip:127.0.0.1:5080"
        and first.headers.get("Expires") == "60"
    )
    challenge = "".join(f"WWW-Authenticate: {c}\r\n" for c in registrar.challenges(harness.clock.now))
    second = harness.feed(response_to(first, 401, "Unauthorized", extra=challenge))[0]
    assert second.cseq.number == first.cseq.number + 1 and second.call_id == first.call_id
    assert registrar.verify(second.headers.get("Authorization"), "REGISTER", second.uri, harness.clock.now)
    contact = f"Contact: {first.headers.get('Contact')};expires=60\r\n"
    harness.feed(response_to(second, 200, extra=contact))
    assert harness.ua.next_events() == [ev.Registered(60)]
    refresh = harness.run_timers_until(49.0)
    assert {m.cseq.number for m in requests(refresh, "REGISTER")} == {second.cseq.number + 1}


def test_register_refused() -> None:
    harness = Harness(UserAgentConfig(registrar="127.0.0.1:5080"))
    harness.ua.register()
    harness.feed(response_to(harness.drain()[0], 403, "Forbidden"))
    assert harness.ua.next_events() == [ev.RegistrationFailed(403, "Forbidden")]


def test_dtmf_info() -> None:
    harness = Harness()
    tag = established(harness)
    sent = harness.feed(
        sip_request(
            "INFO",
            branch="z9hG4bK-i",
            cseq=2,
            to_tag=tag,
            body=b"Signal=5\r\nDuration=160\r\n",
            content_type="application/dtmf-relay",
        )
    )
    assert sent[0].status == 200 and harness.ua.next_events() == [ev.DtmfInfo(CALL, "5", 160)]


def test_tcp_stream_in_odd_chunks_is_framed() -> None:
    harness = Harness()
    data = (
        sip_request("OPTIONS", call_id="t1")
        + b"\r\n\r\n"
        + sip_request("OPTIONS", call_id="t2", branch="z9hG4bK-2")
    )
    sent = []
    for i in range(0, len(data), 13):
        sent += harness.feed(data[i : i + 13], transport="tcp")
    assert [m.call_id for m in sent] == ["t1", "t2"]
    assert all(dest == PEER and transport == "tcp" for _, dest, transport in harness.sent)


def test_call_control_rejects_unknown_calls_clearly() -> None:
    harness = Harness()
    for action in (lambda: harness.ua.answer("nope", b""), lambda: harness.ua.refer("nope", "sip:x@y")):
        try:
            action()
        except KeyError as exc:
            assert "nope" in str(exc)
        else:
            raise AssertionError("expected KeyError")
    harness.ua.hangup("nope")  # hangup of a gone call is a no-op
    assert isinstance(harness.sent, list) and not isinstance(harness.sent, Response)


def test_unanswered_call_times_out_and_a_new_attempt_with_the_same_call_id_is_accepted() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    harness.ua.next_events()
    sent = harness.run_timers_until(61.0, step=1.0)
    assert [m.status for m in sent][:1] == [480]
    assert harness.ua.next_events() == [ev.CallEnded(CALL, "timeout", 480)]
    retry = harness.feed(sip_request("INVITE", branch="z9hG4bK-again", cseq=2, body=SDP_OFFER))
    assert [m.status for m in retry] == [100]


def test_second_invite_for_a_live_call_id_is_a_merged_request() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    merged = harness.feed(sip_request("INVITE", branch="z9hG4bK-fork", body=SDP_OFFER))
    assert [m.status for m in merged] == [482]


def test_error_replies_to_one_source_are_capped_per_minute() -> None:
    harness = Harness()
    bad = sip_request("OPTIONS", cseq_method="INVITE")  # CSeq method mismatch: 400
    answered = sum(len(harness.feed(bad.replace(b"test-1", f"n{n}".encode()))) for n in range(100))
    assert answered == 60
    harness.clock.now += 61
    assert [m.status for m in harness.feed(bad)] == [400]


def test_response_with_a_broken_to_header_is_dropped_before_the_transaction_sees_it() -> None:
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    broken = response_to(invite, 200, body=SDP_ANSWER).replace(b"To: <sip:staff", b'To: "unclosed <sip:staff')
    assert harness.feed(broken) == [] and harness.ua.next_events() == []
    harness.feed(response_to(invite, 200, body=SDP_ANSWER))
    assert harness.ua.next_events() == [ev.OutboundCallAnswered(call_id, SDP_ANSWER)]


def test_register_interval_too_brief_and_stale_nonce() -> None:
    settings = UserAgentConfig(registrar="sip:127.0.0.1:5080", auth_username="2001", auth_password="pw")
    harness = Harness(settings)
    harness.ua.register()
    first = harness.drain()[0]
    retry = harness.feed(response_to(first, 423, "Interval Too Brief", extra="Min-Expires: 900\r\n"))[0]
    assert retry.headers.get("Expires") == "900" and retry.cseq.number == first.cseq.number + 1
    challenge = 'WWW-Authenticate: Digest realm="pbx", nonce="n1"\r\n'
    authed = harness.feed(response_to(retry, 401, "Unauthorized", extra=challenge))[0]
    stale = 'WWW-Authenticate: Digest realm="pbx", nonce="n2", stale=true\r\n'
    again = harness.feed(response_to(authed, 401, "Unauthorized", extra=stale))[0]
    assert 'nonce="n2"' in (again.headers.get("Authorization") or "")
    refused = harness.feed(response_to(again, 401, "Unauthorized", extra=challenge))
    assert requests(refused, "REGISTER") == []  # the same credentials refused twice: give up
    assert harness.ua.next_events() == [ev.RegistrationFailed(401, "Unauthorized")]
    assert not harness.ua.registered


def test_challenged_bye_and_reinvite_are_resent_with_credentials() -> None:
    harness = Harness(UserAgentConfig(auth_username="hotline", auth_password="pw"))
    established(harness)
    challenge = 'Proxy-Authenticate: Digest realm="pbx", nonce="abc"\r\n'
    harness.ua.reinvite(CALL, SDP_ANSWER)
    reinvite = harness.drain()[0]
    retry = requests(
        harness.feed(response_to(reinvite, 407, "Proxy Authentication Required", extra=challenge)), "INVITE"
    )
    assert retry and retry[0].cseq.number == reinvite.cseq.number + 1 and retry[0].body == SDP_ANSWER
    harness.feed(response_to(retry[0], 200, body=SDP_OFFER))
    assert harness.ua.next_events() == [ev.ReInviteAnswered(CALL, SDP_OFFER)]
    harness.ua.hangup(CALL)
    bye = harness.drain()[0]
    again = requests(
        harness.feed(response_to(bye, 407, "Proxy Authentication Required", extra=challenge)), "BYE"
    )
    assert again and "Proxy-Authorization" in again[0].headers and again[0].cseq.number == bye.cseq.number + 1


def test_a_second_fork_answering_our_invite_is_acked_and_released() -> None:
    harness = Harness()
    call_id = harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    invite = harness.drain()[0]
    harness.feed(response_to(invite, 200, to_tag="fork-a", body=SDP_ANSWER))
    sent = harness.feed(response_to(invite, 200, to_tag="fork-b", body=SDP_ANSWER))
    assert [(m.method, m.to.tag) for m in sent] == [("ACK", "fork-b"), ("BYE", "fork-b")]
    assert harness.ua.next_events() == [ev.OutboundCallAnswered(call_id, SDP_ANSWER)]
    harness.ua.hangup(call_id)
    assert [(m.method, m.to.tag) for m in harness.drain()] == [("BYE", "fork-a")]


def test_a_reinvite_left_unanswered_gets_500_and_the_next_one_is_offered_again() -> None:
    harness = Harness()
    tag = established(harness)
    harness.feed(sip_request("INVITE", branch="z9hG4bK-re1", cseq=2, to_tag=tag, body=SDP_OFFER))
    harness.ua.next_events()
    sent = harness.run_timers_until(11.0)
    assert [(m.status, m.headers.get("Retry-After")) for m in sent][:1] == [(500, "2")]
    harness.feed(sip_request("ACK", branch="z9hG4bK-re1", cseq=2, to_tag=tag))
    harness.feed(sip_request("INVITE", branch="z9hG4bK-re2", cseq=3, to_tag=tag, body=SDP_OFFER))
    assert harness.ua.next_events() == [ev.ReInvite(CALL, SDP_OFFER)]


def dtmf_info(tag: str, cseq: int, digit: str = "5") -> bytes:
    return sip_request(
        "INFO",
        branch=f"z9hG4bK-info-{cseq}",
        cseq=cseq,
        to_tag=tag,
        body=f"Signal={digit}\r\nDuration=100\r\n".encode(),
        content_type="application/dtmf-relay",
    )


def test_an_info_flood_keeps_no_transactions_and_passes_at_most_ten_digits_a_second() -> None:
    harness = Harness(UserAgentConfig(max_calls=2))
    harness.ua.max_server_transactions = 5
    tag = established(harness)
    held = harness.ua.state_sizes()["server_transactions"]
    answers = [m.status for n in range(50) for m in harness.feed(dtmf_info(tag, 2 + n))]
    assert answers == [200] * 50 and harness.ua.state_sizes()["server_transactions"] == held
    assert len(harness.ua.next_events()) == 10  # the rest of this second's digits are dropped
    other = sip_request("INVITE", call_id="second-call", branch="z9hG4bK-second", body=SDP_OFFER)
    assert harness.feed(other)[0].status == 100  # the flood did not fill the table new calls need
    harness.ua.next_events()
    harness.clock.now += 1.0
    harness.feed(dtmf_info(tag, 100, "7"))
    assert harness.ua.next_events() == [ev.DtmfInfo(CALL, "7", 100)]


def test_a_retransmitted_info_is_answered_again_but_gives_no_second_digit() -> None:
    harness = Harness()
    tag = established(harness)
    first = harness.feed(dtmf_info(tag, 2))
    again = harness.feed(dtmf_info(tag, 2))
    assert [m.status for m in first + again] == [200, 200] and first[0].to.tag == again[0].to.tag == tag
    assert harness.ua.next_events() == [ev.DtmfInfo(CALL, "5", 100)]
