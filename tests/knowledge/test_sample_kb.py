"""Content checks for the Musterstadt sample knowledge base and the evaluation question set.

These are real validations: the evaluation is only fair if every expected page exists and every required fact is
literally in the curated spoken answer, and the extractive mode is only safe if spoken answers are consistent with
the page body they cite.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KB_DIR = ROOT / "knowledge" / "sample" / "musterstadt"
IMPORT_DIR = ROOT / "knowledge" / "sample" / "musterstadt-import"
EVAL_FILE = ROOT / "knowledge" / "eval" / "questions.yaml"

REQUIRED_KEYS = {
    "id",
    "title",
    "department",
    "authority",
    "responsible",
    "spoken_answer",
    "synonyms",
    "source_url",
    "valid_until",
    "language",
    "sample_data",
}
ACTIONS = {"answer", "redirect", "emergency", "out_of_scope"}
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NUMBER = re.compile(r"\d+(?:,\d+)?")
# Ends of sentences: ., ! or ? followed by a space and an upper-case letter, or at the end of the text; the dot of
# an ordinal date ("15. Mai") is not one.
SENTENCE_END = re.compile(r"(?<!\s\d)(?<!\s\d\d)[.!?](?=\s+[A-ZÄÖÜ]|\s*$)")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        raise ValueError("no front matter")
    end = text.index("\n---\n", 4)
    meta = yaml.safe_load(text[4:end])
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, text[end + 5 :]


def load_pages() -> dict[str, tuple[dict[str, Any], str, Path]]:
    pages: dict[str, tuple[dict[str, Any], str, Path]] = {}
    for path in sorted(KB_DIR.glob("*.md")):
        if path.name == "README.md":
            continue
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
        assert meta["id"] not in pages, f"duplicate id {meta['id']} in {path.name}"
        pages[meta["id"]] = (meta, body, path)
    return pages


PAGES = load_pages()


def load_questions() -> list[dict[str, Any]]:
    items = yaml.safe_load(EVAL_FILE.read_text(encoding="utf-8"))
    assert isinstance(items, list)
    return items


def test_readme_marks_sample_data_and_has_no_front_matter() -> None:
    text = (KB_DIR / "README.md").read_text(encoding="utf-8")
    assert not text.startswith("---")
    assert "fiktiv" in text.lower()


@pytest.mark.parametrize("page_id", sorted(PAGES))
def test_page_front_matter_and_body(page_id: str) -> None:
    meta, body, path = PAGES[page_id]
    missing = REQUIRED_KEYS - meta.keys()
    assert not missing, f"{path.name}: missing keys {missing}"
    assert meta["id"] == path.stem, "file name must be the page id"
    assert KEBAB.match(meta["id"])
    assert meta["sample_data"] is True
    assert isinstance(meta["responsible"], bool)
    assert isinstance(meta["valid_until"], dt.date)
    assert meta["language"] in {"de", "en"}
    assert meta["id"].endswith("-en") == (meta["language"] == "en")
    assert meta["source_url"].startswith("https://www.musterstadt.example/")

    spoken = meta["spoken_answer"]
    assert isinstance(spoken, str) and 40 <= len(spoken) <= 420, (
        f"{page_id}: spoken answer length {len(spoken)}"
    )
    sentences = len(SENTENCE_END.findall(spoken))
    assert 1 <= sentences <= 3, f"{page_id}: {sentences} sentences in spoken answer"

    synonyms = meta["synonyms"]
    assert isinstance(synonyms, list) and 4 <= len(synonyms) <= 10, f"{page_id}: {len(synonyms)} synonyms"
    assert all(isinstance(s, str) and s.strip() for s in synonyms)

    assert body.lstrip().startswith("# "), f"{page_id}: body must start with a # title"
    sections = re.findall(r"^## ", body, flags=re.MULTILINE)
    assert 2 <= len(sections) <= 5, f"{page_id}: {len(sections)} ## sections"

    body_numbers = set(NUMBER.findall(body))
    for number in NUMBER.findall(spoken):
        assert number in body_numbers, (
            f"{page_id}: number {number} of the spoken answer is missing in the body"
        )


def test_page_inventory() -> None:
    german = [m for m, _, _ in PAGES.values() if m["language"] == "de"]
    services = [m for m in german if m["responsible"]]
    redirects = [m for m in german if not m["responsible"]]
    english = [m for m, _, _ in PAGES.values() if m["language"] == "en"]
    assert len(services) >= 45
    assert len(redirects) >= 10
    assert len(english) >= 3
    for meta in english:
        assert meta["id"].removesuffix("-en") in PAGES, f"{meta['id']} has no German original"
    for meta in redirects:
        assert "Musterstadt –" not in meta["authority"] or "GmbH" in meta["authority"], meta["id"]
        assert re.search(r"\d", meta["spoken_answer"]), f"{meta['id']}: redirect must give a phone or address"


def test_opening_hours_are_consistent() -> None:
    """The Rathaus offices share one set of opening hours; every page that states them states the same ones."""
    for page_id, (meta, body, _) in PAGES.items():
        text = meta["spoken_answer"] + "\n" + body
        for match in re.finditer(r"donnerstags zusätzlich (?:von )?(\d+) bis (\d+) Uhr", text):
            assert match.groups() == ("14", "18"), f"{page_id}: {match.group(0)}"
        for match in re.finditer(r"montags bis freitags (?:von )?(\d+) bis (\d+) Uhr", text):
            # 8–12: office hours of all Rathaus offices; 8–16: phone hours of the Ordnungsamt and the Stadtwerke.
            assert match.groups() in {("8", "12"), ("8", "16")}, f"{page_id}: {match.group(0)}"
        for match in re.finditer(r"Bürgerbüro[^.]*?(0123 45678-\d+)", text):
            assert match.group(1) in {"0123 45678-10", "0123 45678-0"}, f"{page_id}: {match.group(0)}"


def test_eval_questions() -> None:
    items = load_questions()
    counts = Counter(item["action"] for item in items)
    assert len(items) >= 130
    assert counts["answer"] >= 85
    assert counts["redirect"] >= 12
    assert counts["emergency"] >= 5
    assert counts["out_of_scope"] >= 28
    questions = [item["question"].strip().lower() for item in items]
    duplicates = [q for q, n in Counter(questions).items() if n > 1]
    assert not duplicates, duplicates
    english = [item for item in items if item.get("language") == "en"]
    assert len(english) >= 3

    for item in items:
        assert set(item) <= {"question", "expected", "action", "facts", "note", "language"}, item
        assert item["action"] in ACTIONS, item
        question, expected, facts = item["question"], item["expected"], item["facts"]
        assert isinstance(question, str) and question.strip()
        assert isinstance(expected, list) and isinstance(facts, list)
        if item["action"] in {"emergency", "out_of_scope"}:
            assert expected == [], item
        if item["action"] == "emergency":
            assert facts and set(facts) <= {"110", "112"}, item
        if item["action"] == "out_of_scope":
            assert facts == [], item
        if item["action"] in {"answer", "redirect"}:
            assert expected, item
            assert 1 <= len(facts) <= 2, item
            for page_id in expected:
                assert page_id in PAGES, f"unknown page {page_id} in {question!r}"
                meta = PAGES[page_id][0]
                assert meta["responsible"] is (item["action"] == "answer"), f"{question!r}: {page_id}"
                if item.get("language") == "en":
                    assert meta["language"] == "en", question
            spoken = [PAGES[page_id][0]["spoken_answer"] for page_id in expected]
            for fact in facts:
                assert any(fact in s for s in spoken), (
                    f"fact {fact!r} not verbatim in {expected} ({question!r})"
                )


def test_eval_covers_most_service_pages() -> None:
    answered = {pid for item in load_questions() for pid in item["expected"]}
    services = [pid for pid, (m, _, _) in PAGES.items() if m["responsible"] and m["language"] == "de"]
    covered = [pid for pid in services if pid in answered]
    assert len(covered) >= 0.8 * len(services), sorted(set(services) - answered)


def test_import_samples() -> None:
    kb_ids = set(PAGES)
    with (IMPORT_DIR / "faq.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert set(rows[0]) == {"question", "answer", "id", "source_url", "department"}
    faq_yaml = yaml.safe_load((IMPORT_DIR / "faq.yaml").read_text(encoding="utf-8"))
    assert isinstance(faq_yaml, list) and len(faq_yaml) == 5
    ids = [row["id"] for row in rows] + [item["id"] for item in faq_yaml]
    assert len(ids) == len(set(ids))
    assert not set(ids) & kb_ids, "import samples must not duplicate Markdown pages"
    for item in [*rows, *faq_yaml]:
        assert item["question"].strip() and item["answer"].strip() and item["department"].strip()
        assert item["source_url"].startswith("https://www.musterstadt.example/")
    html_pages = sorted((IMPORT_DIR / "website-export").glob("*.html"))
    assert len(html_pages) == 2
    for page in html_pages:
        assert page.stem not in kb_ids
        assert "<h1" in page.read_text(encoding="utf-8")
