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

import dataclasses
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import torch

from pii_frames.engine.options import DetectOptions
from pii_frames.engine.rows import RowError, arrow_text_values, report_row_errors
from pii_frames.engine.schema import is_text_type, results_to_arrow
from pii_frames.engine.settings import env_flag, env_int

PROGRESS_MIN_TOKENS = 20_000
SURROGATE_WARNING = (
    "Input text holds lone surrogates (not encodable as UTF-8); the model read each as U+FFFD, and the "
    "result keeps them as they are in the input."
)


def _keeps_input_outside_spans(original: str, decoded: str) -> bool:
    """True when ``decoded`` is ``original`` with each lone surrogate replaced by U+FFFD (same offsets)."""
    if len(original) != len(decoded):
        return False
    return all(a == b or (b == "\ufffd" and 0xD800 <= ord(a) <= 0xDFFF) for a, b in zip(original, decoded))


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


class Detector:
    """Finds and redacts personal data with a loaded privacy-filter model.

    Create it with :func:`pii_frames.load`; Detectors on the same checkpoint
    share one model in memory and are safe to use from several threads. Its
    settings are one :class:`~pii_frames.engine.options.DetectOptions`
    (``detector.options``), given as keywords to ``pii.load``; the per-call
    keywords of ``redact``/``redact_many``/``detect_arrow`` override them.

    ``recognizers``: validated patterns run beside the model (see
    :mod:`pii_frames.recognizers`): ``"builtin"`` (the default: cards, IBANs,
    national IDs, e-mails, URLs, IPs, phones, known secret formats), a
    :class:`~pii_frames.recognizers.RecognizerSet`, its config (dict/list) or
    a policy file path, or None for the model's own spans only. A policy's
    ``recognizers`` replace these for calls with that policy.

    ``opf_compatible=True`` gives exactly the opf reference's spans and
    redacted text: no edge snapping, no protection of our own placeholders,
    no pattern recognizers. Otherwise redaction widens spans to whole tokens
    and leaves placeholders, pseudonyms, encrypted tokens and masks already
    in the input as they are (see :mod:`pii_frames.redaction.edges`).

    >>> import pii_frames as pii
    >>> detector = pii.load("default")
    >>> detector.redact("Please write to jane@example.com today.").redacted_text
    'Please write to <PRIVATE_EMAIL> today.'
    >>> detector.redact("Please write to <PRIVATE_EMAIL> today.").redacted_text
    'Please write to <PRIVATE_EMAIL> today.'
    """

    def __init__(self, shared, options: DetectOptions | None = None, **changes):
        self._shared = shared
        # Keywords given here are settings (None included: recognizers=None turns patterns off).
        self.options = dataclasses.replace(options or DetectOptions(), **changes)
        opts = self.options
        on_cpu = shared.device.type == "cpu"
        # Window, batch and thread sizes: the option, else the environment, else the device's default.
        self.n_ctx = int(opts.n_ctx or env_int("PII_FRAMES_N_CTX") or (4096 if on_cpu else shared.model.config.default_n_ctx))
        self.token_budget = int(opts.token_budget or env_int("PII_FRAMES_TOKEN_BUDGET") or (8192 if on_cpu else 65536))
        self.threads = opts.threads or env_int("PII_FRAMES_THREADS")
        self._cache: OrderedDict = OrderedDict()
        self._cache_used_bytes = 0
        self._cache_lock = threading.Lock()
        self._per_thread = threading.local()

    # Read-only views of the options most callers look at.
    decode_mode = property(lambda self: self.options.decode_mode)
    output_mode = property(lambda self: self.options.output_mode)
    on_error = property(lambda self: self.options.on_error)
    policy = property(lambda self: self.options.policy)
    opf_compatible = property(lambda self: self.options.opf_compatible)
    recognizers = property(lambda self: self.options.recognizers)
    cache_size = property(lambda self: self.options.cache_size)
    cache_bytes = property(lambda self: self.options.cache_bytes)
    biases = property(lambda self: dict(self.options.biases) or None)
    trim_whitespace = property(lambda self: self.options.trim_whitespace)
    discard_overlapping = property(lambda self: self.options.discard_overlapping)
    progress = property(lambda self: self.options.progress)

    @property
    def last_errors(self) -> list[RowError]:
        """Rows that failed in this thread's last call (each thread sees its own calls only)."""
        return list(getattr(self._per_thread, "errors", ()))

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
        """The loaded :class:`~pii_frames.model.reference.PrivacyFilterModel` (shared by Detectors on it)."""
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
    def _decode_settings(self, call: DetectOptions) -> _DecodeSettings:
        merged = dict(self._shared.calibration or {})
        merged.update(self.options.biases)
        merged.update(call.biases)
        return _DecodeSettings(call.decode_mode, tuple(sorted(merged.items())), call.trim_whitespace,
                               call.discard_overlapping)

    def _progress_bar(self, total_tokens: int, progress):
        wanted = progress if progress is not None else self.options.progress
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
                    if key in self._cache:
                        continue
                    self._cache[key] = analysis
                    self._cache_used_bytes += _entry_bytes(key[0], analysis)
                while self._cache and (len(self._cache) > self.cache_size
                                       or self._cache_used_bytes > self.cache_bytes):
                    old_key, old_analysis = self._cache.popitem(last=False)
                    self._cache_used_bytes -= _entry_bytes(old_key[0], old_analysis)
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

    def _results(self, values: Sequence, call: DetectOptions, *, column: str | None = None,
                 preset_errors: Sequence[RowError] = ()) -> list:
        """RedactionResult | None per input value, in input order; bad rows follow ``call.on_error``.

        ``preset_errors`` are rows the caller already found unreadable (given as None in ``values``).
        """
        from pii_frames.redaction.apply import build_result

        on_error, output_mode, policy = call.on_error, call.output_mode, call.policy
        recognizers = self._recognizers_for(policy)
        if policy is not None:
            policy.check_labels([*self._shared.label_space.span_labels, *(recognizers.labels if recognizers else ())])
        settings = self._decode_settings(call)
        progress = call.progress

        unique: dict[str, int] = {}
        errors: dict[int, RowError] = {error.row: error for error in preset_errors}
        for row, value in enumerate(values):
            if value is None or row in errors:
                continue
            if not isinstance(value, str):
                errors[row] = RowError(row, TypeError(f"expected str or None, got {type(value).__name__}"), column)
                continue
            unique.setdefault(value, len(unique))
        texts = list(unique)
        analyses = self._analyze(texts, settings, progress)

        built = [analysis if isinstance(analysis, Exception)
                 else self._build(value, analysis, policy, output_mode, recognizers, build_result)
                 for value, analysis in zip(texts, analyses)]
        if self.options.rescan and not self.opf_compatible:
            self._rescan(built, analyses, call, settings, recognizers)

        out: list = [None] * len(values)
        for row, value in enumerate(values):
            if value is None or row in errors:
                continue
            result = built[unique[value]]
            if isinstance(result, Exception):
                errors[row] = RowError(row, result, column)
            else:
                out[row] = result
        self._per_thread.errors = [errors[r] for r in sorted(errors)]
        report_row_errors(list(errors.values()), on_error, stacklevel=4)
        return out

    def _recognizers_for(self, policy):
        """The RecognizerSet for calls with ``policy`` (None: the model's spans only)."""
        if self.opf_compatible or self.recognizers is None:
            return None
        if policy is not None and policy.recognizers is not None:
            return policy.recognizers
        return self.recognizers

    @staticmethod
    def _text_of(value: str, analysis: Analysis) -> tuple[str, str | None]:
        """The text the spans index, and the warning that goes with it."""
        if analysis.mismatch and _keeps_input_outside_spans(value, analysis.text):
            # Lone surrogates (tiktoken reads each as U+FFFD, one code point for one): offsets are the
            # input's, so the result keeps the input's code points and text[start:end] == span.text holds.
            return value, SURROGATE_WARNING
        return analysis.text, None

    @staticmethod
    def _spans_of(text: str, analysis: Analysis, recognizers) -> list:
        """The model's spans of ``text`` merged with the recognizers' (the one merge rule)."""
        spans = list(analysis.spans)
        if recognizers is not None:
            from pii_frames.recognizers import merge_spans

            spans = merge_spans(spans, recognizers.find(text), text)
        return spans

    def _build(self, value: str, analysis: Analysis, policy, output_mode: str, recognizers, build_result,
               extra_spans: Sequence = ()):
        """The RedactionResult of one unique text, or the exception that stopped it."""
        text, warning = self._text_of(value, analysis)
        try:
            return build_result(
                text,
                [*self._spans_of(text, analysis, recognizers), *extra_spans],
                policy=policy,
                output_mode=output_mode,
                category=analysis.category,
                category_score=analysis.category_score,
                decoded_mismatch=analysis.mismatch,
                warning=warning,
                opf_compatible=self.opf_compatible,
            )
        except Exception as exc:
            return exc

    def _rescan(self, built: list, analyses: list, call: DetectOptions, settings: _DecodeSettings,
                recognizers) -> None:
        """Redact, in place in ``built``, what reading each redacted text again finds (see engine.rescan)."""
        from pii_frames.engine.rescan import MAX_ROUNDS, pieces_of, to_original
        from pii_frames.redaction.apply import build_result

        extra: dict[int, list] = {}
        pending = [slot for slot, result in enumerate(built)
                   if not isinstance(result, Exception) and result.detected_spans and not analyses[slot].mismatch]
        for _ in range(MAX_ROUNDS):
            if not pending:
                return
            views = self._analyze([built[slot].redacted_text for slot in pending], settings, call.progress)
            changed = []
            for slot, view in zip(pending, views):
                current = built[slot]
                if isinstance(view, Exception):
                    continue  # this row keeps what the earlier rounds found
                # Typed, so the labels of what is found survive output_mode="redacted".
                second = self._build(current.redacted_text, view, call.policy, "typed", recognizers, build_result)
                if isinstance(second, Exception) or not second.detected_spans:
                    continue
                found = to_original(second.detected_spans, pieces_of(current.text, current.detected_spans))
                extra.setdefault(slot, []).extend(found)
                rebuilt = self._build(current.text, analyses[slot], call.policy, call.output_mode, recognizers,
                                      build_result, extra[slot])
                if not isinstance(rebuilt, Exception) and rebuilt.redacted_text != current.redacted_text:
                    built[slot] = rebuilt
                    changed.append(slot)
            pending = changed

    # ---------------------------------------------------------- public API
    def token_logprobs(self, text: str) -> tuple[list[int], np.ndarray]:
        """Token ids and the classifier's per-token log-softmax, float32 [T, num_labels].

        >>> import pii_frames as pii
        >>> detector = pii.load("default")
        >>> ids, logprobs = detector.token_logprobs("Hi Ann")
        >>> logprobs.shape == (len(ids), len(detector.labels))
        True
        """
        if not isinstance(text, str):
            raise TypeError(f"token_logprobs expects a str, got {type(text).__name__}")
        ids = self._shared.tokenizer.encode(text)
        output = self._run_model([np.asarray(ids, dtype=np.int64)], None)[0]
        return list(ids), np.asarray(output.logprobs, dtype=np.float32)

    def redact(self, text: str, *, policy=None, output_mode=None, decode_mode=None, biases=None):
        """Detect and redact personal data in one text; returns a RedactionResult.

        ``policy`` is a :class:`~pii_frames.Policy` or a dict of its arguments.

        >>> import pii_frames as pii
        >>> detector = pii.load("default")
        >>> detector.redact("Contact: ann@example.com", policy={"operator": "mask"}).redacted_text
        'Contact: ***************'
        """
        if not isinstance(text, str):
            raise TypeError(f"redact expects a str, got {type(text).__name__}; use redact_many for lists with None")
        call = self.options.replace(policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
                                    on_error="raise", progress=False)
        return self._results([text], call)[0]

    def redact_many(
        self, texts: Iterable[str | None], *, policy=None, output_mode=None, decode_mode=None, biases=None,
        on_error=None, progress=None,
    ) -> list:
        """Redact many texts in batches; None in gives None out, order kept.

        >>> import pii_frames as pii
        >>> [None if r is None else r.redacted_text for r in pii.load("default").redact_many(["ann@example.com", None])]
        ['<PRIVATE_EMAIL>', None]
        """
        call = self.options.replace(policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
                                    on_error=on_error, progress=progress)
        return self._results(list(texts), call)

    def detect_arrow(
        self, array, *, policy=None, output_mode=None, decode_mode=None, biases=None, on_error=None,
        progress=None, column: str | None = None, with_text: bool | None = None,
    ) -> pa.StructArray:
        """Detect PII in an Arrow string column; one output row per input row.

        Accepts string, large_string, string_view, dictionary (and chunked)
        arrays. Returns a StructArray of :func:`~pii_frames.engine.schema.detect_type`:
        ``redacted_text``, ``spans`` (list<struct<label, start, end, score,
        source>>; ``with_text=True`` appends the raw ``text``, which is PII),
        ``category`` and ``labels``; null rows stay null. A row whose bytes are
        not valid UTF-8 follows ``on_error`` like any other bad row.

        >>> import pyarrow as pa, pii_frames as pii
        >>> out = pii.load("default").detect_arrow(pa.array(["Contact: ann@example.com", None]))
        >>> out.field("redacted_text").to_pylist()
        ['Contact: <PRIVATE_EMAIL>', None]
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
        values, unreadable = arrow_text_values(array, f"column {column!r}" if column else None)
        call = self.options.replace(policy=policy, output_mode=output_mode, decode_mode=decode_mode, biases=biases,
                                    on_error=on_error, progress=progress, with_text=with_text)
        results = self._results(values, call, column=f"column {column!r}" if column else None,
                                preset_errors=unreadable)
        return results_to_arrow(results, with_text=call.with_text)


def _entry_bytes(text: str, analysis: Analysis) -> int:
    """Approximate memory of one cache entry: the key text, the decoded text and its spans."""
    return 2 * (len(text) + len(analysis.text)) + 64 * len(analysis.spans) + 200
