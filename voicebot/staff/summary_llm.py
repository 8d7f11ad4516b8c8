"""The caller's request written by the configured LLM (issue 10: "written by the LLM when one is configured, and
checked against the turns like any LLM output").

:class:`LlmSummaryWriter` is a :data:`voicebot.staff.summary.SummaryWriter`: it sends the call's turns to the
OpenAI-compatible endpoint of ``[llm]`` and returns the model's one or two sentences. :func:`summarize` shows them
only when :func:`voicebot.staff.summary.grounded` finds nothing the turns do not back; otherwise, and on any error
or timeout, the summary built from the turns stays. The console runs the writer off the request path
(:class:`voicebot.web.staff_queue.SummaryBook`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai

from knowledge.config import LlmConfig
from voicebot.staff.summary import CallSummary

SYSTEM_PROMPT = """Du fasst für die Mitarbeitenden der Stadtverwaltung {town} ein Telefongespräch zusammen, das der
Telefonassistent mit einer anrufenden Person geführt hat, bevor er sie weiterverbunden hat.
Schreibe in höchstens zwei kurzen Sätzen, was die anrufende Person möchte und was noch offen ist.
Verwende nur, was im Gespräch gesagt wurde: keine Vermutungen, keine Zahlen, Beträge, Daten oder Namen, die im
Gespräch nicht vorkommen. Keine Anrede, keine Aufzählung."""
MAX_TURNS = 24  # the last turns up to the hand-off are what matters
MAX_TURN_CHARS = 300


def conversation(record: Mapping[str, Any]) -> str:
    """The record's turns as lines "Anrufer/in: …" / "Bot: …" (keypad digits named), the last :data:`MAX_TURNS`."""
    lines = []
    for turn in record.get("turns") or []:
        if not isinstance(turn, Mapping):
            continue
        text = " ".join(str(turn.get("text") or "").split())[:MAX_TURN_CHARS]
        if not text:
            continue
        if turn.get("role") == "caller":
            lines.append(f"Anrufer/in: {'Taste ' + text if turn.get('kind') == 'dtmf' else text}")
        else:
            lines.append(f"Bot: {text}")
    return "\n".join(lines[-MAX_TURNS:])


class LlmSummaryWriter:
    """Asks the model once per call (no retries; ``llm.timeout_s``)."""

    def __init__(self, llm: LlmConfig, town: str) -> None:
        if not llm.base_url:
            raise ValueError("an LLM summary needs llm.base_url")
        self._llm = llm
        self._system = SYSTEM_PROMPT.format(town=town)
        self._client = openai.OpenAI(
            base_url=llm.base_url,
            api_key=llm.api_key.get_secret_value(),
            timeout=llm.timeout_s,
            max_retries=0,
        )

    def __call__(self, record: Mapping[str, Any], draft: CallSummary) -> str:
        reason = f"\nGrund der Weiterleitung: {draft.reason_text}" if draft.reason else ""
        response = self._client.chat.completions.create(
            model=self._llm.model,
            messages=[
                {"role": "system", "content": self._system},
                {"role": "user", "content": f"Gespräch:\n{conversation(record)}{reason}"},
            ],
            temperature=self._llm.temperature,
            max_tokens=self._llm.max_tokens,
        )
        return response.choices[0].message.content or "" if response.choices else ""

    def close(self) -> None:
        self._client.close()
