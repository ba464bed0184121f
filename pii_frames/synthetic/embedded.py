"""Real annotated text with structured personal data written into its sentences (:func:`embed_structured`).

Real-ner annotates names and calendar dates only, so a model trained on many of its windows learns that the
rest of a prose sentence is background, and then misses addresses, phone numbers and account numbers when
they sit in prose. Writing a rendered clause frame of the synthetic generator ("call me at (415) 555-0102",
"IBAN DE89 3704 ...") into a real sentence, at a word boundary outside every gold span, keeps the real
context and gives the structured kinds a real-looking neighbourhood; all offsets are recomputed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from pii_frames.synthetic.composed import _FRAME_WEIGHTS, _FRAMES, _capitalised, _decorated, _split_items, _with_person
from pii_frames.synthetic.generator import _render
from pii_frames.synthetic.templates import LOCALES, _sorted_spans, _span_dict
from pii_frames.synthetic.values import _RenderContext, shared_faker

# Names are what the real windows already teach; the inserted clauses carry the other kinds.
_GROUPS = tuple(group for group in _FRAME_WEIGHTS if group != "person")
_SENTENCE_ENDS = (".", "!", "?", ":", "\n")
# How a clause sits inside a running sentence (it is inserted right before a word).
_MID_SENTENCE = (("(", ") "), ("", ", "), ("- ", " - "), ("(", "), "))


def _clause(rng: random.Random, locale: str, split: str) -> tuple[str, list[tuple[int, int, str]]]:
    """One rendered frame of a structured kind: its text and (start, end, label) spans within it."""
    group = rng.choices(_GROUPS, [_FRAME_WEIGHTS[g] for g in _GROUPS])[0]
    frame = _decorated(_with_person(rng.choice(_split_items(_FRAMES[group], split)), rng), rng)
    fake = shared_faker(locale)
    fake.seed_instance(rng.getrandbits(32))
    text, spans = _render(frame, _RenderContext(fake, rng, locale, None))
    return text, _sorted_spans({"spans": spans})


def _insertion_points(text: str, spans: Sequence[tuple[int, int, str]]) -> list[int]:
    """Word starts (and the end of the text) that lie outside every span."""
    points = [i for i in range(1, len(text)) if text[i - 1].isspace() and not text[i].isspace()]
    points.append(len(text))
    return [i for i in points if not any(start < i < end for start, end, _ in spans)]


def embed_structured(records: Iterable[dict], *, seed: int = 0, share: float = 0.5, clauses: int = 2,
                     split: str = "train", locales: Sequence[str] = LOCALES) -> list[dict]:
    """Copies of opf records, a ``share`` of them with 1 to ``clauses`` structured-PII clauses written in.

    Each clause is a clause frame of :mod:`pii_frames.synthetic.composed` of a kind other than names (email,
    phone, address, date, URL, secret, account), rendered with faker values of one locale, and put before a
    word that is not inside a gold span: as a sentence of its own after a sentence end, in brackets or
    between commas or dashes inside a sentence, or as a last sentence. The record's own spans keep their
    surfaces; offsets are recomputed. ``info.embedded`` records the seed. The output is the same for the
    same records and seed, in every process; records not drawn are returned unchanged.

    >>> record = {"text": "Ada Lovelace met Babbage in London. They wrote letters.",
    ...           "spans": {"private_person: Ada Lovelace": [[0, 12]], "private_person: Babbage": [[17, 24]]}}
    >>> new = embed_structured([record], seed=1, share=1.0)[0]
    >>> all(new["text"][s:e] == key.split(": ", 1)[1] for key, offsets in new["spans"].items() for s, e in offsets)
    True
    >>> sorted(key for key in new["spans"] if key.startswith("private_person"))
    ['private_person: Ada Lovelace', 'private_person: Babbage']
    >>> len(new["spans"]) > 2 and new["text"] != record["text"]
    True
    >>> embed_structured([record], seed=1, share=1.0) == embed_structured([record], seed=1, share=1.0)
    True
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share!r}")
    if clauses < 1:
        raise ValueError(f"clauses must be at least 1, got {clauses!r}")
    embedded = []
    for index, record in enumerate(records):
        rng = random.Random(f"embed:{seed}:{index}")
        if rng.random() >= share:
            embedded.append(record)
            continue
        locale = rng.choice(tuple(locales))
        text, spans = record["text"], _sorted_spans(record)
        for _ in range(rng.randint(1, clauses)):
            points = _insertion_points(text, spans)
            at = rng.choice(points)
            clause, clause_spans = _clause(rng, locale, split)
            # A value that opens the clause keeps its case ("https://...", "j.doe@...").
            sentence = clause if any(start == 0 for start, _, _ in clause_spans) else _capitalised(clause)
            if at == len(text):
                before = text if not text or text[-1].isspace() else text + (" " if text[-1] in _SENTENCE_ENDS else ". ")
                text, at = before, len(before)
                prefix, body, suffix = "", sentence, "."
            elif text[:at].rstrip().endswith(_SENTENCE_ENDS) or not text[:at].strip():
                prefix, body, suffix = "", sentence, ". "
            else:
                prefix, suffix = rng.choice(_MID_SENTENCE)
                body = clause
            piece, offset = prefix + body + suffix, len(prefix)
            added = len(piece)
            spans = [(start + added if start >= at else start, end + added if start >= at else end, label)
                     for start, end, label in spans]
            spans += [(at + offset + start, at + offset + end, label) for start, end, label in clause_spans]
            text = text[:at] + piece + text[at:]
        info = dict(record.get("info") or {})
        info["embedded"] = seed
        embedded.append({"text": text, "spans": _span_dict(text, sorted(spans)), "info": info})
    return embedded


__all__ = ["embed_structured"]
