"""Choose a checkpoint's Viterbi operating point on labelled data.

Spans come out of a constrained Viterbi pass whose six transition biases (the checkpoint's
``viterbi_calibration.json``) move the balance between precision and recall without touching the weights:
a positive ``transition_bias_inside_to_continue`` keeps a span open across a token the model is unsure of
(an address that would otherwise break at a comma), a negative ``transition_bias_background_stay`` opens
spans more readily. :func:`calibrate` runs the model once over labelled examples, decodes them again under
each candidate set of biases, and picks one by a rule made for redaction: among the candidates whose span
F1 is within one bootstrap standard error of the best, the one with the highest recall, because a missed
value leaks while an extra redaction only costs readability. Scores use opf's typed containment rule, the
same as :func:`pii_frames.evaluation.evaluate.evaluate`.

    >>> from pii_frames.evaluation.calibrate import calibrate
    >>> result = calibrate(pii.load("my-model"), "validation.jsonl", label="private_person")  # doctest: +SKIP
    >>> print(result.table())                                                                 # doctest: +SKIP
    >>> result.write("my-model")          # viterbi_calibration.json, read by every later pii.load  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pii_frames.decode.viterbi import BIAS_KEYS, CALIBRATION_FILENAME, resolve_biases, write_calibration
from pii_frames.evaluation.metrics import SpanCounts, match_spans
from pii_frames.training.data import gold_token_aligned_spans, load_examples

__all__ = ["Calibration", "CandidateScore", "bias_grid", "calibrate", "candidates_table", "choose_operating_point",
           "describe_biases", "DEFAULT_AXES", "DEFAULT_GRID"]

_SHORT = {key: key.removeprefix("transition_bias_") for key in BIAS_KEYS}


def bias_grid(**values: Sequence[float]) -> list[dict[str, float]]:
    """Every combination of the given bias values, as full six-key bias dicts (unnamed biases are 0.0).

    Names may drop the ``transition_bias_`` prefix.

    >>> grid = bias_grid(inside_to_continue=[0, 1], background_stay=[0, -0.5])
    >>> len(grid), grid[-1]["transition_bias_inside_to_continue"], grid[-1]["transition_bias_background_stay"]
    (4, 1.0, -0.5)
    """
    keys = []
    for name in values:
        key = name if name in BIAS_KEYS else f"transition_bias_{name}"
        if key not in BIAS_KEYS:
            raise ValueError(f"unknown Viterbi bias {name!r}; valid names: {[_SHORT[k] for k in BIAS_KEYS]}")
        keys.append(key)
    return [dict(zip(BIAS_KEYS, resolve_biases(dict(zip(keys, combination)))))
            for combination in itertools.product(*values.values())]


# Span-continuation and span-opening biases: the two that trade precision for recall without reshaping spans.
DEFAULT_AXES = {"inside_to_continue": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], "background_stay": [0.0, -0.5]}
DEFAULT_GRID = bias_grid(**DEFAULT_AXES)


def describe_biases(biases: Mapping[str, float]) -> str:
    """The non-zero biases with short names (``"inside_to_continue=2.5"``; ``"all 0"`` when none).

    >>> describe_biases({"transition_bias_inside_to_continue": 2.5, "transition_bias_background_stay": 0.0})
    'inside_to_continue=2.5'
    """
    parts = [f"{_SHORT[key]}={value:g}" for key, value in biases.items() if value]
    return ", ".join(parts) or "all 0"


def candidates_table(calibration: Mapping, chosen_mark: str = "**chosen**") -> str:
    """A markdown table of a :meth:`Calibration.to_dict` (also as stored in JSON): one row per candidate,
    the chosen one and the best F1 marked."""
    scope = calibration["label"] or "all labels"
    lines = [f"| biases | precision | recall | F1 ({scope}) | |", "|---|---:|---:|---:|---|"]
    for row in calibration["candidates"]:
        marks = [mark for mark, key in ((chosen_mark, "chosen"), ("best F1", "best"))
                 if calibration[key]["biases"] == row["biases"]]
        lines.append(f"| {describe_biases(row['biases'])} | {row['precision'] or 0.0:.3f} | {row['recall'] or 0.0:.3f} | "
                     f"{row['f1'] or 0.0:.3f} | {', '.join(marks)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate operating point and its span counts on the calibration data."""

    biases: dict
    counts: SpanCounts

    @property
    def precision(self) -> float:
        return self.counts.precision or 0.0

    @property
    def recall(self) -> float:
        return self.counts.recall or 0.0

    @property
    def f1(self) -> float:
        return self.counts.f1 or 0.0

    def describe(self) -> str:
        """The non-zero biases, short names (see :func:`describe_biases`)."""
        return describe_biases(self.biases)


