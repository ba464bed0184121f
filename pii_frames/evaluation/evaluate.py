"""Evaluate a Detector on labelled examples (opf format) and report span and token metrics.

    >>> import pii_frames as pii
    >>> from pii_frames.evaluation.evaluate import evaluate
    >>> report = evaluate(pii.load(), "sample_eval_five_examples.jsonl")      # doctest: +SKIP
    >>> round(report.span.f1, 3)                                             # doctest: +SKIP
    0.941
    >>> report.save_html("eval.html")                                        # doctest: +SKIP

Gold spans are projected onto the model's tokens the way opf does (:mod:`pii_frames.training.data`) and compared
with the decoded predictions in character space (:mod:`pii_frames.evaluation.metrics` has the definitions).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pii_frames.evaluation.metrics import MODES, MetricsAccumulator, SpanCounts
from pii_frames.training.data import Example, gold_token_aligned_spans, load_examples, project_spans_to_tokens

__all__ = ["EvalReport", "evaluate"]

_CHUNK_TEXTS = 256  # texts per model call; small enough for a responsive progress bar


@dataclass
class EvalReport:
    """Metrics of one evaluation run.

    ``span`` holds the overall span counts/scores, ``per_label`` the same per span label, ``detection`` the
    token-level detection counts; ``metrics`` is the opf-style flat dict. ``predictions`` keeps, per example,
    the text, gold and predicted spans (useful to look at errors).
    """

    mode: str
    accumulator: MetricsAccumulator
    elapsed_s: float
    config: dict = field(default_factory=dict)
    document_correct: int = 0
    document_total: int = 0
    skipped: list = field(default_factory=list)
    predictions: list = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------------------------------ numbers
    @property
    def examples(self) -> int:
        return self.accumulator.examples

    @property
    def tokens(self) -> int:
        return self.accumulator.tokens

    @property
    def span(self) -> SpanCounts:
        return self.accumulator.span_total()

    @property
    def per_label(self) -> dict[str, SpanCounts]:
        return {label: counts for label, counts in self.accumulator.per_span_label.items()
                if counts.gold or counts.predicted}

    @property
    def detection(self):
        return self.accumulator.detection

    @property
    def overlap(self) -> SpanCounts:
        """Overall span counts under overlap matching (any shared character with a same-label span)."""
        return self.accumulator.overlap_total()

    @property
    def overlap_per_label(self) -> dict[str, SpanCounts]:
        return {label: counts for label, counts in self.accumulator.overlap_per_label.items()
                if counts.gold or counts.predicted}

    @property
    def sources(self) -> list[str]:
        """The ``info.source`` values of the examples, sorted (``"-"`` for examples without one)."""
        return sorted(self.accumulator.per_source)

    def per_source(self, label: str | None = None, *, rule: str = "containment") -> dict[str, SpanCounts]:
        """Span counts per ``info.source`` (one label or all), under ``"containment"`` or ``"overlap"``.

        >>> report.per_source("private_person")["litbank"].f1   # doctest: +SKIP
        0.91
        """
        if rule not in ("containment", "overlap"):
            raise ValueError(f"rule must be 'containment' or 'overlap', got {rule!r}")
        return {source: self.accumulator.source_counts(source, rule=rule, label=label) for source in self.sources}

    @property
    def confusion(self) -> dict[str, dict[str, int]]:
        """For each gold label, what the missed spans (containment rule) got instead, most frequent first:
        another label, ``"partial"`` (own label, edges wrong) or ``"missed"`` (nothing overlapping)."""
        return {label: dict(sorted(outcomes.items(), key=lambda item: (-item[1], item[0])))
                for label, outcomes in sorted(self.accumulator.confusion.items())}

    @property
    def loss(self) -> float | None:
        return self.accumulator.loss if self.mode == "typed" else None

    @property
    def token_accuracy(self) -> float | None:
        return self.accumulator.token_accuracy if self.mode == "typed" else None

    @property
    def document_accuracy(self) -> float | None:
        return self.document_correct / self.document_total if self.document_total else None

    @property
    def metrics(self) -> dict[str, float]:
        flat = self.accumulator.flat_metrics()
        if self.document_accuracy is not None:
            flat["document.accuracy"] = self.document_accuracy
        return flat

    def to_dict(self) -> dict:
        """JSON-ready dict: ``summary``, ``metrics`` (flat, opf names), ``per_label`` counts and ``config``.

        >>> report.to_dict()["summary"]["eval_mode"]   # doctest: +SKIP
        'typed'
        """
        return {
            "summary": {
                "examples": self.examples,
                "tokens": self.tokens,
                "elapsed_s": round(self.elapsed_s, 3),
                "tokens_per_s": round(self.tokens / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
                "eval_mode": self.mode,
                "span_precision": self.span.precision,
                "span_recall": self.span.recall,
                "span_f1": self.span.f1,
                "loss": self.loss,
                "token_accuracy": self.token_accuracy,
                "document_accuracy": self.document_accuracy,
                "skipped_examples": len(self.skipped),
            },
            "metrics": self.metrics,
            "per_label": {label: counts.to_dict() for label, counts in self.per_label.items()},
            "overlap": {"overall": self.overlap.to_dict(),
                        "per_label": {label: counts.to_dict() for label, counts in self.overlap_per_label.items()}},
            "per_source": {source: {"examples": tally["examples"],
                                    "containment": {label: c.to_dict() for label, c in tally["containment"].items()},
                                    "overlap": {label: c.to_dict() for label, c in tally["overlap"].items()}}
                           for source, tally in sorted(self.accumulator.per_source.items())},
            "confusion": self.confusion,
            "config": dict(self.config),
            "skipped": list(self.skipped),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    # ------------------------------------------------------------------------------------------ views
    def _rows(self) -> list[tuple[str, SpanCounts]]:
        return sorted(self.per_label.items()) + [("overall", self.span)]

    def table(self):
        """A :class:`rich.table.Table` with span precision/recall/F1 per label and overall.

        >>> from rich.console import Console
        >>> Console().print(report.table())   # doctest: +SKIP
        """
        from rich.table import Table

        table = Table(title=f"Span metrics ({self.mode}, character space, containment matching; "
                            "overlap F1 beside it)")
        for column in ("label", "gold", "predicted", "precision", "recall", "F1", "overlap F1"):
            table.add_column(column, justify="left" if column == "label" else "right")
        overlap = dict(self.overlap_per_label, overall=self.overlap)
        for label, counts in self._rows():
            style = "bold" if label == "overall" else None
            table.add_row(label, str(counts.gold), str(counts.predicted), _fmt(counts.precision),
                          _fmt(counts.recall), _fmt(counts.f1), _fmt(overlap[label].f1 if label in overlap else None),
                          style=style)
        table.caption = self._caption()
        return table

    def source_table(self, label: str | None = None):
        """A :class:`rich.table.Table` with one row per ``info.source``: span P/R/F1 (containment) and overlap F1,
        for ``label`` only or for all labels together.

        >>> Console().print(report.source_table("private_person"))   # doctest: +SKIP
        """
        from rich.table import Table

        contained, overlapped = self.per_source(label), self.per_source(label, rule="overlap")
        what = label or "all labels"
        table = Table(title=f"Per source ({what}; containment, overlap F1 beside it)")
        for column in ("source", "examples", "gold", "predicted", "precision", "recall", "F1", "overlap F1"):
            table.add_column(column, justify="left" if column == "source" else "right")
        for source in self.sources:
            counts = contained[source]
            table.add_row(source, str(self.accumulator.per_source[source]["examples"]), str(counts.gold),
                          str(counts.predicted), _fmt(counts.precision), _fmt(counts.recall), _fmt(counts.f1),
                          _fmt(overlapped[source].f1))
        return table

    def confusion_table(self):
        """A :class:`rich.table.Table`: per gold label, how many spans the containment rule missed and what was
        predicted for them instead (``partial``: own label, wrong edges; ``missed``: nothing overlapping).

        >>> Console().print(report.confusion_table())   # doctest: +SKIP
        """
        from rich.table import Table

        table = Table(title="Missed gold spans: what was predicted instead")
        for column in ("gold label", "missed", "predicted instead"):
            table.add_column(column, justify="right" if column == "missed" else "left")
        for label, outcomes in self.confusion.items():
            table.add_row(label, str(sum(outcomes.values())),
                          ", ".join(f"{outcome} {count}" for outcome, count in outcomes.items()))
        return table

    def _caption(self) -> str:
        parts = [f"{self.examples} examples, {self.tokens} tokens",
                 f"token detection P {_fmt(self.detection.precision)} R {_fmt(self.detection.recall)} "
                 f"F1 {_fmt(self.detection.f1)}"]
        if self.loss is not None:
            parts.append(f"loss {_fmt(self.loss)}, token accuracy {_fmt(self.token_accuracy)}")
        if self.document_accuracy is not None:
            parts.append(f"document accuracy {_fmt(self.document_accuracy)} ({self.document_total} docs)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "; ".join(parts)

    def _figure(self):
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("saving a chart needs matplotlib: pip install 'pii_frames[plots]'") from None
        rows = self._rows()
        labels = [label for label, _ in rows]
        x = np.arange(len(labels))
        figure = Figure(figsize=(max(6.0, 1.1 * len(labels)), 4.0), layout="constrained")
        axes = figure.subplots()
        for offset, (name, getter) in zip((-0.27, 0.0, 0.27), (("precision", lambda c: c.precision),
                                                                ("recall", lambda c: c.recall),
                                                                ("F1", lambda c: c.f1))):
            values = [getter(counts) or 0.0 for _, counts in rows]
            axes.bar(x + offset, values, width=0.26, label=name)
        axes.set_xticks(x, labels, rotation=30, ha="right")
        axes.set_ylim(0, 1.18)
        axes.set_ylabel("score")
        axes.set_title(f"Span metrics per label ({self.mode})")
        axes.legend(loc="upper center", ncols=3, frameon=False)
        axes.grid(axis="y", alpha=0.3)
        return figure

    def save_png(self, path: str | os.PathLike) -> Path:
        """Save a bar chart of precision/recall/F1 per label (needs matplotlib).

        >>> report.save_png("eval.png")   # doctest: +SKIP
        PosixPath('eval.png')
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._figure().savefig(path, dpi=120)
        return path

    def save_html(self, path: str | os.PathLike) -> Path:
        """Save a self-contained HTML report: summary, per-label table and (with matplotlib) the chart.

        >>> report.save_html("eval.html")   # doctest: +SKIP
        PosixPath('eval.html')
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        chart = ""
        try:
            buffer = io.BytesIO()
            self._figure().savefig(buffer, format="png", dpi=110)
            chart = f'<img alt="per-label chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
        except ImportError:
            chart = "<p><i>Install matplotlib for a chart.</i></p>"
        rows = "\n".join(
            f"<tr{' class=total' if label == 'overall' else ''}><td>{html.escape(label)}</td><td>{c.gold}</td>"
            f"<td>{c.predicted}</td><td>{_fmt(c.precision)}</td><td>{_fmt(c.recall)}</td><td>{_fmt(c.f1)}</td></tr>"
            for label, c in self._rows())
        config = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in self.config.items())
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pii_frames evaluation</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;}} table{{border-collapse:collapse;}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right;}} td:first-child{{text-align:left;}}
tr.total{{font-weight:bold;}}</style></head><body>
<h1>pii_frames evaluation ({html.escape(self.mode)})</h1>
<p>{html.escape(self._caption())}</p>
<table><tr><th>label</th><th>gold</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th></tr>
{rows}
</table>
{chart}
<h2>Configuration</h2><ul>{config}</ul>
</body></html>
"""
        path.write_text(page, encoding="utf-8")
        return path


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _calibration_of(detector, biases: dict | None) -> dict:
    merged = dict(detector.calibration or {})
    merged.update(detector.biases or {})
    merged.update(biases or {})
    return merged


