"""One typed settings object for the whole hotline.

Every tunable lives here with its *embedded default* (CPU, offline, this repository's sample data), so that a
municipal IT department reads one file to know what it can change. Values come, in rising priority, from these
defaults, a TOML file (``voicebot.toml`` in the working directory or the path in ``VOICEBOT_CONFIG``) and
environment variables (``VOICEBOT_<SECTION>__<FIELD>``, e.g. ``VOICEBOT_LLM__BASE_URL``). A ``VOICEBOT_*`` variable
that names no setting is an error (:class:`UnknownSettingError`), like an unknown key in the TOML file.

Relative paths (``paths.*``) are taken from one root, :func:`settings_root`, never from the working directory.

Passwords and keys are ``SecretStr``: ``repr``, ``str`` and ``model_dump()`` show ``**********``, so a settings
object in a log line or an error never discloses them; the one place that uses a secret calls
``.get_secret_value()``.

The ``llm``, ``retrieval`` and ``answer`` sections are the knowledge library's own config classes
(``knowledge/config.py``, where their fields and defaults are written once); :meth:`Settings.knowledge` hands
them to the library, which never imports this module.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from knowledge.config import SAMPLE_KB_DIR, AnswerConfig, KnowledgeConfig, LlmConfig, RetrievalConfig
from voicebot.privacy.redact import CATEGORIES as REDACTION_CATEGORIES
from voicebot.staff.calendar import OfficeCalendar

ENV_PREFIX = "VOICEBOT_"
# Variables with the prefix that are not settings: the configuration file, the root of relative paths, and the
# test suite's own (``VOICEBOT_TEST_*``).
CONFIG_VARIABLE = "VOICEBOT_CONFIG"
HOME_VARIABLE = "VOICEBOT_HOME"
_NOT_SETTINGS = (CONFIG_VARIABLE, HOME_VARIABLE)
_NOT_SETTINGS_PREFIX = "VOICEBOT_TEST_"


def config_file() -> Path:
    """The TOML file settings are read from if it exists: ``VOICEBOT_CONFIG``, else ``./voicebot.toml``."""
    return Path(os.environ.get(CONFIG_VARIABLE, "voicebot.toml"))


def _source_checkout() -> Path | None:
    """The repository root when this package runs from a source checkout (``pip install -e``), else None."""
    root = Path(__file__).resolve().parent.parent
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:  # installed into site-packages: no project file next to the package
        return None
    return root if '\nname = "voicebot"\n' in project else None


def settings_root() -> Path:
    """The folder relative ``paths.*`` settings are taken from, the same from whichever folder a command runs:

    the configuration file's folder when one is used; else ``VOICEBOT_HOME`` when set; else the repository
    root of a source checkout; else (an installed package) the working directory.
    """
    config = config_file()
    if config.is_file():
        return config.resolve().parent
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home).expanduser().resolve()
    return _source_checkout() or Path.cwd()


class UnknownSettingError(ValueError):
    """A ``VOICEBOT_*`` environment variable that names no setting (a typo would otherwise be ignored)."""


class _Section(BaseModel):
    """Base of every settings section: an unknown key (a typo in voicebot.toml or the environment) is an
    error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PathSettings(_Section):
    """Where models, the search index and call records live. Relative paths are made absolute against
    :func:`settings_root` (the configuration file's folder, ``VOICEBOT_HOME``, or the checkout), never the
    working directory, so every command finds the same models and index from any folder."""

    models_dir: Path = Path("var/models")
    index_dir: Path = Path("var/index")
    # The embedded database (SQLite, WAL) of call records, queue, call-backs and staff; database_url overrides it.
    database_file: Path = Path("var/voicebot.db")
    # JSON call records: the database's fallback while it cannot be written, and what `voicebot db import-json`
    # reads by default (where records lived before the database).
    calls_dir: Path = Path("var/calls")
    kb_sources: list[Path] = Field(default_factory=lambda: [SAMPLE_KB_DIR])
    # Corrections (issue 11, decision 0940): the pages of approved corrections, written by the console and
    # ingested one at a time; `voicebot kb ingest` without paths indexes this folder too.
    corrections_dir: Path = Path("var/corrections")
    # Records of `voicebot call` (simulated calls from WAV files): kept apart from the real calls' records.
    simulated_calls_dir: Path = Path("var/calls-simulated")
    # The key that signs staff sign-in sessions when http.session_secret is not set: made on first start (mode 0600).
    session_secret_file: Path = Path("var/session-secret")
    # Audio recordings of calls whose caller consented (privacy.recording; decision 0970): <call id>-anrufer.wav
    # and <call id>-bot.wav, named only by the server-minted call id.
    recordings_dir: Path = Path("var/recordings")

    @model_validator(mode="after")
    def _absolute(self) -> PathSettings:
        root = settings_root()
        names = (
            "models_dir",
            "index_dir",
            "database_file",
            "calls_dir",
            "corrections_dir",
            "simulated_calls_dir",
            "session_secret_file",
            "recordings_dir",
        )
        for name in names:
            path = getattr(self, name)
            if not path.is_absolute():
                setattr(self, name, root / path)
        self.kb_sources = [path if path.is_absolute() else root / path for path in self.kb_sources]
        return self


