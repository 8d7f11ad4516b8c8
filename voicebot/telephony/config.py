"""The SIP library's configuration, built from the hotline's settings (``[sip]`` in voicebot.toml, ``VOICEBOT_SIP__*``).

``voicebot/settings.py`` stays the one user-facing configuration; ``sip_bridge`` has its own types and never reads
it. These functions are the only place where one becomes the other.
"""

from __future__ import annotations

from pydantic import SecretStr

from sip_bridge.media import MediaPeerPolicy
from sip_bridge.sip.config import UserAgentConfig
from voicebot.settings import SipSettings


def user_agent_config(sip: SipSettings) -> UserAgentConfig:
    """The user agent's part of ``sip``: listening address, identity, admission, credentials, TCP bounds."""
    return UserAgentConfig(
        bind_host=sip.bind_host,
        port=sip.port,
        transports=tuple(sip.transports),
        public_host=sip.public_host,
        user=sip.user,
        max_calls=sip.max_calls,
        retry_after_s=sip.retry_after_s,
        invites_per_source_per_minute=sip.invites_per_source_per_minute,
        allowed_networks=tuple(sip.allowed_networks),
        trusted_networks=tuple(sip.trusted_networks),
        max_message_bytes=sip.max_message_bytes,
        registrar=sip.registrar,
        auth_username=sip.auth_username,
        auth_password=_plain(sip.auth_password),
        register_expires_s=sip.register_expires_s,
        inbound_realm=sip.inbound_realm,
        inbound_username=sip.inbound_username,
        inbound_password=_plain(sip.inbound_password),
        inbound_nonce_ttl_s=sip.inbound_nonce_ttl_s,
        inbound_auth_max_failures=sip.inbound_auth_max_failures,
        inbound_auth_failure_window_s=sip.inbound_auth_failure_window_s,
        inbound_auth_lockout_s=sip.inbound_auth_lockout_s,
        inbound_digest_algorithms=tuple(sip.inbound_digest_algorithms),
        transfer_timeout_s=sip.transfer_timeout_s,
        tcp_max_connections=sip.tcp_max_connections,
        tcp_max_connections_per_source=sip.tcp_max_connections_per_source,
        tcp_idle_timeout_s=sip.tcp_idle_timeout_s,
        tcp_read_timeout_s=sip.tcp_read_timeout_s,
        server_header=sip.server_header,
    )


def media_peer_policy(sip: SipSettings) -> MediaPeerPolicy:
    """Whose RTP a caller's leg hears and when it may speak (raises ValueError for a bad network)."""
    networks = sip.rtp_allowed_networks
    if networks is None:  # those SIP admits: a trunk listed only as trusted sends its media too
        networks = [*sip.allowed_networks, *sip.trusted_networks] if sip.allowed_networks else []
    return MediaPeerPolicy(
        allowed_networks=tuple(networks),
        latching=sip.rtp_latching,
        packets_before_receive=sip.rtp_packets_before_receive,
        allow_list_hint="set sip.rtp_allowed_networks to the networks the phones' or gateways' media comes from",
    )


def _plain(secret: str | SecretStr | None) -> str | None:
    """A password as the library takes it (the settings may hold it as a pydantic secret)."""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret
