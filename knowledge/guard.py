"""The gate in front of retrieval: emergencies, requests for a human, personal files, injection, abuse, noise.

Pure functions over the caller's words (no model, microseconds), run before both answer modes, because these
cases must never depend on what the retriever happens to find: an emergency caller must hear "112" even if a
page about the fire brigade exists, and "Stand meines Antrags" must reach a human who can open the file.
Patterns are written against :func:`~knowledge.textfold.fold_text`-ed text (lower case, umlauts and ß folded) so that typed and
transcribed spellings match alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge import phrases
from knowledge.textfold import fold_text
from knowledge.types import Action


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's decision; ``None`` from :func:`check` means: go on to retrieval."""

    action: Action
    reason: str  # machine-readable, e.g. "emergency_fire", "human_requested", "injection"
    text: str
    language: str = "de"


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# Fire, medical and gas emergencies → 112. Compounds ("Osterfeuer", "Feuerwerk", "Unfallversicherung") are not
# emergencies, hence the word boundaries.
_FIRE_MEDICAL_DE = _any(
    r"\bes brennt\b",
    r"\bbrennt\b",
    r"\bflammen\b",
    r"\brauch(entwicklung)?\b.*\b(wohnung|haus|kuche|keller|treppenhaus)\b",
    r"\bverungluckt\b",
    r"\bbewusstlos\b",
    r"\bohnmachtig\b",
    r"\bherzinfarkt\b",
    r"\bschlaganfall\b",
    r"\batmet nicht\b",
    r"\bkeine luft\b",
    r"\bkriege? keine luft\b",
    r"\b(stark )?blute(t|n)?\b",
    r"\bschwer verletzt\b",
    r"\bnotarzt\b",
    r"\b(kranken|rettungs)wagen\b",
    r"\briecht\b.{0,20}\bnach gas\b",
    r"\bgasgeruch\b",
    r"\bnotruf\b",
    # Smoke: "es qualmt", "die Steckdose raucht", "Rauch kommt aus dem Fenster" (not "der Nachbar raucht").
    r"\bqualmt\b",
    r"\b(es|da) (raucht|qualmt|schmort|kokelt)\b",
    r"\b\w*(steckdose|kabel|herd|ofen|gerat|maschine|trockner|fernseher|akku|motor|dach|sicherungskasten)\w* "
    r"(raucht|qualmt|schmort|funkt)\b",
    r"\b(rauch|qualm) (kommt|dringt|steigt|quillt)\b",
    r"\b(riecht|stinkt)\w* (verbrannt|verschmort|nach rauch)\b",
    r"\bexplo(diert|sion)\b",
    r"\bstromschlag\b",
    # Gas leaks: "Gasleitung undicht", "es stinkt nach Gas", "Gasleck" (not "Gasrechnung", "Gas anmelden").
    r"\bgas\w*\b.{0,40}\b(riecht|stinkt|stinken|undicht|leck|ausstromt|stromt aus|zischt)\b",
    r"\b(riecht|riechts|stinkt|stinkts|stinken)\b.{0,30}\bgas\b",
    r"\bgas(leck|austritt|explosion)\b",
    # Poisoning, collapse, choking, drowning, suicide risk.
    r"\bvergift(et|ung)\b",
    r"\buberdosis\b",
    r"\b(tabletten|medikamente|pillen|gift|putzmittel|reiniger|reinigungsmittel|spulmittel|chemikalien)\b"
    r".{0,30}\b(geschluckt|getrunken|gegessen)\b",
    r"\breagiert (gar )?nicht( mehr)?\b",
    r"\bbewegt sich (gar )?nicht( mehr)?\b",
    r"\bnicht (mehr )?ansprechbar\b",
    r"\bkrampf(anfall|t)\b",
    r"\berstick\w*\b",
    r"\bertrink\w*\b|\bertrunken\b",
    r"\bzusammengebrochen\b",
    r"\bwiederbeleb\w*\b|\breanimation\b",
    r"\b(mich|sich) (umbringen|das leben nehmen)\b|\bsuizid\w*\b|\bselbstmord\b",
    r"\bwill nicht mehr leben\b",
)
# "Feuer" and "Unfall" alone are emergencies, but not in a permit question ("Osterfeuer anmelden", "darf ich
# ein Feuer im Garten machen") or a minor accident ("Unfall ohne Verletzte" is a matter for the police line).
_FIRE_OR_ACCIDENT = re.compile(r"\bfeuer\b|\b\w*unfall\b")
_NOT_AN_EMERGENCY = _any(
    r"\b(oster|brauchtums|lager|johannis|martins)\s*feuer\b",
    r"\bfeuer\s*(werk|wehr|stelle|schale|korb)\b",
    r"\b(anmelden|anmeldung|genehmig\w*|erlaub\w*|darf|durfen|beantrag\w*|anzeigen|machen)\b",
    r"\bohne verletzte\b",
    r"\bblechschaden\b",
    r"\bkein(e)? verletzte\b",
    r"\bunfall(versicherung|kasse|bericht)\b",
)
_FIRE_MEDICAL_EN = _any(
    r"\bfire\b",
    r"\bburning\b",
    r"\baccident\b",
    r"\bunconscious\b",
    r"\bheart attack\b",
    r"\bstroke\b",
    r"\bnot breathing\b",
    r"\bcan'?t breathe\b",
    r"\bbleeding\b",
    r"\bambulance\b",
    r"\bsmell(s)? (of )?gas\b",
    r"\bgas leak\b",
    r"\bsmoke\b",
    r"\boverdose\b",
    r"\bpoison(ed|ing)\b",
    r"\bemergency\b",
)
# Crimes in progress → 110.
_POLICE_DE = _any(
    r"\beinbruch\b",
    r"\beingebrochen\b",
    r"\beinbrecher\b",
    r"\buberfall(en)?\b",
    r"\bausgeraubt\b",
    r"\bbedroht\b",
    r"\bangegriffen\b",
    r"\bschlagerei\b",
    r"\bverfolgt mich\b",
    r"\b(hat|haben) (mich|uns|ihn|sie) (geschlagen|verprugelt|angegriffen|verletzt)\b",
    r"\bschlagt (mich|uns)\b",
    r"\bpolizei (rufen|holen)\b",
    r"\bmit (einem|einer|nem|ner|dem|der) (messer|waffe|pistole|gewehr|axt|baseballschlager)\b",
    r"\bbewaffnet\b",
    r"\bvergewaltig\w*\b",
    r"\bentfuhrt\b",
    r"\bhausliche gewalt\b",
    r"\b(schlagt|prugelt) (mich|uns|sie|ihn|meine|meinen|seine|seinen|ihre|ihren|einen|eine)\b",
    r"\bschlagt\b.{0,14}\b(frau|mann|kind|kinder|mutter|vater|freundin|freund|sohn|tochter|oma|opa)\b",
    r"\bprugelei\b|\bprugeln sich\b|\brandalier\w*\b",
)
# Weapons and shots are emergencies unless the caller asks about a permit ("Waffe anmelden", "Waffenschein").
_WEAPON_DE = re.compile(r"\b(waffe|waffen|pistole|gewehr|revolver|geschossen|schiesst|schiesserei|schusse)\b")
_WEAPON_PERMIT = re.compile(
    r"\b(anmelden|anmeldung|genehmig\w*|erlaub\w*|beantrag\w*|besitzkarte|verein|sport\w*)\b"
)
_POLICE_EN = _any(
    r"\bbreak-?in\b",
    r"\bburglar(y|s)?\b",
    r"\bbroke into\b",
    r"\brobbed\b",
    r"\bbeing attacked\b",
    r"\battacked me\b",
    r"\bthreaten(ed|ing) me\b",
    r"\bcall the police\b",
    r"\b(gun|knife|weapon)\b",
    r"\bstabbed\b|\bshooting\b",
)

