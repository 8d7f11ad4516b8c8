"""Evaluation: question-set loading, scoring rules, and the ``voicebot eval`` / ``voicebot ask`` commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from knowledge.config import KnowledgeConfig
from knowledge.engine import build_answer_engine
from knowledge.evaluation import EvalItem, EvalSetError, evaluate, load_eval_set, score_item, summarize
from knowledge.index import load_retriever
from knowledge.types import Action, Answer, Chunk

REPO_ROOT = Path(__file__).resolve().parents[2]
VOICEBOT = REPO_ROOT / ".venv" / "bin" / "voicebot"

SMALL_SET = """
- question: Was kostet ein Perso?
  expected: [personalausweis-beantragen]
  action: answer
  facts: ["37 Euro"]
- question: wo kann ich mein auto anmelden
  expected: [kfz-zulassung]
  action: redirect
  facts: [Kreis]
- question: es brennt in der küche
  action: emergency
- question: wie wird das wetter morgen
  action: out_of_scope
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {expected: [a], action: answer}", "item 1 has no 'question'"),
        ("- {question: Hallo, action: maybe}", "item 1 has action 'maybe'"),
        ("- {question: ok, expected: [a]}\n- {question: Perso, action: answer}", "item 2 (answer) needs"),
        ("- [unclosed", "not valid YAML"),
        ("{}", "non-empty list"),
    ],
)
def test_bad_question_sets_are_rejected_with_the_item_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_eval_set(path)


def test_shipped_question_set_loads() -> None:
    items = load_eval_set(REPO_ROOT / "knowledge" / "eval" / "questions.yaml")
    assert len(items) >= 120
    assert sum(1 for i in items if i.action == "out_of_scope") >= 25


def test_a_spoken_fee_missing_from_the_cited_page_is_ungrounded() -> None:
    page = Chunk(
        id="perso", doc_id="perso", title="Perso", text="Gebühr 37,00 Euro.", spoken_answer="37 Euro."
    )
    item = EvalItem("Was kostet der Perso?", "answer", ("perso",), ("37 Euro",))
    good = Answer("Er kostet 37 Euro.", Action.ANSWER, 0.9, ["perso"])
    bad = Answer("Er kostet 73 Euro.", Action.ANSWER, 0.9, ["perso"])
    uncited = Answer("Er kostet 37 Euro.", Action.ANSWER, 0.9, [])
    assert score_item(item, good, ["perso"], [page]).grounded is True
    scored = score_item(item, bad, ["perso"], [page])
    assert scored.grounded is False and "n:73" in scored.unsupported and scored.facts_found == 0
    assert score_item(item, uncited, ["perso"], [page]).grounded is False
    refusal = score_item(EvalItem("Wetter?", "out_of_scope"), Answer("…", Action.CLARIFY, 0.1), [], [page])
    assert refusal.action_correct and refusal.grounded is None


def test_shipped_fact_sets_load_and_cover_enough_pages() -> None:
    tuning = load_eval_set(REPO_ROOT / "knowledge" / "eval" / "facts.yaml")
    heldout = load_eval_set(REPO_ROOT / "knowledge" / "eval" / "facts-heldout.yaml")
    items = tuning + heldout
    assert len(items) >= 200 and all(i.is_fact_item for i in items)
    assert len({i.expected[0] for i in items}) >= 45
    assert sum(1 for i in items if i.before) >= 10  # dialogues with a follow-up
    assert not {(i.before, i.question) for i in tuning} & {(i.before, i.question) for i in heldout}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {question: a, expected: [p], fact: x, fact_type: price}", "item 1 has fact_type 'price'"),
        ("- {question: a, expected: [p], fact: '(', fact_type: cost}", "item 1 has a bad fact pattern"),
        ("- {question: a, expected: [p], fact_type: cost}", "item 1 (fact item) needs 'fact'"),
    ],
)
def test_bad_fact_items_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_eval_set(path)


