"""Audio codecs (aiortc's PCMU/PCMA/G.722/Opus, shared with the WebRTC path) and soxr stream resampling.

All PCM here is signed 16-bit little-endian mono bytes. A codec works at its *audio* rate (8 kHz G.711,
16 kHz G.722, 48 kHz Opus); the pipeline works at its own rate; :class:`PcmResampler` sits in between.
Resampling uses soxr's "QQ" quality: it is the only one that emits output for every 20 ms packet (the
higher qualities hold back ~60-100 ms and release bursts), see docs/decisions/0351.
"""

from __future__ import annotations

import fractions
import functools
from dataclasses import dataclass

import av
import numpy as np
import soxr
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .sdp import SUPPORTED_CODECS, CodecSpec

FRAME_MS = 20
SAMPLE_WIDTH = 2


@dataclass(frozen=True)
class CodecProfile:
    audio_rate: int  # sample rate of the PCM the codec consumes/produces
    clock_rate: int  # RTP timestamp clock
    sample_based: bool  # payloads may be split/concatenated at any sample (G.711, G.722)
    # The largest payload one packet may carry; bigger ones are hostile or broken and never reach the decoder.
    max_payload_bytes: int = 1920


# G.711 and G.722 carry 8 bytes per ms: 1,920 bytes is 240 ms, more than any phone puts in one packet. An Opus
# frame is at most 1,275 bytes (RFC 6716 3.2.1), which a phone stream never exceeds per packet either.
PROFILES: dict[str, CodecProfile] = {
    "PCMU": CodecProfile(8000, 8000, True),
    "PCMA": CodecProfile(8000, 8000, True),
    "G722": CodecProfile(16000, 8000, True),
    "opus": CodecProfile(48000, 48000, False, max_payload_bytes=1275),
}
_OPUS_BITRATE = 32000  # aiortc defaults to 96 kbit/s (music); speech on a phone line needs far less