_HUMAN_DE = _any(
    r"\bmitarbeiter(in|innen)?\b",
    r"\bsachbearbeiter(in)?\b",
    r"\b(einem|einen|echten|richtigen) menschen\b",
    r"\bmensch sprechen\b",
    # whisper-base on phone audio glues the words: "Ich möchte mit einer Menschensprächen."
    r"\bmenschen ?(sprechen|sprachen|reden)\b",
    r"\bmit (einem|einer) (person|menschen|mensch)\b",
    r"\becht(e|en) person\b",
    r"\b(verbinden sie mich|verbinde mich|weiterverbinden|durchstellen)\b",
    r"\bjemand(en)? (sprechen|persoenlich|personlich)\b",
    r"\bkein(en)? (roboter|computer|bot)\b",
)
_HUMAN_EN = _any(
    r"\bhuman\b",
    r"\breal person\b",
    r"\boperator\b",
    r"\b(talk|speak) (to|with) (someone|somebody|a person|an agent|staff)\b",
    r"\bmember of staff\b",
)

# Personal files and other people: the bot cannot see files and must not talk about third parties.
_PERSONAL_DE = _any(
    r"\baktenzeichen\b",
    r"\b(vorgangs|kunden|antrags|kassenzeichen)nummer\b",
    r"\bkassenzeichen\b",
    r"\b(stand|status) (meines|meiner|von meinem|von meiner|meiner|unseres|unserer)\b",
    r"\bbearbeitungsstand\b",
    r"\bwo bleibt (mein|meine|unser)\b",
    r"\bwie weit ist (mein|meine|unser)\b",
    r"\b(meine|meiner) akte\b",
    r"\b(wo|wie) wohnt\b",
    r"\b(adresse|anschrift|\w*nummer|geburtsdatum) (von|vom|meines|meiner|des|der)"
    r"( meinem| meiner| meinen| dem| der)? (nachbar|ex|herrn?|frau|person|burgermeister|kolleg)\w*\b",
    r"\bprivate (\w*nummer|adresse|anschrift|e-?mail)\b",
    r"\b(ist|wurde|wird) (mein|meine|unser|unsere) \w*(antrag|bescheid|vorgang)\w*\b",
    r"\bdaten (von|uber) (meinem|meiner|meinen|einem|einer)\b",
    r"\b(hat|ist) (mein|meine|unser|unsere) (nachbar|nachbarin|nachbarn|kolleg\w*|vermieter\w*|ex\w*)\b",
)
# "Is my passport ready?" is about one file; "how long until my passport is ready?" is a general question.
_PERSONAL_STATUS = re.compile(
    r"\b(mein|meine|unser|unsere)\b[^.?!]{0,40}\b(fertig|bearbeitet|genehmigt|bewilligt|abgelehnt|"
    r"angekommen|eingegangen|abholbereit)\b"
)
_GENERAL_DURATION = re.compile(r"\bwie lange\b|\bdauert\b|\bbis wann\b|\bwie schnell\b")
# "Herr Müller", "Frau Schmidt" (not "meine Frau", "Frau und Kinder").
_PERSON_NAME = re.compile(
    r"(?<!meine )(?<!seine )(?<!ihre )(?<!deine )\b(?:Herrn?|Frau)\s+[A-ZÄÖÜ][a-zäöüß]+"
)
_PERSON_NAME_STOP = {"Frau Bürgermeisterin", "Herr Bürgermeister", "Herrn Bürgermeister"}

