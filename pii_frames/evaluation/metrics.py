"""Evaluation metrics for span tagging, with opf's definitions.

Span metrics (character space, whitespace-trimmed spans) use *containment* matching:

* a predicted span is correct (counts for precision) when some gold span of the same label contains it;
* a gold span is found (counts for recall) when some predicted span of the same label contains it;
* in ``untyped`` mode labels are ignored when matching.

precision = correct predictions / predictions, recall = found gold / gold, f1 = 2PR/(P+R), f2 = 5PR/(4P+R).

Beside containment, *overlap* matching (a prediction is correct when it shares a character with a gold span of
the same label, and vice versa) is counted too: it forgives span edges, as many NER benchmarks do, so the gap
between the two figures says how much of the error is boundaries rather than missed or invented spans. Every
missed gold span is also put in a *confusion* bucket: the label of the prediction overlapping it most
(``"partial"`` when that is its own label but the prediction does not contain it, ``"missed"`` when nothing
overlaps it). Records' ``info.source`` is tallied per source (:meth:`MetricsAccumulator.add_example`).
Token metrics compare the decoded label of every token with the projected gold label: detection counts a
token as positive when its label is not ``O`` (TP: both positive, FP: only predicted, FN: only gold); per
token class the same with the exact label; ``loss`` is the mean negative log-probability of the gold label
and ``token_accuracy`` the share of tokens whose decoded label equals the gold one. A metric whose
denominator is zero is ``None`` (opf omits it).

Example:
    >>> from pii_frames.evaluation.metrics import Span, match_spans
    >>> gold = [Span("private_person", 0, 10)]
    >>> pred = [Span("private_person", 0, 4), Span("private_email", 12, 20)]
    >>> match_spans(gold, pred)       # (prediction correct?, gold found?)
    ([True, False], [False])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Span",
    "match_spans",
    "match_spans_overlap",
    "miss_outcome",
    "f_scores",
    "SpanCounts",
    "TokenCounts",
    "MetricsAccumulator",
]

MODES = ("typed", "untyped")


@dataclass(frozen=True)
class Span:
    """A labelled character span ``[start, end)``."""

    label: str
    start: int
    end: int


def _contains(outer, inner) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


def match_spans(gold: Sequence, pred: Sequence, *, typed: bool = True) -> tuple[list[bool], list[bool]]:
    """Containment matching of predicted against gold spans.

    Spans are any objects with ``label``, ``start`` and ``end``. Returns ``(pred_correct, gold_found)``:
    one flag per predicted span (contained in a gold span of the same label) and one per gold span
    (contained in a predicted span of the same label). ``typed=False`` ignores labels.

    >>> match_spans([Span("a", 5, 9)], [Span("a", 4, 10)])     # too wide: finds the gold, but is not correct
    ([False], [True])
    >>> match_spans([Span("a", 5, 9)], [Span("b", 5, 9)], typed=False)
    ([True], [True])
    """
    def same(a, b) -> bool:
        return not typed or a.label == b.label

    pred_correct = [any(same(g, p) and _contains(g, p) for g in gold) for p in pred]
    gold_found = [any(same(g, p) and _contains(p, g) for p in pred) for g in gold]
    return pred_correct, gold_found


def _overlaps(a, b) -> bool:
    return a.start < b.end and b.start < a.end


def match_spans_overlap(gold: Sequence, pred: Sequence, *, typed: bool = True) -> tuple[list[bool], list[bool]]:
    """Overlap matching: like :func:`match_spans`, but sharing one character with a same-label span is enough.

    >>> match_spans_overlap([Span("a", 0, 13)], [Span("a", 0, 8)])      # "Jonathan" of "Jonathan Hunt"
    ([True], [True])
    >>> match_spans_overlap([Span("a", 0, 5)], [Span("a", 5, 9)])       # touching is not overlapping
    ([False], [False])
    """
    def same(a, b) -> bool:
        return not typed or a.label == b.label

    pred_correct = [any(same(g, p) and _overlaps(g, p) for g in gold) for p in pred]
    gold_found = [any(same(g, p) and _overlaps(g, p) for p in pred) for g in gold]
    return pred_correct, gold_found


MISSED = "missed"
PARTIAL = "partial"


def miss_outcome(gold_span, pred: Sequence) -> str:
    """What was predicted instead of a missed gold span: the label of the prediction that overlaps it most,
    ``"partial"`` when that prediction has the gold span's own label, ``"missed"`` when none overlaps.

    >>> miss_outcome(Span("private_person", 0, 12), [Span("private_address", 0, 12)])
    'private_address'
    >>> miss_outcome(Span("private_person", 0, 13), [Span("private_person", 0, 8)])
    'partial'
    >>> miss_outcome(Span("private_person", 0, 5), [])
    'missed'
    """
    best, best_overlap = None, 0
    for span in pred:
        overlap = min(span.end, gold_span.end) - max(span.start, gold_span.start)
        if overlap > best_overlap:
            best, best_overlap = span, overlap
    if best is None:
        return MISSED
    return PARTIAL if best.label == gold_span.label else best.label


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def f_scores(precision: float | None, recall: float | None) -> tuple[float | None, float | None]:
    """(F1, F2) from precision and recall; None when either is undefined, 0.0 when both are zero.

    >>> f_scores(1.0, 0.5)
    (0.6666666666666666, 0.5555555555555556)
    """
    if precision is None or recall is None:
        return None, None
    if precision + recall == 0:
        return 0.0, 0.0
    return 2 * precision * recall / (precision + recall), 5 * precision * recall / (4 * precision + recall)


@dataclass
class SpanCounts:
    """Span match counts for one label (or overall) and the scores derived from them."""

    predicted: int = 0
    correct: int = 0
    gold: int = 0
    found: int = 0

    def add(self, other: SpanCounts) -> None:
        self.predicted += other.predicted
        self.correct += other.correct
        self.gold += other.gold
        self.found += other.found

    @property
    def precision(self) -> float | None:
        return _ratio(self.correct, self.predicted)

    @property
    def recall(self) -> float | None:
        return _ratio(self.found, self.gold)

    @property
    def f1(self) -> float | None:
        return f_scores(self.precision, self.recall)[0]

    @property
    def f2(self) -> float | None:
        return f_scores(self.precision, self.recall)[1]

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "f2": self.f2,
                "predicted": self.predicted, "correct": self.correct, "gold": self.gold, "found": self.found}


@dataclass
class TokenCounts:
    """Token-level confusion counts (one class, or detection = any non-O label) plus the gold-label loss."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    loss_sum: float = 0.0
    loss_tokens: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def f2(self) -> float | None:
        return _ratio(5 * self.tp, 5 * self.tp + 4 * self.fn + self.fp)

    @property
    def loss(self) -> float | None:
        return _ratio(self.loss_sum, self.loss_tokens)

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "f2": self.f2,
                "loss": self.loss, "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class MetricsAccumulator:
    """Collects per-example results and computes corpus-level metrics.

    ``label_names`` are the model's token labels (``"O"`` first); ``span_labels`` the span classes reported
    per label. Feed every example with :meth:`add_example`.

    >>> acc = MetricsAccumulator(["O", "B-x", "I-x", "E-x", "S-x"], ["x"])
    >>> acc.add_example(gold_tokens=[0, 4], pred_tokens=[0, 4], gold_spans=[Span("x", 4, 7)],
    ...                 pred_spans=[Span("x", 4, 7)], text="Hi, Ann")
    >>> acc.span_total().f1, acc.detection.f1, acc.token_accuracy
    (1.0, 1.0, 1.0)
    """

    label_names: Sequence[str]
    span_labels: Sequence[str]
    mode: str = "typed"
    examples: int = 0
    tokens: int = 0
    correct_tokens: int = 0
    loss_sum: float = 0.0
    loss_tokens: int = 0
    detection: TokenCounts = field(default_factory=TokenCounts)
    per_token_label: dict = field(default_factory=dict)
    per_span_label: dict = field(default_factory=dict)
    recalled_chars: dict = field(default_factory=dict)
    gold_chars: dict = field(default_factory=dict)
    untyped_predictions: SpanCounts = field(default_factory=SpanCounts)
    #: overlap-matched span counts per label (untyped mode: predictions under ``"*"``)
    overlap_per_label: dict = field(default_factory=dict)
    #: source -> {"examples": n, "containment": {label: SpanCounts}, "overlap": {label: SpanCounts}}
    per_source: dict = field(default_factory=dict)
    #: gold label -> {outcome: count} over the gold spans the containment rule did not find
    confusion: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.label_names = tuple(self.label_names)
        self.span_labels = tuple(self.span_labels)
        if not self.per_token_label:
            self.per_token_label = {name: TokenCounts() for name in self.label_names if name != "O"}
        if not self.per_span_label and self.typed:
            self.per_span_label = {name: SpanCounts() for name in self.span_labels}

    @property
    def typed(self) -> bool:
        return self.mode == "typed"

    def add_example(
        self,
        *,
        gold_tokens: Sequence[int] | np.ndarray,
        pred_tokens: Sequence[int] | np.ndarray,
        gold_spans: Iterable,
        pred_spans: Iterable,
        text: str,
        logprobs: np.ndarray | None = None,
        original_gold_spans: Iterable | None = None,
        source: str | None = None,
    ) -> None:
        """Add one example.

        ``gold_tokens``/``pred_tokens``: label ids per token; ``gold_spans``/``pred_spans``: character spans
        (whitespace-trimmed); ``logprobs``: [T, C] log-probabilities for the loss (optional);
        ``original_gold_spans``: the gold spans with their dataset labels, for the untyped character recall
        (defaults to ``gold_spans``); ``source``: where the example comes from (records' ``info.source``), for
        the per-source tally (``None``: ``"-"``).
        """
        gold = np.asarray(gold_tokens, dtype=np.int64)
        pred = np.asarray(pred_tokens, dtype=np.int64)
        if gold.shape != pred.shape:
            raise ValueError(f"gold and predicted token labels differ in length: {gold.shape} vs {pred.shape}")
        gold_spans, pred_spans = list(gold_spans), list(pred_spans)
        self.examples += 1
        self.tokens += int(gold.size)
        self.correct_tokens += int((gold == pred).sum())
        gold_pos, pred_pos = gold != 0, pred != 0
        self.detection.tp += int((gold_pos & pred_pos).sum())
        self.detection.fp += int((~gold_pos & pred_pos).sum())
        self.detection.fn += int((gold_pos & ~pred_pos).sum())
        gold_loss = None
        if logprobs is not None and gold.size:
            gold_loss = -np.asarray(logprobs, dtype=np.float64)[np.arange(gold.size), gold]
            self.loss_sum += float(gold_loss.sum())
            self.loss_tokens += int(gold.size)
        for index, name in enumerate(self.label_names):
            if name == "O":
                continue
            counts = self.per_token_label[name]
            is_gold, is_pred = gold == index, pred == index
            counts.tp += int((is_gold & is_pred).sum())
            counts.fp += int((~is_gold & is_pred).sum())
            counts.fn += int((is_gold & ~is_pred).sum())
            if gold_loss is not None and is_gold.any():
                counts.loss_sum += float(gold_loss[is_gold].sum())
                counts.loss_tokens += int(is_gold.sum())

        pred_correct, gold_found = match_spans(gold_spans, pred_spans, typed=self.typed)
        for span, ok in zip(pred_spans, pred_correct):
            # Untyped predictions may match gold of any label, so they are only counted overall.
            counts = self.per_span_label.setdefault(span.label, SpanCounts()) if self.typed else self.untyped_predictions
            counts.predicted += 1
            counts.correct += int(ok)
        for span, ok in zip(gold_spans, gold_found):
            counts = self.per_span_label.setdefault(span.label, SpanCounts())
            counts.gold += 1
            counts.found += int(ok)
            if not ok:
                bucket = self.confusion.setdefault(span.label, {})
                outcome = miss_outcome(span, pred_spans)
                bucket[outcome] = bucket.get(outcome, 0) + 1

        overlap_correct, overlap_found = match_spans_overlap(gold_spans, pred_spans, typed=self.typed)
        tally = self.per_source.setdefault("-" if source is None else str(source),
                                           {"examples": 0, "containment": {}, "overlap": {}})
        tally["examples"] += 1
        for rule, correct_flags, found_flags, overall in (
                ("containment", pred_correct, gold_found, None),
                ("overlap", overlap_correct, overlap_found, self.overlap_per_label)):
            for table in (tally[rule], overall):
                if table is None:
                    continue
                for span, ok in zip(pred_spans, correct_flags):
                    counts = table.setdefault(span.label if self.typed else "*", SpanCounts())
                    counts.predicted += 1
                    counts.correct += int(ok)
                for span, ok in zip(gold_spans, found_flags):
                    counts = table.setdefault(span.label, SpanCounts())
                    counts.gold += 1
                    counts.found += int(ok)

        if not self.typed:
            covered = np.zeros(len(text) + 1, dtype=bool)
            for span in pred_spans:
                covered[span.start:span.end] = True
            for span in (gold_spans if original_gold_spans is None else original_gold_spans):
                self.gold_chars[span.label] = self.gold_chars.get(span.label, 0) + (span.end - span.start)
                self.recalled_chars[span.label] = (self.recalled_chars.get(span.label, 0)
                                                   + int(covered[span.start:span.end].sum()))

    # -------------------------------------------------------------------------------------------------------
    def span_total(self) -> SpanCounts:
        """Span counts summed over labels."""
        total = SpanCounts()
        total.add(self.untyped_predictions)
        for counts in self.per_span_label.values():
            total.add(counts)
        return total

    def overlap_total(self) -> SpanCounts:
        """Overlap-matched span counts summed over labels."""
        return _summed(self.overlap_per_label.values())

    def source_counts(self, source: str, *, rule: str = "containment", label: str | None = None) -> SpanCounts:
        """Span counts of one source under ``rule`` (``"containment"`` or ``"overlap"``), for one label or all.

        >>> acc = MetricsAccumulator(["O", "B-x", "I-x", "E-x", "S-x"], ["x"])
        >>> acc.add_example(gold_tokens=[0], pred_tokens=[0], gold_spans=[Span("x", 0, 7)],
        ...                 pred_spans=[Span("x", 0, 3)], text="Ann Lee", source="tweets")
        >>> acc.source_counts("tweets").recall, acc.source_counts("tweets", rule="overlap").recall
        (0.0, 1.0)
        """
        table = self.per_source[source][rule]
        if label is not None:
            return table.get(label, SpanCounts())
        return _summed(table.values())

    @property
    def loss(self) -> float | None:
        return _ratio(self.loss_sum, self.loss_tokens)

    @property
    def token_accuracy(self) -> float | None:
        return _ratio(self.correct_tokens, self.tokens)

    def flat_metrics(self) -> dict[str, float]:
        """opf-style flat metric names (``detection.span.f1``, ``by_class.secret.span.recall``...).

        In untyped mode loss/token accuracy and exact-label token classes are left out (like opf), and
        ``ground_truth_label_recall.*`` is added.
        """
        out: dict[str, float] = {}

        def put(prefix: str, values: dict, keys: Sequence[str]) -> None:
            for key in keys:
                if values.get(key) is not None:
                    out[f"{prefix}.{key}"] = values[key]

        put("detection", self.detection.to_dict(), ("precision", "recall", "f1", "f2"))
        put("detection.span", self.span_total().to_dict(), ("precision", "recall", "f1", "f2"))
        if self.typed:
            if self.loss is not None:
                out["loss"] = self.loss
            if self.token_accuracy is not None:
                out["token_accuracy"] = self.token_accuracy
            for name, counts in self.per_token_label.items():
                put(f"by_class.{name}", counts.to_dict(), ("precision", "recall", "f1", "f2", "loss"))
        for name, counts in self.per_span_label.items():
            put(f"by_class.{name}.span", counts.to_dict(), ("precision", "recall", "f1", "f2"))
        put("detection.span_overlap", self.overlap_total().to_dict(), ("precision", "recall", "f1", "f2"))
        for name, counts in self.overlap_per_label.items():
            if name != "*":
                put(f"by_class.{name}.span_overlap", counts.to_dict(), ("precision", "recall", "f1", "f2"))
        if not self.typed:
            for label in sorted(self.gold_chars):
                recall = _ratio(self.recalled_chars[label], self.gold_chars[label])
                out[f"ground_truth_label_recall.recalled_chars.{label}"] = self.recalled_chars[label]
                out[f"ground_truth_label_recall.ground_truth_chars.{label}"] = self.gold_chars[label]
                if recall is not None:
                    out[f"ground_truth_label_recall.recall.{label}"] = recall
        return out


def _summed(counts: Iterable[SpanCounts]) -> SpanCounts:
    total = SpanCounts()
    for item in counts:
        total.add(item)
    return total