@dataclass
class Calibration:
    """What :func:`calibrate` found: every candidate's scores, the best F1 and the chosen operating point."""

    label: str | None
    examples: int
    candidates: list[CandidateScore]
    best: CandidateScore
    chosen: CandidateScore
    f1_standard_error: float

    @property
    def biases(self) -> dict[str, float]:
        """The chosen six biases (what :meth:`write` stores)."""
        return dict(self.chosen.biases)

    def write(self, checkpoint_dir: str | Path) -> Path:
        """Store the chosen biases as ``checkpoint_dir/viterbi_calibration.json`` (atomically)."""
        return write_calibration(Path(checkpoint_dir) / CALIBRATION_FILENAME, self.biases)

    def table(self) -> str:
        """A markdown table: one row per candidate, the chosen one and the best F1 marked."""
        return candidates_table(self.to_dict())

    def to_dict(self) -> dict:
        def row(candidate: CandidateScore) -> dict:
            return {"biases": candidate.biases, **candidate.counts.to_dict()}

        return {"label": self.label, "examples": self.examples, "f1_standard_error": self.f1_standard_error,
                "rule": "highest recall among candidates within one bootstrap standard error of the best F1",
                "chosen": row(self.chosen), "best": row(self.best),
                "candidates": [row(candidate) for candidate in self.candidates]}