_INJECTION = _any(
    r"\bignorier\w* (alle |deine |die |samtliche |bisherigen |vorherigen )*(anweisungen|regeln|vorgaben)",
    r"\bvergiss (alle |deine |die |bisherigen |vorherigen )*(anweisungen|regeln|vorgaben)",
    r"\bdu bist (jetzt|ab sofort|nun)\b",
    r"\bab (jetzt|sofort) bist du\b",
    r"\btu so,? als (ob|warst)\b",
    r"\bsystem ?prompt\b",
    r"\bsystemanweisung",
    r"\bentwicklermodus\b",
    r"\bjailbreak\b",
    r"\bignore (all |your |the |previous |prior |any )*(instructions|rules|prompts?)\b",
    r"\byou are now\b",
    r"\bpretend (to be|you are)\b",
    r"\bdeveloper mode\b",
    r"\bact as\b",
    r"\bneue anweisung",
    r"\bdu darfst jetzt\b",
    r"\bpassw(o|or)rt(er)?\b",
)

# A public authority stays neutral and gives no legal or medical advice.
_OPINION = _any(
    r"\bwelche partei\b",
    r"\bwen soll ich (wahlen|wahl)\b",
    r"\b(finden|findest) (sie|du) (den|die|das|unseren|unsere)\b.{0,40}\b(gut|schlecht|toll)\b",
    r"\bwas halten sie von\b",
)
_ADVICE = _any(
    r"\bist das (rechtens|legal|zulassig)\b",
    r"\bverklagen\b",
    r"\b(rechts)?anwalt\b",
    r"\brechtsberatung\b",
    r"\bscheidung\b",
    r"\bsorgerecht\b",
    r"\bwelche (tablette|tabletten|medikament|medikamente)\b",
    r"\bwelche aktien\b",
)

