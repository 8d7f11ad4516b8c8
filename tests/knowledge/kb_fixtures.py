"""Helpers shared by the knowledge tests: a small fixture knowledge base and a hand-made PDF writer."""

from __future__ import annotations

from pathlib import Path

FIXTURE_PAGES = {
    "perso.md": """---
id: personalausweis-beantragen
title: Personalausweis beantragen
department: Bürgerbüro
authority: Stadt Musterstadt – Bürgerbüro
responsible: true
spoken_answer: "Einen Personalausweis beantragen Sie persönlich im Bürgerbüro. Er kostet 37 Euro."
synonyms: [Perso, Ausweis verlängern, Personalausweisverlängerung]
source_url: https://www.musterstadt.example/buergerbuero/personalausweis
valid_until: 2027-12-31
language: de
sample_data: true
---
# Personalausweis beantragen
Den Personalausweis beantragen Sie im Bürgerbüro. Bringen Sie ein biometrisches Passfoto mit.
""",
    "hund.md": """---
id: hundesteuer
title: Hundesteuer
department: Steueramt
spoken_answer: "Die Hundesteuer beträgt 96 Euro im Jahr für den ersten Hund."
synonyms: [Hund anmelden]
source_url: https://www.musterstadt.example/steuern/hund
---
Wer einen Hund hält, muss ihn innerhalb von zwei Wochen bei der Stadt anmelden. Sie erhalten eine Steuermarke.
""",
    "fuehrungszeugnis.md": """---
id: fuehrungszeugnis
title: Führungszeugnis beantragen
department: Bürgerbüro
spoken_answer: "Ein Führungszeugnis beantragen Sie im Bürgerbüro oder online. Es kostet 13 Euro."
---
Das Führungszeugnis stellt das Bundesamt für Justiz aus; Sie beantragen es bei uns.
""",
    "sperrmuell.md": """---
id: sperrmuell
title: Sperrmüll anmelden
department: Abfallwirtschaft
spoken_answer: "Sperrmüll melden Sie online oder telefonisch an. Zweimal im Jahr ist die Abholung kostenlos."
synonyms: [Möbel entsorgen, Sperrgut]
---
Alte Möbel, Matratzen und Teppiche holen wir als Sperrmüll ab.
""",
    "kfz.md": """---
id: kfz-zulassung
title: Kfz-Zulassung
authority: Kreis Musterkreis – Straßenverkehrsamt
responsible: false
spoken_answer: "Für die Zulassung von Fahrzeugen ist die Zulassungsstelle des Kreises Musterkreis zuständig."
synonyms: [Auto anmelden, Nummernschild]
---
Die Stadt Musterstadt lässt keine Fahrzeuge zu. Das macht der Kreis.
""",
}


def write_fixture_kb(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in FIXTURE_PAGES.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF with a real text layer (Helvetica, ASCII text), one list of lines per page."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_obj = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content_obj = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 {font_obj} 0 R >> >>"
            f" /Contents {content_obj} 0 R >>".encode()
        )
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    info = None
    if title:
        objects.append(f"<< /Title ({title}) >>".encode("latin-1"))
        info = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R"
    if info:
        trailer += f" /Info {info} 0 R"
    out += trailer.encode() + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
