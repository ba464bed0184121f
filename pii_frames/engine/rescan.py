"""Read each redacted text again, as a second pass over the output would, until nothing new is found.

The model reads context. Once a name's neighbours are placeholders it finds names it missed in the
raw text ("<PRIVATE_PERSON> Hunt", "agent Nicole Buchanan" between two redacted values), so a
single pass leaves PII that a second pass over the sanitized table would still find, and sanitizing
a sanitized table would change it. With ``rescan=True`` (the default; off with ``rescan=False`` and
with ``opf_compatible=True``) the Detector reads every text it redacted once more exactly as its
redacted form reads, maps what it finds there back to the original text, and redacts that too,
for at most :data:`MAX_ROUNDS` rounds or until a round finds nothing. Only texts whose previous round
changed are read again, so clean rows cost nothing extra.

This module holds the offset bookkeeping; :meth:`pii_frames.engine.detector.Detector._rescan` runs
the rounds.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from pii_frames.decode.spans import CharSpan

__all__ = ["MAX_ROUNDS", "Piece", "pieces_of", "to_original"]

# Rounds after the first pass. Each round only re-reads texts the previous one changed; on the sample
# table the second round already finds nothing new in almost every row.
MAX_ROUNDS = 3

# (view_start, view_end, original_start, original_end, kept): one stretch of the redacted text (the
# "view") and the stretch of the original it came from: kept text maps position by position, a
# replacement maps to the whole span it replaced.
Piece = tuple[int, int, int, int, bool]


def pieces_of(text: str, detected: Sequence) -> list[Piece]:
    """The pieces of ``text`` redacted at ``detected`` (objects with start, end and placeholder, as DetectedSpan).

    >>> from types import SimpleNamespace as S
    >>> pieces_of("Call Ann Lee now", [S(start=5, end=8, placeholder="<P>")])
    [(0, 5, 0, 5, True), (5, 8, 5, 8, False), (8, 16, 8, 16, True)]
    """
    pieces: list[Piece] = []
    view = original = 0
    for span in sorted(detected, key=lambda s: s.start):
        if span.start > original:
            length = span.start - original
            pieces.append((view, view + length, original, span.start, True))
            view += length
        pieces.append((view, view + len(span.placeholder), span.start, span.end, False))
        view += len(span.placeholder)
        original = span.end
    if original < len(text) or not pieces:
        pieces.append((view, view + len(text) - original, original, len(text), True))
    return pieces


def to_original(spans: Sequence, pieces: Sequence[Piece]) -> list[CharSpan]:
    """``spans`` found in the redacted text (CharSpan or DetectedSpan), as CharSpans in the original text.

    A span edge inside kept text maps position by position; an edge inside a replacement takes the
    whole span that replacement stands for (so the union covers it).

    >>> from types import SimpleNamespace as S
    >>> pieces = pieces_of("Call Ann Lee now", [S(start=5, end=8, placeholder="<P>")])
    >>> to_original([CharSpan("private_person", 9, 12, 0.8)], pieces)  # "Lee" in "Call <P> Lee now"
    [CharSpan(label='private_person', start=9, end=12, score=0.8, source='model')]
    """
    starts = [piece[0] for piece in pieces]
    mapped: list[CharSpan] = []
    for span in spans:
        first = pieces[max(0, bisect_right(starts, span.start) - 1)]
        last = pieces[max(0, bisect_right(starts, span.end - 1) - 1)]
        start = first[2] + (span.start - first[0]) if first[4] else first[2]
        end = last[2] + (span.end - last[0]) if last[4] else last[3]
        if start < end:
            mapped.append(CharSpan(span.label, start, end, span.score, span.source))
    return mapped
