"""Prometheus metrics of one voicebot process (issue 13, decision 0900), served at ``/metrics``.

One process-wide :data:`METRICS` with a registry of its own (not prometheus-client's global one, which would also
carry the client's process and platform collectors twice when several apps are built in one test process):

- ``voicebot_calls_active{channel}``, ``voicebot_calls_max``, ``voicebot_draining``, ``voicebot_queue_waiting``:
  read at scrape time from the live objects (:meth:`HotlineMetrics.watch`).
- ``voicebot_calls_ended_total{channel,outcome}``: the reason each call ended (``caller:bye_remote``, ``goodbye``,
  ``silence``, ``rtp-timeout``, ``drain``, …).
- ``voicebot_handoffs_total{reason}``: hand-offs asked for, by the hand-off policy's reason.
- ``voicebot_stage_seconds{stage}``: per-turn latency of the stages the call record measures (endpointing, asr,
  retrieval, answer_first_sentence, tts_first_chunk, voice_to_voice, rest).
- ``voicebot_asr_real_time_factor``: decoding time of each caller utterance divided by its length.
- ``voicebot_queue_wait_seconds{outcome}``: time a caller waited in the bot's own queue until connected,
  max wait (call-back), abandoned or failed.
- ``voicebot_llm_first_token_seconds``: per answer the LLM was asked for, the time from sending the request to the
  first streamed text (``Answer.timings_ms["llm_first_token"]`` of :mod:`knowledge.llm`).
- ``voicebot_answers_total{mode,reason}``: answers given, by engine mode and the engine's reason (``verified``,
  ``fallback_extractive:timeout``, ``curated_answer``, …): how often the LLM answered and why it did not.
- ``voicebot_errors_total{component}``: log records at ERROR or above, by the module that logged them (its first
  two dotted parts: ``voicebot.telephony``, ``pipecat.services``, ``sip_bridge.sip``).

No label carries peer input, a transcript or a number: every label value is chosen by our code, and
:class:`BoundedLabel` caps each label at :data:`MAX_LABEL_VALUES` distinct values (then ``other``) in case code ever
passes something that varies.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "METRICS", "BoundedLabel", "HotlineMetrics"]

# The classic text format every Prometheus version reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MAX_LABEL_VALUES = 40
OTHER = "other"
_LABEL_VALUE = re.compile(r"[a-z0-9_.:\-]{1,48}")
# Seconds; the voice-to-voice target is 2.5 s (p95), so the buckets are dense around it.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
# An LLM's first token: tens of ms on an idle GPU, seconds on a CPU or a saturated server (first_token_timeout_s 4).
FIRST_TOKEN_BUCKETS_S = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
QUEUE_WAIT_BUCKETS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
# The stages a call record times per turn (voicebot/pipeline/transcript.py STAGES, plus the totals).
STAGE_NAMES = (
    "endpointing",
    "asr",
    "retrieval",
    "answer_first_sentence",
    "tts_first_chunk",
    "voice_to_voice",
    "rest",
)


class BoundedLabel:
    """Label values as our code names them, at most ``limit`` distinct ones: a value that is not a short
    lowercase word (``[a-z0-9_.:-]``, ≤ 48 characters) or that would be one too many becomes ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value.strip().lower()
        if not _LABEL_VALUE.fullmatch(value):
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
            return value


