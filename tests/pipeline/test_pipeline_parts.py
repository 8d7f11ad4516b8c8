"""The pipeline's parts on their own: espeak-ng, voices, resampling, phrase matching, transcript, WER, CLI errors."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import numpy as np
import pytest
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler
from pipecat.frames.frames import InputDTMFFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test
from typer.testing import CliRunner

from knowledge.types import Action, Answer
from voicebot.benchmarks.asr import asterisk_prompts, mulaw_roundtrip, normalise_words, word_edits
from voicebot.benchmarks.caller_audio import compose_call
from voicebot.cli import app
from voicebot.metrics import METRICS
from voicebot.models import ModelMissingError, require_model
from voicebot.pipeline.audio import DcBlocker, LowLatencyResampler
from voicebot.pipeline.call_script import (
    GreetingSpeaker,
    HandoffDesk,
    HandoffGate,
    HandoffKeyListener,
    matches_phrase,
)
from voicebot.pipeline.espeak import EspeakVoice, _EspeakBinary, espeak_engine, synthesize_blocks
from voicebot.pipeline.frames import AsrResult, BotTurnEndFrame, CallerQuestionFrame, HandoffRequestFrame
from voicebot.pipeline.playout import PlayoutTracker
from voicebot.pipeline.resources import CallResources, load_whisper, whisper_model_dir
from voicebot.pipeline.transcript import CallTranscript
from voicebot.pipeline.tts import VoiceCatalog
from voicebot.pipeline.whisper_decode import strip_prompt_echo, transcribe_pcm
from voicebot.settings import (
    TOWN_AND_SERVICE_WORDS_PROMPT,
    AsrSettings,
    CallSettings,
    PathSettings,
    Settings,
    StaffGroup,
    TtsSettings,
)
from voicebot.simulate import read_wav, speech_segments


def test_espeak_speaks_german_in_process_and_through_the_binary() -> None:
    in_process = np.frombuffer(
        b"".join(synthesize_blocks("Guten Tag, Bürgerbüro.", EspeakVoice("de"))), np.int16
    )
    sink: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    _EspeakBinary().synthesize("Guten Tag, Bürgerbüro.", EspeakVoice("de"), sink)
    binary = np.frombuffer(b"".join(iter(sink.get, None)), np.int16)
    assert type(espeak_engine()).__name__ == "_EspeakLibrary"
    for pcm in (in_process, binary):
        seconds = len(pcm) / espeak_engine().sample_rate
        assert 0.8 < seconds < 4.0
        assert np.abs(pcm.astype(np.int32)).max() > 3000


def test_voice_catalog_uses_piper_where_installed_and_espeak_otherwise(
    embedded_models_dir: Path, tmp_path: Path
) -> None:
    catalog = VoiceCatalog(TtsSettings(), embedded_models_dir)
    assert catalog.voice_for("en").name == "piper:en_US-joe-medium"
    assert catalog.voice_for("de").name == "espeak:de"  # no German Piper voice is shipped
    assert catalog.fallback_for("en").name == "espeak:en"
    english = b"".join(catalog.voice_for("en").blocks("Hello, this is the town hall."))
    assert len(english) > 0.5 * 2 * catalog.voice_for("en").sample_rate

    broken = tmp_path / "piper"
    broken.mkdir()
    (broken / "en_US-joe-medium.onnx").write_bytes(b"not a model")
    (broken / "en_US-joe-medium.onnx.json").write_text("{}")
    assert VoiceCatalog(TtsSettings(), tmp_path).voice_for("en").name == "espeak:en"


def test_low_latency_resampler_returns_every_packet_unlike_the_default_stream() -> None:
    rate_in, packet = 8000, 160  # 20 ms at 8 kHz
    speech = compose_call(["Wo ist das Fundbüro?"], rate_in).audio
    ours = LowLatencyResampler(16000)
    default = SOXRStreamAudioResampler()  # pipecat's default: soxr "VHQ"
    ours_sizes, default_sizes = [], []
    for start in range(0, len(speech) - packet, packet):
        chunk = speech[start : start + packet]
        ours_sizes.append(len(ours.resample(chunk, rate_in)))
        default_sizes.append(
            len(np.asarray(default._maybe_initialize_sox_stream(rate_in, 16000).resample_chunk(chunk)))
        )
    assert min(ours_sizes[1:]) > 0
    assert default_sizes.count(0) > len(default_sizes) // 2  # bursts: most packets come back empty
    assert abs(sum(ours_sizes) - 2 * packet * len(ours_sizes)) < 64


def test_dc_blocker_removes_a_constant_offset() -> None:
    blocker = DcBlocker()
    blocks = [np.full(320, 9000, dtype=np.int16) + np.int16(i % 3) for i in range(60)]
    out = [blocker.process(block) for block in blocks]
    assert abs(float(out[-1].mean())) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tschüss, auf Wiederhören.", True),
        ("Auf Wiederhöhren.", True),
        ("Auf Wiedersehen und Wiederhören sind Wörter", False),
        ("Das war's, danke!", True),
        ("Auf Wiedersehen", True),
        ("Ich habe eine Frage zur Hundesteuer, tschüss ist das nicht, die Anmeldung meine ich", False),
        ("Wann hat das Bürgerbüro geöffnet?", False),
    ],
)
def test_goodbye_detection(text: str, expected: bool) -> None:
    assert matches_phrase(text, CallSettings().goodbye_phrases) is expected


def test_repeat_detection() -> None:
    phrases = CallSettings().repeat_phrases
    assert matches_phrase("Wie bitte?", phrases, max_extra_words=5)
    assert matches_phrase("Das habe ich nicht verstanden, wie bitte.", phrases, max_extra_words=5)
    assert not matches_phrase("Wie beantrage ich einen neuen Personalausweis für meine Tochter?", phrases)


def test_transcript_is_written_continuously_and_records_barge_in(tmp_path: Path) -> None:
    transcript = CallTranscript(tmp_path, channel="simulation")
    path = tmp_path / f"{transcript.call_id}.json"
    assert json.loads(path.read_text())["turns"] == []
    greeting = transcript.add_bot_turn("greeting", "Guten Tag.", interruptible=False)
    assert not transcript.mark_interrupted()  # the notice is always heard in full
    transcript.bot_turn_played(transcript.index_of(greeting))
    asr = AsrResult("Wo ist das Fundbüro?", "de", -0.3, 0.05, 1.8, 350.0)
    transcript.add_caller_question(CallerQuestionFrame(text=asr.text, language="de", asr=[asr]))
    answer_turn = transcript.add_bot_turn("answer", "")
    transcript.append_bot_text(answer_turn, "Das Fundbüro ist im Rathaus.")
    transcript.finish_answer(
        answer_turn,
        Answer("Das Fundbüro ist im Rathaus.", Action.ANSWER, 0.8, ["fundbuero"]),
        {"retrieval": 12.0},
    )
    assert transcript.mark_interrupted()
    on_disk = json.loads(path.read_text())
    assert [t["kind"] for t in on_disk["turns"]] == ["greeting", "question", "answer"]
    assert on_disk["turns"][1]["asr_confidence"] == pytest.approx(asr.confidence)
    assert on_disk["turns"][2]["interrupted"] and on_disk["turns"][2]["sources"] == ["fundbuero"]
    assert transcript.last_answer_text() == "Das Fundbüro ist im Rathaus."
    assert [t.role for t in transcript.history()] == ["caller", "bot"]


async def test_the_call_record_says_the_ai_disclosure_was_played_in_full() -> None:
    transcript = CallTranscript(channel="simulation", channel_call_id="disclosure")
    greeting = "Hier ist der KI-Assistent von Musterstadt. Ihre Frage bitte."
    speaker = GreetingSpeaker(transcript=transcript, call=CallSettings(), greeting=greeting)
    down, _up = await run_test(Pipeline([speaker, PlayoutTracker(transcript=transcript)]), frames_to_send=[])
    spoken = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert spoken == ["Hier ist der KI-Assistent von Musterstadt.", "Ihre Frage bitte."]
    events = [e for e in transcript.events if e["kind"] == "ai_disclosure"]
    assert len(events) == 1 and events[0]["played"] is True and events[0]["turn"] == 0
    transcript.end("goodbye")  # the end of the call adds no second disclosure event
    assert [e["kind"] for e in transcript.events].count("ai_disclosure") == 1


def test_the_call_record_says_when_the_caller_hung_up_during_the_disclosure() -> None:
    clock = [0.0]
    transcript = CallTranscript(channel="simulation", call_clock=lambda: clock[0])
    turn = transcript.add_bot_turn("greeting", "Hier ist der KI-Assistent.", interruptible=False)
    transcript.mark_disclosure(turn)
    transcript.bot_audio_started(time.time())
    clock[0] = 1.25  # the caller hangs up 1.25 s into the sentence; its end marker never reaches the output
    transcript.end("hangup")
    transcript.bot_turn_played(0)  # a late marker changes nothing
    (event,) = [e for e in transcript.events if e["kind"] == "ai_disclosure"]
    assert event["played"] is False and event["seconds"] == pytest.approx(1.25, abs=0.05)
    assert CallTranscript(channel="simulation").events == []  # a call without a disclosure records none


async def test_handoff_key_says_the_handoff_sentence_then_requests_a_handoff_once() -> None:
    transcript = CallTranscript(channel="simulation", channel_call_id="keys")
    settings = Settings()
    settings.call.handoff_message = "Ich verbinde Sie."
    listener = HandoffKeyListener(desk=HandoffDesk(settings, transcript, handoff_keys="0"))
    keys = [InputDTMFFrame(button=KeypadEntry(digit)) for digit in ("1", "0", "0")]
    counted = METRICS.registry.get_sample_value("voicebot_handoffs_total", {"reason": "handoff_key"}) or 0.0
    down, _up = await run_test(listener, frames_to_send=keys)
    # /metrics counts the hand-off once, by its reason
    assert (
        METRICS.registry.get_sample_value("voicebot_handoffs_total", {"reason": "handoff_key"}) == counted + 1
    )
    assert [str(f.button.value) for f in down if isinstance(f, InputDTMFFrame)] == ["1", "0", "0"]
    spoken = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    requests = [f for f in down if isinstance(f, HandoffRequestFrame)]
    assert spoken == ["Ich verbinde Sie."] and all(
        not f.interruptible for f in down if isinstance(f, TTSSpeakFrame)
    )
    assert [(r.reason, r.kind, r.summary, r.staff_uri) for r in requests] == [
        ("handoff_key", "handoff", "Anrufer hat 0 gedrückt", settings.sip.staff_uri)
    ]
    assert down.index(requests[0]) > max(
        down.index(f) for f in down if isinstance(f, TTSSpeakFrame | BotTurnEndFrame)
    )  # the request travels behind the sentence, so the transfer starts after the caller heard it
    assert [(t.role, t.kind, t.text) for t in transcript.turns] == [("bot", "handoff", "Ich verbinde Sie.")]
    assert [(e["kind"], e["reason"]) for e in transcript.events] == [("handoff_requested", "handoff_key")]


@pytest.mark.parametrize("transfers", [True, False], ids=["phone", "browser"])
async def test_frustration_hands_off_on_the_phone_and_is_answered_in_the_browser(transfers: bool) -> None:
    """The gate replaces a frustrated turn by the hand-off sentence and a request (reason recorded); where nobody
    can take the call (a browser call) it passes the turn on to be answered instead of promising a person."""
    transcript = CallTranscript(channel="simulation", channel_call_id="gate")
    settings = Settings()
    settings.handoff.groups = [
        StaffGroup(name="zentrale", departments=["Bürgerbüro"], staff_uri="sip:z@127.0.0.1")
    ]
    settings.handoff.default_group = "zentrale"
    gate = HandoffGate(desk=HandoffDesk(settings, transcript, transfers=transfers))
    question = CallerQuestionFrame(text="Das hilft mir nicht!", language="de")
    down, _up = await run_test(gate, frames_to_send=[question])
    requests = [f for f in down if isinstance(f, HandoffRequestFrame)]
    passed_on = [f for f in down if isinstance(f, CallerQuestionFrame)]
    if transfers:
        assert [(r.reason, r.group, r.staff_uri) for r in requests] == [
            ("frustration", "zentrale", "sip:z@127.0.0.1")
        ]
        assert not passed_on and [t.kind for t in transcript.turns] == ["handoff"]
        assert [(e["kind"], e["reason"], e["group"]) for e in transcript.events] == [
            ("handoff_requested", "frustration", "zentrale")
        ]
    else:
        assert not requests and passed_on == [question] and not transcript.events


def test_wer_normaliser_and_mulaw() -> None:
    assert normalise_words("Press 3, then the [pause] pound key.", "en") == [
        "press",
        "3",
        "then",
        "the",
        "pound",
        "key",
    ]
    assert normalise_words("Drücken Sie drei!", "de") == ["drücken", "sie", "3"]
    assert word_edits(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    speech = compose_call(["Guten Tag"], 8000).audio
    decoded = mulaw_roundtrip(speech)
    noise = decoded.astype(np.float64) - speech
    assert 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(noise**2)) > 25


def test_asterisk_prompts_come_with_their_texts() -> None:
    prompts = asterisk_prompts("en", 5)
    assert len(prompts) == 5
    assert all(wav.is_file() and len(text.split()) >= 4 for wav, text in prompts)


def test_speech_segments_find_bot_audio() -> None:
    call = compose_call([0.5, "Ja", 1.0, "Nein", 0.5], 16000)
    segments = speech_segments(call.audio, 16000)
    assert len(segments) == 2
    assert segments[0][0] == pytest.approx(call.utterances[0][1], abs=0.02)


def test_missing_whisper_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="voicebot models setup"):
        CallResources.load(Settings(paths=PathSettings(models_dir=tmp_path)))


def test_call_models_come_from_require_model(tmp_path: Path, embedded_models_dir: Path) -> None:
    """The registry says where a model lives and how it is installed; a production Whisper model that was not
    pulled names the pull command, not the setup of the embedded models."""
    production = Settings(
        paths=PathSettings(models_dir=tmp_path), asr=AsrSettings(model="whisper-large-v3-turbo")
    )
    with pytest.raises(ModelMissingError, match="voicebot models pull whisper-large-v3-turbo"):
        load_whisper(production)
    embedded = Settings(paths=PathSettings(models_dir=embedded_models_dir))
    assert whisper_model_dir(embedded) == require_model(embedded, "whisper-base")
    absolute = Settings(asr=AsrSettings(model=str(embedded_models_dir / "whisper-base")))
    assert whisper_model_dir(absolute) == embedded_models_dir / "whisper-base"


def test_call_command_rejects_bad_input_with_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["call", str(tmp_path / "nope.wav")])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output and len(missing.output.strip().splitlines()) == 1
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    broken = runner.invoke(app, ["call", str(not_audio)])
    assert broken.exit_code == 1 and "cannot read" in broken.output
    assert len(broken.output.strip().splitlines()) == 1


def test_prompt_echo_is_removed_but_vocabulary_words_stay() -> None:
    prompt = TOWN_AND_SERVICE_WORDS_PROMPT
    assert strip_prompt_echo("Rathaus Musterstadt, Bürgerbüro, ich brauche einen Ausweis", prompt) == (
        "ich brauche einen Ausweis",
        True,
    )
    assert strip_prompt_echo("Rathaus Musterstadt, Bürgerbüro.", prompt) == (
        "Rathaus Musterstadt, Bürgerbüro.",
        True,
    )
    assert strip_prompt_echo("Wo ist das Fundbüro?", prompt) == ("Wo ist das Fundbüro?", False)


def test_short_window_decoding_matches_the_standard_path_on_a_real_recording(
    embedded_models_dir: Path,
) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(embedded_models_dir / "whisper-base"), device="cpu", compute_type="int8", cpu_threads=2
    )
    pcm, rate = read_wav(Path("/usr/share/asterisk/sounds/en/agent-alreadyon.wav"))
    audio = LowLatencyResampler(16000).resample(pcm, rate).astype(np.float32) / 32768
    short = transcribe_pcm(model, audio, AsrSettings(), "en")
    standard = transcribe_pcm(model, audio, AsrSettings(adaptive_window=False), "en")
    assert normalise_words(short.text, "en") == normalise_words(standard.text, "en")
    assert "agent" in normalise_words(short.text, "en")
    assert short.avg_logprob == pytest.approx(standard.avg_logprob, abs=0.15)
    detected = transcribe_pcm(model, audio, AsrSettings(languages=["de", "en"]), None)
    assert detected.language == "en" and detected.language_probability and detected.language_probability > 0.5
