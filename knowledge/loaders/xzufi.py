"""XZuFi 2.2 service descriptions (FIM Leistungsbeschreibungen, as published via the PVOG) → knowledge pages.

Towns already maintain these texts in their Land's editorial system; importing them is what lets a hotline go
live without writing pages by hand (docs/decisions/0600-xzufi-import.md has the element mapping).

One page per ``leistung`` (and one more in English where an English title exists): the title from the
Leistungsbezeichnung text module, the Kurztext as the lead, the other text modules as sections, and the
structured ``modulKosten``/``modulFrist``/``modulBearbeitungsdauer`` written as plain German sentences ("Die
Gebühr beträgt 37 Euro.") so that the fact-level answering can quote amounts and durations like any page text.
The responsible office (``organisationseinheit`` whose ``zustaendigkeit`` names the service) becomes
``authority``/``contact``; the service's areas (``gueltigkeitGebietID`` and the ``zustaendigkeit`` areas) are kept
in ``Chunk.areas`` so the application can redirect services of other areas (knowledge.areas).

Parsing is the stdlib's expat with DOCTYPE and entity declarations refused (no external entities, no entity
expansion bombs) and a size bound; element line numbers are recorded so that a problem names file, element and
line.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from xml.parsers import expat

from knowledge.chunking import LoadError, ParsedDocument, Section, slugify
from knowledge.types import Chunk

NAMESPACE_PREFIX = "http://xoev.de/schemata/xzufi/2_2"  # 2_2_0 and later 2.2.x revisions
MAX_BYTES = 20 * 1024 * 1024  # a Land's full export is split per transfer; one file this big is an error

# LeiKa text module codes (code list "leistungstextmodulleika") → section heading; "" = handled separately.
TITLE = "02"
SHORT_TEXT = "05"
_SECTIONS = {
    "06": "Beschreibung",
    "08": "Erforderliche Unterlagen",
    "09": "Voraussetzungen",
    "11": "Verfahrensablauf",
    "13": "Fristen",
    "10": "Kosten",
    "12": "Bearbeitungsdauer",
    "16": "Hinweise",
    "15": "Weiterführende Informationen",
    "14": "Formulare",
}
_SECTIONS_EN = {
    "06": "Description",
    "08": "Required documents",
    "09": "Requirements",
    "11": "Procedure",
    "13": "Deadlines",
    "10": "Fees",
    "12": "Processing time",
    "16": "Notes",
    "15": "Further information",
    "14": "Forms",
}
# Older exports name the module instead of (or besides) its code.
# What a general summary is written from: the Kurztext (the page's lead, no heading) and the Volltext.
SUMMARY_HEADINGS = ("", _SECTIONS["06"], _SECTIONS_EN["06"])
_NAMES = {
    "leistungsbezeichnung": TITLE,
    "kurztext": SHORT_TEXT,
    "volltext": "06",
    "erforderliche unterlagen": "08",
    "voraussetzungen": "09",
    "verfahrensablauf": "11",
    "fristen": "13",
    "frist": "13",
    "kosten": "10",
    "bearbeitungsdauer": "12",
    "hinweise": "16",
    "hinweise (besonderheiten)": "16",
    "weiterführende informationen": "15",
    "formulare": "14",
}
_FAX_CODE = "02"


class _Tree:
    """An ElementTree with the line each element starts on (expat reports it, ElementTree forgets it)."""

    def __init__(self, root: ET.Element, lines: dict[int, int]) -> None:
        self.root = root
        self._lines = lines

    def line(self, element: ET.Element) -> int:
        return self._lines.get(id(element), 0)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(raw: bytes) -> _Tree:
    """Parse with expat, refusing DOCTYPE/entity declarations; LoadError names element and line of a problem."""
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}
    open_tags: list[str] = []
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = "{" + name if "}" in name else name
        element = builder.start(tag, attrs)
        lines[id(element)] = parser.CurrentLineNumber
        open_tags.append(_local(name))

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)
        open_tags.pop()

    def refuse(*_: object) -> None:
        raise LoadError(
            f"DOCTYPE or entity declarations are not accepted in XZuFi files (line {parser.CurrentLineNumber})"
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        where = f"in element <{open_tags[-1]}> " if open_tags else ""
        reason = expat.ErrorString(exc.code) if exc.code is not None else "syntax error"
        raise LoadError(
            f"malformed XML {where}at line {exc.lineno}, column {exc.offset + 1}: {reason}"
        ) from None
    return _Tree(builder.close(), lines)


# -- HTML of the text modules → spoken plain text ---------------------------------------------------------------


class _PlainText(HTMLParser):
    """The PVOG whitelist (p, br, h1–h6, b/strong, i/em, ul/ol/li, a) as lines; every other tag is dropped."""

    _BREAK = frozenset({"p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "div"})

    _SKIP = frozenset({"script", "style"})  # never whitelisted; their content is not text

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._skipping = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text and text != "-":
            self.lines.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self._flush()
        elif tag == "li":
            self._flush()
            self._current.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BREAK or tag == "li":
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_text(markup: str) -> str:
    """Text module HTML → plain lines (list items as "- item"); links keep their text only."""
    parser = _PlainText()
    parser.feed(markup)
    parser.close()
    return "\n".join(parser.lines)


# -- reading the XZuFi objects -----------------------------------------------------------------------------------


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _child(element: ET.Element, *path: str) -> ET.Element | None:
    current: ET.Element | None = element
    for name in path:
        if current is None:
            return None
        current = next(_children(current, name), None)
    return current


def _text(element: ET.Element | None, *path: str) -> str:
    found = _child(element, *path) if element is not None else None
    return " ".join("".join(found.itertext()).split()) if found is not None else ""


def _code(element: ET.Element | None) -> str:
    """A code type (``<x><code>02</code></x>``) or a plain identifier (``<x>02</x>``)."""
    if element is None:
        return ""
    return _text(element, "code") or " ".join((element.text or "").split())


@dataclass
class Office:
    """An ``organisationseinheit``: who is responsible, and how a caller reaches them."""

    office_id: str
    name: str
    address: str = ""
    phone: str = ""
    email: str = ""
    opening_hours: str = ""
    services: dict[str, list[str]] = field(default_factory=dict)  # leistung id → its area ids

    @property
    def contact(self) -> str:
        parts = [f"Telefon {self.phone}" if self.phone else "", f"E-Mail {self.email}" if self.email else ""]
        parts += [f"Anschrift {self.address}" if self.address else ""]
        parts += [f"Öffnungszeiten: {self.opening_hours}" if self.opening_hours else ""]
        return "; ".join(p for p in parts if p)


def _office(element: ET.Element) -> Office:
    name = _text(element, "name", "name") or _text(element, "name")
    office = Office(_text(element, "id"), name)
    address = _child(element, "anschrift")
    if address is not None:
        street = " ".join(p for p in (_text(address, "strasse"), _text(address, "hausnummer")) if p)
        town = " ".join(p for p in (_text(address, "postleitzahl"), _text(address, "ort")) if p)
        office.address = ", ".join(p for p in (street, town) if p)
    for channel in _children(element, "kommunikation"):
        value = _text(channel, "kennung")
        if "@" in value:
            office.email = office.email or value
        elif value and _code(_child(channel, "kanal")) != _FAX_CODE and not value.startswith("http"):
            office.phone = office.phone or value
    office.opening_hours = _text(element, "oeffnungszeiten")
    for duty in _children(element, "zustaendigkeit"):
        service = _text(duty, "leistungID")
        if service:
            areas = [_code(area) for area in _children(duty, "gebietID")]
            office.services.setdefault(service, []).extend(a for a in areas if a)
    return office


def _amount(element: ET.Element | None) -> str:
    """ "37" → "37 Euro", "30,70" → "30,70 Euro" (the amount as written; German decimal comma kept)."""
    value = _text(element) if element is not None else ""
    if not value:
        return ""
    value = value.replace(".", ",") if re.fullmatch(r"\d+\.\d{1,2}", value) else value
    currency = (element.get("waehrungID") or "EUR") if element is not None else "EUR"
    return f"{value} Euro" if currency.upper() in {"EUR", "€"} else f"{value} {currency}"


def _first(element: ET.Element, *names: str) -> ET.Element | None:
    for name in names:
        found = _child(element, name)
        if found is not None and _text(found):
            return found
    return None


def cost_sentences(module: ET.Element) -> list[str]:
    """``modulKosten`` → "Die Gebühr beträgt 37 Euro für ein Jahr." / "… 5 bis 10 Euro, je nach …"."""
    sentences: list[str] = []
    for cost in _children(module, "kosten"):
        fixed = _amount(_first(cost, "betrag", "betragFix", "kostenFix"))
        low = _amount(_first(cost, "betragVon", "kostenVon"))
        high = _amount(_first(cost, "betragBis", "kostenBis"))
        note = _text(cost, "beschreibung")
        if fixed:
            amount = fixed
        elif low and high:
            amount = (
                f"{low.removesuffix(' Euro')} bis {high}" if low.endswith(" Euro") else f"{low} bis {high}"
            )
        elif low or high:
            amount = f"mindestens {low}" if low else f"höchstens {high}"
        else:
            amount = ""
        if amount:
            tail = f", {note}" if note.startswith("je ") else (f" {note}" if note else "")
            sentences.append(f"Die Gebühr beträgt {amount}{tail.rstrip('.')}.")
        elif note:
            sentences.append(note if note.endswith(".") else f"{note}.")
    return sentences


def duration_sentences(module: ET.Element, child: str, lead: str) -> list[str]:
    """``modulFrist``/``modulBearbeitungsdauer`` → "Die Bearbeitung dauert in der Regel 5 Arbeitstage."."""
    sentences: list[str] = []
    for item in _children(module, child):
        amount = _text(item, "dauer")
        unit = _code(_child(item, "einheit"))
        note = _text(item, "beschreibung")
        if amount:
            sentences.append(f"{lead} {amount} {unit}".rstrip() + (f", {note}" if note else "") + ".")
        elif note:
            sentences.append(note if note.endswith(".") else f"{note}.")
    return sentences


@dataclass
class _Texts:
    """The text modules of one service in one language, by LeiKa code."""

    by_code: dict[str, list[str]] = field(default_factory=dict)

    def add(self, code: str, text: str) -> None:
        if text:
            self.by_code.setdefault(code, []).append(text)

    def get(self, code: str) -> str:
        return "\n".join(self.by_code.get(code, []))


def _text_modules(service: ET.Element) -> dict[str, _Texts]:
    languages: dict[str, _Texts] = {}
    for module in _children(service, "modulText"):
        kind = _child(module, "leikaTextmodul")
        code = _code(kind)
        if not code.isdigit():
            code = _NAMES.get(_text(kind, "name").lower() or code.lower(), "")
        if not code:
            continue
        code = code.zfill(2)
        for content in _children(module, "inhalt"):
            language = (content.get("languageCode") or "de").lower()[:2]
            text = "".join(content.itertext())
            plain = html_to_text(text) if "<" in text else " ".join(text.split())
            languages.setdefault(language, _Texts()).add(code, plain)
    return languages


@dataclass
class _Service:
    element: ET.Element
    service_id: str
    catalog_key: str
    areas: tuple[str, ...]


def load(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    if path.stat().st_size > MAX_BYTES:
        raise LoadError(f"file larger than {MAX_BYTES // (1024 * 1024)} MB; split the XZuFi export")
    tree = parse_xml(path.read_bytes())
    root = tree.root
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if not namespace.startswith(NAMESPACE_PREFIX):
        raise LoadError(
            f"not an XZuFi 2.2 file (root element {_local(root.tag)!r} in namespace {namespace or 'none'!r})"
        )
    offices = [_office(e) for e in root.iter() if _local(e.tag) == "organisationseinheit"]
    online: dict[str, tuple[str, str]] = {}
    for element in root.iter():
        if _local(element.tag) == "onlinedienst":
            link = next((_text(lk, "link") for lk in _children(element, "link") if _text(lk, "link")), "")
            online[_text(element, "id")] = (_text(element, "bezeichnung"), link)

    documents: list[ParsedDocument] = []
    warnings: list[tuple[str, str]] = []
    for element in root.iter():
        if _local(element.tag) != "leistung":
            continue
        where = f"{path}:{tree.line(element)}"
        service_id = _text(element, "id")
        if not service_id:
            warnings.append((where, "element <leistung> without <id>: skipped"))
            continue
        key = _code(_child(element, "referenzLeiKa"))
        areas = [_code(a) for a in _children(element, "gueltigkeitGebietID")]
        office = next((o for o in offices if service_id in o.services), None)
        if office is not None:
            areas += office.services[service_id]
        service = _Service(element, service_id, key, tuple(dict.fromkeys(a for a in areas if a)))
        texts = _text_modules(element)
        if not texts.get("de", _Texts()).get(TITLE):
            warnings.append(
                (where, f"element <leistung> {service_id}: no Leistungsbezeichnung (text module 02): skipped")
            )
            continue
        services = [(o_id, o) for o_id, o in online.items() if o_id in _ids(element, "onlinedienstID")]
        documents.append(_document(path, service, texts["de"], "de", office, services))
        if "en" in texts and texts["en"].get(TITLE):
            documents.append(_document(path, service, texts["en"], "en", office, services))
    if not documents and not warnings:
        raise LoadError("no <leistung> elements in this XZuFi file")
    return documents, warnings


def _lead_sentences(text: str, count: int = 3) -> str:
    """The Kurztext's first sentences: written as the service's summary, so it is the general spoken answer."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.replace("- ", "").split()))
    return " ".join(sentences[:count]).strip()