class _LiveState(Collector):
    """Gauges read when Prometheus scrapes, from the callables :meth:`HotlineMetrics.watch` was given."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], Any]] = {}

    def collect(self) -> Iterable[Metric]:
        active = self._read("active", {})
        family = GaugeMetricFamily(
            "voicebot_calls_active", "Calls in progress, by channel", labels=["channel"]
        )
        for channel in ("sip", "webrtc"):
            family.add_metric([channel], float(active.get(channel, 0)))
        yield family
        yield GaugeMetricFamily(
            "voicebot_calls_max",
            "Concurrent calls this process takes (sip.max_calls)",
            value=self._read("max", 0),
        )
        yield GaugeMetricFamily(
            "voicebot_draining",
            "1 while a graceful shutdown refuses new calls",
            value=self._read("draining", 0),
        )
        yield GaugeMetricFamily(
            "voicebot_queue_waiting",
            "Callers of this process waiting in the bot's own staff queue",
            value=self._read("queue_waiting", 0),
        )

    def _read(self, name: str, default: Any) -> Any:
        source = self.sources.get(name)
        if source is None:
            return default
        try:
            return source()
        except Exception:  # a scrape must not fail because one source did
            return default


class HotlineMetrics:
    """The process's metrics; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._live = _LiveState()
        self.registry.register(self._live)
        self._outcomes = BoundedLabel()
        self._reasons = BoundedLabel()
        self._components = BoundedLabel()
        self._answer_reasons = BoundedLabel()
        self._modes = BoundedLabel(limit=4)
        self._channels = BoundedLabel(limit=4)
        self.calls_ended = Counter(
            "voicebot_calls_ended",
            "Calls ended, by channel and the reason they ended",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.handoffs = Counter(
            "voicebot_handoffs", "Hand-offs asked for, by reason", ["reason"], registry=self.registry
        )
        self.stage_seconds = Histogram(
            "voicebot_stage_seconds",
            "Latency of one turn's stages (voice_to_voice: end of the caller's speech to the bot's first audio)",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.asr_real_time_factor = Histogram(
            "voicebot_asr_real_time_factor",
            "Decoding time of one caller utterance divided by its length",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "voicebot_queue_wait_seconds",
            "Time a caller waited in the bot's own queue, by how the wait ended",
            ["outcome"],
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=self.registry,
        )
        self.llm_first_token_seconds = Histogram(
            "voicebot_llm_first_token_seconds",
            "Time from sending an answer request to the LLM to its first streamed text",
            buckets=FIRST_TOKEN_BUCKETS_S,
            registry=self.registry,
        )
        self.answers = Counter(
            "voicebot_answers",
            "Answers given, by answer mode and the engine's reason",
            ["mode", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "voicebot_errors",
            "Log records at ERROR or above, by component (the logging module's first two dotted parts)",
            ["component"],
            registry=self.registry,
        )
        self._error_sink_id: int | None = None
        self._error_handler: logging.Handler | None = None

    # --- what the call path reports -------------------------------------------------------------------------

    def call_ended(self, channel: str, reason: str) -> None:
        self.calls_ended.labels(self._channels(channel), self._outcomes(reason)).inc()

    def handoff(self, reason: str) -> None:
        self.handoffs.labels(self._reasons(reason)).inc()

    def turn_timings(self, timings_ms: Mapping[str, float]) -> None:
        """One answered turn's stage timings (milliseconds, as the call record keeps them)."""
        for stage in STAGE_NAMES:
            value = timings_ms.get(stage)
            if value is not None and value >= 0:
                self.stage_seconds.labels(stage).observe(value / 1000.0)

    def asr_decoded(self, audio_s: float, asr_ms: float) -> None:
        """One utterance decoded by the ASR (its real-time factor; nothing for empty audio)."""
        if audio_s > 0 and asr_ms >= 0:
            self.asr_real_time_factor.observe(asr_ms / 1000.0 / audio_s)

    def answer_given(self, mode: str, reason: str, engine_timings_ms: Mapping[str, float]) -> None:
        """One answer of the engine: counted by mode and reason; the LLM's first-token time when it was asked."""
        self.answers.labels(self._modes(mode or "none"), self._answer_reasons(reason or "none")).inc()
        first_token_ms = engine_timings_ms.get("llm_first_token")
        if first_token_ms is not None and first_token_ms >= 0:
            self.llm_first_token_seconds.observe(first_token_ms / 1000.0)

    def queue_wait(self, outcome: str, seconds: float) -> None:
        self.queue_wait_seconds.labels(self._outcomes(outcome)).observe(max(0.0, seconds))

    def error(self, module: str) -> None:
        component = ".".join((module or "unknown").split(".")[:2])
        self.errors.labels(self._components(component)).inc()

    # --- wiring -----------------------------------------------------------------------------------------------

    def watch(self, **sources: Callable[[], Any]) -> None:
        """Live values read at scrape time: ``active`` (channel → calls), ``max``, ``draining``,
        ``queue_waiting``."""
        self._live.sources.update(sources)

    def count_errors(self) -> None:
        """Count every ERROR (or worse) record of loguru and of the standard logging module (SIP, RTP)."""
        from loguru import logger

        if self._error_sink_id is None:
            self._error_sink_id = logger.add(
                lambda message: self.error(message.record["name"] or ""),
                level="ERROR",
                # A stdlib record that JSON logging routes through loguru is counted by the handler below.
                filter=lambda record: not record["extra"].get("from_stdlib"),
                diagnose=False,
                backtrace=False,
                format="{message}",
            )
        if self._error_handler is None:
            metrics = self

            class _Counting(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    metrics.error(record.name)

            self._error_handler = _Counting(level=logging.ERROR)
            logging.getLogger().addHandler(self._error_handler)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)


METRICS = HotlineMetrics()