# Whisper's vocabulary prompt: the service words callers name. Without the town header that it had until
# decision 0404 ("Rathaus Musterstadt, Bürgerbüro:"), which whisper-base copied into unclear audio.
SERVICE_WORDS_PROMPT = (
    "Bürgerbüro, Personalausweis, Reisepass, Meldebescheinigung, Ummeldung, Führungszeugnis, Fundbüro, Standesamt, "
    "Hundesteuer, Grundsteuer, Gewerbeanmeldung, Sperrmüll, Anwohnerparken, Wohngeld, Kita."
)
# The prompt before decision 0404, kept to measure against (`voicebot bench asr --compare-prompt`).
TOWN_AND_SERVICE_WORDS_PROMPT = (
    "Rathaus Musterstadt, Bürgerbüro: Personalausweis, Reisepass, Meldebescheinigung, Ummeldung, Führungszeugnis, "
    "Fundbüro, Standesamt, Hundesteuer, Grundsteuer, Gewerbeanmeldung, Sperrmüll, Anwohnerparken, Wohngeld, Kita."
)


class AsrSettings(_Section):
    """faster-whisper. On 8 kHz phone audio temperature fallback loops, hence temperature 0 + anti-repetition."""

    # A directory name under paths.models_dir, or an absolute CTranslate2 directory.
    model: str = "whisper-base"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    temperature: float = 0.0
    no_repeat_ngram_size: int = 3
    repetition_penalty: float = 1.2
    # Encoder window just longer than the utterance instead of Whisper's fixed 30 s (≈ 7× less encoder time).
    adaptive_window: bool = True
    min_window_s: int = 8
    language: str = "de"
    detect_language: bool = False
    languages: list[str] = Field(default_factory=lambda: ["de", "en", "tr", "ar", "uk", "ru", "pl"])
    # Vocabulary prompt for the default language ("" = none). The service words help short requests
    # ("Sperrmüll.") and cost nothing measurable on whole questions; the town header did harm (decision 0404).
    initial_prompt: str = SERVICE_WORDS_PROMPT
    # Utterances of concurrent calls decoded together by the process's one ASR worker (decision 0990).
    max_batch: int = Field(default=16, ge=1)


class TtsSettings(_Section):
    """Piper when a voice for the caller's language is installed, else espeak-ng (German on the embedded default)."""

    piper_voices: dict[str, str] = Field(
        default_factory=lambda: {"de": "de_DE-thorsten-medium", "en": "en_US-joe-medium"}
    )
    espeak_voices: dict[str, str] = Field(
        default_factory=lambda: {
            "de": "de",
            "en": "en",
            "tr": "tr",
            "ru": "ru",
            "uk": "uk",
            "ar": "ar",
            "pl": "pl",
        }
    )
    espeak_words_per_minute: int = 160


class LlmSettings(LlmConfig):
    """Any OpenAI-compatible endpoint: vLLM in production, llama.cpp server locally. None = no LLM configured.

    The fields (base_url, api_key, model, temperature, max_tokens, timeout_s, first_token_timeout_s) are defined
    by the knowledge library that reads them: :class:`knowledge.config.LlmConfig`.
    """


class RetrievalSettings(RetrievalConfig):
    """Hybrid BM25 + embedding retrieval fused by reciprocal rank.

    The fields (top_k, candidates, rrf_k, bm25_weight, embedding_weight, query_threads) are defined by the
    knowledge library that reads them: :class:`knowledge.config.RetrievalConfig`.
    """


