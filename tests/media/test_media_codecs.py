"""aiortc codecs + soxr resampling: round trips for every codec at every pipeline rate."""

from __future__ import annotations

import numpy as np
import pytest

from sip_bridge.media.codecs import AudioCodec, PcmResampler

CODECS = ["PCMU", "PCMA", "G722", "opus"]
RATES = [8000, 16000, 48000]


def tone(rate: int, seconds: float, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("rate", RATES)
def test_round_trip_through_codec_and_resamplers(name: str, rate: int) -> None:
    codec = AudioCodec(name)
    to_codec = PcmResampler(rate, codec.audio_rate)
    from_codec = PcmResampler(codec.audio_rate, rate)
    source = tone(rate, 0.6)
    frame = rate // 50
    pending = b""
    decoded = []
    for start in range(0, source.size, frame):
        pending += to_codec.process(source[start : start + frame].tobytes())
        while len(pending) >= codec.frame_bytes:
            payload = codec.encode_frame(pending[: codec.frame_bytes])
            pending = pending[codec.frame_bytes :]
            assert payload
            decoded.append(from_codec.process(codec.decode(payload)))
    out = np.frombuffer(b"".join(decoded), dtype=np.int16).astype(np.float64)
    assert out.size > source.size * 0.9
    steady = out[out.size // 3 :]  # past codec/resampler start-up
    rms = np.sqrt(np.mean(steady**2))
    assert 0.7 * 8000 / np.sqrt(2) < rms < 1.3 * 8000 / np.sqrt(2)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(steady.size)))
    peak_hz = np.argmax(spectrum) * rate / steady.size
    assert abs(peak_hz - 440) < 15


def test_payload_sizes_and_rtp_clock() -> None:
    assert len(AudioCodec("PCMU").encode_frame(tone(8000, 0.02).tobytes())) == 160
    g722 = AudioCodec("G722")
    assert len(g722.encode_frame(tone(16000, 0.02).tobytes())) == 160
    assert g722.rtp_ticks(320) == 160  # 16 kHz audio, 8 kHz RTP clock (RFC 3551)
    assert AudioCodec("opus").rtp_ticks(960) == 960
    silence = AudioCodec("PCMA").encode_frame(bytes(320))
    assert silence == b"\xd5" * 160
    with pytest.raises(ValueError):
        AudioCodec("PCMU").encode_frame(bytes(100))
    with pytest.raises(ValueError):
        AudioCodec("G729")


@pytest.mark.parametrize(("source", "target"), [(8000, 16000), (16000, 8000), (48000, 16000), (16000, 24000)])
def test_low_latency_resampler_emits_output_for_every_20ms_packet(source: int, target: int) -> None:
    resampler = PcmResampler(source, target)
    lengths = [len(resampler.process(tone(source, 0.02).tobytes())) // 2 for _ in range(50)]
    assert all(length > 0 for length in lengths)
    assert abs(sum(lengths) - target) <= target // 50  # 1 s in, ~1 s out


def test_decoding_sipp_g711a_capture_gives_speech_level_audio() -> None:
    from media_pcap import SIPP_PCAPS, read_udp

    from sip_bridge.media.rtp import RtpReceiver

    datagrams = read_udp(SIPP_PCAPS / "g711a.pcap")
    receiver = RtpReceiver(payload_types={8})
    receiver.expect(datagrams[0].source)  # the SDP address
    codec = AudioCodec("PCMA")
    pcm = b""
    for datagram in datagrams:
        packet = receiver.receive(datagram.payload, datagram.source)
        assert packet is not None
        pcm += codec.decode(packet.payload)
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    assert samples.size == receiver.stats.packets_received * 240  # 30 ms packets
    assert np.sqrt(np.mean(samples**2)) > 300 and np.abs(samples).max() > 5000


@pytest.mark.parametrize(
    ("name", "largest"), [("PCMU", 1920), ("PCMA", 1920), ("G722", 1920), ("opus", 1275)]
)
def test_payload_size_limits_per_codec(name: str, largest: int) -> None:
    codec = AudioCodec(name)
    assert codec.fits(bytes(largest)) and not codec.fits(bytes(largest + 1))
    assert not codec.fits(bytes(65000))


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_lookup_gives_what_the_ffmpeg_codec_gives(name: str) -> None:
    """The table path of AudioCodec against aiortc's codec itself, on speech-like, loud, clipped and silent PCM."""
    from fractions import Fraction

    import av
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    parameters = RTCRtpCodecParameters(mimeType=f"audio/{name}", clockRate=8000, channels=1, payloadType=0)
    encoder, decoder = get_encoder(parameters), get_decoder(parameters)
    codec = AudioCodec(name)
    rng = np.random.default_rng(7)
    frames = [
        (rng.normal(0, 3000, 160)).astype(np.int16),
        rng.integers(-32768, 32767, 160, dtype=np.int16, endpoint=True),
        np.full(160, -32768, dtype=np.int16),
        np.zeros(160, dtype=np.int16),
    ]
    for index, samples in enumerate(frames):
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, index * 160, Fraction(1, 8000)
        payloads, _ = encoder.encode(frame)
        reference = b"".join(payloads)
        assert codec.encode_frame(samples.tobytes()) == reference
        decoded = decoder.decode(JitterFrame(data=reference, timestamp=index * 160))
        assert codec.decode(reference) == b"".join(f.to_ndarray().astype(np.int16).tobytes() for f in decoded)
    every_code = bytes(range(256))
    assert len(codec.decode(every_code)) == 512
