"""Loaders: Markdown with front matter, HTML export, PDF, FAQ CSV/YAML; broken files give a one-line reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_fixtures import FIXTURE_PAGES, make_pdf

from knowledge.chunking import LoadError, chunk_document
from knowledge.loaders import discover, load_file
from knowledge.types import Chunk


def chunks_of(path: Path) -> list[Chunk]:
    return [chunk for doc in load_file(path).documents for chunk in chunk_document(doc)]


def test_markdown_page_metadata(tmp_path: Path) -> None:
    page = tmp_path / "perso.md"
    page.write_text(FIXTURE_PAGES["perso.md"], encoding="utf-8")
    (chunk,) = chunks_of(page)
    assert chunk.id == chunk.doc_id == "personalausweis-beantragen"
    assert chunk.title == "Personalausweis beantragen"
    assert chunk.department == "Bürgerbüro"
    assert chunk.valid_until == "2027-12-31"  # a YAML date becomes an ISO string
    assert chunk.synonyms == ("Perso", "Ausweis verlängern", "Personalausweisverlängerung")
    assert chunk.spoken_answer.endswith("37 Euro.")
    assert chunk.source_path == str(page)
    assert "biometrisches Passfoto" in chunk.text
    assert not chunk.text.startswith("#")  # the H1 title is not repeated in the text


def test_long_markdown_page_is_chunked_by_headings(tmp_path: Path) -> None:
    body = "\n\n".join(
        f"## Abschnitt {n}\n\n" + f"Satz {n} über [Gebühren](https://x.example) und **Fristen**. " * 25
        for n in range(1, 4)
    )
    page = tmp_path / "lang.md"
    page.write_text(
        "---\nid: lange-seite\ntitle: Lange Seite\nresponsible: false\nspoken_answer: Kurz gesagt.\n---\n"
        f"# Lange Seite\n\nEinleitung. {'Mehr Einleitung. ' * 20}\n\n{body}\n",
        encoding="utf-8",
    )
    chunks = chunks_of(page)
    assert [c.id for c in chunks] == ["lange-seite", "lange-seite#1", "lange-seite#2", "lange-seite#3"]
    assert [c.section for c in chunks[1:]] == ["Abschnitt 1", "Abschnitt 2", "Abschnitt 3"]
    assert chunks[0].spoken_answer == "Kurz gesagt." and all(c.spoken_answer == "" for c in chunks[1:])
    assert all(c.responsible is False and c.title == "Lange Seite" for c in chunks)
    assert "[Gebühren]" not in chunks[1].text and "**" not in chunks[1].text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("---\nid: x\ntitle: [unclosed\n---\nText\n", "invalid YAML front matter"),
        ("---\ntitle: Ohne Id\n---\nText\n", "missing 'id'"),
        ("---\nid: ohne-titel\n---\nText\n", "missing 'title'"),
        ("---\nid: 'a#b'\ntitle: T\n---\nText\n", "invalid id"),
        ("Nur Text ohne Kopf\n", "no YAML front matter"),
        ("---\n- a\n- b\n---\nText\n", "not a mapping"),
        ("---\nid: leer\ntitle: Leer\n---\n", "no text"),
    ],
)
def test_broken_markdown_is_rejected_with_reason(tmp_path: Path, content: str, reason: str) -> None:
    page = tmp_path / "kaputt.md"
    page.write_text(content, encoding="utf-8")
    with pytest.raises(LoadError, match=reason):
        load_file(page)


def test_html_export_keeps_content_and_drops_chrome(tmp_path: Path) -> None:
    page = tmp_path / "Wochen Markt.html"
    page.write_text(
        """<!DOCTYPE html><html lang="de"><head><title>Wochenmarkt | Stadt</title>
        <link rel="canonical" href="https://www.musterstadt.example/wochenmarkt">
        <meta name="keywords" content="Markt, Bauernmarkt"><script>var x = 1;</script></head>
        <body><header><nav><ul><li>Startseite</li><li>Rathaus</li></ul></nav></header>
        <main><h1>Wochenmarkt auf dem Marktplatz</h1>
        <p>Der Markt ist dienstags und
           samstags von 7 bis 13 Uhr.</p>
        <h2>Standplatz</h2><ul><li><p>Anmeldung beim Marktmeister</p></li><li>Gebühr 2 Euro je Meter</li></ul>
        </main><footer>Impressum</footer></body></html>""",
        encoding="utf-8",
    )
    (chunk,) = chunks_of(page)
    assert chunk.id == "wochen-markt"
    assert chunk.title == "Wochenmarkt auf dem Marktplatz"
    assert chunk.source_url == "https://www.musterstadt.example/wochenmarkt"
    assert chunk.synonyms == ("Markt", "Bauernmarkt")
    assert "dienstags und samstags von 7 bis 13 Uhr" in chunk.text
    assert "Standplatz" in chunk.text and chunk.text.count("Anmeldung beim Marktmeister") == 1
    assert "Startseite" not in chunk.text and "Impressum" not in chunk.text and "var x" not in chunk.text


def test_html_meta_tags_carry_front_matter_fields(tmp_path: Path) -> None:
    page = tmp_path / "a.html"
    page.write_text(
        '<html><head><meta name="kb:id" content="ehrenamt"><meta name="kb:department" content="Ehrenamt">'
        "</head><body><h1>Ehrenamtskarte</h1><p>Kostenlos, gilt 3 Jahre.</p></body></html>",
        encoding="utf-8",
    )
    (chunk,) = chunks_of(page)
    assert (chunk.id, chunk.department, chunk.title) == ("ehrenamt", "Ehrenamt", "Ehrenamtskarte")


def test_html_without_text_is_rejected(tmp_path: Path) -> None:
    page = tmp_path / "leer.html"
    page.write_text("<html><body><nav>Menü</nav><main><h1>Titel</h1></main></body></html>", encoding="utf-8")
    with pytest.raises(LoadError, match="no text"):
        load_file(page)


def test_pdf_with_numbered_headings(tmp_path: Path) -> None:
    pdf = tmp_path / "Merkblatt Hundesteuer.pdf"
    lines = ["Merkblatt Hundesteuer", "1. Allgemeines", "Wer einen Hund haelt, zahlt Hundesteuer."]
    lines += ["2. Gebuehren", "Der erste Hund kostet 96 Euro im Jahr."]
    pdf.write_bytes(make_pdf([lines, ["Stand Januar"]], title="Merkblatt Hundesteuer"))
    (chunk,) = chunks_of(pdf)
    assert chunk.id == "merkblatt-hundesteuer"
    assert chunk.title == "Merkblatt Hundesteuer"
    assert "96 Euro" in chunk.text and "2. Gebuehren" in chunk.text and "Stand Januar" in chunk.text


def test_long_pdf_without_headings_is_chunked_per_page(tmp_path: Path) -> None:
    pdf = tmp_path / "satzung.pdf"
    page_lines = [f"Zeile {i} der Satzung mit etwas Text ueber Gebuehren und Fristen." for i in range(20)]
    pdf.write_bytes(make_pdf([page_lines, page_lines, page_lines]))
    chunks = chunks_of(pdf)
    assert [c.id for c in chunks][:2] == ["satzung", "satzung#1"]
    assert {c.section for c in chunks[1:]} <= {"Seite 2", "Seite 3"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"%PDF-1.4\nthis is not really a pdf", "unreadable PDF"), (b"", "unreadable PDF")],
)
def test_broken_pdf_is_rejected(tmp_path: Path, content: bytes, reason: str) -> None:
    pdf = tmp_path / "kaputt.pdf"
    pdf.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(pdf)


def test_pdf_without_text_layer_is_rejected(tmp_path: Path) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(make_pdf([[]]))
    with pytest.raises(LoadError, match="no text layer"):
        load_file(pdf)


def test_faq_csv_rows_become_documents_and_bad_rows_are_reported(tmp_path: Path) -> None:
    table = tmp_path / "faq.csv"
    table.write_text(
        "frage;antwort;id;department\n"
        "Wann ist der Wochenmarkt?;Dienstags und samstags von 7 bis 13 Uhr.;markt;Ordnungsamt\n"
        "Gibt es WLAN?;;;\n"
        "Darf ich Tauben füttern?;Nein, das ist verboten.;;\n",
        encoding="utf-8",
    )
    result = load_file(table)
    ids = [doc.meta.doc_id for doc in result.documents]
    assert ids == ["markt", "faq-darf-ich-tauben-fuettern"]
    (chunk,) = chunk_document(result.documents[0])
    assert (chunk.title, chunk.spoken_answer, chunk.department) == (
        "Wann ist der Wochenmarkt?",
        "Dienstags und samstags von 7 bis 13 Uhr.",
        "Ordnungsamt",
    )
    assert result.warnings == [(f"{table}:3", "FAQ entry needs both 'question' and 'answer'")]


def test_faq_csv_without_required_columns_is_rejected(tmp_path: Path) -> None:
    table = tmp_path / "faq.csv"
    table.write_text("titel,text\na,b\n", encoding="utf-8")
    with pytest.raises(LoadError, match="columns 'question' and 'answer'"):
        load_file(table)


def test_faq_yaml_list_and_mapping(tmp_path: Path) -> None:
    listed = tmp_path / "faq.yaml"
    listed.write_text(
        "- question: Wo bekomme ich Sandsäcke?\n  answer: Am Bauhof.\n  id: sandsaecke\n"
        "- question: Ohne Antwort\n",
        encoding="utf-8",
    )
    result = load_file(listed)
    assert [d.meta.doc_id for d in result.documents] == ["sandsaecke"]
    assert result.warnings and "answer" in result.warnings[0][1]
    keyed = tmp_path / "more.yml"
    keyed.write_text("faq:\n  - question: Gibt es WLAN?\n    answer: Ja, am Marktplatz.\n", encoding="utf-8")
    assert [d.meta.doc_id for d in load_file(keyed).documents] == ["more-gibt-es-wlan"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("- question: [x\n", encoding="utf-8")
    with pytest.raises(LoadError, match="invalid YAML"):
        load_file(broken)


def test_discover_skips_readme_hidden_and_unknown_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Liesmich", encoding="utf-8")
    (tmp_path / "seite.md").write_text(FIXTURE_PAGES["hund.md"], encoding="utf-8")
    (tmp_path / "notizen.txt").write_text("x", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.md").write_text("x", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "faq.csv").write_text("question,answer\na,b\n", encoding="utf-8")
    assert discover([tmp_path]) == [
        (tmp_path / "seite.md").resolve(),
        (tmp_path / "sub" / "faq.csv").resolve(),
    ]


def test_empty_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "leer.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LoadError, match="empty file"):
        load_file(empty)
    odd = tmp_path / "notiz.txt"
    odd.write_text("Hallo", encoding="utf-8")
    with pytest.raises(LoadError, match="unsupported file type"):
        load_file(odd)
