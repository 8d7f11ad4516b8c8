"""A simulated network of media sessions on a manual clock: no sockets, no sleeping, exact and fast.

Each :class:`Leg` is a :class:`MediaSession` at an address, driven as its asyncio endpoint drives it: started
when "opened", advanced at its own pacing deadlines, its datagrams delivered at once, its heard audio and events
collected, and its bot audio queued as fast as its backpressure allows. A bare address (a far end the test plays
by hand, packet by packet) only records what arrives there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sip_bridge.media import (
    LocalSdpSession,
    MediaSession,
    NegotiatedMedia,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)
from sip_bridge.media.rtp import RtpPacket
from sip_bridge.media.session import DtmfReceived, MediaEvent, SessionState

Address = tuple[str, int]
START = 1000.0
PCM_CHUNK = 640  # 20 ms at 16 kHz, as the pipeline hands audio over


@dataclass
class Leg:
    address: Address
    session: MediaSession
    heard: list[bytes] = field(default_factory=list)  # far-end audio frames, in order
    events: list[MediaEvent] = field(default_factory=list)
    speech: bytearray = field(default_factory=bytearray)  # bot audio not yet taken by the session

    def say(self, pcm: bytes) -> None:
        """Queue bot audio the way the pipeline does: chunk by chunk, held back while the session is backlogged."""
        self.speech.extend(pcm)
        self.top_up()

    def top_up(self) -> None:
        while self.speech and not self.session.backlogged:
            chunk = bytes(self.speech[:PCM_CHUNK])
            del self.speech[:PCM_CHUNK]
            self.session.send_audio(chunk)

    @property
    def digits(self) -> list[str]:
        return [event.digit for event in self.events if isinstance(event, DtmfReceived)]


@dataclass
class Arrival:
    time: float
    source: Address
    packet: RtpPacket


class Wire:
    def __init__(self, start: float = START) -> None:
        self.now = start
        self.legs: dict[Address, Leg] = {}
        self.arrivals: dict[Address, list[Arrival]] = {}  # everything delivered to an address, legs included

    def leg(self, address: Address, **session_options: object) -> Leg:
        """A media session at ``address``, opened now (its pacing starts)."""
        session = MediaSession(**session_options)  # type: ignore[arg-type]
        session.start(self.now)
        leg = self.legs[address] = Leg(address, session)
        self.arrivals.setdefault(address, [])
        return leg

    def configure(self, leg: Leg, media: NegotiatedMedia) -> None:
        leg.session.configure(media, self.now)

    def negotiate(
        self, caller: Leg, callee: Leg, caller_codecs: list[str], callee_codecs: list[str] | None = None
    ) -> tuple[NegotiatedMedia, NegotiatedMedia]:
        """A real SDP offer/answer between two legs, applied to both now."""
        offer = build_offer(
            local_host=caller.address[0],
            local_port=caller.address[1],
            codecs=caller_codecs,
            session=LocalSdpSession(caller.address[0]),
        )
        answer, callee_media = answer_offer(
            SessionDescription.parse(offer.serialize()),
            local_host=callee.address[0],
            local_port=callee.address[1],
            allowed_codecs=callee_codecs or caller_codecs,
            session=LocalSdpSession(callee.address[0]),
        )
        caller_media = accept_answer(offer, SessionDescription.parse(answer.serialize()))
        self.configure(caller, caller_media)
        self.configure(callee, callee_media)
        return caller_media, callee_media

    def packets_at(self, address: Address) -> list[RtpPacket]:
        return [arrival.packet for arrival in self.arrivals.setdefault(address, [])]

    def send(self, source: Address, destination: Address, data: bytes) -> None:
        """A datagram from ``source`` (a far end played by the test) arrives at ``destination`` now."""
        self._deliver(source, destination, data)
        self._settle()

    def run(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, until: float) -> None:
        """Let time pass: every session runs each pacing tick at its deadline, packets arrive at once."""
        while True:
            open_legs = [leg for leg in self.legs.values() if leg.session.state is not SessionState.CLOSED]
            due = min((leg.session.next_deadline() for leg in open_legs), default=math.inf)
            if due > until:
                break
            self.now = max(self.now, due)
            for leg in open_legs:
                leg.session.advance(self.now)
            self._settle()
        self.now = max(self.now, until)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 3.0, step_s: float = 0.01) -> None:
        """Run until ``condition`` holds, bounded in simulated time."""
        deadline = self.now + timeout_s
        while not condition():
            assert self.now < deadline, "condition not reached in time"
            self.run(step_s)

    def _deliver(self, source: Address, destination: Address, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            pass
        else:
            self.arrivals.setdefault(destination, []).append(Arrival(self.now, source, packet))
        target = self.legs.get(destination)
        if target is not None:
            target.session.receive_datagram(data, source, self.now)

    def _settle(self) -> None:
        """Deliver what the sessions sent (relays may send more), then collect what they heard and refill them."""
        moved = True
        while moved:
            moved = False
            for leg in list(self.legs.values()):
                for data, destination in leg.session.datagrams_to_send():
                    moved = True
                    self._deliver(leg.address, destination, data)
        for leg in self.legs.values():
            while (frame := leg.session.read_audio()) is not None:
                leg.heard.append(frame)
            leg.events += leg.session.next_events()
            leg.top_up()


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def rms(frames: list[bytes]) -> float:
    if not frames:
        return 0.0
    samples = np.frombuffer(b"".join(frames), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


def dominant_hz(frames: list[bytes], rate: int = 16000) -> float:
    """The strongest frequency in the audio (which tone a leg hears)."""
    samples = np.frombuffer(b"".join(frames), dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])