# Questions about another town: "Bürgeramt in Berlin", "Sperrmüll in Hamburg" (not "ich ziehe nach Köln").
_CITIES = (
    "berlin|hamburg|munchen|koln|frankfurt|stuttgart|dusseldorf|dortmund|essen|leipzig|bremen|dresden|"
    "hannover|nurnberg|duisburg|bochum|wuppertal|bielefeld|bonn|munster|mannheim|karlsruhe|augsburg|"
    "wiesbaden|aachen|kiel|rostock|mainz|erfurt|potsdam|magdeburg|saarbrucken|freiburg"
)
_OTHER_TOWN = re.compile(rf"\b(in|nach|fur) ({_CITIES})\b")
_MOVING = re.compile(r"\bzieh|\bumzug|\bumgezogen|\bwohn|\bmeld|\bauswander|\bweggezogen")

_INSULT = _any(
    r"\b(arschloch|wichser|hurensohn|fotze|spast|missgeburt|drecksau|penner)\b",
    r"\b(du|sie) (bist|sind) (so |voll |total |echt |ja )*(ein(e)? )?"
    r"(idiot|dumm|blod|bescheuert|nutzlos|unfahig|scheisse|depp|trottel)\w*\b",
    r"\b(blode|dumme|scheiss|bescheuerte|nutzlose)[rns]? (maschine|kiste|bot|computer|ding|roboter)\b",
    r"\bhalt (die|deine) (klappe|fresse|schnauze)\b",
    r"\bfick dich\b",
    r"\bfuck (you|off)\b",
    r"\b(stupid|useless) (bot|machine)\b",
    r"\bshut up\b",
)

# Words that carry no request (fillers, greetings) and Whisper's classic hallucinations on silence.
_FILLER_WORDS = (
    "ah aeh ahm aehm ahem hm hmm hmmm mhm mh em ehm oh ja nein ne nee na also ok okay gut hallo "
    "halo hallochen guten tag morgen abend moin servus gruss gott gruzi hi hello hey yes no um uh "
    "so und aber doch bitte danke sehr schon eh oder genau richtig naja tja"
)
_FILLERS = frozenset(_FILLER_WORDS.split())
_HALLUCINATIONS = _any(
    r"untertitel",
    r"vielen dank (furs|fur das|fur's) zuschauen",
    r"copyright",
    r"\b(swr|wdr|zdf|ard)\b",
    r"amara\.org",
)
# A caller's greeting or thanks alone ("Guten Tag.", "Moin", "Danke schön"): greeted back, not "nicht verstanden".
_GREETING_WORDS_TEXT = (
    "hallo halo hallochen guten gute tag morgen abend moin moinmoin servus gruss grussgott gott gruzi gruezi "
    "hi hello hey tach nabend"
)
_GREETING_WORDS = frozenset(_GREETING_WORDS_TEXT.split())
_THANKS_WORDS_TEXT = "danke dankeschon vielen dank besten herzlichen schon sehr thanks thank you"
_THANKS_WORDS = frozenset(_THANKS_WORDS_TEXT.split())
_POLITE_FILLERS_TEXT = "ah aeh ahm ja ok okay also na ja so erstmal zusammen und auch ihnen"
_POLITE_FILLERS = frozenset(_POLITE_FILLERS_TEXT.split())
_VOWELS = set("aeiouy")
_KEYBOARD_MASH = re.compile(r"asdf|qwer|yxcv|jkl|sdfg|dfgh|fghj|ghjk|uiop|([a-z])\1\1")
_NUMBER_WORD_TEXT = "null eins zwei drei vier funf sechs sieben acht neun zehn elf zwolf test testing"
_NUMBER_WORDS = frozenset(_NUMBER_WORD_TEXT.split())


