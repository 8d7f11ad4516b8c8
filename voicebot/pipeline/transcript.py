"""The call record: caller and bot turns with timestamps, ASR confidence, sources, action and stage timings.

It is handed to its record store (:mod:`voicebot.records`) after every change — the database (SQLite by default,
PostgreSQL when ``database_url`` is set), each new or changed turn and event written at once; JSON files in
``calls_dir`` for a simulated call — so the transcript so far survives a crash, an error or a hang-up in the middle
of an answer. Processors append to it directly; it
holds no pipecat state. Times are seconds since the call started (wall clock).

``call_id`` is minted here (:func:`voicebot.records.new_call_id`); the id the channel knows the call by (a SIP
Call-ID as the peer sent it, a browser session id) is only stored, escaped, as ``sip_call_id``/``session_id``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from knowledge.types import Answer, Turn
from voicebot.metrics import METRICS
from voicebot.pipeline.frames import CallerQuestionFrame
from voicebot.privacy.redact import Redactor, redact_record
from voicebot.records import CallRecordStore, JsonFileStore, new_call_id, printable, writer_process

# The voice-to-voice path, in order; "rest" (our own overhead) is what the stages do not explain.
STAGES = ("endpointing", "asr", "retrieval", "answer_first_sentence", "tts_first_chunk")
# Where a call came in; the record field that keeps the channel's own id for the call.
CHANNEL_ID_FIELDS = {"sip": "sip_call_id", "webrtc": "session_id", "simulation": "session_id"}


@dataclass
class TranscriptTurn:
    role: str  # "caller" | "bot"
    kind: str  # caller: "question" | "dtmf"; bot: "greeting" | "answer" | "repeat" | "silence_prompt" | ...
    text: str
    start_s: float
    end_s: float | None = None
    language: str = "de"
    asr: list[dict[str, Any]] = field(default_factory=list)
    asr_confidence: float | None = None
    sources: list[str] = field(default_factory=list)
    action: str | None = None
    confidence: float | None = None
    reason: str = ""
    interruptible: bool = True
    interrupted: bool = False
    played: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    # bookkeeping for latency (absolute time.time(), not exported)
    _marks: dict[str, float] = field(default_factory=dict, repr=False)


class CallTranscript:
    """Turns of one call, persisted after every change by its record store."""

    def __init__(
        self,
        calls_dir: Path | None = None,
        *,
        channel: str,
        channel_call_id: str | None = None,
        store: CallRecordStore | None = None,
        call_clock: Callable[[], float] | None = None,
        speed: float = 1.0,
        redactor: Redactor | None = None,
    ) -> None:
        """``channel`` is one of :data:`CHANNEL_ID_FIELDS`; ``channel_call_id`` the channel's own id for the call
        (kept as a plain field, never as a key). ``store`` keeps the record (the process-wide one from
        ``CallResources``); without it, JSON files in ``calls_dir``; with neither, nothing is persisted.
        ``call_clock`` gives seconds since the call started (a simulation passes its clock, which may run
        ``speed`` times faster than the wall clock); by default the wall clock since construction.
        ``redactor``: what is taken out of the record before the store sees it (privacy.redact; every category
        unless the caller passes the town's choice); the live turns keep what was said for the dialogue."""
        if channel not in CHANNEL_ID_FIELDS:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNEL_ID_FIELDS)}")
        self.started_at = time.time()
        self.call_id = new_call_id(self.started_at)
        self.channel = channel
        self.channel_ids = (
            {} if channel_call_id is None else {CHANNEL_ID_FIELDS[channel]: printable(channel_call_id)}
        )
        self._process = writer_process()
        if store is None and calls_dir is not None:
            store = JsonFileStore(calls_dir)
        self.store = store
        self.path = store.path_for(self.call_id) if isinstance(store, JsonFileStore) else None
        self._call_clock = call_clock
        self._redactor = Redactor() if redactor is None else redactor
        self._speed = speed
        self.turns: list[TranscriptTurn] = []
        self.events: list[dict[str, Any]] = []
        self.ended_reason: str | None = None
        self.ended_at: float | None = None
        self.extra: dict[str, Any] = {}
        # The number the caller rang from (SIP From user part, set by the door; "" for a browser call): offered
        # for a call-back, never saved with the record unless the caller confirms it as their call-back number.
        self.caller_number = ""
        # The AI disclosure (EU AI Act Art. 50): the bot turn GreetingSpeaker said it in, and when (call time) its audio began.
        self._disclosure: int | None = None
        self._disclosure_audio_start: float | None = None
        self._lock = threading.Lock()
        self._save()

    # --- writing -------------------------------------------------------------------------------------------

    def redacted(self, text: str) -> str:
        """``text`` as this call's record would store it (privacy.redact): for the caller's words kept elsewhere,
        such as the summary of a queue entry."""
        return self._redactor.said(text)

    def rel(self, wall_time: float | None = None) -> float:
        """Call time (s) of ``wall_time`` (a ``time.time()`` value; now if None)."""
        now = time.time()
        call_now = self._call_clock() if self._call_clock else now - self.started_at
        ago = (now - wall_time) if wall_time is not None else 0.0
        return round(call_now - ago * self._speed, 3)

    def add_caller_question(self, frame: CallerQuestionFrame) -> TranscriptTurn:
        asr = [asdict(result) for result in frame.asr]
        turn = TranscriptTurn(
            role="caller",
            kind="question",
            text=frame.text,
            start_s=self.rel(frame.speech_start_time or None),
            end_s=self.rel(frame.speech_end_time or None),
            language=frame.language,
            asr=asr,
            asr_confidence=frame.confidence,
        )
        for result in frame.asr:
            if not result.failed:
                METRICS.asr_decoded(result.audio_s, result.asr_ms)
        asr_ms = sum(result.asr_ms for result in frame.asr[-1:])
        if frame.speech_end_time and frame.turn_end_time:
            turn_wait_ms = (frame.turn_end_time - frame.speech_end_time) * 1000
            turn.timings_ms = {
                "asr": round(asr_ms, 1),
                "endpointing": round(max(0.0, turn_wait_ms - asr_ms), 1),
            }
        turn._marks = {"speech_end": frame.speech_end_time, "turn_end": frame.turn_end_time}
        return self._append(turn)

    def add_caller_dtmf(self, digit: str) -> TranscriptTurn:
        return self._append(TranscriptTurn(role="caller", kind="dtmf", text=digit, start_s=self.rel()))

    def add_bot_turn(
        self, kind: str, text: str, language: str = "de", *, interruptible: bool = True
    ) -> TranscriptTurn:
        turn = TranscriptTurn(
            role="bot",
            kind=kind,
            text=text,
            start_s=self.rel(),
            language=language,
            interruptible=interruptible,
        )
        turn._marks = {"queued": time.time()}
        return self._append(turn)

    def append_bot_text(self, turn: TranscriptTurn, sentence: str) -> None:
        with self._lock:
            turn.text = f"{turn.text} {sentence}".strip()
        self._save()

    def finish_answer(self, turn: TranscriptTurn, answer: Answer, timings_ms: dict[str, float]) -> None:
        with self._lock:
            if not turn.text:
                turn.text = answer.text
            turn.sources = list(answer.sources)
            turn.action = str(answer.action)
            turn.confidence = answer.confidence
            turn.reason = answer.reason
            turn.language = answer.language
            turn.timings_ms.update({k: round(v, 1) for k, v in timings_ms.items()})
        METRICS.answer_given(answer.mode, answer.reason, answer.timings_ms)
        self._save()

    def note_tts_first_chunk(self, text: str, first_chunk_ms: float) -> None:
        """Attach the TTS first-chunk time to the bot turn whose first sentence this was."""
        with self._lock:
            for turn in reversed(self.turns):
                if turn.role == "bot":
                    if "tts_first_chunk" not in turn.timings_ms and turn.text.startswith(text.strip()[:20]):
                        turn.timings_ms["tts_first_chunk"] = round(first_chunk_ms, 1)
                    break

    def mark_disclosure(self, turn: TranscriptTurn) -> None:
        """``turn`` says the AI disclosure: the record gets an ``ai_disclosure`` event when it has been played
        in full (``played=True``) or when the call ends before that (``played=False``), with the seconds heard."""
        with self._lock:
            self._disclosure = self.turns.index(turn)

    def _note_disclosure(self, played: bool) -> None:
        """Record the disclosure's outcome once (under the lock)."""
        if self._disclosure is None:
            return
        index, self._disclosure = self._disclosure, None
        start = self._disclosure_audio_start
        heard = 0.0 if start is None else max(0.0, self.rel() - start)
        self.events.append(
            {
                "t": self.rel(),
                "kind": "ai_disclosure",
                "played": played,
                "turn": index,
                "seconds": round(heard, 2),
            }
        )

    def bot_audio_started(self, wall_time: float) -> None:
        """First bot audio of the newest bot turn reached the output: close the latency account."""
        with self._lock:
            if self._disclosure is not None and self._disclosure_audio_start is None:
                self._disclosure_audio_start = self.rel(wall_time)  # call time
            turn = self._last_bot_turn()
            if turn is None or "first_audio" in turn._marks:
                return
            turn._marks["first_audio"] = wall_time
            caller = self._caller_before(turn)
            if caller is not None and caller._marks.get("speech_end"):
                total = (wall_time - caller._marks["speech_end"]) * 1000
                stages = {**caller.timings_ms, **turn.timings_ms}
                known = sum(stages.get(k, 0.0) for k in STAGES)
                turn.timings_ms["voice_to_voice"] = round(total, 1)
                turn.timings_ms["rest"] = round(total - known, 1)
                METRICS.turn_timings({**stages, **turn.timings_ms})
        self._save()

    def bot_turn_played(self, turn_id: int) -> None:
        with self._lock:
            if 0 <= turn_id < len(self.turns):
                self.turns[turn_id].played = True
                self.turns[turn_id].end_s = self.rel()
                if turn_id == self._disclosure:
                    self._note_disclosure(played=True)
        self._save()

    def mark_interrupted(self) -> bool:
        """The caller barged in: every bot turn not yet played in full (and interruptible) is interrupted."""
        with self._lock:
            pending = [
                t
                for t in self.turns
                if t.role == "bot" and not t.played and not t.interrupted and t.interruptible
            ]
            for turn in pending:
                turn.interrupted = True
                turn.end_s = self.rel()
        if pending:
            self._save()
        return bool(pending)

    def add_event(self, kind: str, **data: Any) -> None:
        with self._lock:
            self.events.append({"t": self.rel(), "kind": kind, **data})
        self._save()

    def end(self, reason: str) -> None:
        with self._lock:
            if self.ended_reason is None:
                self._note_disclosure(played=False)
                self.ended_reason = reason
                self.ended_at = time.time()
                METRICS.call_ended(self.channel, reason)
        self._save()

    # --- reading -------------------------------------------------------------------------------------------

    def history(self, max_turns: int = 6) -> list[Turn]:
        """Recent caller questions and bot answers, for the answer engine."""
        relevant = [t for t in self.turns if t.kind in ("question", "answer", "clarify")]
        return [Turn(role=t.role, text=t.text) for t in relevant[-max_turns:]]

    def last_answer_text(self) -> str | None:
        for turn in reversed(self.turns):
            if turn.role == "bot" and turn.kind == "answer" and turn.text:
                return turn.text
        return None

    def index_of(self, turn: TranscriptTurn) -> int:
        return self.turns.index(turn)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            turns = []
            for turn in self.turns:
                data = asdict(turn)
                data.pop("_marks", None)
                turns.append(data)
            return {
                "call_id": self.call_id,
                "channel": self.channel,
                **self.channel_ids,
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "ended_reason": self.ended_reason,
                "process": self._process,
                "turns": turns,
                "events": list(self.events),
                **self.extra,
            }

    # --- internals -----------------------------------------------------------------------------------------

    def _append(self, turn: TranscriptTurn) -> TranscriptTurn:
        with self._lock:
            self.turns.append(turn)
        self._save()
        return turn

    def _last_bot_turn(self) -> TranscriptTurn | None:
        return next((t for t in reversed(self.turns) if t.role == "bot"), None)

    def _caller_before(self, bot_turn: TranscriptTurn) -> TranscriptTurn | None:
        index = self.turns.index(bot_turn)
        for turn in reversed(self.turns[:index]):
            if turn.role == "caller" and turn.kind == "question":
                return turn
        return None

    def _save(self) -> None:
        if self.store is not None:
            self.store.save(redact_record(self.to_dict(), self._redactor))
