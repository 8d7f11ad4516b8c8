"""The hand-off policy: the one place that decides, turn by turn, when a caller goes to a person, why, and where.

The call script reports what happened (a keypad digit, a caller turn, the answer given, a component that failed);
the policy answers with a :class:`HandoffDecision` or ``None``. It holds only counters, no I/O, so every rule is a
row in a unit table and the pipeline processors stay thin. The decision's ``reason`` is what the call record
stores (event ``handoff_requested``), so a supervisor sees why each caller was handed over:

- ``handoff_key``: the caller pressed a hand-off key (``sip.handoff_dtmf``);
- ``caller_asked``: the caller asked for a person (``handoff.person_phrases``, or the answer engine's guard heard it);
- ``frustration``: frustration words ("Das hilft mir nicht", "Quatsch", …);
- ``repeat_requests``: "Wie bitte?" ``handoff.max_repeat_requests`` times in a row;
- ``low_confidence``: ``handoff.low_confidence_turns`` turns in a row understood (ASR) or answered (engine) unsurely;
- ``engine_handoff``: the answer engine chose to hand off (its own reason kept as ``detail``);
- ``emergency`` / ``redirect``: the engine's emergency or other-authority answer (the call is passed on too);
- ``component_failure``: a component failed (ASR, answer engine) ``call.max_consecutive_errors`` times in a row.

Routing by topic: the department of the page the answers cited picks the staff group (``handoff.groups``); an
unknown department goes to ``handoff.default_group``, and without groups to ``sip.staff_uri``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from knowledge.textfold import utterance_words
from knowledge.types import Action, Answer
from voicebot.settings import HandoffSettings, StaffGroup

# Engine reasons that mean the caller asked for a person (knowledge.guard / reply to the hand-off offer).
CALLER_ASKED_REASONS = frozenset({"human_requested", "handoff_accepted"})
# Engine answers that are about the caller's words, not about how sure the engine is: they never count as unsure.
_NOT_RATED_REASONS = frozenset({"greeting", "thanks", "handoff_declined"})


@dataclass(frozen=True)
class HandoffDecision:
    """Hand the call to staff: why (``reason``, stored), the engine's own words for it (``detail``), and the kind
    of transfer (``handoff``, ``emergency`` or ``redirect``: how a browser call shows it)."""

    reason: str
    detail: str = ""
    kind: str = "handoff"


@dataclass(frozen=True)
class StaffRoute:
    """Where the call goes: the staff group's name ("" = no group configured) and its SIP URI."""

    group: str
    staff_uri: str


def _words(text: str) -> list[str]:
    return utterance_words(text).split()


def contains_phrase(text: str, phrases: Iterable[str]) -> bool:
    """True when the words of one of ``phrases`` occur in ``text`` in order (folded: case, umlauts, punctuation)."""
    words = _words(text)
    for phrase in phrases:
        wanted = _words(phrase)
        if wanted and any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1)):
            return True
    return False


