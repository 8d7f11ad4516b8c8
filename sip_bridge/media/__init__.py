"""RTP media for SIP calls: SDP offer/answer, RTP, jitter buffer, RFC 4733 DTMF, codecs, the sans-I/O media
session and its asyncio endpoint."""

from .endpoint import RtpEndpoint
from .rtp import MediaPeerPolicy
from .sdp import (
    CodecSpec,
    LocalSdpSession,
    NegotiatedMedia,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)
from .session import MediaSession

__all__ = [
    "CodecSpec",
    "LocalSdpSession",
    "MediaPeerPolicy",
    "MediaSession",
    "NegotiatedMedia",
    "RtpEndpoint",
    "SdpError",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "build_offer",
]
