"""Live captions and call state for the browser page, sent as transport messages of the call's own transport.

Why here: a hard-of-hearing caller on the ``/call`` page must be able to read what the bot says and what it
understood, and see whether the bot is listening or answering. Only the pipeline knows when a sentence is really
spoken (frames leave the output transport after the audio queued before them was written; the TTS puts a
``BotSentenceFrame`` in front of each sentence's audio), so two small processors turn pipeline frames into
messages:

- :class:`CallerCaptions` (after the caller's turn is assembled): what the bot understood → a caller caption,
  and the state "answering" (the bot now prepares its answer);
- :class:`BotCaptions` (after the output transport): each sentence as it starts to be heard → a bot caption; bot audio starts /
  stops → "answering" / "listening"; a hand-off request → "handoff"; the script ends the call → "ended".
  (Decision 0465.)

Both push ``OutputTransportMessageUrgentFrame``s; the WebRTC transport sends them over the call's own data
channel (:meth:`SmallWebRTCConnection.send_app_message`, which queues a bounded number until the channel is
open), so a caption can only ever reach the peer of that call: there is no separate stream to subscribe to and
no id a stranger could guess. Message shape (JSON)::

    {"type": "voicebot", "kind": "caption", "seq": 3, "speaker": "bot" | "caller", "text": "..."}
    {"type": "voicebot", "kind": "state", "seq": 4, "state": "listening" | "answering" | "handoff" | "ended"}

The page turns states into German text; captions are plain text (the page never interprets them as HTML).
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.frames import (
    BotSentenceFrame,
    CallEndingFrame,
    CallerQuestionFrame,
    HandoffRequestFrame,
)

MESSAGE_TYPE = "voicebot"
MAX_CAPTION_CHARS = 600  # one caption line; a longer sentence is cut (the page must stay readable)
STATES = ("listening", "answering", "handoff", "ended")


class CaptionFeed:
    """Numbers the messages of one call and remembers the last state, so a state is sent only when it changes."""

    def __init__(self) -> None:
        self._seq = 0
        self.state: str | None = None

    def caption(self, speaker: str, text: str) -> dict[str, Any] | None:
        text = " ".join(text.split())
        if not text:
            return None
        if len(text) > MAX_CAPTION_CHARS:
            text = text[: MAX_CAPTION_CHARS - 1] + "…"
        return self._message(kind="caption", speaker=speaker, text=text)

    def change_state(self, state: str) -> dict[str, Any] | None:
        if state not in STATES:
            raise ValueError(f"unknown call state {state!r}")
        if state == self.state or self.state == "ended":
            return None
        self.state = state
        return self._message(kind="state", state=state)

    def _message(self, **data: Any) -> dict[str, Any]:
        self._seq += 1
        return {"type": MESSAGE_TYPE, "seq": self._seq, **data}


class CallerCaptions(FrameProcessor):
    """Between the caller's turn assembly and the script: what the bot understood, and that it now answers."""

    def __init__(self, feed: CaptionFeed) -> None:
        super().__init__()
        self._feed = feed

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, CallerQuestionFrame):
            # Downstream: the urgent message overtakes the queued audio and reaches the output transport.
            for message in (self._feed.caption("caller", frame.text), self._feed.change_state("answering")):
                if message is not None:
                    await self.push_frame(OutputTransportMessageUrgentFrame(message=message))


class BotCaptions(FrameProcessor):
    """After the output transport: what was spoken, and the bot's state as the caller hears it."""

    def __init__(self, feed: CaptionFeed, *, transfers: bool) -> None:
        """``transfers``: the call's door acts on a hand-off (a phone call); a browser call has no transfer, so
        there the hand-off state lasts only until the bot stops speaking and listens again."""
        super().__init__()
        self._feed = feed
        self._transfers = transfers

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            return
        message: dict[str, Any] | None = None
        if isinstance(frame, BotSentenceFrame):
            message = self._feed.caption("bot", frame.text)
        elif isinstance(frame, BotStartedSpeakingFrame):
            message = self._feed.change_state("answering")
        elif isinstance(frame, BotStoppedSpeakingFrame):
            if not (self._transfers and self._feed.state == "handoff"):  # staff is being reached
                message = self._feed.change_state("listening")
        elif isinstance(frame, HandoffRequestFrame):
            # Without a transfer (a browser call) only a caller's wish for a person is shown as one: the bot
            # says it connects; a redirect or an emergency answer names another number instead.
            if self._transfers or frame.kind == "handoff":
                message = self._feed.change_state("handoff")
        elif isinstance(frame, CallEndingFrame):
            message = self._feed.change_state("ended")
        if message is not None:
            # Upstream from behind the output transport: it sends transport messages from either direction.
            await self.push_frame(OutputTransportMessageUrgentFrame(message=message), FrameDirection.UPSTREAM)