def evaluate(
    detector,
    records,
    *,
    mode: str = "typed",
    decode_mode: str | None = None,
    biases: dict | None = None,
    max_examples: int | None = None,
    progress: bool = True,
) -> EvalReport:
    """Run a detector over labelled examples and compute opf's metrics.

    Args:
        detector: a :class:`pii_frames.Detector`, or a model name / checkpoint path for :func:`pii_frames.load`.
        records: a dataset path (``.jsonl``/``.json``/``.gz``, directory or glob), a list of record dicts in
            the opf format (e.g. from :func:`pii_frames.synthetic.generate`) or of :class:`Example`.
        mode: ``"typed"`` (labels must match; gold labels must be in the model's label space) or
            ``"untyped"`` (any label matches; adds per-label character recall).
        decode_mode: ``"viterbi"`` or ``"argmax"`` (default: the detector's).
        biases: Viterbi transition biases on top of the checkpoint calibration.
        max_examples: evaluate only the first N examples.
        progress: show a tqdm progress bar (tokens).

    >>> report = evaluate(detector, [{"text": "Mail ann@example.com", "spans": {"private_email: ann@example.com": [[5, 20]]}}])  # doctest: +SKIP
    >>> report.span.recall   # doctest: +SKIP
    1.0
    """
    from pii_frames.decode.labels import LabelSpace
    from pii_frames.decode.spans import decode_spans
    from pii_frames.decode.viterbi import argmax_decode, viterbi_decode

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    detector = as_detector(detector)
    decode_mode = decode_mode or getattr(detector, "decode_mode", "viterbi")
    if decode_mode not in ("viterbi", "argmax"):
        raise ValueError(f"decode_mode must be 'viterbi' or 'argmax', got {decode_mode!r}")
    examples = load_examples(records, max_examples=max_examples)
    model = detector.model
    tokenizer = detector.tokenizer
    label_space = LabelSpace.from_names(detector.labels)
    doc_classes = list(detector.doc_classes or [])
    merged_biases = _calibration_of(detector, biases)
    n_ctx = int(getattr(detector, "n_ctx", 4096))
    token_budget = int(getattr(detector, "token_budget", 8192))
    typed = mode == "typed"

    # Tokenize and project gold first, so a label problem fails before any model time is spent.
    tokenized, skipped = tokenize_examples(tokenizer, examples)
    prepared = [(example, ids, offsets, project_spans_to_tokens(example.spans, offsets.starts, offsets.ends,
                                                                label_space, typed=typed, source=example.source))
                for example, ids, offsets in tokenized]

    accumulator = MetricsAccumulator(label_space.names, label_space.span_labels, mode=mode)
    report = EvalReport(mode=mode, accumulator=accumulator, elapsed_s=0.0, skipped=skipped, config={
        "model": getattr(detector, "model_id", str(getattr(detector, "checkpoint_dir", ""))),
        "device": str(getattr(detector, "device", "cpu")),
        "decode_mode": decode_mode,
        "n_ctx": n_ctx,
        "span_metrics_space": "char",
        "biases": merged_biases or None,
    })
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(sum(p[1].size for p in prepared)), unit="tok", desc="evaluate", leave=False)
    started = time.perf_counter()
    try:
        for (example, ids, offsets, gold_tokens), output in model_outputs(
                model, prepared, ids_of=lambda item: item[1], n_ctx=n_ctx, token_budget=token_budget,
                progress=bar.update if bar is not None else None):
            logprobs = output.logprobs
            pred_tokens = (viterbi_decode(logprobs, label_space, merged_biases) if decode_mode == "viterbi"
                           else argmax_decode(logprobs)) if ids.size else np.zeros(0, dtype=np.int64)
            pred_spans = decode_spans(logprobs, offsets, label_space, mode=decode_mode, biases=merged_biases)
            gold_spans = gold_token_aligned_spans(example.spans, offsets.starts, offsets.ends, example.text)
            accumulator.add_example(gold_tokens=gold_tokens, pred_tokens=pred_tokens, gold_spans=gold_spans,
                                    pred_spans=pred_spans, text=example.text,
                                    logprobs=logprobs if typed else None, source=_info_source(example))
            if doc_classes and output.doc_probs is not None and example.kind in doc_classes:
                report.document_total += 1
                report.document_correct += int(doc_classes[int(np.argmax(output.doc_probs))] == example.kind)
            report.predictions.append({
                "example_id": example.example_id,
                "source": example.source,
                "info_source": _info_source(example),
                "text": example.text,
                "gold_spans": [_span_dict(s, example.text) for s in gold_spans],
                "predicted_spans": [_span_dict(s, example.text) for s in pred_spans],
            })
    finally:
        if bar is not None:
            bar.close()
    report.elapsed_s = time.perf_counter() - started
    return report


