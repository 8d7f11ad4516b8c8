"""Digest authentication: RFC 2617's worked example, and the server side's nonces, replay, qop, uri and lockout
rules (sans-I/O, explicit clock)."""

from __future__ import annotations

from sip_bridge.sip.auth import (
    DigestChallenger,
    DigestVerdict,
    authorization_header,
    digest_response,
    parse_challenge,
)

URI = "sip:hotline@127.0.0.1:5060"


def test_rfc2617_worked_example() -> None:
    response = digest_response(
        username="Mufasa",
        password="Circle Of Life",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_challenge_parameters_with_quoted_commas() -> None:
    scheme, params = parse_challenge('Digest realm="a, b", nonce="x", qop="auth,auth-int", algorithm=MD5')
    assert scheme == "digest" and params["realm"] == "a, b" and params["qop"] == "auth,auth-int"


def server() -> DigestChallenger:
    return DigestChallenger(
        "rathaus", "pbx", "geheim", nonce_ttl_s=300, max_failures=5, failure_window_s=60, lockout_s=120
    )


def challenge_params(challenger: DigestChallenger, now: float, index: int = 0) -> dict[str, str]:
    return parse_challenge(challenger.challenges(now)[index])[1]


def answer(
    params: dict[str, str], *, password: str = "geheim", uri: str = URI, method: str = "INVITE", nc: int = 1
) -> str:
    return authorization_header(params, username="pbx", password=password, method=method, uri=uri, nc=nc)


def test_sha256_is_offered_before_md5_with_one_opaque_nonce_each_time() -> None:
    challenger = server()
    first = [parse_challenge(value)[1] for value in challenger.challenges(1000.0)]
    assert [c["algorithm"] for c in first] == ["SHA-256", "MD5"]
    assert all(c["qop"] == "auth" and c["realm"] == "rathaus" and "stale" not in c for c in first)
    assert first[0]["nonce"] == first[1]["nonce"]
    again = challenge_params(challenger, 1000.0)
    assert again["nonce"] != first[0]["nonce"]  # random bytes: not a function of the clock
    assert f"{1000:x}" not in first[0]["nonce"].split(".")[0]  # the issue time (uptime) is not readable


def test_both_algorithms_are_accepted_within_the_lifetime_and_the_method_counts() -> None:
    challenger = server()
    for index in (0, 1):  # SHA-256, MD5
        params = challenge_params(challenger, 1000.0, index)
        assert not challenger.verify(answer(params, method="BYE"), "INVITE", URI, 1100.0)
        assert challenger.verify(answer(params), "INVITE", URI, 1100.0)


def test_an_expired_nonce_gets_a_stale_challenge() -> None:
    challenger = server()
    params = challenge_params(challenger, 1000.0)
    assert challenger.check(answer(params), "INVITE", URI, 1301.0) == DigestVerdict(False, stale=True)
    stale = parse_challenge(challenger.challenges(1301.0, stale=True)[0])[1]
    assert stale["stale"] == "true"


def test_a_replayed_authorization_is_refused_and_only_a_higher_nc_passes() -> None:
    challenger = server()
    params = challenge_params(challenger, 1000.0)
    header = answer(params)
    assert challenger.verify(header, "INVITE", URI, 1001.0)
    assert challenger.check(header, "INVITE", URI, 1006.0) == DigestVerdict(False, stale=True)
    assert challenger.verify(answer(params, nc=2), "INVITE", URI, 1007.0)
    assert not challenger.verify(answer(params, nc=2), "INVITE", URI, 1008.0)


def test_answers_without_qop_or_for_another_uri_are_refused() -> None:
    challenger = server()
    params = challenge_params(challenger, 1000.0)
    rfc2069 = answer({k: v for k, v in params.items() if k != "qop"})
    assert "qop=" not in rfc2069
    assert challenger.check(rfc2069, "INVITE", URI, 1001.0) == DigestVerdict(False)
    other_uri = answer(params, uri="sip:other@127.0.0.1")
    assert challenger.check(other_uri, "INVITE", URI, 1001.0) == DigestVerdict(False)
    assert challenger.verify(answer(params), "INVITE", URI, 1001.0)  # the nonce itself is still good


def test_forged_garbage_and_unknown_algorithms_are_refused() -> None:
    challenger = server()
    params = challenge_params(challenger, 1000.0)
    forged = answer({**params, "nonce": "3e8.000000000000000000000000"})
    assert challenger.check(forged, "INVITE", URI, 1001.0) == DigestVerdict(False, stale=True)  # not ours
    assert not challenger.verify(answer({**params, "algorithm": "MD5-sess"}), "INVITE", URI, 1001.0)
    assert not challenger.verify("Digest garbage", "INVITE", URI, 1001.0)
    assert not challenger.verify("Basic cGJ4OmdlaGVpbQ==", "INVITE", URI, 1001.0)
    assert not challenger.verify(None, "INVITE", URI, 1001.0)


def test_repeated_wrong_answers_lock_the_username_out_for_a_while() -> None:
    challenger = server()
    for n in range(5):
        params = challenge_params(challenger, 1000.0 + n)
        assert (
            challenger.check(answer(params, password=f"guess{n}"), "INVITE", URI, 1000.0 + n).retry_after_s
            == 0
        )
    params = challenge_params(challenger, 1010.0)
    locked = challenger.check(answer(params), "INVITE", URI, 1010.0)  # even the right password
    assert locked == DigestVerdict(False, retry_after_s=114)
    assert challenger.verify(answer(params), "INVITE", URI, 1010.0, lockable=False)  # a trusted trunk
    params = challenge_params(challenger, 1125.0)
    assert challenger.verify(answer(params), "INVITE", URI, 1125.0)


def test_wrong_usernames_do_not_lock_out_ours() -> None:
    challenger = server()
    for n in range(20):
        params = challenge_params(challenger, 1000.0)
        header = authorization_header(params, username=f"user{n}", password="x", method="INVITE", uri=URI)
        challenger.check(header, "INVITE", URI, 1000.0)
    assert challenger.verify(answer(challenge_params(challenger, 1001.0)), "INVITE", URI, 1001.0)
    assert len(challenger._failures) == 1


def test_failures_outside_the_window_do_not_add_up() -> None:
    challenger = server()
    for n in range(10):
        params = challenge_params(challenger, 1000.0 + 20 * n)
        wrong = answer(params, password="falsch")
        assert challenger.check(wrong, "INVITE", URI, 1000.0 + 20 * n).retry_after_s == 0
    params = challenge_params(challenger, 1200.0)
    assert challenger.verify(answer(params), "INVITE", URI, 1200.0)


def test_the_nonce_table_is_bounded_and_a_forgotten_nonce_is_stale() -> None:
    challenger = DigestChallenger("rathaus", "pbx", "geheim", max_nonces=100)
    oldest = challenge_params(challenger, 1000.0)
    for _ in range(300):
        challenger.challenges(1001.0)
    assert len(challenger._nonces) <= 100
    assert challenger.check(answer(oldest), "INVITE", URI, 1002.0) == DigestVerdict(False, stale=True)


def test_offering_only_md5_for_older_clients_refuses_sha256_answers() -> None:
    challenger = DigestChallenger("rathaus", "pbx", "geheim", algorithms=["MD5"])
    (only,) = [parse_challenge(value)[1] for value in challenger.challenges(1000.0)]
    assert only["algorithm"] == "MD5"
    assert not challenger.verify(answer({**only, "algorithm": "SHA-256"}), "INVITE", URI, 1001.0)
    assert challenger.verify(answer(only), "INVITE", URI, 1001.0)
