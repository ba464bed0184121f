"""Span edges for redaction: never leave a fragment glued to a placeholder, never re-redact our own output.

Two rules, applied by :func:`pii_frames.redaction.apply.build_result` unless the
Detector runs with ``opf_compatible=True`` (which keeps the reference's spans
exactly):

**Protected text.** Our own output in the input is left exactly as it is:
placeholders (``<PRIVATE_PERSON>``, ``<REDACTED>``, any ``<UPPER_CASE>`` stem),
keyed pseudonyms (``<PRIVATE_PERSON_3f9a1c2b7d4e5f60>``), encrypted tokens
(``<PRIVATE_EMAIL:v1:KEYID:...>``) and masks (two or more mask characters, with
the clear tail ``keep_last`` leaves glued to them). A detected span loses the
parts that fall on protected text; what is left is kept only when it still
holds a letter or digit. Sanitizing a sanitized text therefore changes nothing
that the first pass wrote.

**Edge snapping.** A detected span is widened to the whole token(s) it touches,
so no letter or digit of the same token stays beside the placeholder
(``001-448<PRIVATE_PHONE>`` and ``<PRIVATE_URL>posts`` cannot happen). A token
is a maximal run of characters that are neither whitespace nor one of the
separators :data:`SEPARATORS` (quotes, angle and square brackets, braces, ``|``,
``,`` and ``;``: they delimit fields in CSV, JSON and log lines and never occur
inside the values we redact). Sentence punctuation at the token's ends
(:data:`EDGE_PUNCTUATION`, e.g. the full stop after an e-mail address or the
bracket around a name) is not taken. Snapping only ever widens a span, never
crosses protected text, and spans that touch after snapping are merged into
one (label and source of the leftmost, then longest, best score).
"""

from __future__ import annotations

import re
from typing import Sequence

from ..decode.spans import CharSpan

__all__ = [
    "EDGE_PUNCTUATION",
    "SEPARATORS",
    "protected_regions",
    "remove_protected",
    "sanitize_edges",
    "snap_to_tokens",
]

SEPARATORS = frozenset('"`<>[]{}|,;')
EDGE_PUNCTUATION = frozenset(".,;:!?()'\u2018\u2019\u201c\u201d\u00ab\u00bb\u2026-\u2013\u2014/\\")

# <STEM>, <STEM_<16 hex>> (pseudonym) and <STEM:v1:KEYID:base64url> (encrypted token).
_TOKEN = r"<[A-Z][A-Z0-9_]*(?:_[0-9a-f]{16}|:v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]+)?>"
_TOKEN_RE = re.compile(_TOKEN)


def _mask_re(mask_char: str, keep_last: int) -> re.Pattern:
    tail = f"[A-Za-z0-9]{{0,{keep_last}}}" if keep_last > 0 else ""
    return re.compile(f"{re.escape(mask_char)}{{2,}}{tail}")


