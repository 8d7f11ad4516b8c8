"""The user agent's configuration: what the UA core, its policy and auth, and the asyncio transport read.

A plain frozen dataclass of the library, so the sans-I/O core needs no settings framework; an application builds
it from its own settings (``voicebot.telephony.config.user_agent_config``) and tests build it directly. The
defaults are those of a hotline on loopback. Sequences given as lists are kept as tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["udp", "tcp"]
DigestAlgorithm = Literal["SHA-256", "MD5"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")
_SEQUENCES = ("transports", "allowed_networks", "trusted_networks", "inbound_digest_algorithms")


@dataclass(frozen=True)
class UserAgentConfig:
    """Listening address, identity, admission limits, registration and digest credentials of one UA."""

    bind_host: str = "127.0.0.1"
    port: int = 5060  # 0: any free port (tests)
    transports: tuple[Transport, ...] = TRANSPORTS
    public_host: str | None = None  # address written into Contact when it differs from bind_host
    user: str = "hotline"  # user part of our Contact/From
    # Admission of inbound requests.
    max_calls: int = 8  # more concurrent calls get 503 + Retry-After
    retry_after_s: int = 30
    invites_per_source_per_minute: int = 30
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # other sources get 403
    # Trunks: allowed as well (see ``admitted_networks``), no per-source INVITE rate, no digest lockout.
    trusted_networks: tuple[str, ...] = ()
    max_message_bytes: int = 65535
    # Registration to a PBX as an extension, and the credentials for challenges of our own requests.
    registrar: str | None = None
    auth_username: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    register_expires_s: int = 600
    # Digest challenge of inbound INVITEs (all three set: on).
    inbound_realm: str | None = None
    inbound_username: str | None = None
    inbound_password: str | None = field(default=None, repr=False)
    inbound_nonce_ttl_s: float = 300.0
    inbound_auth_max_failures: int = 10
    inbound_auth_failure_window_s: float = 60.0
    inbound_auth_lockout_s: float = 300.0
    inbound_digest_algorithms: tuple[DigestAlgorithm, ...] = ("SHA-256", "MD5")
    # A REFER without a final NOTIFY after this long is a failed transfer (408).
    transfer_timeout_s: float = 25.0
    # Inbound TCP bounds (the transport's; see ``policy.TcpLimits``).
    tcp_max_connections: int = 256
    tcp_max_connections_per_source: int = 16
    tcp_idle_timeout_s: float = 30.0
    tcp_read_timeout_s: float = 10.0
    # Server/User-Agent header value: a name without version; "" leaves the header out.
    server_header: str = "voicebot"

    @property
    def admitted_networks(self) -> tuple[str, ...]:
        """The source allow-list: ``allowed_networks`` plus ``trusted_networks`` (a trunk one trusts must not
        get 403 for being missing from the other list); empty ``allowed_networks`` still admits everyone."""
        if not self.allowed_networks:
            return ()
        return self.allowed_networks + self.trusted_networks

    def __post_init__(self) -> None:
        for name in _SEQUENCES:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = set(self.transports) - set(TRANSPORTS)
        if unknown:
            raise ValueError(f"unknown SIP transport(s) {sorted(unknown)}; use udp and/or tcp")
