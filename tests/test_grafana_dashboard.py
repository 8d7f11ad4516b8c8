"""The shipped Grafana dashboard (deploy/grafana/voicebot-dashboard.json) cannot drift from the code: every PromQL
expression in it may name only series that a started app's /metrics exposes, only labels those series carry (plus
the ``instance`` and ``job`` labels Prometheus adds when it scrapes), and only PromQL functions that exist."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from voicebot.calls import CallRegistry
from voicebot.metrics import METRICS
from voicebot.settings import Settings
from voicebot.web.app import create_app

DASHBOARD = Path(__file__).parents[1] / "deploy" / "grafana" / "voicebot-dashboard.json"
# Added by Prometheus at scrape time, not by the exposition.
SCRAPE_LABELS = {"instance", "job"}
# Grafana's own variables, replaced before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval", "$__interval", "$__range", "$instance"}
PROMQL_FUNCTIONS = {
    "abs", "avg_over_time", "ceil", "clamp", "clamp_max", "clamp_min", "count_over_time", "delta", "deriv",
    "floor", "histogram_quantile", "idelta", "increase", "irate", "label_replace", "last_over_time",
    "max_over_time", "min_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "sum_over_time",
    "time", "vector",
}  # fmt: skip
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every query, rows' nested panels included, and of the query variables."""
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


class Selectors:
    """What one PromQL expression names: series, the labels it matches or groups by, functions."""

    def __init__(self, expr: str) -> None:
        self.labels: set[str] = set()
        self.series: set[str] = set()
        self.functions: set[str] = set()
        text = expr
        for variable in GRAFANA_VARIABLES:
            text = text.replace(variable, "X")
        assert text.count("(") == text.count(")") and text.count("{") == text.count("}"), expr
        assert "$" not in text, f"unknown Grafana variable in {expr!r}"
        text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # label values
        for matchers in re.findall(r"\{([^}]*)\}", text):
            self.labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
        text = re.sub(r"\{[^}]*\}", " ", text)
        for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
            self.labels.update(name.strip() for name in grouping.split(",") if name.strip())
        text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
        text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
        for name, call in re.findall(r"([a-zA-Z_:][\w:]*)\s*(\()?", text):
            if call:
                self.functions.add(name)
            elif name not in KEYWORDS and not re.fullmatch(r"\d\w*", name):
                self.series.add(name)
        # label_values(metric, label) of a template variable
        variable = re.fullmatch(r"\s*label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)\s*", expr)
        if variable:
            self.functions.discard("label_values")
            self.series = {variable.group(1)}
            self.labels = {variable.group(2)}


def _exposition_series_and_labels(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Sample names the exposition can show (a histogram's _bucket/_sum/_count, counters and gauges as named) and,
    per sample name, the labels its samples carry."""
    names: set[str] = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        # The classic text format names a counter's family after its sample (``…_total``).
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names.update(family + suffix for suffix in suffixes)
    labels: dict[str, set[str]] = {}
    for name, label_text in re.findall(r"^([a-zA-Z_:][\w:]*)\{([^}]*)\}", text, flags=re.MULTILINE):
        labels.setdefault(name, set()).update(re.findall(r'(\w+)="', label_text))
    return names, labels


@pytest.fixture(scope="module")
def exposition() -> str:
    """/metrics of an app built the way `voicebot serve` builds it, after one value of each labelled family
    went through the call path's own reporting methods (a labelled family shows its labels only once used)."""
    METRICS.call_ended("sip", "goodbye")
    METRICS.handoff("handoff_key")
    METRICS.turn_timings({"asr": 300.0, "voice_to_voice": 1500.0})
    METRICS.asr_decoded(2.0, 200.0)
    METRICS.answer_given("llm", "verified", {"llm_first_token": 120.0})
    METRICS.queue_wait("connected", 12.0)
    METRICS.error("voicebot.telephony")
    registry = CallRegistry(max_calls=2)
    METRICS.watch(active=registry.active_by_kind, max=lambda: registry.max_calls)

    async def scrape() -> str:
        app = create_app(Settings(), None, registry=registry)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text

    return asyncio.run(scrape())


def test_every_dashboard_query_names_only_series_and_labels_the_app_exposes(exposition: str) -> None:
    series, labels = _exposition_series_and_labels(exposition)
    checked = 0
    for title, expr in _expressions(_dashboard()):
        named = Selectors(expr)
        assert named.series, f"{title}: no series in {expr!r}"
        unknown = named.series - series
        assert not unknown, f"{title}: {sorted(unknown)} not in /metrics"
        assert named.functions <= PROMQL_FUNCTIONS | AGGREGATIONS, f"{title}: {named.functions}"
        carried = set().union(*(labels.get(name, set()) for name in named.series))
        known_labels = carried | SCRAPE_LABELS | {"le"}
        assert named.labels <= known_labels, f"{title}: labels {sorted(named.labels - known_labels)} unknown"
        checked += 1
    assert checked >= 20


def test_every_family_the_app_exposes_has_a_panel(exposition: str) -> None:
    families = {
        family
        for family in re.findall(r"^# TYPE (voicebot_\w+?)(?:_total)? ", exposition, flags=re.MULTILINE)
        if not family.endswith("_created")  # when a series began: not worth a panel
    }
    used = set()
    for _title, expr in _expressions(_dashboard()):
        for name in Selectors(expr).series:
            used.add(re.sub(r"_(bucket|sum|count|total)$", "", name))
    assert families - used == set(), "families without a panel"


def test_the_checker_catches_a_misspelt_series_and_label(exposition: str) -> None:
    """The check above can fail: a typo in a series or a label name is found."""
    series, labels = _exposition_series_and_labels(exposition)
    wrong_series = Selectors('sum(rate(voicebot_stage_second_bucket{stage="asr"}[5m]))')
    assert wrong_series.series - series == {"voicebot_stage_second_bucket"}
    wrong_label = Selectors("sum by (stages) (rate(voicebot_stage_seconds_count[5m]))")
    assert wrong_label.labels - labels["voicebot_stage_seconds_count"] == {"stages"}


def test_the_dashboard_is_a_grafana_model_on_a_prometheus_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            expected_source = {"type": "prometheus", "uid": f"${{{source['name']}}}"}
            assert panel["datasource"] == expected_source, panel["title"]
            assert panel["targets"] and all(t["refId"] for t in panel["targets"]), panel["title"]
