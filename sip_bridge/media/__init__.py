"""RTP media for SIP calls: SDP offer/answer, RTP, jitter buffer, RFC 4733 DTMF, codecs, paced endpoint."""

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

__all__ = [
    "CodecSpec",
    "LocalSdpSession",
    "MediaPeerPolicy",
    "NegotiatedMedia",
    "RtpEndpoint",
    "SdpError",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "build_offer",
]
