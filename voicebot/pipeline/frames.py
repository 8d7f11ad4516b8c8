"""Frames our processors exchange on top of pipecat's own.

``CallerQuestionFrame`` carries one finished caller turn (text + ASR confidence) from turn detection to the call
script and the answer processor. ``BotAnswerFrame`` reports what was answered (sources, action, timings) for the
transcript. ``HandoffRequestFrame`` is what the SIP glue acts on: it travels behind the bot's last audio, so it
reaches the end of the pipeline only after the caller has heard the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import ControlFrame, DataFrame, SystemFrame

from knowledge.types import Answer, AsrSignals


@dataclass
class AsrResult:
    """What the ASR said about one caller utterance (one VAD segment)."""

    text: str
    language: str
    avg_logprob: float  # mean over segments, weighted by duration; closer to 0 = more certain
    no_speech_prob: float  # max over segments
    audio_s: float
    asr_ms: float
    language_probability: float | None = None
    failed: bool = False  # the ASR raised; text is empty
    speech_start_time: float = 0.0  # time.time() the caller started this segment (VAD start minus its window)
    speech_end_time: float = 0.0  # time.time() the caller stopped (VAD stop minus its window)

    @property
    def confidence(self) -> float:
        """0..1 for the answer engine: exp(avg log-prob) damped by the no-speech probability."""
        import math

        return max(0.0, min(1.0, math.exp(self.avg_logprob) * (1.0 - self.no_speech_prob)))


@dataclass
class CallerQuestionFrame(DataFrame):
    """A finished caller turn: everything the caller said between turn start and end of turn."""

    text: str
    language: str
    asr: list[AsrResult] = field(default_factory=list)
    speech_start_time: float = 0.0  # time.time() of VAD speech start (minus VAD start window)
    speech_end_time: float = 0.0  # time.time() when the caller actually stopped speaking
    turn_end_time: float = 0.0  # time.time() when end of turn was decided

    @property
    def confidence(self) -> float | None:
        if not self.asr:
            return None
        return min(result.confidence for result in self.asr)

    @property
    def asr_signals(self) -> AsrSignals | None:
        """The weakest segment's figures, for the answer engine's "may I have misheard?" check."""
        if not self.asr:
            return None
        return AsrSignals(
            min_avg_logprob=min(result.avg_logprob for result in self.asr),
            max_no_speech_prob=max(result.no_speech_prob for result in self.asr),
        )


@dataclass
class BotAnswerFrame(DataFrame):
    """The final answer to a question, after its sentences were handed to TTS."""

    question: str
    answer: Answer
    first_sentence_ms: float | None = None  # question handed to the engine -> first sentence out


@dataclass
class HandoffRequestFrame(ControlFrame):
    """Ask the telephony layer to transfer the call (action handoff/emergency/redirect), after the bot spoke.

    ``reason`` is the hand-off policy's reason (:mod:`voicebot.handoff_policy`: ``handoff_key``, ``caller_asked``,
    ``low_confidence``, …); ``kind`` is ``handoff``, ``emergency`` or ``redirect`` (a browser call without transfer
    shows only a ``handoff`` as one); ``summary`` is a one-line note for the staff member who takes the call;
    ``group`` and ``staff_uri`` are where the topic routes it ("" = ``sip.staff_uri``).
    """

    reason: str
    summary: str
    sources: list[str] = field(default_factory=list)
    kind: str = "handoff"
    group: str = ""
    staff_uri: str = ""
    # Not interruptible: a caller who talks over the answer before it must not cancel the hand-off they asked for.
    interruptible: bool = field(default=False, init=False)


@dataclass
class CallEndingFrame(ControlFrame):
    """The script decided to end the call (goodbye, silence, max_duration); travels behind the last words, before
    EndFrame. Not interruptible: a caller who talks over the closing words must not keep the call open."""

    reason: str
    interruptible: bool = field(default=False, init=False)


@dataclass
class SpeechLanguageFrame(DataFrame):
    """The language of the sentences that follow; the TTS picks its voice by it."""

    language: str


@dataclass
class BotTurnEndFrame(DataFrame):
    """Marks the end of one bot turn's audio; reaching the end of the pipeline means it was played in full."""

    turn_index: int


@dataclass
class TransferStatusFrame(SystemFrame):
    """From the telephony layer: where a hand-off of this call stands, so the script changes its behaviour.

    ``phase`` is ``started`` (no silence prompts or goodbyes, questions wait, the caller hears ringback),
    ``queued`` (the caller waits in the bot's own queue: same, but hold audio and an announcement of ``position``
    and the estimated ``wait_s``; each ``queued`` frame is one announcement), ``failed`` (the caller is told and
    offered a call-back; ``reason`` says why, e.g. "nobody available", "max wait"; ``caller_number`` is the From
    header's number, kept as data in the record if the caller takes the offer) or ``completed`` (staff has the
    caller). A system frame: it must not wait behind queued speech, and an interruption must not drop it.
    """

    phase: str
    caller_number: str = ""
    reason: str = ""
    position: int = 0  # queued: the caller's place in the queue (1 = next)
    wait_s: float = 0.0  # queued: the estimated wait

    @property
    def in_progress(self) -> bool:
        """The caller is on the way to staff (ringing or queued): no silence prompt, goodbye or time-limit cut."""
        return self.phase in ("started", "queued")


@dataclass
class BotSentenceFrame(DataFrame):
    """A sentence the bot is about to say: the TTS puts it in front of the sentence's audio, so it leaves the
    output transport when the caller starts hearing that sentence (live captions; pipecat's own ``TTSTextFrame``
    comes only after the audio). Dropped with the audio when the caller barges in before it is played."""

    text: str