class AudioCodec:
    """Encoder + decoder for one negotiated codec, 20 ms frames of PCM at ``audio_rate`` in and out."""

    def __init__(self, codec: CodecSpec | str) -> None:
        name = codec.name if isinstance(codec, CodecSpec) else codec
        if name not in PROFILES:
            raise ValueError(f"unsupported codec {name!r}; supported: {sorted(PROFILES)}")
        self.name = name
        self.profile = PROFILES[name]
        clock_rate, channels = SUPPORTED_CODECS[name]
        parameters = RTCRtpCodecParameters(
            mimeType=f"audio/{name}", clockRate=clock_rate, channels=channels, payloadType=0
        )
        # G.711 is one table lookup per sample; through PyAV it cost ~120 µs to encode and ~45 µs to decode a
        # 20 ms packet on the event loop (decision 0990). The tables come from the same ffmpeg codec, so a G.711
        # call needs no libav encoder or decoder of its own.
        self._tables = _g711_tables(name) if name in ("PCMU", "PCMA") else None
        if self._tables is None:
            self._encoder = get_encoder(parameters)
            self._decoder = get_decoder(parameters)
            if name == "opus":
                self._encoder.codec.bit_rate = _OPUS_BITRATE  # type: ignore[attr-defined]
        self._pts = 0
        self._time_base = fractions.Fraction(1, self.profile.audio_rate)

    @property
    def audio_rate(self) -> int:
        return self.profile.audio_rate

    @property
    def clock_rate(self) -> int:
        return self.profile.clock_rate

    @property
    def frame_samples(self) -> int:
        """Samples of PCM (at ``audio_rate``) in one 20 ms frame."""
        return self.profile.audio_rate * FRAME_MS // 1000

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * SAMPLE_WIDTH

    def fits(self, payload: bytes) -> bool:
        """Whether a received payload is small enough to be this codec's (oversize ones are dropped undecoded)."""
        return len(payload) <= self.profile.max_payload_bytes

    def rtp_ticks(self, audio_samples: int) -> int:
        """RTP timestamp increment for that many PCM samples (G.722: half, by RFC 3551)."""
        return audio_samples * self.profile.clock_rate // self.profile.audio_rate

    def encode_frame(self, pcm: bytes) -> bytes:
        """Encode exactly one 20 ms frame into one RTP payload."""
        if len(pcm) != self.frame_bytes:
            raise ValueError(f"{self.name} needs {self.frame_bytes} bytes per frame, got {len(pcm)}")
        samples = np.frombuffer(pcm, dtype=np.int16)
        if self._tables is not None:
            return bytes(self._tables.encode[samples.view(np.uint16)].tobytes())
        if self.name == "opus":  # hand over real stereo: the library's mono upmix would cost 3 dB
            frame = av.AudioFrame.from_ndarray(
                np.repeat(samples, 2).reshape(1, -1), format="s16", layout="stereo"
            )
        else:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.profile.audio_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += self.frame_samples
        payloads, _ = self._encoder.encode(frame)
        return b"".join(payloads)

    def decode(self, payload: bytes, timestamp: int = 0) -> bytes:
        """Decode one RTP payload (any packet time) to mono PCM at ``audio_rate``."""
        if not payload:
            return b""
        if self._tables is not None:
            return bytes(self._tables.decode[np.frombuffer(payload, dtype=np.uint8)].tobytes())
        frames = self._decoder.decode(JitterFrame(data=payload, timestamp=timestamp))
        chunks = []
        for frame in frames:
            array = frame.to_ndarray()  # type: ignore[attr-defined]
            if frame.layout.nb_channels == 2:  # type: ignore[attr-defined]
                stereo = array.reshape(-1, 2).astype(np.int32)
                array = ((stereo[:, 0] + stereo[:, 1]) // 2).astype(np.int16)
            chunks.append(np.ascontiguousarray(array, dtype=np.int16).tobytes())
        return b"".join(chunks)


@dataclass(frozen=True)
class G711Tables:
    decode: np.ndarray  # code byte → int16 sample
    encode: np.ndarray  # int16 sample (as uint16) → code byte


@functools.cache
def _g711_tables(name: str) -> G711Tables:
    """Every G.711 code decoded and every 16-bit sample encoded once, by aiortc's own (ffmpeg) codec: the
    lookups give byte for byte what the codec gives (G.711 keeps no state between samples)."""
    clock_rate, channels = SUPPORTED_CODECS[name]
    parameters = RTCRtpCodecParameters(
        mimeType=f"audio/{name}", clockRate=clock_rate, channels=channels, payloadType=0
    )
    decoded = b"".join(
        np.ascontiguousarray(frame.to_ndarray(), dtype=np.int16).tobytes()  # type: ignore[attr-defined]
        for frame in get_decoder(parameters).decode(JitterFrame(data=bytes(range(256)), timestamp=0))
    )
    every_sample = np.arange(65536, dtype=np.uint16).view(np.int16)
    padded = np.concatenate([every_sample, np.zeros(160 - 65536 % 160, dtype=np.int16)])
    frame = av.AudioFrame.from_ndarray(padded.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 8000, 0, fractions.Fraction(1, 8000)
    payloads, _ = get_encoder(parameters).encode(frame)
    encoded = b"".join(payloads)[:65536]
    if len(decoded) != 512 or len(encoded) != 65536:
        raise RuntimeError(f"{name}: the codec gave {len(decoded)} / {len(encoded)} bytes for its tables")
    return G711Tables(
        decode=np.frombuffer(decoded, dtype=np.int16).copy(),
        encode=np.frombuffer(encoded, dtype=np.uint8).copy(),
    )


class PcmResampler:
    """Streaming mono s16 resampler (soxr "QQ": low latency, output for every input chunk)."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "QQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream | None:
        if self.in_rate == self.out_rate:
            return None
        return soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="int16", quality=self.quality)

    def process(self, pcm: bytes) -> bytes:
        if self._stream is None or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        return bytes(self._stream.resample_chunk(samples).tobytes())

    def reset(self) -> None:
        """Drop filter state (after a flush, so stale bot audio does not leak into the next utterance)."""
        self._stream = self._new_stream()


class PcmFifo:
    """Byte FIFO that hands out fixed-size frames; used to re-chunk decoded audio into 20 ms frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def __len__(self) -> int:
        return len(self._buffer)

    def push(self, pcm: bytes) -> None:
        self._buffer.extend(pcm)

    def pop(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def take_all(self) -> bytes:
        chunk = bytes(self._buffer)
        self._buffer.clear()
        return chunk

    def clear(self) -> None:
        self._buffer.clear()
