"""The caption processors on their own, with pipecat's test runner: which frames become which messages."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from voicebot.pipeline.captions import MAX_CAPTION_CHARS, BotCaptions, CallerCaptions, CaptionFeed
from voicebot.pipeline.frames import (
    BotSentenceFrame,
    CallEndingFrame,
    CallerQuestionFrame,
    HandoffRequestFrame,
)


def _messages(frames: Any) -> list[dict[str, Any]]:
    return [f.message for f in frames if isinstance(f, OutputTransportMessageUrgentFrame)]


def _spoken(text: str) -> BotSentenceFrame:
    return BotSentenceFrame(text=text)


async def test_bot_captions_follow_what_is_spoken_and_the_state_changes_only_when_it_changes() -> None:
    frames: list[Frame] = [
        BotStartedSpeakingFrame(),
        _spoken("Guten Tag."),
        _spoken("Wie kann ich helfen?"),
        BotStoppedSpeakingFrame(),
        BotStoppedSpeakingFrame(),  # no second "listening"
        BotStartedSpeakingFrame(),
        _spoken("  Das   Bürgerbüro hat geöffnet. "),
        HandoffRequestFrame(reason="handoff", summary="Bürgerbüro"),
        SleepFrame(sleep=0.1),
        BotStoppedSpeakingFrame(),  # a browser call has no transfer: the bot listens again
        CallEndingFrame(reason="goodbye"),
        BotStartedSpeakingFrame(),  # nothing after "ended"
    ]
    _down, up = await run_test(BotCaptions(CaptionFeed(), transfers=False), frames_to_send=frames)
    messages = _messages(up)  # sent upstream: the output transport sits just before this processor
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    # Bot*SpeakingFrames are system frames (they overtake data frames in a test run; in a call the output
    # transport emits them when audio starts and stops): compare captions and states each in their order.
    assert [m["text"] for m in messages if m["kind"] == "caption"] == [
        "Guten Tag.",
        "Wie kann ich helfen?",
        "Das Bürgerbüro hat geöffnet.",
    ]
    assert {m["speaker"] for m in messages if m["kind"] == "caption"} == {"bot"}
    states = [m["state"] for m in messages if m["kind"] == "state"]
    assert states[-1] == "ended" and states.count("ended") == 1, states
    assert "handoff" in states and "listening" in states and "answering" in states, states
    assert all(a != b for a, b in itertools.pairwise(states)), states  # only changes are sent
    assert all(m["type"] == "voicebot" for m in messages)


async def test_a_transferring_call_stays_in_the_handoff_state() -> None:
    frames: list[Frame] = [
        HandoffRequestFrame(reason="handoff", summary=""),
        SleepFrame(sleep=0.1),  # in a call the bot stops speaking a moment after its last words
        BotStoppedSpeakingFrame(),
    ]
    _down, up = await run_test(BotCaptions(CaptionFeed(), transfers=True), frames_to_send=frames)
    assert [m["state"] for m in _messages(up)] == ["handoff"]


async def test_caller_captions_say_what_was_understood_and_that_the_bot_answers() -> None:
    question = CallerQuestionFrame(text="Wann hat das Bürgerbüro geöffnet?", language="de")
    down, up = await run_test(
        CallerCaptions(CaptionFeed()), frames_to_send=[question], expected_down_frames=None
    )
    assert any(isinstance(f, CallerQuestionFrame) for f in down)  # the question goes on to the script
    messages = _messages(down)
    assert [(m["kind"], m.get("speaker") or m.get("state")) for m in messages] == [
        ("caption", "caller"),
        ("state", "answering"),
    ]
    assert messages[0]["text"] == "Wann hat das Bürgerbüro geöffnet?"
    assert not _messages(up)


def test_captions_are_bounded_and_states_are_known() -> None:
    feed = CaptionFeed()
    long = feed.caption("bot", "Wort " * 1000)
    assert long is not None and len(long["text"]) == MAX_CAPTION_CHARS and long["text"].endswith("…")
    assert feed.caption("bot", "   ") is None
    with pytest.raises(ValueError):
        feed.change_state("connecting")  # the page's own state, never sent


async def test_a_browser_call_shows_handoff_only_for_a_wish_for_a_person() -> None:
    """No transfer in a browser: a redirect or emergency answer names another number; "Verbinde …" would lie."""
    frames: list[Frame] = [
        HandoffRequestFrame(reason="redirect", summary=""),
        HandoffRequestFrame(reason="emergency", summary=""),
        HandoffRequestFrame(reason="handoff", summary=""),
    ]
    _down, up = await run_test(BotCaptions(CaptionFeed(), transfers=False), frames_to_send=frames)
    assert [m["state"] for m in _messages(up)] == ["handoff"]