def test_fact_items_score_the_asked_fact_another_value_and_not_known() -> None:
    page = Chunk(
        id="kita",
        doc_id="kita",
        title="Kita",
        text="Bei über 100.000 Euro 420 Euro im Monat, bei 50.000 Euro 180 Euro. Telefon 0123 45678-62.",
    )
    item = EvalItem(
        "Was kostet die Kita über 100.000?", "answer", ("kita",), fact_type="cost", fact="420 euro"
    )
    right = score_item(
        item, Answer("Es sind 420 Euro im Monat.", Action.ANSWER, 0.9, ["kita"]), ["kita"], [page]
    )
    assert (right.fact_correct, right.fact_wrong, right.fact_unknown) == (True, False, False)
    wrong = score_item(
        item, Answer("Es sind 180 Euro im Monat.", Action.ANSWER, 0.9, ["kita"]), ["kita"], [page]
    )
    assert (wrong.fact_correct, wrong.fact_wrong) == (False, True)
    other_page = score_item(item, Answer("Es sind 420 Euro.", Action.ANSWER, 0.9, ["x"]), ["x"], [page])
    assert (other_page.fact_correct, other_page.fact_wrong) == (False, False)
    unknown = Answer("Dazu habe ich keine Angabe. Soll ich verbinden?", Action.ANSWER, 0.9, ["kita"])
    unknown.reason = "fact_unknown"
    scored = score_item(item, unknown, ["kita"], [page])
    assert (scored.fact_correct, scored.fact_wrong, scored.fact_unknown) == (False, False, True)
    phone = EvalItem("Telefon Kita?", "answer", ("kita",), fact_type="contact", fact="45678-62")
    spoken = Answer("Telefon 0 1 2 3, 4 5 6 7 8, 6 2.", Action.ANSWER, 0.9, ["kita"])
    assert score_item(phone, spoken, ["kita"], [page]).fact_correct is True
    yes_no = EvalItem("Ist das kostenlos?", "answer", ("kita",), fact_type="yesno", fact="^nein\\b")
    said_yes = score_item(yes_no, Answer("Ja, es ist frei.", Action.ANSWER, 0.9, ["kita"]), ["kita"], [page])
    assert said_yes.fact_wrong is True
    report = summarize([right, wrong, other_page, scored])
    assert (report.fact_items, report.fact_accuracy, report.wrong_fact_rate, report.unknown_rate) == (
        4,
        0.25,
        0.25,
        0.25,
    )


async def test_evaluate_reports_every_metric_on_a_small_kb(fixture_kb: Path, tmp_path: Path) -> None:
    config = KnowledgeConfig(town="Musterstadt", index_dir=tmp_path / "index", kb_sources=[fixture_kb])
    retriever = load_retriever(config)
    engine = build_answer_engine(config, retriever, mode="extractive")
    path = tmp_path / "set.yaml"
    path.write_text(SMALL_SET, encoding="utf-8")
    report = await evaluate(load_eval_set(path), engine, retriever, retriever.chunks)
    assert report.items == 4
    assert report.recall_at_1 == report.recall_at_3 == 1.0
    assert report.action_accuracy == 1.0, report.failures()
    assert report.ungrounded == 0 and report.groundedness == 1.0
    assert report.fact_recall == 1.0
    assert report.refusal_rate == 1.0 and report.emergency_recall == 1.0
    assert set(report.by_action) == {"answer", "redirect", "emergency", "out_of_scope"}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VOICEBOT), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