class AnswerSettings(AnswerConfig):
    """How an answer is produced and when the bot gives up and hands off.

    The fields (mode, min_confidence, max_sentences, min_asr_confidence, llm_min_confidence, scope_examples,
    offer_more) are defined by the knowledge library that reads them: :class:`knowledge.config.AnswerConfig`.
    """


class CallSettings(_Section):
    """The call script: what the bot says, and when it waits, asks, repeats or ends."""

    # None: built from ``town``, ``privacy_url`` and ``sip.handoff_dtmf`` (AI disclosure, EU AI Act Art. 50; where
    # the data-protection notice is, GDPR Art. 13; how to reach a person), 7.8 s of espeak. "" says no greeting.
    # A text of its own: its first sentence is the disclosure (always heard), the rest can be talked over.
    greeting: str | None = None
    silence_prompt: str = "Sind Sie noch da?"
    silence_timeout_s: float = 8.0
    goodbye: str = "Vielen Dank für Ihren Anruf. Auf Wiederhören!"
    apology: str = "Entschuldigung, da ist bei mir etwas schiefgegangen."
    handoff_message: str = "Einen Moment bitte, ich verbinde Sie."
    # A hand-off nobody took (busy, declined, not answered in sip.transfer_timeout_s): said, then the offers.
    transfer_failed_message: str = (
        "Leider ist im Moment niemand erreichbar. Soll ich einen Rückruf für Sie notieren? "
        "Sagen Sie Ja oder drücken Sie die 1. Oder stellen Sie mir gern weiter Ihre Frage."
    )
    callback_key: str = (
        "1"  # the keypad digit that takes the call-back offer (the dialogue: section callback)
    )
    callback_phrases: list[str] = Field(
        default_factory=lambda: ["ja", "ja bitte", "gerne", "rückruf", "bitte zurückrufen"]
    )
    # The call-time limit does not cut a transfer in progress: it waits for the transfer's end this much longer.
    transfer_grace_s: float = 90.0
    max_call_s: float = 900.0  # then max_call_message is said and the call ends; 0 = no limit
    # Turn taking (Silero VAD + smart-turn v3) and answer timeouts of the voice pipeline.
    # False: the greeting's first sentence (the AI disclosure) is always heard in full; the caller may talk over
    # the rest, which stops it and is answered. True: the whole greeting can be talked over.
    greeting_interruptible: bool = False
    vad_confidence: float = 0.7
    vad_start_secs: float = 0.2
    vad_stop_secs: float = 0.2
    vad_min_volume: float = 0.6
    turn_max_silence_s: float = 1.5  # smart-turn says "incomplete": end the turn anyway after this silence
    # One thread per smart-turn run: with calls overlapping, two threads each oversubscribe the cores (decision 0990).
    turn_cpu_threads: int = 1
    answer_first_sentence_timeout_s: float = 6.0
    answer_timeout_s: float = 15.0
    max_consecutive_errors: int = 2  # then hand off instead of apologising again
    repeat_phrases: list[str] = Field(
        default_factory=lambda: [
            "wie bitte",
            "wiederholen",
            "nochmal bitte",
            "noch einmal bitte",
            "nicht verstanden",
        ]
    )
    goodbye_phrases: list[str] = Field(
        default_factory=lambda: ["tschüss", "auf wiederhören", "auf wiedersehen", "das war's", "das wars"]
    )
    # Said when a call reaches max_call_s, just before the bot hangs up (so the caller knows why).
    max_call_message: str = (
        "Die maximale Gesprächsdauer ist erreicht. Bitte rufen Sie bei Bedarf erneut an. Auf Wiederhören!"
    )
    # Operating (issue 13): said to a call still running when a graceful shutdown's sip.drain_timeout_s is over.
    drain_message: str = (
        "Der Dienst wird gleich neu gestartet. Bitte rufen Sie in einer Minute wieder an. Auf Wiederhören."
    )


# --- office hours and call-backs (issue 10; voicebot/staff/calendar.py, voicebot/pipeline/callback.py) ---------


