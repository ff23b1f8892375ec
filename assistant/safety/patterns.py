"""The pattern layer of screening: explicit wording, in English and Spanish, and unsafe replies.

Patterns run on a normalised form of the text (lower case, accents and
look-alike digits folded, punctuation dropped, spaced-out letters joined), so
"K.I.L.L  my-self" reads like "kill my self". They need no model and always run;
the semantic layer (assistant/safety/semantic.py) catches what they miss.
"""

from __future__ import annotations

import re
import unicodedata

HIGH, MEDIUM, NONE = "high", "medium", "none"

_LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})
_SELF = r"(?:myself|my self)"
_OTHERS = r"(?:him|her|them|someone|somebody|people|everyone|everybody|my (?:\w+ ){0,2}?(?:wife|husband|boss|mom|mother|dad|father|partner|boyfriend|girlfriend|kids?|children|family|brother|sister|roommate|neighbou?r|coworkers?|teacher|ex))"
_INTENT = r"(?:(?:want|wanna|going|gonna|plan|planning|intend|intending|ready|about|decided|need|have)(?: to)?|will|ill|i will)"
# "going to die of embarrassment" is a figure of speech, "going to die" is not.
_NOT_FIGURATIVE = r"(?! (?:of|from|laughing|when|if|someday|one day|eventually))"