def as_detector(detector):
    """``detector`` itself, or the Detector that :func:`pii_frames.load` gives for a model name, path or None."""
    if isinstance(detector, (str, os.PathLike)) or detector is None:
        import pii_frames

        return pii_frames.load(detector)
    return detector


def tokenize_examples(tokenizer, examples: list[Example]) -> tuple[list[tuple], list[dict]]:
    """``(example, ids, offsets)`` of each example the tokenizer round-trips, and a skip record for each
    one it does not (its gold offsets could not be mapped onto tokens)."""
    id_lists = tokenizer.encode_batch([example.text for example in examples])
    tokenized, skipped = [], []
    for example, ids in zip(examples, id_lists):
        offsets = tokenizer.token_offsets(example.text, ids)
        if offsets.mismatch:
            skipped.append({"example_id": example.example_id, "source": example.source,
                            "reason": "text does not survive the tokenizer round trip; gold offsets cannot be mapped"})
            continue
        tokenized.append((example, np.asarray(ids, dtype=np.int64), offsets))
    return tokenized, skipped


def model_outputs(model, items: list, *, ids_of, n_ctx: int, token_budget: int, progress=None):
    """Yield ``(item, output)`` for each item, running the model over ``ids_of(item)`` in chunks of texts
    (so a progress callback hears from every chunk)."""
    from pii_frames.model.runner import run_sequences

    for chunk_start in range(0, len(items), _CHUNK_TEXTS):
        chunk = items[chunk_start:chunk_start + _CHUNK_TEXTS]
        outputs = run_sequences(model, [ids_of(item) for item in chunk], n_ctx=n_ctx, token_budget=token_budget,
                                progress=progress)
        yield from zip(chunk, outputs)


def _info_source(example: Example) -> str | None:
    value = example.info.get("source") if isinstance(example.info, dict) else None
    return None if value is None else str(value)


def _span_dict(span, text: str) -> dict:
    return {"label": span.label, "start": span.start, "end": span.end, "text": text[span.start:span.end]}