class OfficeHoursSettings(_Section):
    """When staff can be reached (decision 0810). Outside these hours a hand-off is not rung through: the caller
    hears when the office opens again and is offered a call-back, due at the closing time of the next working day.

    ``hours``: ``"mo-fr 08:00-16:00; do 08:00-18:00"`` (a later entry replaces the hours of its days; several
    spans a day for a break: ``"mo 08:00-12:00 13:00-16:00"``). Nationwide public holidays are always closed;
    ``state_holidays`` names the state's own (NRW by default; see STATE_HOLIDAYS in voicebot/staff/calendar.py);
    ``closed_dates`` adds closing days: ``"2026-12-28"`` once, ``"12-24"`` every year."""

    # How the caller hears the office named: "<office> ist ab Montag um 8 Uhr wieder erreichbar."
    office: str = "Das Bürgerbüro"
    hours: str = "mo-fr 08:00-16:00; do 08:00-18:00"
    state_holidays: list[str] = Field(default_factory=lambda: ["fronleichnam", "allerheiligen"])
    closed_dates: list[str] = Field(default_factory=lambda: ["12-24", "12-31"])
    timezone: str = "Europe/Berlin"
    # Staff reachable at any hour (a 24/7 service centre): hand-offs are never diverted to a call-back for being
    # outside the hours (call-backs still fall due by them). The test suite sets it (tests/conftest.py).
    always_open: bool = False

    @model_validator(mode="after")
    def _readable(self) -> OfficeHoursSettings:
        self.calendar()  # CalendarError (a ValueError) names the part to fix
        return self

    def calendar(self) -> OfficeCalendar:
        return OfficeCalendar.from_spec(
            self.hours,
            state_holidays=self.state_holidays,
            closed_dates=self.closed_dates,
            timezone=self.timezone,
        )


class CallbackSettings(_Section):
    """The call-back dialogue (voicebot/pipeline/callback.py): offered after a hand-off nobody took and outside
    office hours; asks name and topic, the number (the caller's own, or typed/spoken digits, read back and
    confirmed) and stores the request with its due time. ``{office}``, ``{when}``, ``{digits}``, ``{due}`` are
    filled in."""

    closed_message: str = "{office} ist ab {when} wieder erreichbar."
    closed_no_opening_message: str = "{office} ist im Moment nicht erreichbar."
    offer: str = "Soll ich einen Rückruf für Sie notieren? Sagen Sie Ja oder drücken Sie die 1."
    ask_name: str = "Gern. Wie ist Ihr Name? Wenn Sie ihn nicht nennen möchten, drücken Sie die Raute."
    ask_topic: str = "Worum geht es, in einem kurzen Satz?"
    offer_own_number: str = (
        "Soll ich Sie unter der Nummer {digits} zurückrufen, von der Sie anrufen? "
        "Sagen Sie Ja oder drücken Sie die 1, sonst die 2."
    )
    ask_number: str = (
        "Unter welcher Nummer erreichen wir Sie? Tippen Sie die Nummer ein und dann die Raute, "
        "oder sagen Sie die Ziffern."
    )
    read_back: str = "Ich habe die Nummer {digits} verstanden. Ist das richtig? Sagen Sie Ja oder drücken Sie die 1, sonst die 2."
    invalid_number: str = "Das ist leider keine vollständige Telefonnummer."
    give_up: str = (
        "Leider konnte ich die Nummer nicht aufnehmen. Bitte rufen Sie zu den Öffnungszeiten wieder an. "
        "Haben Sie noch eine Frage?"
    )
    confirmed: str = "Vielen Dank, Ihr Rückrufwunsch ist notiert. Wir rufen Sie bis {due}, zurück. Haben Sie noch eine Frage?"
    declined: str = "Gut. Stellen Sie mir gern weiter Ihre Frage."
    # A transfer fails after this call's call-back was noted (no second offer).
    failed_after_callback: str = (
        "Leider ist im Moment niemand erreichbar. Ihr Rückrufwunsch ist bereits notiert."
    )
    # Tries at the number (a wrong read-back, an invalid number) before the bot gives up.
    max_number_attempts: int = Field(default=3, ge=1)
    # Words that end the dialogue without a call-back (a goodbye, call.goodbye_phrases, ends the call as always).
    cancel_phrases: list[str] = Field(
        default_factory=lambda: ["abbrechen", "kein rückruf", "doch keinen rückruf", "doch nicht"]
    )
    # Words that answer the bot's yes/no questions in the dialogue (keys: 1 yes, 2 no).
    yes_phrases: list[str] = Field(
        default_factory=lambda: ["ja", "ja bitte", "gerne", "genau", "richtig", "stimmt", "korrekt", "passt"]
    )
    no_phrases: list[str] = Field(
        default_factory=lambda: [
            "nein",
            "nein danke",
            "falsch",
            "stimmt nicht",
            "nicht richtig",
            "andere nummer",
        ]
    )


