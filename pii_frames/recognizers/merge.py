"""Spans that say where they came from, and the one rule that merges model and pattern spans."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Sequence

from pii_frames.decode.spans import CharSpan

__all__ = ["SOURCES", "SourcedSpan", "merge_spans"]

#: Where a span came from, strongest first: a deny-list entry, a validated pattern, the model.
SOURCES = ("deny_list", "pattern", "model")
_RANK = {source: rank for rank, source in enumerate(SOURCES)}
_CHARSPAN_HAS_SOURCE = any(f.name == "source" for f in fields(CharSpan))


@dataclass(frozen=True)
class SourcedSpan:
    """A :class:`~pii_frames.decode.spans.CharSpan` plus ``source``: ``"model"``, ``"pattern"`` or ``"deny_list"``.

    ``text[start:end]`` (code-point offsets, end exclusive) has class ``label``.

    Example:
        >>> span = SourcedSpan("secret", 4, 24, 0.95, "pattern").to_char_span()
        >>> type(span).__name__, span.label, span.start, span.end, span.score
        ('CharSpan', 'secret', 4, 24, 0.95)
    """

    label: str
    start: int
    end: int
    score: float
    source: str = "model"

    def __post_init__(self) -> None:
        if self.source not in _RANK:
            raise ValueError(f"span source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"span offsets must satisfy 0 <= start < end, got {self.start}..{self.end}")

    def to_char_span(self) -> CharSpan:
        """The same span as a CharSpan (with its source where CharSpan has that field)."""
        if _CHARSPAN_HAS_SOURCE:
            return CharSpan(self.label, self.start, self.end, self.score, source=self.source)
        return CharSpan(self.label, self.start, self.end, self.score)

    @classmethod
    def from_char_span(cls, span: CharSpan, source: str = "model") -> "SourcedSpan":
        """``span`` as a SourcedSpan; ``source`` is used when ``span`` carries none of its own.

        Example:
            >>> SourcedSpan.from_char_span(CharSpan("private_person", 0, 4, 0.9))
            SourcedSpan(label='private_person', start=0, end=4, score=0.9, source='model')
        """
        if isinstance(span, SourcedSpan):
            return span
        return cls(span.label, span.start, span.end, span.score, getattr(span, "source", source))


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
    pattern_spans: Sequence[SourcedSpan],
    text: str | None = None,
) -> list[SourcedSpan]:
    """Merge model spans with pattern (and deny-list) spans into non-overlapping spans sorted by start.

    The rule, applied span by span from strongest to weakest (source ``deny_list``,
    then ``pattern``, then ``model``; then higher score; then longer):

    * where a span overlaps an already placed span of another label, the placed one
      wins: the new span keeps only its parts outside it (a validated pattern span
      thus wins over the model where they disagree);
    * where it overlaps placed spans of its own label, they become one span, their
      union, with the best score and the strongest source.

    Model spans get ``source="model"`` (unless they carry a source of their own). With ``text``, leftover parts of a cut span
    lose leading and trailing non-alphanumeric characters, and vanish when nothing
    alphanumeric is left (no lone ``" - "`` span between two others).

    Example:
        >>> model = [CharSpan("private_phone", 5, 24, 0.7), CharSpan("private_person", 30, 34, 0.9)]
        >>> pattern = [SourcedSpan("account_number", 5, 24, 0.97, "pattern"),
        ...            SourcedSpan("private_person", 32, 40, 0.9, "pattern")]
        >>> for span in merge_spans(model, pattern):
        ...     print(span)
        SourcedSpan(label='account_number', start=5, end=24, score=0.97, source='pattern')
        SourcedSpan(label='private_person', start=30, end=40, score=0.9, source='pattern')
    """
    spans = [SourcedSpan.from_char_span(s, "model") for s in model_spans]
    spans += [SourcedSpan.from_char_span(s, "pattern") for s in pattern_spans]
    spans.sort(key=lambda s: (_RANK[s.source], -s.score, -(s.end - s.start), s.start, s.label))
    placed: list[SourcedSpan] = []
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
            placed = keep + [SourcedSpan(span.label, start, end, score, source)]
    return sorted(placed, key=lambda s: (s.start, s.end, s.label))