@pytest.mark.slow
def test_eval_and_ask_commands(fixture_kb: Path, tmp_path: Path) -> None:
    env = {
        "VOICEBOT_PATHS__INDEX_DIR": str(tmp_path / "index"),
        "VOICEBOT_PATHS__KB_SOURCES": json.dumps([str(fixture_kb)]),
        "VOICEBOT_CONFIG": str(tmp_path / "none.toml"),
    }
    question_set = tmp_path / "set.yaml"
    question_set.write_text(SMALL_SET, encoding="utf-8")
    result = _cli("eval", "--set", str(question_set), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] == 4 and report["ungrounded"] == 0 and report["action_accuracy"] == 1.0

    asked = _cli("ask", "Was kostet ein Perso?", "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["action"] == "answer" and "37 Euro" in answer["answer"]
    assert answer["sources"][0]["id"] == "personalausweis-beantragen"
    assert answer["sources"][0]["source_url"].startswith("https://")

    no_llm = _cli("ask", "Was kostet ein Perso?", "--mode", "llm", env=env)
    assert no_llm.returncode == 1  # a configuration error (no llm.base_url), as from every command
    assert no_llm.stderr.strip().count("\n") == 0 and "llm" in no_llm.stderr
    missing = _cli("eval", "--set", str(tmp_path / "missing.yaml"), env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


async def test_held_out_questions_meet_the_floor(sample_index_dir: Path) -> None:
    """The held-out set (written after tuning on questions.yaml, never tuned on item by item) on the sample KB.

    Floors below the measured values (docs/decisions/0250-answer-engine.md), so that a change which only helps
    the tuning set but breaks questions nobody tuned for fails here.
    """
    config = KnowledgeConfig(town="Musterstadt", index_dir=sample_index_dir)
    retriever = load_retriever(config)
    engine = build_answer_engine(config, retriever, mode="extractive")
    items = load_eval_set(REPO_ROOT / "knowledge" / "eval" / "heldout.yaml")
    assert len(items) >= 60 and sum(1 for i in items if i.action == "out_of_scope") >= 12
    report = await evaluate(items, engine, retriever, retriever.chunks)
    failures = [(r.question, r.action, r.sources) for r in report.failures()]
    assert report.recall_at_3 >= 0.9, failures
    assert report.action_accuracy >= 0.85, failures
    assert report.ungrounded == 0, failures
    assert report.emergency_recall == 1.0, failures


def test_a_please_rephrase_on_an_off_topic_question_is_wrong() -> None:
    """Issue 14 item 3: an off-topic question was understood, so "bitte anders sagen" is no right reply; for
    noise and the like (out_of_scope) it still is."""
    from knowledge import phrases

    rephrase = Answer(phrases.CLARIFY_REPHRASE, Action.CLARIFY, 0.1, reason="low_confidence")
    scope = Answer(phrases.out_of_scope("Musterstadt", ["Kita"]), Action.CLARIFY, 0.1, reason="out_of_scope")
    handoff = Answer(phrases.HANDOFF_UNSURE, Action.HANDOFF, 0.1, reason="low_confidence_again")
    off_topic = EvalItem(question="wie wird das wetter", action="off_topic")
    noise = EvalItem(question="äh hm", action="out_of_scope")
    assert [score_item(off_topic, a, [], []).action_correct for a in (rephrase, scope, handoff)] == [
        False,
        True,
        True,
    ]
    assert score_item(noise, rephrase, [], []).action_correct


async def test_off_topic_and_day_questions_meet_the_floor(sample_index_dir: Path) -> None:
    """knowledge/eval/offtopic.yaml and days.yaml on the sample KB (floors below the measured 0.96 / 0.93)."""
    config = KnowledgeConfig(town="Musterstadt", index_dir=sample_index_dir)
    retriever = load_retriever(config)
    engine = build_answer_engine(config, retriever, mode="extractive")
    off_topic = load_eval_set(REPO_ROOT / "knowledge" / "eval" / "offtopic.yaml")
    assert len(off_topic) >= 25 and {i.action for i in off_topic} == {"off_topic"}
    report = await evaluate(off_topic, engine, retriever, retriever.chunks)
    assert report.action_accuracy >= 0.9, [(r.question, r.reason) for r in report.failures()]
    days = await evaluate(
        load_eval_set(REPO_ROOT / "knowledge" / "eval" / "days.yaml"), engine, retriever, retriever.chunks
    )
    misses = [(r.question, r.answer) for r in days.fact_failures()]
    assert days.fact_accuracy is not None and days.fact_accuracy >= 0.85, misses
    assert days.wrong_fact_rate == 0 and days.ungrounded == 0, misses