def protected_regions(text: str, *, mask_char: str = "*", keep_last: int = 4) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``(start, end)`` ranges of our own placeholders, tokens and masks in ``text``.

    Example:
        >>> protected_regions("Call <PRIVATE_PERSON> on ******0100 or <PRIVATE_PERSON_3f9a1c2b7d4e5f60>")
        [(5, 21), (25, 35), (39, 72)]
    """
    found = [match.span() for match in _TOKEN_RE.finditer(text)]
    if mask_char * 2 in text:
        found.extend(match.span() for match in _mask_re(mask_char, keep_last).finditer(text))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _has_word_character(text: str) -> bool:
    return any(character.isalnum() for character in text)


def remove_protected(text: str, spans: Sequence[CharSpan], protected: Sequence[tuple[int, int]]) -> list[CharSpan]:
    """Cut protected ranges out of ``spans``; keep the pieces that still hold a letter or digit.

    Example:
        >>> text = "Call <PRIVATE_PERSON> Lee"
        >>> remove_protected(text, [CharSpan("private_person", 4, 25, 0.9)], protected_regions(text))
        [CharSpan(label='private_person', start=22, end=25, score=0.9, source='model')]
    """
    if not protected:
        return list(spans)
    kept: list[CharSpan] = []
    for span in spans:
        pieces = [(span.start, span.end)]
        for guard_start, guard_end in protected:
            if guard_end <= span.start or guard_start >= span.end:
                continue
            next_pieces = []
            for start, end in pieces:
                if start < guard_start:
                    next_pieces.append((start, min(end, guard_start)))
                if end > guard_end:
                    next_pieces.append((max(start, guard_end), end))
            pieces = next_pieces
        for start, end in pieces:
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start < end and _has_word_character(text[start:end]):
                kept.append(CharSpan(span.label, start, end, span.score, span.source))
    return kept


def _is_boundary(character: str) -> bool:
    return character.isspace() or character in SEPARATORS


def snap_to_tokens(text: str, spans: Sequence[CharSpan], protected: Sequence[tuple[int, int]] = ()) -> list[CharSpan]:
    """Widen each span to the whole tokens it touches (see the module docstring), then merge overlaps.

    Example:
        >>> text = "Call 001-448-555-0100 or see https://example.org/a/posts."
        >>> spans = [CharSpan("private_phone", 12, 21, 0.9), CharSpan("private_url", 29, 46, 0.8)]
        >>> [text[s.start:s.end] for s in snap_to_tokens(text, spans)]
        ['001-448-555-0100', 'https://example.org/a/posts']
    """
    if not spans:
        return []
    guarded = [False] * (len(text) + 1)
    for start, end in protected:
        for position in range(start, end):
            guarded[position] = True

    def stops_token(position: int) -> bool:
        return _is_boundary(text[position]) or guarded[position]

    widened: list[CharSpan] = []
    for span in spans:
        token_start = span.start
        while token_start > 0 and not stops_token(token_start - 1):
            token_start -= 1
        token_end = span.end
        while token_end < len(text) and not stops_token(token_end):
            token_end += 1
        # Sentence punctuation at the token's outer ends stays outside (never inside the model's own span).
        while token_start < span.start and text[token_start] in EDGE_PUNCTUATION:
            token_start += 1
        while token_end > span.end and text[token_end - 1] in EDGE_PUNCTUATION:
            token_end -= 1
        widened.append(CharSpan(span.label, min(token_start, span.start), max(token_end, span.end), span.score,
                                span.source))
    return merge_touching(widened)


def merge_touching(spans: Sequence[CharSpan], *, prefer=None) -> list[CharSpan]:
    """Union overlapping spans: label and source of the leftmost, then longest member; best score.

    ``prefer(span)`` (smaller first) breaks ties between members of the same start and length
    before the label name does.

    Example:
        >>> merge_touching([CharSpan("a", 0, 4, 0.5), CharSpan("b", 2, 9, 0.9), CharSpan("c", 9, 12, 0.7)])
        [CharSpan(label='a', start=0, end=9, score=0.9, source='model'), CharSpan(label='c', start=9, end=12, score=0.7, source='model')]
    """
    rank = prefer or (lambda span: 0)
    ordered = sorted(spans, key=lambda s: (s.start, -(s.end - s.start), rank(s), s.label))
    merged: list[CharSpan] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            head = merged[-1]
            merged[-1] = CharSpan(head.label, head.start, max(head.end, span.end), max(head.score, span.score),
                                  head.source)
        else:
            merged.append(span)
    return merged


def sanitize_edges(text: str, spans: Sequence[CharSpan], *, mask_char: str = "*", keep_last: int = 4) -> list[CharSpan]:
    """Both rules of this module, in order: drop protected text from spans, then snap edges to tokens.

    Example:
        >>> text = "Ask <PRIVATE_PERSON> at ann@example.com."
        >>> [text[s.start:s.end] for s in sanitize_edges(text, [CharSpan("private_email", 24, 35, 0.9)])]
        ['ann@example.com']
        >>> sanitize_edges(text, [CharSpan("private_person", 5, 19, 0.9)])
        []
    """
    protected = protected_regions(text, mask_char=mask_char, keep_last=keep_last)
    return snap_to_tokens(text, remove_protected(text, spans, protected), protected)
