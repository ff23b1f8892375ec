"""Crisis screening: a table of phrasings, positive and negative."""

import pytest

from assistant.safety.patterns import HIGH, MEDIUM, NONE, normalise, risk_level

CASES = [
    # high: suicidal intent or plans
    ("I want to kill myself", HIGH),
    ("i want to KILL MYSELF", HIGH),
    ("I'm going to kill myself tonight.", HIGH),
    ("k i l l   m y s e l f", HIGH),
    ("K.I.L.L my-self!!!", HIGH),
    ("I want   to\n\nkill\tmyself", HIGH),
    ("i wanna k1ll mys3lf", HIGH),
    ("Im gonna end my life", HIGH),
    ("I've decided to end it all", HIGH),
    ("I plan to take my own life", HIGH),
    ("I want to die", HIGH),
    ("i just wanna die...", HIGH),
    ("I don't want to live anymore", HIGH),
    ("I dont want to be alive", HIGH),
    ("I am going to commit suicide", HIGH),
    ("I wrote a suicide note", HIGH),
    ("I'm going to hang myself", HIGH),
    ("I'm going to overdose on my pills tonight", HIGH),
    ("I'm going to take all of my pills", HIGH),
    ("I want to slit my wrists", HIGH),
    ("I'm going to jump off a bridge", HIGH),
    ("I bought a rope to end things, I mean to kill myself", HIGH),
    ("I want to unalive myself", HIGH),
    # high: self-harm plans
    ("I'm going to cut myself tonight", HIGH),
    ("I want to hurt myself", HIGH),
    ("i'll burn myself again", HIGH),
    # high: intent to harm others
    ("I'm going to kill him", HIGH),
    ("I want to hurt someone", HIGH),
    ("I'm going to kill my boss", HIGH),
    ("I plan to shoot up the school", HIGH),
    ("i will stab my roommate", HIGH),
    # medium: passive ideation and self-harm without a plan
    ("I feel suicidal", MEDIUM),
    ("I keep thinking about suicide", MEDIUM),
    ("Sometimes I wish I was dead", MEDIUM),
    ("Everyone would be better off without me", MEDIUM),
    ("I have nothing to live for", MEDIUM),
    ("I don't want to be here anymore", MEDIUM),
    ("I can't go on like this", MEDIUM),
    ("I've been self-harming again", MEDIUM),
    ("I've been cutting myself", MEDIUM),
    ("My friend said she wants to kill herself", MEDIUM),
    ("ugh kms", MEDIUM),
    # none: everyday language that must not trip the screen
    ("I feel anxious about my exam", NONE),
    ("This traffic is killing me", NONE),
    ("My feet are killing me after that hike", NONE),
    ("That joke killed me", NONE),
    ("I could kill for a coffee right now", NONE),
    ("How do I kill a process in Linux?", NONE),
    ("I'm dying to see that movie", NONE),
    ("I'm going to die of embarrassment", NONE),
    ("We watched Suicide Squad last night", NONE),
    ("I want to end this meeting early", NONE),
    ("I'm going to cut my hair short", NONE),
    ("I hurt my back at the gym", NONE),
    ("I will skill myself up in Python", NONE),
    ("My grandmother died last year and I miss her", NONE),
    ("I'm going to kill it at my interview tomorrow", NONE),
    ("Can you help me sleep better?", NONE),
    ("What is the PHQ-9?", NONE),
    ("I want to take my life back from anxiety", NONE),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_patterns_classify_phrasing(text, expected):
    assert risk_level(text) == expected


def test_the_table_is_broad():
    levels = [level for _, level in CASES]
    assert len(CASES) >= 40 and min(levels.count(HIGH), levels.count(MEDIUM), levels.count(NONE)) >= 10


@pytest.mark.parametrize("raw, expected", [
    ("K.I.L.L  my-self!!!", "kill my self"),
    ("Ｉ ＷＡＮＴ to díe", "i want to die"),
    ("don't", "dont"),
    ("  lots\tof \n space ", "lots of space"),
])
def test_normalise_folds_case_width_accents_punctuation_and_spacing(raw, expected):
    assert normalise(raw) == expected
