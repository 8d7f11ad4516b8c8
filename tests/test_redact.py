"""PII redaction (voicebot/privacy/redact.py): a table of German examples, what goes and what must stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicebot.privacy.redact import Redactor, redact_record

ALL = Redactor()

# (what was said, what is stored)
TABLE = [
    # phone numbers, as digits and as ASR writes spoken digits
    ("Meine Nummer ist 0171 2345678.", "Meine Nummer ist [Telefonnummer]."),
    ("Rufen Sie mich unter +49 30 12345678 an", "Rufen Sie mich unter [Telefonnummer] an"),
    ("Festnetz 030/1234567-0 bitte", "Festnetz [Telefonnummer] bitte"),
    ("erreichbar unter (0211) 12 34 56", "erreichbar unter [Telefonnummer]"),
    ("null eins sieben eins, zwei drei vier fünf sechs", "[Telefonnummer]"),
    ("Das ist die null zwei eins eins 12 34 56", "Das ist die [Telefonnummer]"),
    ("Null zwei eins eins, zwölf vierunddreißig, sechsundfünfzig.", "[Telefonnummer]."),
    ("null, einundzwanzig, elf, neunzehn, achtzig", "[Telefonnummer]"),
    # e-mail
    ("Schreiben Sie an max.mustermann@example.de bitte", "Schreiben Sie an [E-Mail-Adresse] bitte"),
    ("max punkt mustermann at beispiel punkt de", "[E-Mail-Adresse]"),
    # IBAN with a valid check sum
    ("Meine IBAN ist DE89 3704 0044 0532 0130 00.", "Meine IBAN ist [IBAN]."),
    ("IBAN DE89370400440532013000", "IBAN [IBAN]"),
    # Steuer-ID with a valid check digit
    ("Steuer-ID 86095742719", "Steuer-ID [Steuer-ID]"),
    ("die Identifikationsnummer 86 095 742 719", "die Identifikationsnummer [Steuer-ID]"),
    # dates of birth, only in their context
    ("Ich bin geboren am 3. Mai 1980.", "Ich bin geboren am [Geburtsdatum]."),
    ("Geburtsdatum 03.05.1980", "Geburtsdatum [Geburtsdatum]"),
    ("geb. 3.5.80, wohnhaft in Musterstadt", "geb. [Geburtsdatum], wohnhaft in Musterstadt"),
    ("ich bin am 12.11.1975 geboren", "ich bin am [Geburtsdatum] geboren"),
    ("geboren am dritten Mai neunzehnhundertachtzig", "geboren am [Geburtsdatum]"),
    # Personalausweis: the 9-character number with its check digit, or right after the word
    ("Nummer T220001293 steht oben rechts", "Nummer [Ausweisnummer] steht oben rechts"),
    ("Meine Ausweisnummer ist L01X00T47", "Meine Ausweisnummer ist [Ausweisnummer]"),
    # what must stay: prices, opening hours, appointments, postcodes, the 115
    ("Der Ausweis kostet 37 Euro.", None),
    ("Das Bürgerbüro hat von 8 bis 16 Uhr geöffnet.", None),
    ("Ihr Termin ist am 03.05.2026 um 10:30 Uhr.", None),
    ("Ich habe einen Termin am 3. Mai 2026.", None),
    ("Die Gebühr beträgt 1.234,56 Euro.", None),
    ("Rathausplatz 1, 12345 Musterstadt", None),
    ("Rufen Sie die 115 an.", None),
    ("Ich brauche eins, zwei Formulare.", None),
    ("Der Antrag dauert zwei bis drei Wochen.", None),
    ("Es kostet zwölf Euro fünfzig, also zwanzig, dreißig Euro für zwei.", None),
    ("IBAN DE12 3456 7890 1234 5678 91 stimmt nicht", "IBAN DE12 [Telefonnummer] stimmt nicht"),
    ("Aktenzeichen 86095742718", "Aktenzeichen [Telefonnummer]"),  # no Steuer-ID (check digit), yet 11 digits
    ("Im Jahr 2025 gab es 1980 Anträge.", None),
    ("Anmeldung für das Schuljahr 2025/2026 und 2026-27", None),
    ("Termin 2026-05-03, Geburtsdatum 1980-05-03", "Termin 2026-05-03, Geburtsdatum [Geburtsdatum]"),
]


@pytest.mark.parametrize(("said", "stored"), TABLE)
def test_redaction_table(said: str, stored: str | None) -> None:
    assert ALL.text(said) == (said if stored is None else stored)


def test_categories_can_be_switched_off() -> None:
    said = "Mail an a@b.de, Nummer 0171 2345678"
    assert Redactor(frozenset({"phone"})).text(said) == "Mail an a@b.de, Nummer [Telefonnummer]"
    assert Redactor(frozenset()).text(said) == said
    with pytest.raises(ValueError, match="unknown redaction categories"):
        Redactor(frozenset({"telefon"}))


def test_record_keeps_the_callback_number_and_labels() -> None:
    record = {
        "call_id": "call_x",
        "turns": [
            {"role": "caller", "kind": "question", "text": "Ich bin unter 0171 2345678 erreichbar"},
            {
                "role": "bot",
                "kind": "callback_read_back",
                "text": "Ihre Nummer: null eins sieben eins, zwei drei",
            },
        ],
        "events": [
            {"kind": "callback_requested", "number": "01712345678", "topic": "Rückruf an a@b.de"},
            {"kind": "question_during_wait", "text": "meine Nummer 0171 2345678"},
            {"kind": "transfer_started", "target": "sip:0301234567@pbx.example"},
            {"kind": "transfer_status", "caller_number": "01712345678"},
        ],
    }
    stored = redact_record(record, ALL)
    assert [turn["text"] for turn in stored["turns"]] == [
        "Ich bin unter [Telefonnummer] erreichbar",
        "Ihre Nummer: [Telefonnummer]",
    ]
    assert stored["events"][0] == {
        "kind": "callback_requested",
        "number": "01712345678",
        "topic": "Rückruf an [E-Mail-Adresse]",
    }
    assert stored["events"][1]["text"] == "meine Nummer [Telefonnummer]"
    assert stored["events"][2]["target"] == "sip:0301234567@pbx.example"
    assert stored["events"][3]["caller_number"] == "01712345678"
    assert (
        record["turns"][0]["text"] == "Ich bin unter 0171 2345678 erreichbar"
    )  # the live call keeps its own


def test_the_transcript_hands_its_store_only_the_redacted_record(tmp_path: Path) -> None:
    from voicebot.pipeline.transcript import CallTranscript
    from voicebot.records import JsonFileStore

    store = JsonFileStore(tmp_path)
    transcript = CallTranscript(channel="sip", store=store)
    turn = transcript.add_bot_turn(
        "callback_read_back", "Ihre Nummer: null eins sieben eins, zwei drei vier."
    )
    transcript.append_bot_text(turn, "Ihre E-Mail: erika@example.de.")
    transcript.add_event(
        "callback_requested", number="0171234", topic="Rückruf wegen IBAN DE89370400440532013000"
    )
    transcript.end("hangup")
    saved = json.loads(store.path_for(transcript.call_id).read_text(encoding="utf-8"))
    assert saved["turns"][0]["text"] == "Ihre Nummer: [Telefonnummer]. Ihre E-Mail: [E-Mail-Adresse]."
    assert saved["events"][0]["number"] == "0171234"
    assert saved["events"][0]["topic"] == "Rückruf wegen IBAN [IBAN]"
    assert "null eins sieben" in transcript.turns[0].text  # the live call keeps what was said

    unredacted = CallTranscript(channel="sip", store=store, redactor=Redactor(frozenset()))
    unredacted.add_bot_turn("answer", "erika@example.de")
    kept = json.loads(store.path_for(unredacted.call_id).read_text(encoding="utf-8"))
    assert kept["turns"][0]["text"] == "erika@example.de"  # a town that switched redaction off


def test_a_town_that_switches_transcripts_off_keeps_no_words(tmp_path: Path) -> None:
    """privacy.store_transcripts = false: the stored turns have no text (the live call still has it), but keep
    what the figures need; the queue's copy of the caller's words is empty too."""
    from voicebot.pipeline.transcript import CallTranscript
    from voicebot.privacy.redact import record_redactor
    from voicebot.records import JsonFileStore
    from voicebot.settings import PrivacySettings, Settings

    settings = Settings(privacy=PrivacySettings(store_transcripts=False))
    store = JsonFileStore(tmp_path)
    transcript = CallTranscript(channel="sip", store=store, redactor=record_redactor(settings))
    from voicebot.pipeline.frames import AsrResult, CallerQuestionFrame

    question = "Was kostet ein Personalausweis?"
    heard = AsrResult(
        text=question, language="de", avg_logprob=-0.2, no_speech_prob=0.01, audio_s=2.0, asr_ms=300
    )
    transcript.add_caller_question(CallerQuestionFrame(text=question, language="de", asr=[heard]))
    transcript.add_bot_turn("answer", "Er kostet 37 Euro.")
    transcript.add_event("handoff_requested", reason="caller_asked", group="buergerbuero")
    transcript.end("hangup")
    saved = json.loads(store.path_for(transcript.call_id).read_text(encoding="utf-8"))
    assert [(t["role"], t["kind"], t["text"]) for t in saved["turns"]] == [
        ("caller", "question", ""),
        ("bot", "answer", ""),
    ]
    assert saved["turns"][0]["language"] == "de"
    assert saved["turns"][0]["asr"][0]["text"] == "" and saved["turns"][0]["asr"][0]["audio_s"] == 2.0
    assert saved["events"][0]["reason"] == "caller_asked"
    assert transcript.turns[0].text == "Was kostet ein Personalausweis?"
    assert transcript.redacted("Meine Nummer ist 0171 2345678") == ""
    kept = CallTranscript(channel="sip", store=store, redactor=record_redactor(Settings()))
    assert kept.redacted("Meine Nummer ist 0171 2345678") == "Meine Nummer ist [Telefonnummer]"
