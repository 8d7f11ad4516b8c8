"""The SIP library's own configuration is built from the hotline's ``[sip]`` settings in one place, field by field."""

from __future__ import annotations

from dataclasses import fields

from pydantic import SecretStr

from sip_bridge.sip.config import UserAgentConfig
from voicebot.settings import SipSettings
from voicebot.telephony.config import user_agent_config

# A value different from the default for every field the user agent reads.
CHANGED = SipSettings(
    bind_host="0.0.0.0",
    port=5080,
    transports=["tcp"],
    public_host="192.0.2.10",
    user="rathaus",
    max_calls=3,
    retry_after_s=12,
    invites_per_source_per_minute=5,
    allowed_networks=["10.0.0.0/8"],
    trusted_networks=["192.0.2.0/24"],
    max_message_bytes=4000,
    registrar="sip:pbx.example:5060",
    auth_username="2001",
    auth_password="ext-secret",
    register_expires_s=300,
    inbound_realm="rathaus",
    inbound_username="pbx",
    inbound_password="trunk-secret",
    inbound_nonce_ttl_s=120.0,
    inbound_auth_max_failures=4,
    inbound_auth_failure_window_s=30.0,
    inbound_auth_lockout_s=600.0,
    inbound_digest_algorithms=["MD5"],
    transfer_timeout_s=9.0,
    tcp_max_connections=20,
    tcp_max_connections_per_source=2,
    tcp_idle_timeout_s=7.0,
    tcp_read_timeout_s=3.0,
    server_header="",
)


def _plain(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return tuple(value) if isinstance(value, list) else value


def test_the_library_defaults_are_the_settings_defaults() -> None:
    assert user_agent_config(SipSettings()) == UserAgentConfig()


def test_every_user_agent_field_comes_from_the_sip_setting_of_the_same_name() -> None:
    config = user_agent_config(CHANGED)
    default = UserAgentConfig()
    for item in fields(UserAgentConfig):
        assert getattr(config, item.name) != getattr(default, item.name), (
            f"CHANGED leaves {item.name} default"
        )
        assert getattr(config, item.name) == _plain(getattr(CHANGED, item.name)), item.name


def test_passwords_stay_out_of_the_config_repr() -> None:
    text = repr(user_agent_config(CHANGED))
    assert "ext-secret" not in text and "trunk-secret" not in text and "rathaus" in text
