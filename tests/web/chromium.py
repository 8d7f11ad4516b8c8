"""Chromium for the page tests: the system browser with a fake microphone, and page probes shared by the tests."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
IN_CALL_SELECTOR = '#status[data-state="listening"], #status[data-state="answering"]'
SCREENSHOT = Path("/tmp/call-page.png")


def fake_microphone(wav: Path) -> list[str]:
    """Chromium flags: grant the microphone without a prompt and feed it from ``wav`` (looped)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
    ]


RECORD_STATES = """() => {
  window.__states = [];
  const status = document.getElementById("status");
  new MutationObserver(() => {
    const state = status.dataset.state;
    if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }).observe(status, { attributes: true, childList: true, characterData: true, subtree: true });
}"""

RECORD_STATUS_TEXTS = """() => {
  window.__texts = [];
  const status = document.getElementById("status");
  new MutationObserver(() => window.__texts.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}"""

CAPTIONS = """() => Array.from(document.querySelectorAll("#captions .caption")).map((line) => ({
  speaker: line.classList.contains("caller") ? "caller" : "bot",
  text: line.lastChild.textContent,
}))"""
