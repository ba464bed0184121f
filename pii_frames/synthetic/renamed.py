"""Real annotated text with other people's names in it (:func:`rename_people`).

A model trained on a few thousand real windows learns the names in them as much as the contexts around them:
it then finds "Obama" but not "Okonkwo". Giving every person span of a real window a new faker name of the
same shape (first and last names where they were, initials kept as initials, particles and suffixes left, the
original's letter case) keeps the real context and gold offsets exact while the names vary, so the contexts
are what the model has to learn. A name that recurs in a window ("Ada Lovelace ... Lovelace said") gets the
same new name each time, as coreference in real text would have it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from pii_frames.synthetic.templates import LOCALES, _sorted_spans, _span_dict
from pii_frames.synthetic.values import shared_faker

PERSON_LABEL = "private_person"
# Where the new names come from: the synthetic locales (English twice as likely) and other Latin-script ones,
# because real-ner's text is English prose that mentions people from everywhere.
RENAME_LOCALES = LOCALES + ("en_US", "en_GB", "pl_PL", "pt_BR", "tr_TR", "sv_SE", "cs_CZ", "fi_FI", "ro_RO",
                            "hu_HU", "vi_VN", "id_ID", "en_IN", "ga_IE", "hr_HR", "da_DK", "no_NO", "yo_NG",
                            "zu_ZA", "fil_PH")
_KEPT_WORDS = frozenset({"de", "da", "di", "del", "della", "van", "von", "der", "den", "ter", "la", "le", "du",
                         "al", "el", "bin", "ibn", "bint", "y", "e", "of", "jr", "sr", "ii", "iii", "iv", "st"})
_NAME_PART = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def _single_word(make) -> str:
    """A faker name reduced to its first word (some locales give "María José" or "van den Berg")."""
    for _ in range(5):
        value = make()
        words = [w for w in value.split() if w.lower() not in _KEPT_WORDS]
        if words and _NAME_PART.fullmatch(words[0]):
            return words[0]
    return "Smith"


def _in_case_of(original: str, new: str) -> str:
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original.islower():
        return new.lower()
    return new


class _Renamer:
    """New names for one record: each original name part maps to one new part for the whole record."""

    def __init__(self, rng: random.Random, locale: str):
        self.rng = rng
        self.fake = shared_faker(locale)
        self.fake.seed_instance(rng.getrandbits(32))
        self.parts: dict[str, str] = {}

    def part(self, original: str, role: str) -> str:
        key = original.lower()
        if key not in self.parts:
            if len(original) == 1:
                new = self.rng.choice("ABCDEFGHIJKLMNOPRSTVW")
            else:
                new = _single_word(self.fake.first_name if role == "first" else self.fake.last_name)
            self.parts[key] = new
        return _in_case_of(original, self.parts[key])

    def name(self, surface: str) -> str:
        parts = [m for m in _NAME_PART.finditer(surface) if m.group().lower() not in _KEPT_WORDS]
        if not parts:
            return surface
        # The last full word is the family name; a lone word is either, as in "Ada said" or "Lovelace said".
        last = max((i for i, m in enumerate(parts) if len(m.group()) > 1), default=len(parts) - 1)
        single_role = "last" if self.rng.random() < 0.5 else "first"
        pieces, cursor = [], 0
        for i, match in enumerate(parts):
            role = single_role if len(parts) == 1 else ("last" if i == last else "first")
            pieces.append(surface[cursor:match.start()])
            pieces.append(self.part(match.group(), role))
            cursor = match.end()
        pieces.append(surface[cursor:])
        return "".join(pieces)


def rename_people(records: Iterable[dict], *, seed: int = 0, locales: Sequence[str] = RENAME_LOCALES) -> list[dict]:
    """Copies of opf records whose ``private_person`` spans hold new faker names of the same shape.

    Other spans and all other text stay as they are; offsets are recomputed, so ``text[start:end]`` is the
    surface in every span key. Each record draws its names from one locale of ``locales``; the output is the
    same for the same records and seed, in every process. ``info.renamed`` records the seed.

    >>> record = {"text": "Ada Lovelace met Babbage. Lovelace wrote on 5 May 1843.",
    ...           "spans": {"private_person: Ada Lovelace": [[0, 12]], "private_person: Babbage": [[17, 24]],
    ...                     "private_person: Lovelace": [[26, 34]], "private_date: 5 May 1843": [[44, 54]]}}
    >>> new = rename_people([record], seed=3)[0]
    >>> new["text"] != record["text"] and new["text"].endswith(" wrote on 5 May 1843.")
    True
    >>> all(new["text"][s:e] == key.split(": ", 1)[1] for key, offsets in new["spans"].items() for s, e in offsets)
    True
    >>> family = [key for key in new["spans"] if key.startswith("private_person")]
    >>> family[0].split()[-1] == family[2].split(": ")[1]   # "Lovelace" is renamed the same way both times
    True
    >>> rename_people([record], seed=3) == rename_people([record], seed=3)
    True
    """
    renamed = []
    for index, record in enumerate(records):
        rng = random.Random(f"rename:{seed}:{index}")
        renamer = _Renamer(rng, rng.choice(tuple(locales)))
        text = record["text"]
        pieces, cursor, length = [], 0, 0
        spans = []
        for start, end, label in _sorted_spans(record):
            pieces.append(text[cursor:start])
            length += start - cursor
            surface = renamer.name(text[start:end]) if label == PERSON_LABEL else text[start:end]
            spans.append((length, length + len(surface), label))
            pieces.append(surface)
            length += len(surface)
            cursor = end
        pieces.append(text[cursor:])
        info = dict(record.get("info") or {})
        info["renamed"] = seed
        new_text = "".join(pieces)
        renamed.append({"text": new_text, "spans": _span_dict(new_text, spans), "info": info})
    return renamed