def _ids(element: ET.Element, name: str) -> set[str]:
    return {_text(child) for child in _children(element, name)}


def _document(
    path: Path,
    service: _Service,
    texts: _Texts,
    language: str,
    office: Office | None,
    online: list[tuple[str, tuple[str, str]]],
) -> ParsedDocument:
    element = service.element
    headings = _SECTIONS if language == "de" else _SECTIONS_EN
    doc_id = f"xzufi-{slugify(service.service_id, 50)}" + ("" if language == "de" else f"-{language}")
    validity = _child(element, "gueltigkeit")
    spoken_answer = _lead_sentences(texts.get(SHORT_TEXT)) or _lead_sentences(texts.get("06"), 2)
    meta = Chunk(
        id=doc_id,
        doc_id=doc_id,
        title=texts.get(TITLE).splitlines()[0],
        text="",
        # generated, not curated: `voicebot kb review-spoken` lists it for an editor (knowledge.layers.generated)
        spoken_answer=spoken_answer,
        spoken_generated=bool(spoken_answer),
        department=office.name if office is not None else "",
        authority=office.name if office is not None else "",
        source_url=_text(element, "modulUrsprungsportal", "uri"),
        source_path=str(path),
        valid_until=_text(validity, "ende") if validity is not None else "",
        valid_from=_text(validity, "beginn") if validity is not None else "",
        language=language,
        synonyms=tuple(
            _text(term, "begriff")
            for module in _children(element, "modulBegriffImKontext")
            for term in _children(module, "begriffImKontext")
            if _text(term, "begriff")
        ),
        areas=service.areas,
        contact=office.contact if office is not None else "",
        catalog_key=f"leika:{service.catalog_key}" if service.catalog_key else "",
        layer="base",  # imported descriptions: the town's own pages amend them (knowledge.layers)
    )
    sections = [Section("", texts.get(SHORT_TEXT), 0)]
    structured: dict[str, list[str]] = {}
    if language == "de":
        for module in _children(element, "modulKosten"):
            structured.setdefault("10", []).extend(cost_sentences(module))
        for module in _children(element, "modulFrist"):
            structured.setdefault("13", []).extend(duration_sentences(module, "frist", "Die Frist beträgt"))
        for module in _children(element, "modulBearbeitungsdauer"):
            structured.setdefault("12", []).extend(
                duration_sentences(module, "bearbeitungsdauer", "Die Bearbeitung dauert in der Regel")
            )
    for code, heading in headings.items():
        body = "\n".join(p for p in (*structured.get(code, []), texts.get(code)) if p)
        if body:
            sections.append(Section(heading, body, 2))
    for _, (name, link) in online:
        label = "Online-Dienst" if language == "de" else "Online service"
        sections.append(Section(label, f"{name}: {link}" if link else name, 2))
    if office is not None:
        label = "Zuständige Stelle" if language == "de" else "Responsible office"
        lines = [office.name, *(part.strip() for part in office.contact.split(";"))]
        sections.append(Section(label, "\n".join(lines), 2))
    return ParsedDocument(meta, [s for s in sections if s.text or s.level > 0])
