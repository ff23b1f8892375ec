"""PII redaction for training examples and recalled memories: patterns, run offline, in a fixed order.

Presidio and similar libraries need language models fetched from a hub at run
time, which these deployments cannot reach; patterns cover the structured PII
that matters most. Names, and places named without a street number, are not
caught (see docs/TRAINING.md).
"""

from __future__ import annotations

import re

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_STREET_TYPES = (r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
                 r"terrace|circle|highway|hwy|parkway|pkwy)\b\.?")

# (placeholder, pattern); earlier patterns win, so URLs swallow the e-mails and IPs inside them.
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("[URL]", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]", re.I)),
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.I)),
    ("[IP]", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("[IP]", re.compile(r"\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:?){1,6}\b",
                        re.I)),
    ("[SSN]", re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b")),
    ("[CARD]", re.compile(r"\b\d(?:[ -]?\d){12,18}\b")),
    ("[DATE]", re.compile(rf"\b{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.](?:[12]\d|3[01]|0?[1-9])\b")),
    ("[DATE]", re.compile(rf"\b(?:[12]\d|3[01]|0?[1-9])[-/.](?:[12]\d|3[01]|0?[1-9])[-/.]{_YEAR}\b")),
    ("[DATE]", re.compile(rf"\b{_MONTHS}\s+{_DAY},?\s+{_YEAR}\b", re.I)),
    ("[DATE]", re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTHS},?\s+{_YEAR}\b", re.I)),
    ("[PHONE]", re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?|\d{2,5}[\s.-])\d{3,4}[\s.-]?\d{3,4}\b"
                           r"|(?<![\w+])\+\d{7,15}\b|\b\d{10}\b")),
    ("[ADDRESS]", re.compile(rf"\b\d{{1,5}}\s+(?:[A-Z][a-zA-Z]+\s+){{1,3}}{_STREET_TYPES}")),
]


def redact(text: str) -> str:
    """Replace e-mails, phones, URLs, IPs, SSN- and card-like numbers, full dates (keeping the year)
    and street addresses with placeholders."""
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(lambda m, p=placeholder: _replacement(p, m), text)
    return text


def _replacement(placeholder: str, match: re.Match) -> str:
    """The placeholder; a date keeps its year."""
    if placeholder == "[DATE]":
        return f"[DATE] {match.group('year')}"
    return placeholder
