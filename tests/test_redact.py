"""PII redaction of training examples: what is replaced, and what is left alone."""

import pytest

from assistant.redact import redact

CASES = [
    # e-mail
    ("write to jane.doe@example.com please", "write to [EMAIL] please"),
    ("Sam+therapy@mail.co.uk is mine", "[EMAIL] is mine"),
    ("EMAIL: JOHN_SMITH99@Clinic.ORG", "EMAIL: [EMAIL]"),
    # phone
    ("call me at (415) 555-0132", "call me at [PHONE]"),
    ("my number is 415-555-0132.", "my number is [PHONE]."),
    ("+1 415 555 0132 is my cell", "[PHONE] is my cell"),
    ("UK: +44 20 7946 0958", "UK: [PHONE]"),
    ("text 4155550132 anytime", "text [PHONE] anytime"),
    ("ring 020 7946 0958 tomorrow", "ring [PHONE] tomorrow"),
    # URL
    ("see https://example.com/profile?id=42.", "see [URL]."),
    ("my blog www.janedoe.net has it", "my blog [URL] has it"),
    ("http://10.0.0.5:8080/admin", "[URL]"),
    # IP
    ("my IP is 192.168.1.20", "my IP is [IP]"),
    ("server 8.8.8.8, port 53", "server [IP], port 53"),
    ("v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 here", "v6 [IP] here"),
    # SSN-like and card-like
    ("SSN 123-45-6789", "SSN [SSN]"),
    ("social 123 45 6789", "social [SSN]"),
    ("card 4111 1111 1111 1111 expired", "card [CARD] expired"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("number 378282246310005", "number [CARD]"),
    # full dates keep their year
    ("born 1990-04-12", "born [DATE] 1990"),
    ("on 04/12/1990 I moved", "on [DATE] 1990 I moved"),
    ("on 12.04.1990", "on [DATE] 1990"),
    ("since March 3, 2021", "since [DATE] 2021"),
    ("since 3 March 2021", "since [DATE] 2021"),
    ("on the 3rd of March, 2021", "on the [DATE] 2021"),
    ("Sept. 14th 2019 was hard", "[DATE] 2019 was hard"),
    # street addresses
    ("I live at 221 Baker Street now", "I live at [ADDRESS] now"),
    ("moved to 1600 Pennsylvania Ave.", "moved to [ADDRESS]"),
    ("12 Oak Tree Rd is home", "[ADDRESS] is home"),
    # left alone
    ("I slept 7 hours and walked 5 miles down the road", "I slept 7 hours and walked 5 miles down the road"),
    ("in 2021 things got better", "in 2021 things got better"),
    ("my PHQ-9 score was 14 out of 27", "my PHQ-9 score was 14 out of 27"),
    ("I take 50 mg twice a day", "I take 50 mg twice a day"),
    ("version 3.11 of the app", "version 3.11 of the app"),
    ("it's 3:30 pm, see you at 4", "it's 3:30 pm, see you at 4"),
    ("in March I felt low", "in March I felt low"),
]


@pytest.mark.parametrize("raw, expected", CASES)
def test_redact(raw, expected):
    assert redact(raw) == expected


def test_the_table_is_broad():
    assert len(CASES) >= 30