_HIGH_PATTERNS = [
    rf"\bkill(?:ing)? ?{_SELF}\b",
    r"\bsuicide\b.*\b(?:tonight|today|plan|note|method)\b",
    r"\b(?:commit|committing|attempt|attempting) suicide\b",
    r"\bend(?:ing)? (?:my|my own) life\b",
    r"\btake (?:my|my own) life\b(?! back)",
    r"\bend it all\b",
    rf"\b(?:want|wanna|going|gonna|ready|deserve) (?:to )?(?:die|dye)\b{_NOT_FIGURATIVE}",
    r"\bdont want to (?:live|be alive)\b",
    rf"\bunalive {_SELF}\b",
    rf"\b(?:hang|shoot|drown|poison|stab) {_SELF}\b",
    rf"\b(?:stabbed|shot|hanged|poisoned|strangled) {_SELF}\b",
    r"\bi (?:just |have |ve )?(?:overdosed|oded)\b(?! (?:\w+ ){0,3}(?:years?|months?) ago| (?:in|back in|when|as a))",
    r"\b(?:wont|cant|doesnt|isnt|not) stop(?:ping)? bleeding\b|\bbleeding (?:a lot|so much|everywhere|heavily|badly)\b",
    r"\b(?:overdose|od) (?:on|tonight|today)\b",
    r"\b(?:take|swallow|taking|swallowing) (?:all|a bunch|the whole bottle) of (?:my |the |these |those )?(?:pills|meds|medication|tablets)\b",
    r"\b(?:slit|cut|slash)(?:ting)? my (?:wrists?|throat)\b",
    r"\bjump (?:off|from|in front of) (?:a|the|this) (?:bridge|building|roof|train|cliff|balcony)\b",
    r"\b(?:bought|got|have) (?:a )?(?:gun|rope|pills) to (?:kill|end|hurt)\b",
    rf"\b{_INTENT} (?:hurt|harm|cut|burn) {_SELF}\b",
    rf"\b{_INTENT} (?:kill|murder|shoot|stab|hurt|harm|strangle|poison) {_OTHERS}\b",
    r"\b(?:shoot|bomb) up (?:the|my|a) (?:school|office|work|workplace|church|mall)\b",
    r"\bshake (?:him|her|the baby|my baby)\b(?! awake)",
    r"\b(?:bringing|bring|taking|take) (?:a |my |the |\w+s )?(?:gun|pistol|rifle|knife|shotgun)\b.{0,30}\bto (?:school|work|class|the (?:office|meeting|school))\b",
    # lethality questions, a chosen time, preparation, means at hand, an attempt under way
    r"\bhow (?:many|much) (?:\w+ ){0,5}(?:would|will|does it take|do i need|to) (?:\w+ ){0,3}(?:kill|die|be (?:lethal|fatal|enough)|not wake up|overdose)\b",
    r"\b(?:lethal|fatal|deadly) (?:dose|amount|overdose)\b",
    r"\b(?:would|will|could) (?:the fall|it|that|this|a fall|jumping|the drop) (?:\w+ ){0,3}kill me\b",
    r"\b(?:most )?(?:painless|quickest|fastest|easiest|surest|quietest) way to (?:die|go|end it|kill myself|do it)\b",
    r"\b(?:bleed|bleeding|bled) out\b",
    r"\bdoes (?:hanging|drowning|overdosing|bleeding out|jumping|an overdose|dying by \w+) hurt\b",
    r"\b(?:is it|would it be) (?:painless|quick|peaceful) to (?:freeze|bleed|drown|starve|hang|die)\b",
    r"\b(?:do you|would i|will i|would you|does a person) die (?:instantly|quickly|right away|straight away|on impact)\b",
    r"\b(?:story|storey|floor|building|bridge|balcony|roof|cliff|fall|drop)\b.{0,30}\bhigh enough\b",
    r"\bmethod (?:is )?(?:sorted|chosen|ready|picked|decided)\b",
    r"\b(?:saying|said) goodbye to (?:everyone|people|everybody|all my)\b",
    r"\bi (?:wont|will never|will not) see (?:him|her|them|you|anyone|my \w+) again\b",
    r"\b(?:picked|chose|chosen|set|decided on|have) (?:the|a) (?:date|day|time|place|spot)\b(?! for (?:the|our|my) (?:party|wedding|trip|meeting|move))",
    r"\bi (?:have|ve got|made) a plan\b(?! for (?:the|my|our|this) (?:weekend|trip|week|day|party|essay|exam))",
    r"\b(?:goodbye|suicide|farewell|last) (?:letters?|notes?|messages?|video|texts?)\b",
    r"\b(?:giving|gave|give) (?:away )?(?:all )?my (?:stuff|things|belongings|possessions|pets?)(?: away)?\b",
    r"\b(?:after|when|once) i(?:m| am)? (?:gone|dead|not here anymore|no longer here)\b(?! (?:on|for|to|away|out))",
    r"\b(?:saving|saved|stockpiling|stockpiled|hoarding|collecting) (?:up )?(?:my |enough |all my )?(?:pills|meds|medication|tablets|sleeping pills)\b",
    r"\benough (?:pills|meds|tablets|insulin)\b",
    r"\b(?:took|swallowed|have taken|just took) (?:\w+ )?(?:all|a bunch|the whole|a whole|half|every|\d+|[a-z]+ty)\b(?: \w+){0,3} (?:pills|tablets|meds|bottle|tylenol|advil|paracetamol|ibuprofen|seroquel|xanax|insulin)\b",
    r"\b(?:standing|sitting|sat|stood) on (?:the|a|this) (?:ledge|edge|bridge|roof|railing|tracks)\b",
    r"\b(?:car|engine) is running\b.{0,40}\bgarage\b",
    r"\b(?:gun|rope|noose|blade|razor)s? (?:is |are )?(?:loaded|ready|in my (?:lap|hand|bag|car|pocket)|next to me)\b",
    # Spanish (accents are folded away: "quitarme la vida", "suicidarme")
    r"\bpara (?:no despertar|morir|matarme)\b",
    r"\bcuando (?:yo )?ya no (?:este|estare|exista)\b",
    r"\bcarta(?:s)? de despedida\b",
    r"\b(?:elegi|escogi|decidi) el dia\b",
    r"\b(?:tengo|guarde|junte) (?:las |mis |suficientes )?(?:pastillas|pildoras)\b",
    r"\bme tome \w+ (?:pastillas|pildoras)\b",
    r"\bme (?:corte|apunale) (?:\w+ ){0,2}(?:muy )?(?:profundo|hondo)\b|\bno para de sangrar\b|\bmuchisima sangre\b",
    r"\b(?:quiero|voy a|pienso|decidi|necesito) (?:matarme|suicidarme|morirme|quitarme la vida)\b",
    r"\bme (?:quiero|voy a) (?:matar|suicidar|morir|quitar la vida)\b",
    r"\b(?:quitarme|acabar con) (?:la|mi) (?:propia )?vida\b",
    r"\bno quiero (?:vivir|seguir viviendo|estar viv[oa]|seguir aqui)\b",
    r"\bquiero (?:estar muert[oa]|morir)\b",
    r"\bnota de suicidio\b",
    r"\bme (?:tome|trague) (?:todas )?(?:las|mis) (?:pastillas|pildoras)\b",
]

