"""What the bot says when it does not speak a knowledge-base answer, in one place.

The answer engines recognise their own earlier clarifying questions in the conversation history by these
templates (a :class:`~knowledge.types.Turn` carries only text), so every clarify text is built here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ---- clarify (the bot asks once, then hands off)
CLARIFY_REPHRASE = (
    "Das habe ich leider nicht sicher verstanden. Können Sie Ihr Anliegen bitte mit anderen Worten sagen?"
)
CLARIFY_ACOUSTIC = (
    "Entschuldigung, ich habe Sie akustisch nicht gut verstanden. Können Sie das bitte wiederholen?"
)
CLARIFY_NO_CONTENT = "Entschuldigung, das habe ich nicht verstanden. Worum geht es bei Ihrem Anliegen?"
CLARIFY_INJECTION = (
    "Dabei kann ich nicht helfen. Ich beantworte nur Fragen zu den Dienstleistungen der Stadtverwaltung. "
    "Worum geht es bei Ihrem Anliegen?"
)
CLARIFY_INSULT = "Ich helfe Ihnen gern, bitte bleiben Sie sachlich. Worum geht es bei Ihrem Anliegen?"
CLARIFY_NEUTRAL = (
    "Dazu äußert sich die Stadtverwaltung nicht. Ich helfe Ihnen gern bei Fragen zu unseren "
    "Dienstleistungen. Worum geht es bei Ihrem Anliegen?"
)
CLARIFY_ADVICE = (
    "Eine Rechts-, Gesundheits- oder Geldberatung darf ich nicht geben. Ich helfe Ihnen gern bei Fragen zu "
    "den Dienstleistungen der Stadtverwaltung. Worum geht es bei Ihrem Anliegen?"
)
CLARIFY_OTHER_TOWN = (
    "Ich kann nur Auskunft zu unserer eigenen Stadtverwaltung geben; für andere Städte wenden Sie sich bitte "
    "an die Stadt dort. Worum geht es bei Ihrem Anliegen hier bei uns?"
)
_CHOICE_PREFIX = "Meinen Sie "

# ---- out of scope: clear words, but nothing the town's knowledge explains (weather, football, recipes ...)
OUT_OF_SCOPE_START = "Dazu kann ich leider nichts sagen."
PERSON_HINT = "Für ein Gespräch mit einem Menschen sagen Sie „Mitarbeiter“ oder drücken Sie die Null."


def out_of_scope(town: str, examples: Sequence[str]) -> str:
    """What the hotline is for, with examples and the way to a person (not "bitte wiederholen": we understood)."""
    where = f"der Stadt {town}" if town else "der Stadtverwaltung"
    text = f"{OUT_OF_SCOPE_START} Ich beantworte Fragen zu den Dienstleistungen {where}"
    names = [e.strip() for e in examples if e.strip()]
    if len(names) > 1:
        text += f", zum Beispiel zu {', '.join(names[:-1])} oder {names[-1]}"
    elif names:
        text += f", zum Beispiel zu {names[0]}"
    return f"{text}. {PERSON_HINT}"


def clarify_choice(first_title: str, second_title: str) -> str:
    """A close call between two pages: let the caller pick."""
    return f"{_CHOICE_PREFIX}„{first_title}“ oder „{second_title}“?"


def offered_choices(bot_text: str) -> list[str]:
    """The titles offered by :func:`clarify_choice` in an earlier bot turn (empty if it was no choice)."""
    if not bot_text.startswith(_CHOICE_PREFIX):
        return []
    return re.findall(r"„([^“]+)“", bot_text)


_CLARIFY_TEXTS = (
    CLARIFY_REPHRASE,
    CLARIFY_ACOUSTIC,
    CLARIFY_NO_CONTENT,
    CLARIFY_INJECTION,
    CLARIFY_INSULT,
    CLARIFY_NEUTRAL,
    CLARIFY_ADVICE,
    CLARIFY_OTHER_TOWN,
)


def is_clarify(bot_text: str) -> bool:
    """Was this bot turn one of our clarifying questions or scope answers (in German or English)?"""
    text = bot_text.strip()
    known = (
        *_CLARIFY_TEXTS,
        *(ENGLISH[t] for t in _CLARIFY_TEXTS if t in ENGLISH),
        OUT_OF_SCOPE_START,
        OUT_OF_SCOPE_EN,
    )
    return text.startswith(_CHOICE_PREFIX) or any(text.startswith(t[:40]) for t in known)


# ---- greetings and thanks: a caller's "Guten Tag." is greeted back, "Danke" gets a short reply
GREETING_REPLY = "Guten Tag! Wie kann ich Ihnen helfen?"
THANKS_REPLY = "Gern geschehen. Kann ich sonst noch helfen?"
ANYTHING_ELSE = "Gut. Kann ich sonst noch helfen?"

# ---- more on request: a short answer ends with an offer of the next useful part of the same page
_MORE_OFFERS = {
    "documents": "Möchten Sie wissen, welche Unterlagen Sie mitbringen müssen?",
    "cost": "Möchten Sie wissen, was das kostet?",
    "hours": "Möchten Sie die Öffnungszeiten wissen?",
    "duration": "Möchten Sie wissen, wie lange das dauert?",
    "deadline": "Möchten Sie wissen, bis wann Sie das erledigen müssen?",
    "contact": "Möchten Sie die Telefonnummer oder die E-Mail-Adresse wissen?",
    "place": "Möchten Sie die Adresse wissen?",
    "eligibility": "Möchten Sie wissen, welche Voraussetzungen gelten?",
}
# What the caller's "ja" asks, as a question the answer engine understands.
MORE_QUESTIONS = {
    "documents": "Welche Unterlagen muss ich mitbringen?",
    "cost": "Was kostet das?",
    "hours": "Wann ist geöffnet?",
    "duration": "Wie lange dauert das?",
    "deadline": "Bis wann muss ich das erledigen?",
    "contact": "Wie ist die Telefonnummer?",
    "place": "Wo ist das?",
    "eligibility": "Welche Voraussetzungen gelten?",
}
MORE_TYPES = tuple(_MORE_OFFERS)


def offer_more(fact_type: str) -> str:
    return _MORE_OFFERS[fact_type]


def offered_more(bot_text: str) -> str | None:
    """The fact type an earlier bot turn offered to tell next ("Möchten Sie wissen, ...?"), if it ended so."""
    text = bot_text.rstrip()
    return next((kind for kind, offer in _MORE_OFFERS.items() if text.endswith(offer)), None)


def asks_to_repeat(bot_text: str) -> bool:
    """Did this bot turn ask the caller to say it again ("nicht verstanden", "mit anderen Worten")?"""
    text = bot_text.strip()
    asks = (CLARIFY_REPHRASE, CLARIFY_ACOUSTIC, CLARIFY_NO_CONTENT)
    return any(text.startswith(t[:40]) or text.startswith(ENGLISH[t][:30]) for t in asks)


# ---- handoff
HANDOFF_UNSURE = (
    "Dazu habe ich leider keine sichere Auskunft. "
    "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter."
)
HANDOFF_REQUESTED = "Gern, ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter."
HANDOFF_REQUESTED_EN = "Of course, I will connect you with a member of staff."
HANDOFF_PERSONAL = (
    "Zu persönlichen Vorgängen und zu anderen Personen darf ich keine Auskunft geben. "
    "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter, die das prüfen kann."
)
HANDOFF_ERROR = "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter."

# ---- a detail the page does not state: say so, offer the hand-off (never another fact instead)
_UNKNOWN_WHAT = {
    "cost": "was das kostet",
    "duration": "wie lange das dauert",
    "deadline": "bis wann das nötig ist",
    "hours": "zu welchen Zeiten das ist",
    "place": "wo genau das ist",
    "contact": "unter welcher Nummer oder Adresse Sie jemanden erreichen",
    "documents": "welche Unterlagen Sie dafür brauchen",
    "eligibility": "welche Voraussetzungen dafür gelten",
    "responsible": "wer dafür zuständig ist",
}
HANDOFF_OFFER = "Soll ich Sie mit einer Mitarbeiterin oder einem Mitarbeiter verbinden?"
HANDOFF_DECLINED = "Gut. Was kann ich sonst für Sie tun?"


def not_current(topic: str) -> str:
    """An expired page is not spoken (knowledge.freshness): say so and offer the hand-off."""
    topic = re.sub(r"\s*\([^)]*\)", "", topic).strip()
    return f"Zu „{topic}“ kann ich Ihnen gerade keine aktuelle Auskunft geben. {HANDOFF_OFFER}"


def fact_unknown(fact_type: str, topic: str) -> str:
    """ "Zu „Reisepass beantragen“ habe ich keine Angabe, wie lange das dauert. Soll ich Sie ... verbinden?"."""
    topic = re.sub(r"\s*\([^)]*\)", "", topic).strip()
    what = _UNKNOWN_WHAT.get(fact_type)
    if what is None:
        return f"Das kann ich Ihnen zu „{topic}“ nicht sicher sagen. {HANDOFF_OFFER}"
    return f"Zu „{topic}“ habe ich keine Angabe, {what}. {HANDOFF_OFFER}"


def offers_handoff(bot_text: str) -> bool:
    """Did this bot turn end with the hand-off offer (so that "ja" means: connect me)?"""
    return bot_text.rstrip().endswith(HANDOFF_OFFER)


_YES = re.compile(
    r"^(ja|jawohl|gerne?|bitte|okay|ok|genau|klar|sehr gerne?|ja bitte|ja gerne|mach das|machen sie das)\b"
)
_NO = re.compile(r"^(nein|nee|ne|nö|no|danke nein|nein danke|nicht nötig|lieber nicht|brauche ich nicht)\b")


def yes_or_no(reply: str) -> bool | None:
    """A short reply's "ja" (True) or "nein" (False); None for anything else (a new question)."""
    text = re.sub(r"[^\wäöüß ]", " ", reply.lower()).split()
    if not text or len(text) > 4:
        return None
    joined = " ".join(text)
    if _NO.match(joined):
        return False
    if _YES.match(joined):
        return True
    return None