class StaffGroup(_Section):
    """A staff group: the departments whose questions it takes (as the pages' ``department`` names them; a
    sub-unit such as "Ordnungsamt – Gewerbe" belongs to "Ordnungsamt") and the SIP URI a hand-off goes to.
    ``office_hours``: the group's own calendar (None: the ``office_hours`` section)."""

    name: str
    departments: list[str] = Field(default_factory=list)
    staff_uri: str
    office_hours: OfficeHoursSettings | None = None
    # "pbx": a hand-off goes to staff_uri (REFER, else bridged), the PBX queues. "queue": the bot's own queue
    # (voicebot/telephony/queue.py): the caller waits with the bot until staff accepts in the console.
    mode: Literal["pbx", "queue"] = "pbx"


class HandoffSettings(_Section):
    """When the bot hands a caller to a person, and to which staff group (voicebot/handoff_policy.py)."""

    # Words that ask for a person, heard anywhere in a caller turn (the answer engine's guard hears more forms).
    person_phrases: list[str] = Field(
        default_factory=lambda: [
            "mitarbeiter sprechen",
            "mitarbeiterin sprechen",
            "mit einem menschen",
            "einen menschen sprechen",
            "echten menschen",
            "person sprechen",
        ]
    )
    # Words that show the bot is not helping: the caller goes to a person at once.
    frustration_phrases: list[str] = Field(
        default_factory=lambda: [
            "das hilft mir nicht",
            "hilft mir nicht weiter",
            "sie verstehen mich nicht",
            "du verstehst mich nicht",
            "quatsch",
            "unsinn",
            "das bringt nichts",
        ]
    )
    # "Wie bitte?" (call.repeat_phrases) this many times in a row hands off; the earlier ones repeat. 0 = never.
    max_repeat_requests: int = 2
    # This many turns in a row understood unsurely (ASR confidence below min_asr_confidence) or answered unsurely
    # (answer confidence below min_answer_confidence) hand off. 0 = never.
    low_confidence_turns: int = 2
    min_asr_confidence: float = 0.35
    min_answer_confidence: float = 0.5
    # Staff groups by topic; a page whose department no group serves goes to default_group (by name), and where
    # that names no group, to sip.staff_uri.
    groups: list[StaffGroup] = Field(default_factory=list)
    default_group: str = ""


class QueueSettings(_Section):
    """The bot's own queue for staff groups with ``mode = "queue"`` (voicebot/telephony/queue.py, decision 0800)."""

    # Position and estimated wait are said at once, then every this many seconds; hold audio in between.
    announce_interval_s: float = Field(default=30.0, gt=0)
    # Hold audio between announcements: a mono 16-bit WAV at 8 or 16 kHz (checked when `voicebot serve` starts);
    # None plays the chime the project generates itself (voicebot/pipeline/hold_audio.py).
    hold_audio_file: Path | None = None
    # After this long in the queue the wait ends: the caller is told nobody is free and offered a call-back.
    max_wait_s: float = Field(default=300.0, gt=0)
    # Assumed staff time per caller, in seconds: the estimated wait is position ÷ members available (rounded up)
    # × this.
    handling_time_s: float = Field(default=180.0, gt=0)
    # How often a process holding callers looks for accepted ones (PostgreSQL also wakes it with NOTIFY at once).
    poll_interval_s: float = Field(default=2.0, gt=0)
    # Which server holds a queued caller (stored with the entry); a restarted server abandons its own old
    # entries. Empty: "sip:<sip.public_host or bind_host>:<sip.port>". Set it when several servers share a port.
    instance_name: str = ""
    # Staff may take a waiting caller in the console's browser (WebRTC audio, decision 0850) when the console runs
    # in the process that holds the caller; the browser must connect within browser_connect_timeout_s, else the
    # caller waits on in place.
    browser_accept: bool = True
    browser_connect_timeout_s: float = Field(default=15.0, gt=0, le=120)

    @model_validator(mode="after")
    def _absolute(self) -> QueueSettings:
        if self.hold_audio_file is not None and not self.hold_audio_file.is_absolute():
            self.hold_audio_file = settings_root() / self.hold_audio_file
        return self


# --- data protection (issue 11; voicebot/privacy/, decisions 0920-0923) -----------------------------------------


