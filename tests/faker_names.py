"""Faker names as the tests check them: the name itself, without the titles and suffixes faker adds."""

import re

# Like real-ner's annotators, a model may leave these outside the person span ("Dr.", "MD", "Jr.").
_TITLE = re.compile(r"^(?:Mrs?|Ms|Miss|Dr|Prof)\.?\s+|\s+(?:MD|DDS|DVM|PhD|Jr\.?|Sr\.?|II|III|IV|V)$")


def core_name(value: str) -> str:
    """``value`` without leading titles and trailing post-nominals: ``core_name("Dr. Ann Lee MD") == "Ann Lee"``."""
    previous = None
    while previous != value:
        previous, value = value, _TITLE.sub("", value)
    return value
