"""The hand-off policy, rule by rule: one table of call histories and the decision each must lead to."""

from __future__ import annotations

import pytest

from knowledge.types import Action, Answer
from voicebot.handoff_policy import HandoffPolicy, group_for_department
from voicebot.settings import CallSettings, HandoffSettings, Settings, StaffGroup

SURE = Answer("Das Fundbüro ist im Rathaus.", Action.ANSWER, 0.9, ["fundbuero"])
UNSURE = Answer("Meinen Sie den Personalausweis?", Action.CLARIFY, 0.3, [], reason="low_confidence")
GREETING = Answer("Guten Tag! Was ist Ihr Anliegen?", Action.CLARIFY, 0.0, [], reason="greeting")
ERROR = Answer("Entschuldigung.", Action.CLARIFY, 0.0, [], reason="error")
ENGINE_HANDOFF = Answer("Ich verbinde Sie.", Action.HANDOFF, 0.4, [], reason="personal_case")
HUMAN_ASKED = Answer("Gern, ich verbinde Sie.", Action.HANDOFF, 1.0, [], reason="human_requested")
EMERGENCY = Answer("Wählen Sie 112.", Action.EMERGENCY, 1.0, [], reason="emergency_fire_medical")
REDIRECT = Answer("Zuständig ist der Kreis.", Action.REDIRECT, 0.8, ["kfz"], reason="redirect")


def new_policy(**overrides: object) -> HandoffPolicy:
    return HandoffPolicy(
        HandoffSettings(**overrides),  # type: ignore[arg-type]
        handoff_keys="0",
        repeat_phrases=CallSettings().repeat_phrases,
        max_consecutive_errors=2,
        default_staff_uri="sip:zentrale@127.0.0.1",
    )


# Each step: ("dtmf", digit) | ("turn", text, asr_confidence) | ("answer", Answer) | ("failure", component).
# The expected value is the reason of the first hand-off decided, at the step where it must come (None: none).
CASES = [
    ("key 0 hands off", [("dtmf", "0")], ("handoff_key", 0)),
    ("other keys do not", [("dtmf", "1"), ("dtmf", "#")], None),
    ("asked for a person", [("turn", "Ich möchte bitte mit einem Menschen reden", 0.8)], ("caller_asked", 0)),
    (
        "guard heard the wish",
        [("turn", "Mitarbeiter bitte", 0.8), ("answer", HUMAN_ASKED)],
        ("caller_asked", 1),
    ),
    ("frustration", [("turn", "Das hilft mir nicht!", 0.9)], ("frustration", 0)),
    ("frustration in a sentence", [("turn", "Ach Quatsch, ich will was anderes", 0.9)], ("frustration", 0)),
    ("misunderstood you not", [("turn", "Sie verstehen mich nicht", 0.9)], ("frustration", 0)),
    ("one Wie bitte repeats", [("turn", "Wie bitte?", 0.9)], None),
    (
        "two Wie bitte in a row",
        [("turn", "Wie bitte?", 0.9), ("turn", "Wie bitte?", 0.9)],
        ("repeat_requests", 1),
    ),
    (
        "Wie bitte not in a row",
        [
            ("turn", "Wie bitte?", 0.9),
            ("turn", "Wo ist das Fundbüro?", 0.9),
            ("answer", SURE),
            ("turn", "Wie bitte", 0.9),
        ],
        None,
    ),
    (
        "the engine unsure twice",
        [("answer", UNSURE), ("answer", Answer("x", Action.HANDOFF, 0.2, [], reason="low_confidence_again"))],
        ("low_confidence", 1),
    ),
    (
        "two unsure answers",
        [("turn", "Ausweis?", 0.8), ("answer", UNSURE), ("turn", "Pass", 0.8), ("answer", UNSURE)],
        ("low_confidence", 3),
    ),
    (
        "unsure ASR then unsure answer",
        [("turn", "mmh Ausweis", 0.1), ("answer", SURE), ("turn", "Pass", 0.8), ("answer", UNSURE)],
        ("low_confidence", 3),
    ),
    (
        "a sure turn between resets",
        [
            ("turn", "a", 0.8),
            ("answer", UNSURE),
            ("turn", "b", 0.8),
            ("answer", SURE),
            ("turn", "c", 0.8),
            ("answer", UNSURE),
        ],
        None,
    ),
    ("a greeting is not unsure", [("answer", GREETING), ("answer", UNSURE)], None),
    (
        "engine hands off",
        [("turn", "Wie steht mein Antrag?", 0.9), ("answer", ENGINE_HANDOFF)],
        ("engine_handoff", 1),
    ),
    ("emergency", [("answer", EMERGENCY)], ("emergency", 0)),
    ("redirect", [("answer", REDIRECT)], ("redirect", 0)),
    ("one failure apologises", [("answer", ERROR)], None),
    ("two failures in a row", [("answer", ERROR), ("answer", ERROR)], ("component_failure", 1)),
    ("failure reported by a component", [("failure", "tts")], ("component_failure", 0)),
]