def calibrate(
    detector,
    records,
    *,
    label: str | None = None,
    candidates: Sequence[Mapping[str, float]] | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    max_examples: int | None = None,
    progress: bool = True,
) -> Calibration:
    """Score each candidate operating point on labelled examples and choose one for redaction.

    Args:
        detector: a :class:`pii_frames.Detector`, or a model name / checkpoint path for :func:`pii_frames.load`.
        records: labelled examples in the opf format (a path, or record dicts as for ``evaluate``).
        label: score only this span label (e.g. ``"private_person"``); default all labels.
        candidates: bias dicts to try (missing keys are 0.0; the checkpoint's own calibration is *not* added);
            default :data:`DEFAULT_GRID`.
        bootstrap: resamples of the examples for the F1 standard error (0: no tolerance, the best F1 wins).
        seed: seed of the resampling.
        max_examples: use only the first N examples.
        progress: a progress bar over the model run.

    Returns:
        A :class:`Calibration`: among the candidates whose F1 is within one standard error of the best,
        the one with the highest recall (ties: higher F1, then earlier in ``candidates``).

    Example:
        >>> import pii_frames as pii
        >>> from pii_frames.synthetic import generate
        >>> result = calibrate(pii.load("default"), generate(20, seed=3), label="private_person",
        ...                    candidates=bias_grid(inside_to_continue=[0, 2]), progress=False)
        >>> len(result.candidates), result.chosen in result.candidates, result.chosen.recall >= result.best.recall
        (2, True, True)
    """
    from pii_frames.decode.labels import LabelSpace
    from pii_frames.decode.spans import decode_spans_many
    from pii_frames.evaluation.evaluate import as_detector, model_outputs, tokenize_examples

    detector = as_detector(detector)
    candidate_biases = [dict(zip(BIAS_KEYS, resolve_biases(c)))
                        for c in (DEFAULT_GRID if candidates is None else candidates)]
    if not candidate_biases:
        raise ValueError("candidates is empty: give at least one set of Viterbi biases to try")
    label_space = LabelSpace.from_names(detector.labels)
    if label is not None and label not in label_space.span_labels:
        raise ValueError(f"label {label!r} is not in the model's labels {list(label_space.span_labels)}")
    examples = load_examples(records, max_examples=max_examples)
    tokenized, _ = tokenize_examples(detector.tokenizer, examples)
    if not tokenized:
        raise ValueError("no example to calibrate on: the records are empty or none survives the tokenizer")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(sum(item[1].size for item in tokenized)), unit="tok", desc="calibrate", leave=False)
    try:
        outputs = [output.logprobs for _, output in model_outputs(
            detector.model, tokenized, ids_of=lambda item: item[1], n_ctx=int(getattr(detector, "n_ctx", 4096)),
            token_budget=int(getattr(detector, "token_budget", 8192)),
            progress=bar.update if bar is not None else None)]
    finally:
        if bar is not None:
            bar.close()

    offsets = [item[2] for item in tokenized]
    gold = [[span for span in gold_token_aligned_spans(example.spans, o.starts, o.ends, example.text)
             if label is None or span.label == label] for (example, _, o) in tokenized]
    # counts[candidate, example] = (correct, predicted, found, gold): enough to rescore any resample.
    counts = np.zeros((len(candidate_biases), len(tokenized), 4), dtype=np.int64)
    for index, biases in enumerate(candidate_biases):
        predicted = decode_spans_many(outputs, offsets, label_space, mode="viterbi", biases=biases)
        for example_index, (spans, gold_spans) in enumerate(zip(predicted, gold)):
            spans = [span for span in spans if label is None or span.label == label]
            correct, found = match_spans(gold_spans, spans)
            counts[index, example_index] = (sum(correct), len(spans), sum(found), len(gold_spans))

    totals = counts.sum(axis=1)
    scores = [CandidateScore(biases, SpanCounts(predicted=int(t[1]), correct=int(t[0]), gold=int(t[3]),
                                                found=int(t[2])))
              for biases, t in zip(candidate_biases, totals)]
    best = max(scores, key=lambda score: score.f1)  # the first of equals
    standard_error = _f1_standard_error(counts[scores.index(best)], bootstrap, seed)
    return Calibration(label=label, examples=len(tokenized), candidates=scores, best=best,
                       chosen=choose_operating_point(scores, standard_error), f1_standard_error=standard_error)


def choose_operating_point(scores: Sequence[CandidateScore], tolerance: float) -> CandidateScore:
    """The redaction rule: among the candidates whose F1 is at most ``tolerance`` below the best, the one with
    the highest recall (ties: higher F1, then the earlier candidate).

    >>> def score(found, correct, predicted):
    ...     return CandidateScore({}, SpanCounts(predicted=predicted, correct=correct, gold=100, found=found))
    >>> strict, loose, reckless = score(70, 85, 100), score(79, 74, 100), score(95, 30, 100)
    >>> [round(s.f1, 3) for s in (strict, loose, reckless)]
    [0.768, 0.764, 0.456]
    >>> choose_operating_point([strict, loose, reckless], tolerance=0.01) is loose
    True
    >>> choose_operating_point([strict, loose, reckless], tolerance=0.0) is strict   # the best F1 alone
    True
    """
    best_f1 = max(score.f1 for score in scores)
    eligible = [score for score in scores if score.f1 >= best_f1 - tolerance]
    return max(eligible, key=lambda score: (score.recall, score.f1, -scores.index(score)))


def _f1_standard_error(per_example: np.ndarray, resamples: int, seed: int) -> float:
    """Bootstrap standard error of span F1 over examples (``per_example``: rows of correct, predicted,
    found, gold)."""
    if resamples <= 0 or len(per_example) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_example), size=(resamples, len(per_example)))
    sums = per_example[draws].sum(axis=1).astype(np.float64)
    precision = np.divide(sums[:, 0], sums[:, 1], out=np.zeros(resamples), where=sums[:, 1] > 0)
    recall = np.divide(sums[:, 2], sums[:, 3], out=np.zeros(resamples), where=sums[:, 3] > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(resamples),
                   where=(precision + recall) > 0)
    return float(f1.std(ddof=1))
