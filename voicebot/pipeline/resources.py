"""Models shared by every call of a process: Whisper, Silero VAD, smart-turn v3, TTS voices, the answer engine.

Loading is the expensive part (Whisper ≈ 1 s and 350 MB); a call only creates light per-call objects on top:
its own VAD and turn analyzers (they keep per-stream state) reuse the shared ONNX sessions, and its STT/TTS
services reuse the shared Whisper model and voices. ONNX Runtime and CTranslate2 sessions may be run from
several threads at once, so calls never wait for each other except inside espeak-ng (one global engine).

Usage (what ``voicebot call`` and the SIP/WebRTC server do)::

    resources = CallResources.load(settings)            # once per process
    pipeline, transcript = build_call_pipeline(settings, transport, resources, None, channel="sip")  # per call
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort
from faster_whisper import WhisperModel
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from knowledge.types import AnswerEngine
from voicebot.handoff_policy import DepartmentLookup
from voicebot.models import ModelError, ModelMissingError, get_spec, require_model
from voicebot.pipeline.asr_worker import AsrWorker
from voicebot.pipeline.tts import VoiceCatalog
from voicebot.records import CallRecordStore, build_record_store
from voicebot.settings import Settings


def resident_memory_mb() -> float:
    """Resident set size of this process (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def whisper_model_dir(settings: Settings) -> Path:
    """``asr.model``: a registered model (via :func:`require_model`), a directory name under ``models_dir``, or
    an absolute CTranslate2 directory. ModelMissingError names the command that installs it."""
    candidate = Path(settings.asr.model)
    if not candidate.is_absolute() and _registered(settings.asr.model):
        return require_model(settings, settings.asr.model)
    model_dir = candidate if candidate.is_absolute() else settings.paths.models_dir / settings.asr.model
    if not (model_dir / "model.bin").is_file():
        raise ModelMissingError(f"Whisper model missing at {model_dir}; run `voicebot models setup`")
    return model_dir


def _registered(name: str) -> bool:
    try:
        get_spec(name)
    except ModelError:
        return False
    return True


def load_whisper(settings: Settings) -> WhisperModel:
    """The Whisper model of ``settings.asr``, offline; a ModelError with a fix-it message otherwise."""
    model_dir = whisper_model_dir(settings)
    try:
        return WhisperModel(
            str(model_dir),
            device=settings.asr.device,
            compute_type=settings.asr.compute_type,
            cpu_threads=settings.asr.cpu_threads,
            local_files_only=True,
        )
    except Exception as error:
        raise ModelError(f"Whisper model at {model_dir} failed to load: {error}") from error


class _SharedSessionSileroModel(SileroOnnxModel):
    """Silero's per-stream state on top of a shared inference session."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.reset_states()
        self.sample_rates = [8000, 16000]


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """pipecat's Silero analyzer without loading the model again for every call."""

    def __init__(self, session: ort.InferenceSession, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=None, params=params)
        self._model = _SharedSessionSileroModel(session)
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """A 20 ms frame that does not complete a 32 ms Silero window is only buffered: no trip to the model's
        thread (pipecat sends every frame there; the hop costs the event loop more than buffering)."""
        if len(self._vad_buffer) + len(buffer) < self._vad_frames_num_bytes:
            self._vad_buffer += buffer
            return self._vad_state
        return await super().analyze_audio(buffer)


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """pipecat's smart-turn v3 analyzer on a shared ONNX session (the bundled smart-turn-v3.2-cpu model)."""

    def __init__(self, session: ort.InferenceSession, params: SmartTurnParams | None = None) -> None:
        BaseSmartTurn.__init__(self, params=params)
        self._log_data = False
        self._session = session


@dataclass
class CallResources:
    settings: Settings
    whisper: WhisperModel
    vad_session: ort.InferenceSession
    smart_turn_session: ort.InferenceSession
    voices: VoiceCatalog
    answer_engine: AnswerEngine
    load_ms: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    records: CallRecordStore | None = None  # where every call's transcript is kept (one store per process)
    # A cited source id → its page's department (routing a hand-off to the topic's staff group); None: unknown.
    department_of: DepartmentLookup | None = None
    # Decodes every call's utterances in batches on one thread (asr_worker.py); made on first use.
    _asr_worker: AsrWorker | None = field(default=None, repr=False)

    @property
    def asr_worker(self) -> AsrWorker:
        if self._asr_worker is None:
            self._asr_worker = AsrWorker(
                self.whisper, self.settings.asr, max_batch=self.settings.asr.max_batch
            )
        return self._asr_worker

    @classmethod
    def load(cls, settings: Settings, answer_engine: AnswerEngine | None = None) -> CallResources:
        """Load every shared model once (paths from :func:`require_model`). Raises a
        :class:`~voicebot.models.ModelError` with a fix-it message."""
        rss_before = resident_memory_mb()
        load_ms: dict[str, float] = {}

        started = time.perf_counter()
        whisper = load_whisper(settings)
        load_ms["whisper"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        vad_session = _onnx_session(require_model(settings, "silero-vad"), threads=1)
        smart_turn_session = _onnx_session(
            require_model(settings, "smart-turn-v3.2-cpu"), threads=settings.call.turn_cpu_threads
        )
        load_ms["vad_and_turn"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        voices = VoiceCatalog(settings.tts, settings.paths.models_dir, settings.asr.language)
        voices.voice_for(settings.asr.language)  # log and load the default voice now, not in the first call
        load_ms["tts"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        if answer_engine is None:
            from knowledge.engine import build_answer_engine

            answer_engine = build_answer_engine(settings.knowledge())
        load_ms["answer_engine"] = (time.perf_counter() - started) * 1000

        memory = {"before_models": round(rss_before, 1), "after_models": round(resident_memory_mb(), 1)}
        memory["shared_models"] = round(memory["after_models"] - memory["before_models"], 1)
        logger.info(f"Call resources loaded: {load_ms} ms, models ≈ {memory['shared_models']} MB RSS")
        resources = cls(
            settings, whisper, vad_session, smart_turn_session, voices, answer_engine, load_ms, memory
        )
        resources.records = build_record_store(settings)
        resources.department_of = load_department_lookup(settings.paths.index_dir)
        return resources

    def record_store_for(self, settings: Settings) -> CallRecordStore | None:
        """Where a call with ``settings`` keeps its record: the shared store, or None (JSON files in that call's
        ``calls_dir``) when its settings name another place than the process's (a simulated call of a test)."""
        if _record_place(settings) != _record_place(self.settings):
            return None
        return self.records

    def new_vad_analyzer(self) -> SharedSileroVADAnalyzer:
        call = self.settings.call
        return SharedSileroVADAnalyzer(
            self.vad_session,
            VADParams(
                confidence=call.vad_confidence,
                start_secs=call.vad_start_secs,
                stop_secs=call.vad_stop_secs,
                min_volume=call.vad_min_volume,
            ),
        )

    def new_turn_analyzer(self) -> SharedSmartTurnAnalyzer:
        return SharedSmartTurnAnalyzer(
            self.smart_turn_session, SmartTurnParams(stop_secs=self.settings.call.turn_max_silence_s)
        )

    def describe(self) -> dict[str, Any]:
        return {"load_ms": self.load_ms, "memory_mb": self.memory_mb, "voices": self.voices.loaded()}


def _onnx_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _record_place(settings: Settings) -> tuple[object, ...]:
    """What decides where records go: the database and the fallback folder."""
    return (settings.database_url, settings.paths.database_file, settings.paths.calls_dir)


def load_department_lookup(index_dir: Path) -> DepartmentLookup | None:
    """Source id → department from the search index (read once; a later re-ingest's new pages fall back to their
    document's department, or to the default staff group). None when there is no index."""
    from knowledge.index import KnowledgeIndex

    try:
        index = KnowledgeIndex.open(index_dir)
    except Exception as error:  # no index yet (a test with its own engine): hand-offs go to the default group
        logger.info(f"no department lookup for hand-off routing: {error!r}")
        return None
    by_id = {chunk.id: chunk.department for chunk in index.chunks}
    by_doc = {chunk.doc_id: chunk.department for chunk in index.chunks if chunk.department}

    def department_of(source: str) -> str:
        return by_id.get(source) or by_doc.get(source.split("#", 1)[0], "")

    return department_of