@pytest.mark.parametrize(("steps", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_policy_decides_with_a_reason(
    steps: list[tuple[object, ...]], expected: tuple[str, int] | None
) -> None:
    policy = new_policy()
    decided: list[tuple[str, int]] = []
    for index, step in enumerate(steps):
        kind = step[0]
        if kind == "dtmf":
            decision = policy.on_dtmf(str(step[1]))
        elif kind == "turn":
            decision = policy.on_caller_turn(str(step[1]), step[2])  # type: ignore[arg-type]
        elif kind == "answer":
            decision = policy.on_answer(step[1])  # type: ignore[arg-type]
        else:
            decision = policy.on_failure(str(step[1]))
        if decision is not None:
            decided.append((decision.reason, index))
    assert decided[:1] == ([expected] if expected else [])


def test_rules_can_be_switched_off_and_tuned() -> None:
    policy = new_policy(low_confidence_turns=0, max_repeat_requests=0, frustration_phrases=[])
    assert policy.on_caller_turn("Quatsch", 0.9) is None
    for _ in range(3):
        assert policy.on_caller_turn("Wie bitte?", 0.9) is None
        assert policy.on_answer(UNSURE) is None
    strict = new_policy(low_confidence_turns=1, min_answer_confidence=0.95)
    decision = strict.on_answer(SURE)
    assert decision is not None and decision.reason == "low_confidence"


def test_emergency_and_redirect_keep_their_kind_for_the_browser_page() -> None:
    assert [new_policy().on_answer(a).kind for a in (EMERGENCY, REDIRECT, ENGINE_HANDOFF)] == [  # type: ignore[union-attr]
        "emergency",
        "redirect",
        "handoff",
    ]


GROUPS = [
    StaffGroup(name="standesamt", departments=["Standesamt"], staff_uri="sip:standesamt@127.0.0.1:5071"),
    StaffGroup(name="ordnung", departments=["Ordnungsamt"], staff_uri="sip:ordnung@127.0.0.1:5072"),
    StaffGroup(name="zentrale", departments=["Bürgerbüro"], staff_uri="sip:zentrale@127.0.0.1:5073"),
]


@pytest.mark.parametrize(
    ("departments", "default_group", "expected"),
    [
        (["Standesamt"], "", ("standesamt", "sip:standesamt@127.0.0.1:5071")),
        (["  standesamt "], "", ("standesamt", "sip:standesamt@127.0.0.1:5071")),
        (["Ordnungsamt – Gewerbe"], "", ("ordnung", "sip:ordnung@127.0.0.1:5072")),
        (["Steueramt", "Standesamt"], "", ("standesamt", "sip:standesamt@127.0.0.1:5071")),
        (["Steueramt"], "zentrale", ("zentrale", "sip:zentrale@127.0.0.1:5073")),
        ([], "zentrale", ("zentrale", "sip:zentrale@127.0.0.1:5073")),
        (["Steueramt"], "", ("", "sip:zentrale@127.0.0.1")),  # no default group: sip.staff_uri
    ],
)
def test_routing_by_the_cited_pages_department(
    departments: list[str], default_group: str, expected: tuple[str, str]
) -> None:
    route = new_policy(groups=GROUPS, default_group=default_group).route(departments)
    assert (route.group, route.staff_uri) == expected


def test_a_sub_unit_matches_its_office_but_not_a_prefix_of_another_name() -> None:
    assert group_for_department(GROUPS, "Standesamt – Eheschließung") is GROUPS[0]
    assert group_for_department(GROUPS, "Standesamtsbezirk") is None
    assert group_for_department(GROUPS, "") is None


def test_groups_come_from_the_settings_file_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VOICEBOT_HANDOFF__GROUPS",
        '[{"name": "standesamt", "departments": ["Standesamt"], "staff_uri": "sip:st@127.0.0.1"}]',
    )
    monkeypatch.setenv("VOICEBOT_HANDOFF__LOW_CONFIDENCE_TURNS", "3")
    settings = Settings()
    assert settings.handoff.groups[0].staff_uri == "sip:st@127.0.0.1"
    assert settings.handoff.low_confidence_turns == 3
    with pytest.raises(ValueError, match="staff_uri"):
        HandoffSettings(groups=[{"name": "x", "departments": []}])  # type: ignore[list-item]
