"""/readyz and /metrics in-process (the ready path of a real server is checked in tests/interop/test_drain.py)."""

from __future__ import annotations

import logging

import httpx
import pytest
from loguru import logger

from voicebot.benchmarks.serve_process import free_port
from voicebot.calls import CallRegistry
from voicebot.metrics import METRICS, OTHER, BoundedLabel
from voicebot.settings import Settings
from voicebot.web.app import create_app


def _client(registry: CallRegistry, settings: Settings | None = None) -> httpx.AsyncClient:
    app = create_app(settings or Settings(), None, registry=registry)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://voicebot")


async def test_readyz_names_what_is_not_ready_and_says_draining() -> None:
    registry = CallRegistry(max_calls=2)
    dead_llm = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings = Settings.model_validate({"llm": {"base_url": dead_llm}})
    async with _client(registry, settings) as client:
        first = await client.get("/readyz")
        registry.sip_listening = True
        registry.draining = True
        second = await client.get("/readyz")  # the cached checks, with SIP and draining read now
        alive = await client.get("/healthz")
    assert first.status_code == 503
    assert first.json() == {
        "status": "not ready",
        "not_ready": ["database", "llm", "models", "sip"],
        "checks": {
            "models": "not loaded",
            "database": "not configured",
            "llm": "unreachable",
            "sip": "not listening",
        },
    }
    assert second.status_code == 503 and second.json()["status"] == "draining"
    assert second.json()["not_ready"] == ["database", "draining", "llm", "models"]
    assert alive.status_code == 200 and alive.json()["draining"] is True  # alive all the same
    assert registry.try_acquire("sip") is None  # no new call while draining


async def test_metrics_in_prometheus_text_only_for_the_metrics_networks() -> None:
    registry = CallRegistry(max_calls=3)
    lease = registry.try_acquire("sip")
    assert lease is not None
    async with _client(registry) as client:  # the ASGI test client comes from 127.0.0.1
        METRICS.watch(active=registry.active_by_kind, max=lambda: registry.max_calls)
        response = await client.get("/metrics")
    lease.release()
    async with _client(
        registry, Settings.model_validate({"http": {"metrics_networks": ["10.0.0.0/8"]}})
    ) as other:
        refused = await other.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'voicebot_calls_active{channel="sip"} 1.0' in text
    assert 'voicebot_calls_active{channel="webrtc"} 0.0' in text
    assert "voicebot_calls_max 3.0" in text
    for family in ("voicebot_calls_ended", "voicebot_handoffs", "voicebot_errors"):
        assert f"# TYPE {family}_total counter" in text
    for family in ("voicebot_stage_seconds", "voicebot_asr_real_time_factor", "voicebot_queue_wait_seconds"):
        assert f"# TYPE {family} histogram" in text
    assert refused.status_code == 403 and "http.metrics_networks" in refused.text


def _value(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def test_turn_timings_outcomes_and_errors_are_counted_with_bounded_labels() -> None:
    v2v_before = _value("voicebot_stage_seconds_count", stage="voice_to_voice")
    le_before = _value("voicebot_stage_seconds_bucket", stage="voice_to_voice", le="2.0")
    METRICS.turn_timings({"asr": 310.0, "voice_to_voice": 1800.0, "caller_text": 5.0})
    assert _value("voicebot_stage_seconds_count", stage="voice_to_voice") == v2v_before + 1
    assert _value("voicebot_stage_seconds_bucket", stage="voice_to_voice", le="2.0") == le_before + 1
    assert METRICS.registry.get_sample_value("voicebot_stage_seconds_count", {"stage": "caller_text"}) is None

    drained = _value("voicebot_calls_ended_total", channel="sip", outcome="drain")
    METRICS.call_ended("sip", "drain")
    assert _value("voicebot_calls_ended_total", channel="sip", outcome="drain") == drained + 1

    METRICS.count_errors()
    errors = _value("voicebot_errors_total", component="voicebot.tests")
    sip_errors = _value("voicebot_errors_total", component="sip_bridge.sip")
    logger.patch(lambda record: record.update(name="voicebot.tests.operating")).error("counted")
    logger.warning("not counted")
    logging.getLogger("sip_bridge.sip.core").error("counted too")
    assert _value("voicebot_errors_total", component="voicebot.tests") == errors + 1
    assert _value("voicebot_errors_total", component="sip_bridge.sip") == sip_errors + 1


@pytest.mark.parametrize("limit", [3])
def test_a_label_takes_only_short_code_words_and_at_most_its_limit(limit: int) -> None:
    label = BoundedLabel(limit=limit)
    assert [label(v) for v in ("goodbye", "caller:bye_remote", "rtp-timeout")] == [
        "goodbye",
        "caller:bye_remote",
        "rtp-timeout",
    ]
    assert label("silence") == OTHER  # one too many
    assert label("goodbye") == "goodbye"  # known values stay
    assert (
        BoundedLabel()("Grüß Gott, meine Nummer ist 0151 2345678") == OTHER
    )  # never text or numbers as labels
    assert BoundedLabel()("x" * 49) == OTHER