class HandoffPolicy:
    """The per-call state of the hand-off rules (one instance per call)."""

    def __init__(
        self,
        settings: HandoffSettings,
        *,
        handoff_keys: str = "",
        repeat_phrases: Iterable[str] = (),
        max_consecutive_errors: int = 2,
        default_staff_uri: str = "",
    ) -> None:
        self._settings = settings
        self._keys = handoff_keys
        self._repeat_phrases = tuple(repeat_phrases)
        self._max_errors = max_consecutive_errors
        self._default_uri = default_staff_uri
        self._unsure_turns = 0
        self._repeat_requests = 0
        self._errors = 0
        self._asr_unsure = False
        self.decided: list[
            HandoffDecision
        ] = []  # every hand-off of the call (a failed transfer may be retried)

    def _decide(self, decision: HandoffDecision) -> HandoffDecision:
        """Note the decision and start counting afresh (the caller may stay with the bot if nobody answers)."""
        self.decided.append(decision)
        self._unsure_turns = self._repeat_requests = self._errors = 0
        return decision

    # --- what the call script reports ----------------------------------------------------------------------------

    def on_dtmf(self, digit: str) -> HandoffDecision | None:
        if digit and digit in self._keys:
            return self._decide(HandoffDecision("handoff_key", detail=digit))
        return None

    def on_caller_turn(self, text: str, asr_confidence: float | None) -> HandoffDecision | None:
        """A finished caller turn, before it is answered: words that ask for a person or show frustration hand
        off at once; "Wie bitte?" is counted (the answer step repeats the last answer until the limit)."""
        s = self._settings
        self._asr_unsure = asr_confidence is not None and asr_confidence < s.min_asr_confidence
        if contains_phrase(text, s.person_phrases):
            return self._decide(HandoffDecision("caller_asked", detail=text[:120]))
        if contains_phrase(text, s.frustration_phrases):
            return self._decide(HandoffDecision("frustration", detail=text[:120]))
        if self._is_repeat_request(text):
            self._repeat_requests += 1
            if s.max_repeat_requests > 0 and self._repeat_requests >= s.max_repeat_requests:
                return self._decide(HandoffDecision("repeat_requests", detail=str(self._repeat_requests)))
        else:
            self._repeat_requests = 0
        return None

    def on_answer(self, answer: Answer) -> HandoffDecision | None:
        """The answer the caller just heard (after :meth:`on_caller_turn` for its question)."""
        if answer.action == Action.EMERGENCY:
            return self._decide(HandoffDecision("emergency", detail=answer.reason, kind="emergency"))
        if answer.action == Action.REDIRECT:
            return self._decide(HandoffDecision("redirect", detail=answer.reason, kind="redirect"))
        if answer.reason == "error":
            self._errors += 1
            if answer.action == Action.HANDOFF or self._errors >= self._max_errors:
                return self._decide(HandoffDecision("component_failure", detail="answer"))
            return None
        self._errors = 0
        if answer.action == Action.HANDOFF:
            if answer.reason in CALLER_ASKED_REASONS:
                reason = "caller_asked"
            elif _engine_unsure(
                answer.reason
            ):  # the engine's own "unsure again" (its second clarify in a row)
                reason = "low_confidence"
            else:
                reason = "engine_handoff"
            return self._decide(HandoffDecision(reason, detail=answer.reason))
        unsure = (
            self._asr_unsure
            or _engine_unsure(answer.reason)
            or (
                answer.reason not in _NOT_RATED_REASONS
                and answer.confidence < self._settings.min_answer_confidence
            )
        )
        self._asr_unsure = False
        self._unsure_turns = self._unsure_turns + 1 if unsure else 0
        limit = self._settings.low_confidence_turns
        if limit > 0 and self._unsure_turns >= limit:
            return self._decide(HandoffDecision("low_confidence", detail=f"{self._unsure_turns} turns"))
        return None

    def on_failure(self, component: str) -> HandoffDecision | None:
        """A component failed in a way the call cannot recover from (ASR down, TTS down): hand off."""
        return self._decide(HandoffDecision("component_failure", detail=component))

    def _is_repeat_request(self, text: str) -> bool:
        words = _words(text)
        return bool(words) and len(words) <= 6 and contains_phrase(text, self._repeat_phrases)

    # --- where the call goes -------------------------------------------------------------------------------------

    def route(self, departments: Iterable[str]) -> StaffRoute:
        """The staff group for the cited pages' departments (the first that a group serves), else the default."""
        groups = self._settings.groups
        for department in departments:
            group = group_for_department(groups, department)
            if group is not None:
                return StaffRoute(group.name, group.staff_uri)
        default = next((g for g in groups if g.name == self._settings.default_group), None)
        if default is not None:
            return StaffRoute(default.name, default.staff_uri)
        return StaffRoute(self._settings.default_group, self._default_uri)


def _engine_unsure(reason: str) -> bool:
    """Engine reasons that say it did not understand or was not sure ("low_asr", "low_confidence", "…_again")."""
    return reason.startswith("low_") or reason.endswith("_again")


def group_for_department(groups: Iterable[StaffGroup], department: str) -> StaffGroup | None:
    """The group serving ``department``; a sub-unit ("Ordnungsamt – Gewerbe") belongs to its office's group."""
    name = " ".join(department.split()).casefold()
    if not name:
        return None
    office = name.replace("—", "–").split(" – ", 1)[0].strip()
    for group in groups:
        served = {" ".join(d.split()).casefold() for d in group.departments}
        if name in served or office in served:
            return group
    return None


DepartmentLookup = Callable[[str], str]
"""Source id (a chunk id the answer cited) → the page's department ("" when unknown)."""


def departments_of(sources: Iterable[str], lookup: DepartmentLookup | None) -> list[str]:
    if lookup is None:
        return []
    found = [lookup(source) for source in sources]
    return [department for department in found if department]