# ---- emergency
EMERGENCY_112 = (
    "Das klingt nach einem Notfall. Bitte legen Sie auf und wählen Sie sofort die 112, "
    "die Feuerwehr und den Rettungsdienst."
)
EMERGENCY_110 = (
    "Das klingt nach einem Notfall. Bitte legen Sie auf und wählen Sie sofort die 110, die Polizei."
)
EMERGENCY_112_EN = "This sounds like an emergency. Please hang up and call 112 right away."
EMERGENCY_110_EN = "This sounds like an emergency. Please hang up and call 110, the police, right away."

# ---- caller language without a page in that language
GERMAN_ONLY_NOTICE = {
    "en": "This information is only available in German.",
    "tr": "Bu bilgi yalnızca Almanca olarak mevcuttur.",
    "ru": "Эта информация есть только на немецком языке.",
    "uk": "Ця інформація є лише німецькою мовою.",
    "pl": "Ta informacja jest dostępna tylko po niemiecku.",
    "ar": "هذه المعلومات متوفرة باللغة الألمانية فقط.",
}

# English for callers who speak English (the multilingual minimum); other languages hear German.
ENGLISH = {
    CLARIFY_REPHRASE: "Sorry, I did not understand that for sure. Could you say it in other words, please?",
    CLARIFY_ACOUSTIC: "Sorry, I could not hear you well. Could you repeat that, please?",
    CLARIFY_NO_CONTENT: "Sorry, I did not understand. What is your question about?",
    CLARIFY_INJECTION: "I cannot help with that. I only answer questions about the town's services.",
    CLARIFY_INSULT: "I am glad to help, please stay polite. What is your question about?",
    CLARIFY_NEUTRAL: "The town administration does not comment on that. How can I help you with our services?",
    CLARIFY_ADVICE: "I cannot give legal, medical or financial advice. How can I help you with our services?",
    CLARIFY_OTHER_TOWN: "I can only give information about our own town. What can I do for you here?",
    GREETING_REPLY: "Hello! How can I help you?",
    THANKS_REPLY: "You are welcome. Is there anything else I can do for you?",
    ANYTHING_ELSE: "All right. Is there anything else I can do for you?",
    HANDOFF_UNSURE: "I am not sure about that. I will connect you with a member of staff.",
    HANDOFF_PERSONAL: "I cannot give information about personal cases or other people. "
    "I will connect you with a member of staff who can check.",
    HANDOFF_ERROR: "I will connect you with a member of staff.",
}


OUT_OF_SCOPE_EN = "I cannot help with that."


def localize(text: str, language: str) -> tuple[str, str]:
    """(text, its language): the English version for English callers where one exists, else German."""
    if language == "en" and text.startswith(OUT_OF_SCOPE_START):
        return (
            f"{OUT_OF_SCOPE_EN} I answer questions about the town's services. "
            "To talk to a person, ask for a member of staff or press zero.",
            "en",
        )
    if language == "en" and text in ENGLISH:
        return ENGLISH[text], "en"
    return text, "de"