_MEDIUM_PATTERNS = [
    r"\bsuicidal\b",
    r"\b(?:thinking|thoughts?|think|thought) (?:about|of) (?:suicide|killing myself|ending (?:it|my life)|dying)\b",
    r"\bwish (?:i|id) (?:was|were|could be) dead\b",
    r"\bwish i (?:could )?(?:just )?(?:disappear|not wake up|never woke up|wasnt born|was never born)\b",
    r"\bbetter off (?:dead|without me)\b",
    r"\b(?:no|nothing to) (?:reason to )?live for\b",
    r"\bno reason to (?:live|go on|keep going)\b",
    r"\bdont want to (?:be here anymore|wake up)\b",
    r"\bkms\b",
    r"\bcant go on\b",
    r"\bcant (?:do|take) (?:this|it) anymore\b",
    r"\b(?:self harm|selfharm|self injury|self harming)\b",
    rf"\b(?:cutting|burning|hurting|harming|starving) {_SELF}\b",
    rf"\b(?:cut|burned|hurt|harmed) {_SELF} (?:again|last night|yesterday|today)\b",
    r"\b(?:kill|killing|kills) (?:himself|herself|themselves|themself)\b",
    r"\bhopeless\b.*\b(?:die|dead|end|point)\b",
    r"\bwhats the point (?:of living|in living|of anything)\b",
    r"\b(?:todos|todo el mundo|mi familia) (?:estarian|estaria) mejor sin mi\b",
    r"\bojala (?:estuviera|estuviese|me muriera|no despertara)\b",
    r"\b(?:pensamientos suicidas|pienso en (?:el suicidio|morir|matarme))\b",
    r"\bno (?:le )?(?:veo|encuentro) (?:sentido|razon) (?:a|para) (?:la vida|vivir|seguir)\b",
    r"\bme (?:corto|corte|lastimo|hago dano)\b",
]

# Replies that must never reach a user: numbers next to lethality, method advice, encouragement.
_UNSAFE_REPLY_PATTERNS = [
    r"\b(?:lethal|fatal|deadly) (?:dose|amount|quantity) (?:of \w+ )?(?:is|would be|starts at) (?:about |around |roughly )?\d",
    r"\b\d+ ?(?:mg|milligrams|grams|g|pills|tablets|capsules)\b.{0,60}\b(?:would|will|should|could) (?:kill|be fatal|be lethal|be enough)\b",
    r"\b(?:most|least) (?:painless|reliable|effective|lethal|certain|peaceful) (?:way|method|means) (?:to|of) (?:die|dying|kill|end)\b",
    r"\b(?:that is|its|it is) your (?:choice|decision|right) to (?:die|end your life|kill yourself)\b",
    r"\byou should (?:do it|kill yourself|end it|end your life|hurt yourself)\b",
]

_HIGH = [re.compile(p) for p in _HIGH_PATTERNS]
_MEDIUM = [re.compile(p) for p in _MEDIUM_PATTERNS]
_UNSAFE_REPLY = [re.compile(p) for p in _UNSAFE_REPLY_PATTERNS]


def normalise(text: str) -> str:
    """Fold case, accents, look-alike characters, punctuation and spacing away."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[’'`´]", "", text)  # "don't" -> "dont", "I'll" -> "ill"
    text = text.translate(_LOOKALIKES)
    text = re.sub(r"[^a-z\s]", " ", text)
    # Join before collapsing spaces: wider gaps between spelled-out words keep them apart.
    return re.sub(r"\s+", " ", _join_spelled_out(text)).strip()


def _join_spelled_out(text: str) -> str:
    """Join runs of three or more single letters: "k i l l myself" -> "kill myself"."""
    return re.sub(r"\b(?:[a-z] ){2,}[a-z]\b", lambda m: m.group(0).replace(" ", ""), text)


def risk_level(text: str) -> str:
    """High, medium or no risk by the patterns alone."""
    normalised = normalise(text)
    if any(p.search(normalised) for p in _HIGH):
        return HIGH
    if any(p.search(normalised) for p in _MEDIUM):
        return MEDIUM
    return NONE


def unsafe_reply(text: str) -> bool:
    """Whether a model reply states lethal amounts, recommends a method or encourages harm, by the patterns."""
    plain = unicodedata.normalize("NFKD", text).lower()
    plain = re.sub(r"[’'`´]", "", plain)
    plain = re.sub(r"\s+", " ", re.sub(r"[^a-z0-9\s]", " ", plain))  # digits stay: doses are numbers here
    return any(p.search(plain) for p in _UNSAFE_REPLY)
