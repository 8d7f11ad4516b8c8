"""German full-text search over the turns' text (decision 0930), on the objects migration 0004 creates.

SQLite (the embedded default): FTS5 ``turns_fts`` with external content over ``turns`` (rowid = the turn's
rowid), tokenizer ``unicode61 remove_diacritics 2``: case and diacritics are folded ("fuhrerschein" finds
"Führerschein"), words are not stemmed; each searched word is a prefix ("Ausweis" finds "Ausweisdokument"), and a
word with "ß" or "ss" is searched in both spellings (unicode61 keeps ß). PostgreSQL: ``to_tsvector('german',
text)`` under a GIN index, queried with ``to_tsquery('german', 'w1:* & w2:*')``: the snowball stemmer folds
umlauts and ß and stems ("Führerscheine" finds "Führerschein"). All words must occur in one turn.

A hit's snippet comes back with :data:`MARK_START`/:data:`MARK_END` around the match; :func:`marked_html`
escapes it and turns them into ``<mark>``.
"""

from __future__ import annotations

import html
import re
import unicodedata

FTS_TABLE = "turns_fts"
POSTGRES_INDEX = "ix_turns_text_german"
# What Alembic's autogenerate must not compare with models.py (FTS5 and its shadow tables, the expression index).
SEARCH_OBJECTS = frozenset(
    {
        FTS_TABLE,
        *(f"{FTS_TABLE}_{shadow}" for shadow in ("data", "idx", "content", "docsize", "config")),
        POSTGRES_INDEX,
    }
)
MAX_QUERY_CHARS = 200
MAX_WORDS = 8
MAX_WORD_CHARS = 40
MARK_START, MARK_END = "\x02", "\x03"  # never in a transcript: control characters are not spoken
SNIPPET_WORDS = 14
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchQueryError(ValueError):
    """A search text that cannot be searched (one German line)."""


def words(query: str) -> list[str]:
    """The words of a search text (letters and digits; everything else separates), lower-cased."""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"Der Suchtext ist zu lang: höchstens {MAX_QUERY_CHARS} Zeichen.")
    found = [word for word in (w.lower().replace("_", "") for w in _WORD.findall(query)) if word]
    if len(found) > MAX_WORDS:
        raise SearchQueryError(f"Bitte höchstens {MAX_WORDS} Suchwörter eingeben.")
    if any(len(word) > MAX_WORD_CHARS for word in found):
        raise SearchQueryError(f"Ein Suchwort ist länger als {MAX_WORD_CHARS} Zeichen.")
    return found


def _spellings(word: str) -> list[str]:
    variants = [word]
    if "ß" in word:
        variants.append(word.replace("ß", "ss"))
    elif "ss" in word:
        variants.append(word.replace("ss", "ß"))
    return variants


def fts5_query(found: list[str]) -> str:
    """An FTS5 MATCH expression: every word (as a prefix, in either ß/ss spelling) must occur."""
    parts = []
    for word in found:
        alternatives = [f'"{variant}"*' for variant in _spellings(word)]
        parts.append(alternatives[0] if len(alternatives) == 1 else f"({' OR '.join(alternatives)})")
    return " AND ".join(parts)


def tsquery(found: list[str]) -> str:
    """A ``to_tsquery('german', …)`` text: every word as a prefix. Words are ``\\w`` runs: no operator in them."""
    return " & ".join(f"{word}:*" for word in found)


def fold(word: str) -> str:
    """What unicode61 with ``remove_diacritics 2`` indexes for a word: lower case, without diacritics."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def highlight(text: str, found: list[str], width: int = SNIPPET_WORDS) -> str | None:
    """The FTS5 match of ``found`` in ``text`` done again in Python for one turn (SQLite's own ``snippet()``
    would run the whole search once more): None unless every word starts a word of the text; else about
    ``width`` words around the first match, the matching words between the marks."""
    wanted = [[fold(variant) for variant in _spellings(word)] for word in found]
    tokens = list(_WORD.finditer(text))
    folded = [fold(token.group()) for token in tokens]
    hits = [any(t.startswith(v) for variants in wanted for v in variants) for t in folded]
    if not wanted or not all(any(t.startswith(v) for t in folded for v in variants) for variants in wanted):
        return None
    first = hits.index(True)
    start = max(0, min(first - width // 3, len(tokens) - width))
    end = min(len(tokens), start + width)
    out, position = [], tokens[start].start()
    for index in range(start, end):
        token = tokens[index]
        out.append(text[position : token.start()])
        out.append(f"{MARK_START}{token.group()}{MARK_END}" if hits[index] else token.group())
        position = token.end()
    tail = text[position:] if end == len(tokens) else ""
    return ("…" if start > 0 else "") + "".join(out) + tail + ("…" if end < len(tokens) else "")


def marked_html(snippet: str) -> str:
    """The snippet as HTML: escaped, the match between ``<mark>`` and ``</mark>`` (balanced)."""
    out: list[str] = []
    open_mark = False
    for part in re.split(f"([{MARK_START}{MARK_END}])", snippet):
        if part == MARK_START:
            if not open_mark:
                out.append("<mark>")
                open_mark = True
        elif part == MARK_END:
            if open_mark:
                out.append("</mark>")
                open_mark = False
        else:
            out.append(html.escape(part))
    if open_mark:
        out.append("</mark>")
    return "".join(out)


def not_search_object(
    _object: object, name: str | None, _type: str, _reflected: bool, _compare_to: object
) -> bool:
    """Alembic ``include_object``: leave the search objects out of a comparison with models.py (they are not
    declared there: FTS5 is SQLite's own, the index an expression)."""
    return name not in SEARCH_OBJECTS