class PrivacySettings(_Section):
    """What a town's data protection officer decides: what is taken out of stored transcripts, and how long
    call records, call-backs and the audit log are kept (docs/data-protection.md)."""

    # Replaced by a placeholder before a turn or event is written (voicebot/privacy/redact.py): any of email,
    # iban, tax_id, id_card, birth_date, phone. [] stores what was said as heard.
    redact: list[str] = Field(default_factory=lambda: list(REDACTION_CATEGORIES))
    # False: what callers and the bot said is not stored at all (turns keep kind, action, sources, timings; the
    # queue's summary then has no request text). The review's search and timeline show empty turns.
    store_transcripts: bool = True
    # Call records (calls, turns, events, their queue entries; JSON fallback files) are deleted this many days
    # after their last change. A call with a call-back that is still kept stays with it.
    transcript_days: int = Field(default=30, ge=1)
    # Finished call-backs (done, failed) are deleted this many days after they were finished; open and claimed
    # ones never.
    callback_days: int = Field(default=30, ge=1)
    # Audit log entries (who opened, exported or deleted what; retention runs) are kept this many days.
    audit_days: int = Field(default=365, ge=1)
    # `voicebot serve` runs the retention job on start and then every this many hours (0: only by the command).
    retention_interval_h: float = Field(default=24.0, ge=0)
    # Recording (issue 11, decision 0970): off by default. On, the bot asks after the greeting; only keypad 1 or a
    # yes phrase as the caller's next turn records the call's audio from then on (paths.recordings_dir).
    recording: bool = False
    recording_days: int = Field(default=7, ge=1)  # recordings are deleted this many days after the call
    recording_question: str = (
        "Dürfen wir dieses Gespräch zur Qualitätssicherung aufzeichnen? "
        "Drücken Sie die 1 oder sagen Sie Ja. Sonst zeichnen wir nichts auf."
    )
    recording_key: str = "1"
    recording_phrases: list[str] = Field(default_factory=lambda: ["ja", "ja gerne", "einverstanden"])
    # A recording stops after this many seconds (None: call.max_call_s, or 900 s where that is 0).
    recording_max_s: float | None = Field(default=None, gt=0)

    @field_validator("redact")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in REDACTION_CATEGORIES]
        if unknown:
            raise ValueError(
                f"unknown redaction categories {unknown}; choose from {', '.join(REDACTION_CATEGORIES)}"
            )
        return list(dict.fromkeys(value))


