"""The one rule that merges model, pattern and deny-list spans (each a CharSpan that says its ``source``)."""

from __future__ import annotations

from typing import Iterable, Sequence

from pii_frames.decode.spans import CharSpan

__all__ = ["SOURCES", "merge_spans"]

#: Where a span came from, strongest first: a deny-list entry, a validated pattern, the model.
SOURCES = ("deny_list", "pattern", "model")
_RANK = {source: rank for rank, source in enumerate(SOURCES)}


def _subtract(start: int, end: int, cuts: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(start, end)]
    for cut_start, cut_end in cuts:
        next_pieces = []
        for s, e in pieces:
            if cut_end <= s or cut_start >= e:
                next_pieces.append((s, e))
                continue
            if s < cut_start:
                next_pieces.append((s, cut_start))
            if cut_end < e:
                next_pieces.append((cut_end, e))
        pieces = next_pieces
    return pieces


def _trim(start: int, end: int, text: str | None) -> tuple[int, int] | None:
    if text is None:
        return start, end
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return (start, end) if start < end else None


def merge_spans(
    model_spans: Sequence[CharSpan],
    pattern_spans: Sequence[CharSpan],
    text: str | None = None,
) -> list[CharSpan]:
    """Merge model spans with pattern (and deny-list) spans into non-overlapping spans sorted by start.

    The rule, applied span by span from strongest to weakest (source ``deny_list``,
    then ``pattern``, then ``model``; then higher score; then longer):

    * where a span overlaps an already placed span of another label, the placed one
      wins: the new span keeps only its parts outside it (a validated pattern span
      thus wins over the model where they disagree);
    * where it overlaps placed spans of its own label, they become one span, their
      union, with the best score and the strongest source.

    Spans keep their own ``source`` (CharSpan's default is ``"model"``). With ``text``, leftover parts of a cut span
    lose leading and trailing non-alphanumeric characters, and vanish when nothing
    alphanumeric is left (no lone ``" - "`` span between two others).

    Example:
        >>> model = [CharSpan("private_phone", 5, 24, 0.7), CharSpan("private_person", 30, 34, 0.9)]
        >>> pattern = [CharSpan("account_number", 5, 24, 0.97, "pattern"),
        ...            CharSpan("private_person", 32, 40, 0.9, "pattern")]
        >>> for span in merge_spans(model, pattern):
        ...     print(span)
        CharSpan(label='account_number', start=5, end=24, score=0.97, source='pattern')
        CharSpan(label='private_person', start=30, end=40, score=0.9, source='pattern')
    """
    spans = [*model_spans, *pattern_spans]
    spans.sort(key=lambda s: (_RANK[s.source], -s.score, -(s.end - s.start), s.start, s.label))
    placed: list[CharSpan] = []
    for span in spans:
        others = [(p.start, p.end) for p in placed if p.label != span.label]
        for start, end in _subtract(span.start, span.end, others):
            trimmed = _trim(start, end, text) if (start, end) != (span.start, span.end) else (start, end)
            if trimmed is None:
                continue
            start, end = trimmed
            score, source = span.score, span.source
            keep = []
            for p in placed:
                if p.label == span.label and p.start < end and start < p.end:
                    start, end = min(start, p.start), max(end, p.end)
                    score = max(score, p.score)
                    source = min(source, p.source, key=_RANK.__getitem__)
                else:
                    keep.append(p)
            placed = keep + [CharSpan(span.label, start, end, score, source)]
    return sorted(placed, key=lambda s: (s.start, s.end, s.label))