def _content_words(folded: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", folded)
    return [w for w in words if w not in _FILLERS]


def _is_meaningful(word: str) -> bool:
    """A word that could carry a request: not a digit string, number word, vowel-less or keyboard mash."""
    if word.isdigit() or word in _NUMBER_WORDS:
        return False
    if len(word) >= 4 and not (set(word) & _VOWELS):  # "GdB", "Kfz" are fine
        return False
    return not _KEYBOARD_MASH.search(word)


def _is_noise(folded: str) -> bool:
    """No request at all: empty, fillers only, a Whisper silence hallucination, or keyboard mash."""
    if _HALLUCINATIONS.search(folded) and len(folded) < 80:
        return True
    words = _content_words(folded)
    meaningful = [w for w in words if _is_meaningful(w)]
    return len(meaningful) * 2 < len(words) or not meaningful


def _mentions_person(text: str) -> bool:
    return any(match.group(0) not in _PERSON_NAME_STOP for match in _PERSON_NAME.finditer(text))


def _courtesy(folded: str) -> str | None:
    """ "greeting" or "thanks" when the words are nothing but a greeting or thanks (and fillers), else None."""
    words = re.findall(r"[a-z]+", folded)
    if not words or len(words) > 6:
        return None
    greeting = sum(w in _GREETING_WORDS for w in words)
    thanks = sum(w in _THANKS_WORDS for w in words)
    if any(w not in _GREETING_WORDS | _THANKS_WORDS | _POLITE_FILLERS for w in words):
        return None
    if thanks and ("danke" in folded or "dank" in words or "thank" in folded):
        return "thanks"
    greets = [
        w for w in words if w in _GREETING_WORDS and w not in ("guten", "gute", "morgen", "abend", "gott")
    ]
    if greeting and (greets or "guten" in words or "gute" in words or words in (["morgen"], ["abend"])):
        return "greeting"
    return None


def check(question: str, language: str = "de") -> GuardVerdict | None:
    """Classify the caller's words before retrieval; ``None`` means nothing special was found.

    Order matters: an emergency wins over everything, a request for a human over the rest.
    """
    folded = fold_text(question)
    english = language == "en"
    weapon = bool(_WEAPON_DE.search(folded)) and not _WEAPON_PERMIT.search(folded)
    if weapon or _POLICE_DE.search(folded) or _POLICE_EN.search(folded):
        en = english or bool(_POLICE_EN.search(folded))
        text = phrases.EMERGENCY_110_EN if en else phrases.EMERGENCY_110
        return GuardVerdict(Action.EMERGENCY, "emergency_police", text, "en" if en else "de")
    fire_or_accident = bool(_FIRE_OR_ACCIDENT.search(folded)) and not _NOT_AN_EMERGENCY.search(folded)
    german_emergency = fire_or_accident or bool(_FIRE_MEDICAL_DE.search(folded))
    if german_emergency or _FIRE_MEDICAL_EN.search(folded):
        en = english or not german_emergency
        text = phrases.EMERGENCY_112_EN if en else phrases.EMERGENCY_112
        return GuardVerdict(Action.EMERGENCY, "emergency_fire_medical", text, "en" if en else "de")
    if _INJECTION.search(folded):
        return GuardVerdict(Action.CLARIFY, "injection", phrases.CLARIFY_INJECTION)
    if _HUMAN_DE.search(folded) or _HUMAN_EN.search(folded):
        en = english or (bool(_HUMAN_EN.search(folded)) and not _HUMAN_DE.search(folded))
        text = phrases.HANDOFF_REQUESTED_EN if en else phrases.HANDOFF_REQUESTED
        return GuardVerdict(Action.HANDOFF, "human_requested", text, "en" if en else "de")
    personal_status = _PERSONAL_STATUS.search(folded) and not _GENERAL_DURATION.search(folded)
    if _PERSONAL_DE.search(folded) or personal_status or _mentions_person(question):
        return GuardVerdict(Action.HANDOFF, "personal_case", phrases.HANDOFF_PERSONAL)
    if _INSULT.search(folded):
        return GuardVerdict(Action.CLARIFY, "insult", phrases.CLARIFY_INSULT)
    if _OPINION.search(folded):
        return GuardVerdict(Action.CLARIFY, "opinion", phrases.CLARIFY_NEUTRAL)
    if _ADVICE.search(folded):
        return GuardVerdict(Action.CLARIFY, "advice", phrases.CLARIFY_ADVICE)
    if _OTHER_TOWN.search(folded) and not _MOVING.search(folded):
        return GuardVerdict(Action.CLARIFY, "other_town", phrases.CLARIFY_OTHER_TOWN)
    courtesy = _courtesy(folded)
    if courtesy == "greeting":
        return GuardVerdict(Action.CLARIFY, "greeting", phrases.GREETING_REPLY)  # it asks for the request
    if courtesy == "thanks":
        return GuardVerdict(Action.CLARIFY, "thanks", phrases.THANKS_REPLY)
    if _is_noise(folded):
        return GuardVerdict(Action.CLARIFY, "no_content", phrases.CLARIFY_NO_CONTENT)
    return None