class SipSettings(_Section):
    """SIP user agent and RTP media. Bind to loopback by default; a PBX-facing host must be set explicitly."""

    bind_host: str = "127.0.0.1"
    port: int = 5060
    transports: list[Literal["udp", "tcp"]] = ["udp", "tcp"]  # pydantic copies list defaults per instance
    public_host: str | None = None  # address written into Contact/SDP when it differs from bind_host
    user: str = "hotline"
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    codecs: list[str] = Field(default_factory=lambda: ["opus", "G722", "PCMA", "PCMU"])
    # 8 on the embedded default on 2 cores: the most that measured without a failed call (decision 0990); above it a
    # call gets 503 and Kamailio (deploy/kamailio) sends it to another process.
    max_calls: int = 8
    retry_after_s: int = 30
    invites_per_source_per_minute: int = 30
    allowed_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    rtp_inactivity_timeout_s: float = 30.0
    max_message_bytes: int = 65535  # larger SIP datagrams/messages are dropped (and logged once per minute)
    # Registration to a PBX as an extension (optional).
    registrar: str | None = None
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    register_expires_s: int = 600
    # Digest challenge of inbound INVITEs (optional).
    inbound_realm: str | None = None
    inbound_username: str | None = None
    inbound_password: SecretStr | None = None
    # Hand-off target.
    staff_uri: str = "sip:staff@127.0.0.1:5070"
    # A PBX queue hand-off carries its summary reference (Call-Info, User-to-User) on the REFER; with this on, also
    # escaped into the Refer-To URI, so a transferee that honours URI headers (RFC 3261 19.1.5) copies them onto
    # its INVITE. Off by default: a transferee that does not (baresip 1.0) sends them in its Request-URI instead.
    refer_to_headers: bool = False
    # Each step of a hand-off (the REFER, then the bot's own INVITE to staff) waits at most this long; a staff phone
    # that rings longer counts as not answered (the INVITE is CANCELled). The caller hears ringback meanwhile.
    transfer_timeout_s: float = 25.0
    handoff_dtmf: str = "0"  # keypad digits that ask for a human (say the hand-off sentence, then transfer)
    # Let it ring (180) this long before answering; 0 = answer as soon as the call is ready.
    ring_s: float = 0.0
    # Trunk networks (CIDR; a PBX/SBC sends every call from one address): also allowed (added to allowed_networks
    # unless that is empty), no per-source INVITE rate, no digest lockout.
    trusted_networks: list[str] = Field(default_factory=list)
    tcp_max_connections: int = 256  # inbound SIP TCP connections in total; more are closed at accept
    tcp_max_connections_per_source: int = 16  # per source address; more are closed at accept
    tcp_idle_timeout_s: float = 30.0  # no message or CRLF keep-alive for this long and no call on it → closed
    tcp_read_timeout_s: float = 10.0  # a started message must be complete within this (slowloris) → closed
    inbound_nonce_ttl_s: float = 300.0  # lifetime of a digest nonce we issue (then 401 with stale=true)
    inbound_auth_max_failures: int = 10  # wrong digest answers within the window that lock the username out
    inbound_auth_failure_window_s: float = 60.0  # the window those wrong answers are counted in
    inbound_auth_lockout_s: float = 300.0  # how long a locked-out username gets 503 + Retry-After
    # Digest algorithms offered to callers, in this order (RFC 8760); ["MD5"] for a PBX that reads only the first.
    inbound_digest_algorithms: list[Literal["SHA-256", "MD5"]] = ["SHA-256", "MD5"]
    # Server/User-Agent header value: a name without version (nothing to fingerprint); "" leaves it out.
    server_header: str = "voicebot"
    # RTP from another address than the caller's SDP names (NAT): "strict" takes it only after 5 consecutive packets
    # while the SDP address is silent, "off" hears the SDP address only (sources outside the RTP networks never).
    rtp_latching: Literal["off", "strict"] = "strict"
    # RTP packets the bot may send to the caller's SDP address before the caller has sent any (0: wait, so a forged
    # SDP cannot aim the bot's audio at a third party). The bot's own calls to staff_uri are not limited.
    rtp_packets_before_receive: int = Field(default=0, ge=0)
    # Networks RTP may come from (and go to); None: allowed_networks plus trusted_networks. Set it when the PBX lets
    # phones or media gateways in other networks send media directly (direct media); empty allows every source.
    rtp_allowed_networks: list[str] | None = None
    # Operating (issue 13, decision 0900): on SIGTERM new calls get 503 + Retry-After (OPTIONS too, /readyz 503);
    # calls in progress go on this long, then hear call.drain_message and get a BYE; then the process exits 0.
    drain_timeout_s: float = Field(default=120.0, ge=0)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    # PBX queue hand-off (issue 10): the address staff open the console at, as their browsers reach it (e.g.
    # "https://hotline.musterstadt.de" behind the TLS proxy). The summary link a hand-off carries in its Call-Info
    # header starts with it. None: http://host:port (right for a console on this machine only).
    public_url: str | None = None
    # /docs and /openapi.json describe the API to anyone who asks: for development only.
    api_docs: bool = False
    # Larger request bodies get 413 before they are read (an SDP offer is a few kB).
    max_body_bytes: int = 64 * 1024
    # A request body not complete after this long gets 408 (slow senders must not hold connections).
    body_timeout_s: float = 10.0
    # A connection that sends no complete request head in this time (idle or trickling) is closed.
    head_timeout_s: float = 10.0
    # A browser offer whose ICE/DTLS does not connect in this time is closed; only connected calls take a line.
    offer_connect_timeout_s: float = 10.0
    # Offers waiting for their browser to connect, in all (then 503 + Retry-After) and per address (then 429).
    max_pending_offers: int = 4
    max_pending_offers_per_source: int = 2
    # Operating (issue 13, decision 0900): the networks (CIDR) /metrics answers to (others get 403); the
    # Prometheus server's address goes here. Loopback only by default.
    metrics_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client; empty: the TCP peer counts.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Staff console sign-in: the key that signs session cookies (None: paths.session_secret_file, made on first
    # start; several processes behind one address need the same key), how long a session lasts, and whether the
    # cookie is marked Secure ("auto": when the request came over https, e.g. from a TLS proxy in trusted_proxies).
    session_secret: SecretStr | None = None
    session_max_age_s: int = Field(default=8 * 3600, gt=0)
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    # Wrong passwords for one user name, or from one address, within the lockout time that lock sign-in for it.
    sign_in_max_failures: int = Field(default=5, ge=1)
    sign_in_lockout_s: float = Field(default=300.0, gt=0)
    # Staff console (voicebot/web/staff_queue.py): the time zone its times are shown in (an IANA name), how often
    # an open console asks for the live queue (seconds), and how many waiting callers one page shows at most.
    console_timezone: str = "Europe/Berlin"
    console_poll_s: float = Field(default=1.0, ge=0.5, le=30.0)
    console_max_entries: int = Field(default=50, ge=1, le=500)
    # With an [llm] endpoint, the model writes the caller's request in the console's summary (shown only when the
    # turns back it, voicebot/staff/summary_llm.py); false keeps the sentence built from the turns.
    console_llm_summary: bool = True

    @model_validator(mode="after")
    def _known_timezone(self) -> HttpSettings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.console_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"http.console_timezone: unknown time zone {self.console_timezone!r} (e.g. Europe/Berlin)"
            ) from None
        return self

    @field_validator("metrics_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is no network (write e.g. 10.0.0.5/32 or 10.0.0.0/24)"
                ) from None
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~%!$&'()*+,;=:@/\-]*)?", value):
            raise ValueError("write it as http(s)://HOST[:PORT][/PATH], without spaces, quotes or a query")
        return value

    def console_url(self) -> str:
        """Where staff reach the console: ``public_url``, else ``http://host:port``."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class Settings(BaseSettings):
    """All configuration of one hotline instance."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEBOT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    town: str = "Musterstadt"
    # The town's data-protection notice: linked from the /call page; the phone greeting names its host.
    privacy_url: str = "https://musterstadt.example/datenschutz"
    log_level: str = "INFO"
    # Logging (decision 0912): "text" lines for a person at a terminal (embedded default); "json" one object per
    # line (time, level, message, component, call_id) for a log collector. Caller words are logged at DEBUG only.
    log_format: Literal["text", "json"] = "text"
    # PostgreSQL in production (its URL holds the password); None keeps everything in SQLite (paths.database_file).
    database_url: SecretStr | None = None
    paths: PathSettings = Field(default_factory=PathSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    call: CallSettings = Field(default_factory=CallSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    office_hours: OfficeHoursSettings = Field(default_factory=OfficeHoursSettings)
    callback: CallbackSettings = Field(default_factory=CallbackSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_environment(os.environ)
        config = config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    def knowledge(self) -> KnowledgeConfig:
        """The knowledge library's part of the settings (its sections are shared, not copied)."""
        return KnowledgeConfig(
            town=self.town,
            index_dir=self.paths.index_dir,
            # approved corrections are a source too (decision 0940): a fresh index built at start keeps them
            kb_sources=tuple(dict.fromkeys([*self.paths.kb_sources, self.paths.corrections_dir])),
            retrieval=self.retrieval,
            answer=self.answer,
            llm=self.llm,
        )

    def resolved_answer_mode(self) -> Literal["llm", "extractive"]:
        return self.knowledge().resolved_answer_mode()


def _environment_names() -> tuple[set[str], tuple[str, ...]]:
    """Every ``VOICEBOT_*`` name of a setting, and the prefixes under which any name is one (dict settings)."""
    names: set[str] = set()
    open_prefixes: list[str] = []
    for field_name, field in Settings.model_fields.items():
        top = f"{ENV_PREFIX}{field_name.upper()}"
        names.add(top)  # a whole section as JSON is accepted too
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for sub_name, sub_field in section.model_fields.items():
                names.add(f"{top}__{sub_name.upper()}")
                if getattr(sub_field.annotation, "__origin__", None) is dict:
                    open_prefixes.append(f"{top}__{sub_name.upper()}__")
    return names, tuple(open_prefixes)


def unknown_environment_settings(environ: Mapping[str, str]) -> list[str]:
    """One message per ``VOICEBOT_*`` variable of ``environ`` that names no setting, with the closest one."""
    names, open_prefixes = _environment_names()
    problems = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS or name.startswith(_NOT_SETTINGS_PREFIX):
            continue
        if name in names or name.startswith(open_prefixes):
            continue
        closest = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
        hint = (
            f" (did you mean {closest[0]}?)" if closest else " (see voicebot/settings.py for every setting)"
        )
        problems.append(f"unknown setting {variable}{hint}")
    return problems


def check_environment(environ: Mapping[str, str]) -> None:
    """Raise :class:`UnknownSettingError` naming every ``VOICEBOT_*`` variable that is not a setting."""
    problems = unknown_environment_settings(environ)
    if problems:
        raise UnknownSettingError("; ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings(...)`` instead)."""
    return Settings()
