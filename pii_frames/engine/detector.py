"""The Detector: one engine path from a column of text to redactions.

Every adapter ends up in :meth:`Detector.detect_arrow` (or its list twin
:meth:`Detector.redact_many`), which

1. keeps nulls aside and deduplicates identical values (and remembers recent
   ones across calls: real tables repeat values across batches);
2. tokenizes the unique values;
3. hands the token sequences to :func:`pii_frames.model.runner.run_sequences`,
   which windows long documents, sorts by length and packs batches under a
   token budget;
4. decodes log-probs into character spans (Viterbi or argmax) and applies the
   redaction policy per row, so one bad row never loses the others.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import torch

from pii_frames.engine.schema import DETECT_TYPE, SPANS_TYPE, is_text_type
from pii_frames.engine.settings import env_flag, env_int

DECODE_MODES = ("viterbi", "argmax")
OUTPUT_MODES = ("typed", "redacted")
ON_ERROR = ("raise", "null")
PROGRESS_MIN_TOKENS = 20_000


class RowError(ValueError):
    """A row could not be processed; ``row`` is its index in the input."""

    def __init__(self, row: int, cause: BaseException):
        self.row = row
        self.cause = cause
        super().__init__(f"row {row}: {type(cause).__name__}: {cause} (pass on_error='null' to keep the other rows)")


@dataclass(frozen=True)
class Analysis:
    """Policy-independent model findings for one text."""

    text: str
    spans: tuple
    category: str | None
    category_score: float | None
    mismatch: bool


@dataclass(frozen=True)
class _DecodeSettings:
    mode: str
    biases: tuple
    trim_whitespace: bool
    discard_overlapping: bool


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; use one of {', '.join(choices)}")
    return value


class Detector:
    """Finds and redacts personal data with a loaded privacy-filter model.

    Create it with :func:`pii_frames.load`; Detectors on the same checkpoint
    share one model in memory and are safe to use from several threads.

    >>> import pii_frames as pii
    >>> detector = pii.load()                                   # doctest: +SKIP
    >>> result = detector.redact("Mail jane@example.com")       # doctest: +SKIP
    >>> result.redacted_text                                    # doctest: +SKIP
    'Mail <PRIVATE_EMAIL>'
    """

    def __init__(
        self,
        shared,
        *,
        decode_mode: str = "viterbi",
        output_mode: str = "typed",
        policy=None,
        biases: dict | None = None,
        trim_whitespace: bool = True,
        discard_overlapping: bool = False,
        n_ctx: int | None = None,
        token_budget: int | None = None,
        threads: int | None = None,
        progress: bool | None = None,
        on_error: str = "raise",
        cache_size: int = 100_000,
    ):
        self._shared = shared
        self.decode_mode = _check_choice("decode_mode", decode_mode, DECODE_MODES)
        self.output_mode = _check_choice("output_mode", output_mode, OUTPUT_MODES)
        self.on_error = _check_choice("on_error", on_error, ON_ERROR)
        self.policy = policy
        self.biases = dict(biases) if biases else None
        self.trim_whitespace = bool(trim_whitespace)
        self.discard_overlapping = bool(discard_overlapping)
        on_cpu = shared.device.type == "cpu"
        config = shared.model.config
        self.n_ctx = int(n_ctx or env_int("PII_FRAMES_N_CTX") or (4096 if on_cpu else config.default_n_ctx))
        self.token_budget = int(token_budget or env_int("PII_FRAMES_TOKEN_BUDGET") or (8192 if on_cpu else 65536))
        self.threads = threads or env_int("PII_FRAMES_THREADS")
        self.progress = progress
        self.cache_size = int(cache_size)
        self._cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self.last_errors: list[RowError] = []

    # ----------------------------------------------------------------- info
    @property
    def labels(self) -> list[str]:
        """Token label names in model order (``"O"`` first)."""
        return list(self._shared.label_space.names)

    @property
    def span_labels(self) -> list[str]:
        """Span class names (``private_person``, ``secret``...)."""
        return list(self._shared.label_space.span_labels)

    @property
    def doc_classes(self) -> list[str] | None:
        """Document category names, or None when the model has no document head."""
        names = self._shared.model.config.doc_class_names
        return list(names) if names else None

    @property
    def model_id(self) -> str:
        return self._shared.model_id

    @property
    def checkpoint_dir(self):
        return self._shared.checkpoint_dir

    @property
    def device(self) -> torch.device:
        return self._shared.device

    @property
    def dtype(self) -> torch.dtype:
        return self._shared.weight_dtype

    @property
    def tokenizer(self):
        return self._shared.tokenizer

    @property
    def config(self):
        return self._shared.model.config

    @property
    def model(self):
        """The loaded :class:`~pii_frames.model.encoder.PrivacyFilterModel` (shared by Detectors on it)."""
        return self._shared.model

    @property
    def label_space(self):
        """The model's :class:`~pii_frames.decode.labels.LabelSpace` (BIOES index maps)."""
        return self._shared.label_space

    @property
    def calibration(self) -> dict | None:
        """Viterbi transition biases from the checkpoint's ``viterbi_calibration.json`` (None when absent)."""
        return dict(self._shared.calibration) if self._shared.calibration else None

    def __repr__(self) -> str:
        return (
            f"Detector(model={self.model_id!r}, device='{self.device}', dtype={str(self.dtype).replace('torch.', '')}, "
            f"labels={len(self.labels)}, doc_classes={len(self.doc_classes or [])})"
        )

    # ------------------------------------------------------------ internals
    def _decode_settings(self, decode_mode, biases) -> _DecodeSettings:
        mode = _check_choice("decode_mode", decode_mode or self.decode_mode, DECODE_MODES)
        merged = dict(self._shared.calibration or {})
        merged.update(self.biases or {})
        merged.update(biases or {})
        return _DecodeSettings(mode, tuple(sorted(merged.items())), self.trim_whitespace, self.discard_overlapping)

    def _progress_bar(self, total_tokens: int, progress):
        wanted = progress if progress is not None else self.progress
        if wanted is None:
            wanted = env_flag("PII_FRAMES_PROGRESS")
        if wanted is None:
            wanted = total_tokens >= PROGRESS_MIN_TOKENS and sys.stderr.isatty()
        if not wanted:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total_tokens, unit="tok", desc="pii_frames", leave=False, dynamic_ncols=True)

    def _run_model(self, sequences: list[np.ndarray], bar) -> list:
        from pii_frames.model.runner import run_sequences

        callback = bar.update if bar is not None else None
        with self._shared.lock:
            return run_sequences(
                self._shared.model,
                sequences,
                n_ctx=self.n_ctx,
                token_budget=self.token_budget,
                progress=callback,
                num_threads=self.threads or "auto",
            )

    def _analyze(self, texts: list[str], settings: _DecodeSettings, progress=None) -> list:
        """Analysis (or the exception that stopped it) for each unique text."""
        results: list = [None] * len(texts)
        missing: list[int] = []
        with self._cache_lock:
            for i, text in enumerate(texts):
                hit = self._cache.get((text, settings))
                if hit is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end((text, settings))
                    results[i] = hit
        if not missing:
            return results

        tokenizer = self._shared.tokenizer
        try:
            id_lists = tokenizer.encode_batch([texts[i] for i in missing])
        except Exception:
            id_lists = []
            for i in missing:
                try:
                    id_lists.append(tokenizer.encode(texts[i]))
                except Exception as exc:  # reported per row by the caller
                    id_lists.append(exc)
        runnable = [k for k, ids in enumerate(id_lists) if not isinstance(ids, Exception)]
        sequences = [np.asarray(id_lists[k], dtype=np.int64) for k in runnable]
        bar = self._progress_bar(int(sum(len(s) for s in sequences)), progress)
        try:
            try:
                outputs = self._run_model(sequences, bar)
            except Exception:
                # Find the culprit(s) one by one rather than losing the whole batch.
                outputs = []
                for seq in sequences:
                    try:
                        outputs.append(self._run_model([seq], None)[0])
                    except Exception as exc:
                        outputs.append(exc)
        finally:
            if bar is not None:
                bar.close()

        by_missing = {runnable[j]: out for j, out in enumerate(outputs)}
        decodable: list[tuple[int, object, object]] = []  # (position in texts, model output, offsets)
        for k, i in enumerate(missing):
            out = by_missing.get(k, id_lists[k])
            if isinstance(out, Exception):
                results[i] = out
                continue
            try:
                decodable.append((i, out, tokenizer.token_offsets(texts[i], id_lists[k])))
            except Exception as exc:
                results[i] = exc
        span_lists = self._decode_many(decodable, settings)

        doc_classes = self.doc_classes
        new_entries = []
        for (i, out, offsets), spans in zip(decodable, span_lists):
            if isinstance(spans, Exception):
                results[i] = spans
                continue
            category = category_score = None
            if out.doc_probs is not None and doc_classes:
                best = int(np.argmax(out.doc_probs))
                category, category_score = doc_classes[best], float(out.doc_probs[best])
            analysis = Analysis(offsets.decoded_text, tuple(spans), category, category_score, bool(offsets.mismatch))
            results[i] = analysis
            new_entries.append(((texts[i], settings), analysis))
        if self.cache_size > 0:
            with self._cache_lock:
                for key, analysis in new_entries:
                    self._cache[key] = analysis
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return results

    def _decode_many(self, decodable: list, settings: _DecodeSettings) -> list:
        """Span lists for many documents in one batched Viterbi; per document when one of them fails."""
        from pii_frames.decode.spans import decode_spans_many

        options = dict(
            mode=settings.mode,
            biases=dict(settings.biases),
            trim_whitespace=settings.trim_whitespace,
            discard_overlapping=settings.discard_overlapping,
        )
        label_space = self._shared.label_space
        try:
            return decode_spans_many(
                [out.logprobs for _, out, _ in decodable], [offsets for _, _, offsets in decodable],
                label_space, **options,
            )
        except Exception:
            span_lists: list = []
            for _, out, offsets in decodable:
                try:
                    span_lists.append(decode_spans_many([out.logprobs], [offsets], label_space, **options)[0])
                except Exception as exc:
                    span_lists.append(exc)
            return span_lists

    def _results(self, values: Sequence, *, policy, output_mode, decode_mode, biases, on_error, progress) -> list:
        """RedactionResult | None | RowError per input value, in input order."""
        from pii_frames.redact.apply import build_result

        on_error = _check_choice("on_error", on_error or self.on_error, ON_ERROR)
        output_mode = _check_choice("output_mode", output_mode or self.output_mode, OUTPUT_MODES)
        policy = policy if policy is not None else self.policy
        if policy is not None:
            policy.check_labels(self._shared.label_space.span_labels)
        settings = self._decode_settings(decode_mode, biases)

        unique: dict[str, int] = {}
        errors: dict[int, RowError] = {}
        for row, value in enumerate(values):
            if value is None:
                continue
            if not isinstance(value, str):
                errors[row] = RowError(row, TypeError(f"expected str or None, got {type(value).__name__}"))
                continue
            unique.setdefault(value, len(unique))
        texts = list(unique)
        analyses = self._analyze(texts, settings, progress)

        out: list = [None] * len(values)
        built: dict[int, object] = {}
        for row, value in enumerate(values):
            if value is None or row in errors:
                continue
            slot = unique[value]
            if slot not in built:
                analysis = analyses[slot]
                if isinstance(analysis, Exception):
                    built[slot] = analysis
                else:
                    try:
                        built[slot] = build_result(
                            analysis.text,
                            list(analysis.spans),
                            policy=policy,
                            output_mode=output_mode,
                            category=analysis.category,
                            category_score=analysis.category_score,
                            decoded_mismatch=analysis.mismatch,
                        )
                    except Exception as exc:
                        built[slot] = exc
            result = built[slot]
            if isinstance(result, Exception):
                errors[row] = RowError(row, result)
            else:
                out[row] = result
        self.last_errors = [errors[r] for r in sorted(errors)]
        if errors:
            if on_error == "raise":
                raise self.last_errors[0]
            rows = ", ".join(str(e.row) for e in self.last_errors[:20])
            more = "" if len(errors) <= 20 else f" and {len(errors) - 20} more"
            warnings.warn(
                f"pii_frames: {len(errors)} row(s) could not be processed and were set to null: rows {rows}{more}; "
                f"first error: {self.last_errors[0].cause}",
                RuntimeWarning,
                stacklevel=3,
            )
        return out

    # ---------------------------------------------------------- public API
    def token_logprobs(self, text: str) -> tuple[list[int], np.ndarray]:
        """Token ids and the classifier's per-token log-softmax, float32 [T, num_labels].

        >>> ids, logprobs = detector.token_logprobs("Hi Ann")    # doctest: +SKIP
        >>> logprobs.shape == (len(ids), len(detector.labels))   # doctest: +SKIP
        True
        """
        if not isinstance(text, str):
            raise TypeError(f"token_logprobs expects a str, got {type(text).__name__}")
        ids = self._shared.tokenizer.encode(text)
        output = self._run_model([np.asarray(ids, dtype=np.int64)], None)[0]
        return list(ids), np.asarray(output.logprobs, dtype=np.float32)

    def redact(self, text: str, *, policy=None, output_mode=None, decode_mode=None, biases=None):
        """Detect and redact personal data in one text; returns a RedactionResult.

        >>> result = detector.redact("Call Ann Lee on +1 415 555 0100")   # doctest: +SKIP
        >>> [(s.label, s.text) for s in result.detected_spans]           # doctest: +SKIP
        [('private_person', 'Ann Lee'), ('private_phone', '+1 415 555 0100')]
        """
        if not isinstance(text, str):
            raise TypeError(f"redact expects a str, got {type(text).__name__}; use redact_many for lists with None")
        return self._results(
            [text], policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
            on_error="raise", progress=False,
        )[0]

    def redact_many(
        self, texts: Iterable[str | None], *, policy=None, output_mode=None, decode_mode=None, biases=None,
        on_error=None, progress=None,
    ) -> list:
        """Redact many texts in batches; None in gives None out, order kept.

        >>> detector.redact_many(["Ann", None])    # doctest: +SKIP
        [RedactionResult(...), None]
        """
        return self._results(
            list(texts), policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
            on_error=on_error, progress=progress,
        )

    def detect_arrow(
        self, array, *, policy=None, output_mode=None, decode_mode=None, biases=None, on_error=None,
        progress=None, column: str | None = None,
    ) -> pa.StructArray:
        """Detect PII in an Arrow string column; one output row per input row.

        Accepts string, large_string, string_view (and chunked) arrays. Returns a
        StructArray with ``redacted_text``, ``spans``
        (list<struct<label, start, end, text, score>>), ``category`` and
        ``labels``; null rows stay null.

        >>> import pyarrow as pa
        >>> out = detector.detect_arrow(pa.array(["Ann Lee", None]))   # doctest: +SKIP
        >>> out.field("redacted_text").to_pylist()                     # doctest: +SKIP
        ['<PRIVATE_PERSON>', None]
        """
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks else pa.array([], type=array.type)
        if not isinstance(array, pa.Array):
            array = pa.array(array)
        name = f"column {column!r}" if column else "the input array"
        if not is_text_type(array.type):
            raise TypeError(
                f"{name} has Arrow type {array.type}; pii_frames needs text (string, large_string or string_view): "
                "cast it to string first"
            )
        values = array.to_pylist()
        results = self._results(
            values, policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
            on_error=on_error, progress=progress,
        )
        return results_to_arrow(results)

    def detect_table(
        self, table: pa.Table, columns: Sequence[str], *, spans: bool = False, category: bool = False,
        spans_suffix: str = "_pii_spans", category_suffix: str = "_pii_category", **opts,
    ) -> pa.Table:
        """Replace text columns of an Arrow table by their redacted text, optionally adding span and category columns.

        >>> detector.detect_table(table, ["body"], spans=True).column_names   # doctest: +SKIP
        ['id', 'body', 'body_pii_spans']
        """
        for col in columns:
            if col not in table.column_names:
                raise KeyError(f"column {col!r} not found; available columns: {', '.join(table.column_names)}")
            if not is_text_type(table.schema.field(col).type):
                raise TypeError(
                    f"column {col!r} has type {table.schema.field(col).type}; only text columns can be sanitized"
                )
        for col in columns:
            detected = self.detect_arrow(table.column(col), column=col, **opts)
            idx = table.column_names.index(col)
            table = table.set_column(idx, pa.field(col, pa.string()), detected.field("redacted_text"))
            if spans:
                table = table.append_column(pa.field(col + spans_suffix, SPANS_TYPE), detected.field("spans"))
            if category:
                table = table.append_column(pa.field(col + category_suffix, pa.string()), detected.field("category"))
        return table


def results_to_arrow(results: Sequence) -> pa.StructArray:
    """Pack RedactionResult | None rows into the engine's StructArray (None -> null row)."""
    redacted, spans, categories, labels, valid = [], [], [], [], []
    for result in results:
        if result is None:
            redacted.append(None)
            spans.append(None)
            categories.append(None)
            labels.append(None)
            valid.append(False)
            continue
        row_spans = [
            {"label": s.label, "start": s.start, "end": s.end, "text": s.text, "score": float(s.score)}
            for s in result.detected_spans
        ]
        redacted.append(result.redacted_text)
        spans.append(row_spans)
        categories.append(result.category)
        labels.append(sorted({s["label"] for s in row_spans}))
        valid.append(True)
    fields = list(DETECT_TYPE)
    children = [
        pa.array(redacted, type=fields[0].type),
        pa.array(spans, type=fields[1].type),
        pa.array(categories, type=fields[2].type),
        pa.array(labels, type=fields[3].type),
    ]
    mask = pa.array([not v for v in valid], type=pa.bool_())
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
