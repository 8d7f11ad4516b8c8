"""One call, one pipeline: the whole spoken conversation in the order the audio flows.

    caller audio ─▶ transport.input()
                 ─▶ InputAudioNormalizer      any rate/channels → 16 kHz mono, DC removed, no resampler bursts
                 ─▶ AudioTap                  (privacy.recording, after consent) the caller's side → WAV
                 ─▶ VADProcessor              Silero VAD (shared ONNX session)
                 ─▶ PhoneWhisperSTTService    one transcript per VAD segment, with confidence (decoded by the
                                              process's batching ASR worker)
                 ─▶ UserTurnProcessor         smart-turn v3 decides the end of the caller's turn; barge-in
                 ─▶ CallerAudioEnd            caller audio goes no further (the rest needs only its results)
                 ─▶ CallerTurnAssembler       transcripts of one turn → CallerQuestionFrame (+ transcript)
                 ─▶ CallerCaptions            (browser calls) what was understood → caption message
                 ─▶ DtmfRecorder ─▶ HandoffKeyListener (phone calls: the hand-off key, sip.handoff_dtmf)
                 ─▶ GreetingSpeaker ─▶ RecordingConsent (privacy.recording: the question's answer)
                 ─▶ CallTimeLimit ─▶ SilenceWatchdog
                 ─▶ TransferHold ─▶ WaitingRoom ─▶ CallbackTaker  ringback during a transfer; position,
                                              estimated wait and hold audio in the bot's queue; the call-back
                                              dialogue after a failed transfer or wait, or outside office hours
                 ─▶ GoodbyeDetector ─▶ HandoffGate (the hand-off policy on each caller turn) ─▶ RepeatResponder
                 ─▶ AnswerProcessor           answer engine, sentences streamed to TTS
                 ─▶ HandoffSignaler           the hand-off policy on each answer → HandoffRequestFrame after it
                 ─▶ CallTTSService            Piper or espeak-ng at the output rate
                 ─▶ transport.output()        20 ms chunks, so a barge-in stops the bot within one chunk
                 ─▶ AudioTap                  (privacy.recording, after consent) the bot's side → WAV
                 ─▶ BotCaptions               (browser calls) spoken sentences + call state → caption messages
                 ─▶ PlayoutTracker            played/interrupted, first-audio time, events to the telephony layer

Interface for the telephony/WebRTC layer (the doors use it through :mod:`voicebot.pipeline.handle`, which wraps
it as a :class:`~voicebot.calls.CallHandle`)::

    resources = CallResources.load(settings)                       # once per process
    worker, transcript = build_call_pipeline(
        settings, transport, resources, channel_call_id,
        channel="sip",                    # or "webrtc"/"simulation": how the record names the call's channel
        on_event=handle,                  # gets HandoffRequestFrame / CallEndingFrame after they were spoken
        audio_out_sample_rate=8000,       # the transport's output rate (8000 for G.711, 48000 for Opus)
        handoff_keys="0",                 # keypad digits that ask for staff (only where a hand-off is acted on)
        captions=False,                   # True: captions and call state as transport messages (the /call page)
    )
    await runner.add_workers(worker)     # or: await WorkerRunner(handle_sigint=False).run() after add_workers

The transport's input may deliver audio at any rate; its output must accept ``audio_out_sample_rate``.
Push ``InputDTMFFrame`` from the transport for keypad digits; they pass through the whole pipeline (and are noted
in the transcript); a hand-off key makes the bot say the hand-off sentence, then emit ``HandoffRequestFrame``.
To make the bot say something from outside, queue ``voicebot.pipeline.speech.bot_turn_frames(transcript, kind,
text)`` with ``worker.queue_frames`` (``PipelineCall.say``). Where a transfer stands is queued as a
``TransferStatusFrame`` (``PipelineCall.transfer_status``): ringback and no silence prompts while it runs, the
failure message and call-back offer when it failed.
The transcript (``CallTranscript``) is saved to ``resources.records`` after every change (the database:
SQLite by default, PostgreSQL when ``database_url`` is set) under a call id of its own (``transcript.call_id``;
the channel's id, e.g. the SIP Call-ID, is only a field of it); it gets an ``ended_reason`` (goodbye, silence,
max_duration, hangup, ended).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voicebot.pipeline.answer import AnswerProcessor
from voicebot.pipeline.audio import PIPELINE_SAMPLE_RATE, CallerAudioEnd, InputAudioNormalizer
from voicebot.pipeline.call_script import (
    CallTimeLimit,
    DtmfRecorder,
    GoodbyeDetector,
    GreetingSpeaker,
    HandoffDesk,
    HandoffGate,
    HandoffKeyListener,
    HandoffSignaler,
    RepeatResponder,
    SilenceWatchdog,
    compose_greeting,
)
from voicebot.pipeline.callback import CallbackDesk, CallbackTaker, RepositoryCallbackStore
from voicebot.pipeline.captions import BotCaptions, CallerCaptions, CaptionFeed
from voicebot.pipeline.hold_audio import load_hold_audio
from voicebot.pipeline.playout import PlayoutTracker
from voicebot.pipeline.recording import AudioTap, CallRecording, RecordingConsent
from voicebot.pipeline.resources import CallResources
from voicebot.pipeline.stt import PhoneWhisperSTTService
from voicebot.pipeline.transcript import CallTranscript
from voicebot.pipeline.transfer_hold import TransferHold
from voicebot.pipeline.tts import CallTTSService
from voicebot.pipeline.turns import CallerTurnAssembler
from voicebot.pipeline.waiting_room import WaitingRoom
from voicebot.privacy.redact import record_redactor
from voicebot.settings import Settings

if TYPE_CHECKING:
    from voicebot.calls import CallEventHandler


def build_call_pipeline(
    settings: Settings,
    transport: BaseTransport,
    resources: CallResources,
    channel_call_id: str | None,
    on_event: CallEventHandler | None = None,
    *,
    channel: str,
    audio_out_sample_rate: int = 16000,
    silence_timeout_s: float | None = None,
    transcript: CallTranscript | None = None,
    max_call_s: float | None = None,
    handoff_keys: str = "",
    captions: bool = False,
) -> tuple[PipelineWorker, CallTranscript]:
    """Build the per-call pipeline worker over the shared ``resources``; returns it with the live transcript.

    ``silence_timeout_s`` and ``max_call_s`` override ``settings.call`` (a simulated call faster than real time).
    ``handoff_keys``: keypad digits that ask for staff (none by default: only a door that transfers calls
    passes them). ``captions``: send live captions and the call state as transport messages
    (:mod:`voicebot.pipeline.captions`; the browser page shows them).
    """
    transcript = transcript or CallTranscript(
        settings.paths.calls_dir,
        channel=channel,
        channel_call_id=channel_call_id,
        store=resources.record_store_for(settings),
        redactor=record_redactor(settings),
    )
    call = settings.call
    greeting = (
        compose_greeting(settings.town, settings.privacy_url, handoff_keys)
        if call.greeting is None
        else call.greeting
    )
    tts = CallTTSService(
        voices=resources.voices,
        language=settings.asr.language,
        on_first_chunk=transcript.note_tts_first_chunk,
    )
    turn_strategies = UserTurnStrategies(
        start=[VADUserTurnStartStrategy()],
        stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=resources.new_turn_analyzer())],
    )
    feed = CaptionFeed() if captions else None
    callbacks = CallbackDesk(settings, transcript, callback_store(transcript))
    desk = HandoffDesk(
        settings,
        transcript,
        handoff_keys=handoff_keys,
        department_of=resources.department_of,
        transfers=on_event is not None,
        callbacks=callbacks,
    )
    privacy = settings.privacy
    recording = (
        CallRecording(
            settings.paths.recordings_dir,
            transcript,
            max_s=privacy.recording_max_s or max_call_s or call.max_call_s or 900.0,
        )
        if privacy.recording
        else None
    )
    pipeline = Pipeline(
        [
            transport.input(),
            InputAudioNormalizer(sample_rate=PIPELINE_SAMPLE_RATE),
            *([AudioTap(recording, "anrufer")] if recording is not None else []),
            VADProcessor(vad_analyzer=resources.new_vad_analyzer()),
            PhoneWhisperSTTService(
                model=resources.whisper,
                asr=settings.asr,
                # the shared batching worker decodes with the process's ASR settings; a call with others decodes alone
                worker=resources.asr_worker if settings.asr == resources.settings.asr else None,
            ),
            UserTurnProcessor(user_turn_strategies=turn_strategies, user_turn_stop_timeout=5.0),
            CallerAudioEnd(),
            CallerTurnAssembler(transcript=transcript, default_language=settings.asr.language),
            *([CallerCaptions(feed)] if feed is not None else []),
            DtmfRecorder(transcript=transcript),
            *([HandoffKeyListener(desk=desk)] if handoff_keys else []),
            GreetingSpeaker(
                transcript=transcript,
                call=call,
                greeting=greeting,
                recording_question=privacy.recording_question if recording is not None else "",
            ),
            *(
                [
                    RecordingConsent(
                        transcript=transcript,
                        recording=recording,
                        key=privacy.recording_key,
                        phrases=privacy.recording_phrases,
                    )
                ]
                if recording is not None
                else []
            ),
            CallTimeLimit(transcript=transcript, call=call, limit_s=max_call_s),
            SilenceWatchdog(transcript=transcript, call=call, timeout_s=silence_timeout_s),
            TransferHold(transcript=transcript),
            WaitingRoom(transcript=transcript, hold_audio=load_hold_audio(settings.queue.hold_audio_file)),
            CallbackTaker(desk=callbacks, handoff=desk),
            GoodbyeDetector(transcript=transcript, call=call),
            HandoffGate(desk=desk),
            RepeatResponder(transcript=transcript, call=call),
            AnswerProcessor(engine=resources.answer_engine, transcript=transcript, call=call),
            HandoffSignaler(desk=desk),
            tts,
            transport.output(),
            *([AudioTap(recording, "bot")] if recording is not None else []),
            *([BotCaptions(feed, transfers=on_event is not None)] if feed is not None else []),
            PlayoutTracker(transcript=transcript, on_event=on_event),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        name=f"call-{transcript.call_id}",
        params=PipelineParams(
            audio_in_sample_rate=PIPELINE_SAMPLE_RATE,
            audio_out_sample_rate=audio_out_sample_rate,
            enable_metrics=True,
        ),
        enable_rtvi=False,
        enable_turn_tracking=False,
        # Idle = no bot speech and no caller speech (hold audio and ringback do not count). A queued caller hears
        # an announcement every queue.announce_interval_s, and nothing else while staff's phone rings.
        idle_timeout_secs=max(
            60.0,
            4 * call.silence_timeout_s,
            settings.queue.announce_interval_s + settings.sip.transfer_timeout_s + 30.0,
        ),
        cancel_on_idle_timeout=True,
        cancel_runner_on_idle_timeout=False,
    )
    return worker, transcript


def callback_store(transcript: CallTranscript) -> RepositoryCallbackStore | None:
    """Call-backs go into the database that keeps the call's record (None for a simulated call's JSON record:
    the request is then only in the record, as the event ``callback_requested``)."""
    from voicebot.db.repository import Repository
    from voicebot.db.store import SqlCallRecordStore

    store = transcript.store
    if not isinstance(store, SqlCallRecordStore):
        return None
    return RepositoryCallbackStore(Repository(store.engine), store)
