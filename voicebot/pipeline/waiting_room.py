"""The caller's time in the bot's own queue (staff groups with ``mode = "queue"``, decision 0800).

The telephony layer (:mod:`voicebot.telephony.queue`) holds the queue entry, reads the caller's position from the
database and sends a :class:`~voicebot.pipeline.frames.TransferStatusFrame` with phase ``queued`` (position and
estimated wait) at once and then every ``queue.announce_interval_s``. :class:`WaitingRoom`:

- says each one in German ("Sie sind an zweiter Stelle. Die Wartezeit beträgt etwa drei Minuten.") as a bot turn
  of kind ``queue_position`` (not interruptible: a "Hallo?" must not swallow it), recorded with the event
  ``queue_announcement``;
- between announcements plays hold audio (:mod:`voicebot.pipeline.hold_audio`: the generated chime or the
  configured file), paced to real time like ringback, and pauses it while the bot speaks;
- notes questions asked meanwhile (``question_during_wait``) without answering them, as ``TransferHold`` does;
- stops at any other phase: ``started`` (staff is rung: ringback), ``failed`` (call-back offer), ``completed``.

The wording is in :func:`announcement` (ordinals and minutes as German words, so TTS never reads digits).
"""

from __future__ import annotations

import asyncio
import math
import time

from pipecat.frames.frames import Frame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.frames import CallerQuestionFrame, TransferStatusFrame
from voicebot.pipeline.speech import say
from voicebot.pipeline.transcript import CallTranscript, TranscriptTurn

CHUNK_S = 0.2  # hold audio handed on per step, at most LEAD_S ahead of real time (a pause is heard at once)
LEAD_S = 0.4
MAX_SPEECH_WAIT_S = 30.0  # hold audio resumes at the latest this long after an announcement started

_ONES = ["", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
_TEENS = {
    10: "zehn",
    11: "elf",
    12: "zwölf",
    13: "dreizehn",
    14: "vierzehn",
    15: "fünfzehn",
    16: "sechzehn",
    17: "siebzehn",
    18: "achtzehn",
    19: "neunzehn",
}
_TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
_ORDINAL_IRREGULAR = {1: "erst", 3: "dritt", 7: "siebt", 8: "acht"}


def cardinal(number: int) -> str:
    """1..99 as a German word ("eins" alone, "ein" inside: "einundzwanzig"); other numbers as digits."""
    if number == 1:
        return "eins"
    if not 1 <= number <= 99:
        return str(number)
    if number < 10:
        return _ONES[number]
    if number in _TEENS:
        return _TEENS[number]
    tens, ones = divmod(number, 10)
    return f"{_ONES[ones]}und{_TENS[tens]}" if ones else _TENS[tens]


def ordinal_stem(number: int) -> str:
    """The ordinal's stem, 1..99: "erst", "zweit", "dritt", "siebt", "zwanzigst", "einundzwanzigst"."""
    if number in _ORDINAL_IRREGULAR:
        return _ORDINAL_IRREGULAR[number]
    if 1 <= number <= 19:
        return f"{cardinal(number)}t"
    return f"{cardinal(number)}st"


def position_phrase(position: int) -> str:
    """ "Sie sind an zweiter Stelle." (dative after "an", no article: strong ending -er)."""
    if 1 <= position <= 99:
        return f"Sie sind an {ordinal_stem(position)}er Stelle."
    return "Vor Ihnen warten noch viele Anrufende."


def minutes_phrase(wait_s: float) -> str:
    """ "Die Wartezeit beträgt etwa drei Minuten." (rounded up to whole minutes; at least one)."""
    minutes = max(1, math.ceil(wait_s / 60.0 - 1e-9))
    if minutes == 1:
        return "Die Wartezeit beträgt etwa eine Minute."
    if minutes <= 99:
        return f"Die Wartezeit beträgt etwa {cardinal(minutes)} Minuten."
    return "Die Wartezeit beträgt leider mehr als eine Stunde."


def announcement(position: int, wait_s: float, *, first: bool = False) -> str:
    """What a waiting caller hears: position, estimated wait, and the first time a word about the hold."""
    text = f"{position_phrase(position)} {minutes_phrase(wait_s)}"
    return f"{text} Bitte bleiben Sie in der Leitung." if first else text


class WaitingRoom(FrameProcessor):
    """Announcements and hold audio while the caller waits in the bot's queue; questions noted, not answered."""

    def __init__(self, *, transcript: CallTranscript, hold_audio: tuple[bytes, int]) -> None:
        super().__init__()
        self._transcript = transcript
        self._hold, self._hold_rate = hold_audio
        self._task: asyncio.Task[None] | None = None
        self._speaking: TranscriptTurn | None = None  # the announcement being said: hold audio pauses for it
        self._speaking_since = 0.0
        self._announced = 0
        self._hold_s = 0.0
        self.active = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame):
            await self.push_frame(frame, direction)
            if frame.phase == "queued":
                if not self.active:
                    self.active = True
                    self._task = self.create_task(self._play_hold(), name="hold-audio")
                await self._announce(frame.position, frame.wait_s)
            elif self.active:
                self.active = False
                await self._stop()
                # How much hold audio went out while the caller waited (the record's proof of it).
                self._transcript.add_event("hold_audio", seconds=round(self._hold_s, 1))
            return
        if self.active and isinstance(frame, CallerQuestionFrame):
            self._transcript.add_event("question_during_wait", text=frame.text[:200])
            return
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._stop()
        await super().cleanup()

    async def _announce(self, position: int, wait_s: float) -> None:
        text = announcement(position, wait_s, first=self._announced == 0)
        self._announced += 1
        self._speaking_since = time.monotonic()
        self._transcript.add_event(
            "queue_announcement", position=position, wait_min=max(1, math.ceil(wait_s / 60.0 - 1e-9))
        )
        self._speaking = await say(self, self._transcript, "queue_position", text, interruptible=False)

    def _quiet_for_speech(self) -> bool:
        """Whether the hold audio waits: an announcement is on its way and not yet played (bounded)."""
        turn = self._speaking
        if turn is None:
            return False
        if turn.played or turn.interrupted or time.monotonic() - self._speaking_since > MAX_SPEECH_WAIT_S:
            self._speaking = None
            return False
        return True

    async def _stop(self) -> None:
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            await self.cancel_task(self._task)
        self._task = None

    async def _play_hold(self) -> None:
        """Hand on the hold loop in small chunks, paced to real time; silent while the bot speaks."""
        rate = self._hold_rate
        chunk = int(CHUNK_S * rate) * 2
        loop = self._hold
        offset = 0
        self._hold_s = 0.0
        started = time.monotonic()
        sent_s = 0.0
        while True:
            if self._quiet_for_speech():
                await asyncio.sleep(0.1)
                started, sent_s = time.monotonic(), 0.0  # pacing starts afresh after the speech
                continue
            ahead = sent_s - (time.monotonic() - started)
            if ahead > LEAD_S:
                await asyncio.sleep(ahead - LEAD_S)
                continue
            audio = loop[offset : offset + chunk]
            if len(audio) < chunk:  # wrap around the loop's end
                audio += loop[: chunk - len(audio)]
            offset = (offset + chunk) % len(loop)
            await self.push_frame(OutputAudioRawFrame(audio=audio, sample_rate=rate, num_channels=1))
            sent_s += CHUNK_S
            self._hold_s += CHUNK_S
