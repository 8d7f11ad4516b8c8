"""Digest authentication: RFC 2617's worked example, and our stateless server nonces."""

from __future__ import annotations

from sip_bridge.sip.auth import DigestChallenger, authorization_header, digest_response, parse_challenge


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


def test_server_nonce_accepts_the_right_answer_within_its_lifetime_only() -> None:
    server = DigestChallenger("rathaus", "pbx", "geheim", nonce_ttl_s=300)
    _, challenge = parse_challenge(server.challenge(now=1000.0))
    for algorithm in ("MD5", "SHA-256"):
        answer = authorization_header(
            {**challenge, "algorithm": algorithm},
            username="pbx",
            password="geheim",
            method="INVITE",
            uri="sip:x",
        )
        assert server.verify(answer, "INVITE", now=1100.0)
        assert not server.verify(answer, "INVITE", now=1301.0)  # nonce expired
        assert not server.verify(answer, "BYE", now=1100.0)  # method is part of the digest
    forged = authorization_header(
        {**challenge, "nonce": "3e8.000000000000000000000000"},
        username="pbx",
        password="geheim",
        method="INVITE",
        uri="x",
    )
    assert not server.verify(forged, "INVITE", now=1100.0)
    assert not server.verify("Digest garbage", "INVITE", now=1100.0)
    assert not server.verify(None, "INVITE", now=1100.0)
