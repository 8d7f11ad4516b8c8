"""The SIP library's configuration, built from the hotline's settings (``[sip]`` in voicebot.toml, ``VOICEBOT_SIP__*``).

``voicebot/settings.py`` stays the one user-facing configuration; ``sip_bridge`` has its own types and never reads
it. These functions are the only place where one becomes the other.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pydantic import SecretStr

from sip_bridge.media import MediaPeerPolicy
from sip_bridge.sip.config import UserAgentConfig
from voicebot.settings import SipSettings


def user_agent_config(sip: SipSettings) -> UserAgentConfig:
    """The user agent's part of ``sip``: every field of :class:`UserAgentConfig` under the same name (the library
    makes lists tuples; secrets are handed over as plain text). ``tests/test_telephony_config.py`` checks that each
    one is carried over."""
    values: dict[str, Any] = {
        field.name: _plain(getattr(sip, field.name)) for field in fields(UserAgentConfig)
    }
    return UserAgentConfig(**values)


def media_peer_policy(sip: SipSettings) -> MediaPeerPolicy:
    """Whose RTP a caller's leg hears and when it may speak (raises ValueError for a bad network)."""
    networks = sip.rtp_allowed_networks
    if networks is None:  # those SIP admits: a trunk listed only as trusted sends its media too
        networks = list(user_agent_config(sip).admitted_networks)
    return MediaPeerPolicy(
        allowed_networks=tuple(networks),
        latching=sip.rtp_latching,
        packets_before_receive=sip.rtp_packets_before_receive,
        allow_list_hint="set sip.rtp_allowed_networks to the networks the phones' or gateways' media comes from",
    )


def _plain(value: object) -> object:
    """A setting as the library takes it: the plain text of a pydantic secret, anything else unchanged."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value
