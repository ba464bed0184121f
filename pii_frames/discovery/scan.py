"""Find which tables and columns hold personal data, from a random sample of each column.

:func:`scan` opens the input (:mod:`pii_frames.discovery.sources`), reads one
reproducible random sample per table, runs the model once per text column of
that sample and decides a verdict per column with the rule below. Work is
bounded by ``sample_rows`` per table, not by the table's size.

Verdict rule
------------
On the non-null sampled values of a column (``values_scanned``):

1. A detected span *counts* when its score is at least ``min_score``
   (default :data:`DEFAULT_MIN_SCORE` = 0.5) and it covers at least one
   letter or digit outside pii_frames' own placeholders (``<PRIVATE_EMAIL>``,
   pseudonym and encryption tokens, runs of three or more ``*``), so an
   already sanitized column is not flagged for the placeholders in it.
2. For each label, its *share* is the number of scanned values with at least
   one counted span of that label, divided by ``values_scanned``. The label is
   *found* when its share is at least ``min_share`` (default
   :data:`DEFAULT_MIN_SHARE` = 0.05, i.e. 50 of 1,000 sampled values).
3. The column's verdict is ``pii`` when any label is found, ``no pii found``
   otherwise, and ``skipped`` (with the reason) when it is not text, when its
   sample holds no non-null value, or when the table has no rows.

The mean score reported per column and label is the mean over counted spans.
Example snippets (at most three per column) are cut from the engine's
redacted text around a row's first span, always with typed placeholders
(``<PRIVATE_PERSON>``) whatever the policy's operator, so a report never
carries a value the model detected. In a snippet, every other word with a
capital letter, a digit or an ``@`` is shown as ``[…]``: a value the model
missed next to one it found (a first name beside a detected surname) stays
out of the report too.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from pii_frames.discovery.plans import ColumnInfo, ScanError, TablePlan
from pii_frames.discovery.report import (
    VERDICT_CLEAN,
    VERDICT_PII,
    VERDICT_SKIPPED,
    ColumnScan,
    LabelStats,
    ScanReport,
)
from pii_frames.discovery.sources import open_source

__all__ = [
    "scan",
    "analyze_column",
    "DEFAULT_SAMPLE_ROWS",
    "DEFAULT_MIN_SHARE",
    "DEFAULT_MIN_SCORE",
    "MAX_EXAMPLES",
    "PLACEHOLDER_RE",
    "MASKED_WORD",
]

DEFAULT_SAMPLE_ROWS = 1000
DEFAULT_MIN_SHARE = 0.05
DEFAULT_MIN_SCORE = 0.5
MAX_EXAMPLES = 3
SNIPPET_CHARS = 80
SNIPPET_BEFORE = 24

#: What pii_frames writes in place of a value: typed placeholders, pseudonyms
#: (``<PRIVATE_PERSON_3f9a1c2b7d4e5f60>``), encryption tokens (``<PRIVATE_EMAIL:v1:key:...>``) and masks.
PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z0-9_]*(?:[_:][^<>\s]*)?>|\*{3,}")
_WORD_CHAR = re.compile(r"[^\W_]")
_SPACES = re.compile(r"\s+")
_TOKEN = re.compile(r"[^\s,;:()\[\]\"]+")
#: What a snippet shows instead of a word that may belong to a missed value.
MASKED_WORD = "[…]"
_MASK_RUN = re.compile(r"\[…\](?:\s*\[…\])+")


def scan(
    data: Any,
    *,
    columns: Sequence[str] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    model: Any = None,
    policy: Any = None,
    progress: bool | None = None,
    min_share: float = DEFAULT_MIN_SHARE,
    min_score: float = DEFAULT_MIN_SCORE,
    **load_options: Any,
) -> ScanReport:
    """Scan ``data`` for personal data and report, per column, whether it holds any and which kinds.

    ``data``: a Polars/pandas DataFrame, a Polars LazyFrame, a pyarrow Table,
    a DuckDB relation or connection (every base table of every schema), a
    mapping of table name to any of those, or a path (Parquet file or folder,
    CSV, JSON Lines, ``.duckdb`` file, ``duckdb:///file.duckdb::schema.table``).

    ``columns`` limits the scan to these names (``"column"`` or
    ``"table.column"``). ``sample_rows`` rows of each table are drawn at
    random with ``seed`` (the same rows for every column of a table; the same
    arguments give the same sample). ``model`` is a checkpoint, a model name,
    a loaded Detector or None (the default resolution of :func:`pii_frames.load`);
    ``policy`` (a :class:`pii_frames.Policy` or a dict of its arguments)
    chooses which labels, scores and allow/deny values count; its operator is
    not used (snippets always use placeholders). ``progress`` shows a bar
    across columns (default: when stderr is a terminal). ``min_share`` and
    ``min_score`` set the verdict rule described in :mod:`pii_frames.discovery.scan`.
    Other keywords (``device``, ``dtype``...) go to :func:`pii_frames.load`;
    the model is loaded only when a column needs it.

    Raises :class:`~pii_frames.discovery.plans.ScanError` when the input is
    missing or unreadable, when ``columns`` names an unknown column, and when
    no column holds text.

    >>> import polars as pl, pii_frames as pii
    >>> df = pl.DataFrame({"id": [1, 2], "email": ["maria.lopez@example.com", "john.smith@example.org"]})
    >>> report = pii.scan(df)
    >>> report.column("email").verdict, report.column("email").found_labels, report.column("id").reason
    ('pii', ['private_email'], 'type Int64 is not text')
    """
    _check_share("min_share", min_share)
    _check_share("min_score", min_score)
    started = time.perf_counter()
    with open_source(data, sample_rows=sample_rows, seed=seed) as source:
        plans = source.tables()
        if not plans:
            raise ScanError(f"nothing to scan: {source.description} holds no tables")
        selected = _select_columns(plans, columns, source.description)
        _require_text(selected, source.description)
        todo = sum(1 for _, cols in selected for c in cols if c.text and c.skip_reason is None)
        scan_policy = _scan_policy(policy)
        state: dict[str, Any] = {"detector": None}

        def detector():
            if state["detector"] is None:
                from pii_frames.arrow import resolve_detector

                state["detector"] = resolve_detector(None if model == "" else model, **load_options)
            return state["detector"]

        results: list[ColumnScan] = []
        from tqdm.auto import tqdm

        show = sys.stderr.isatty() if progress is None else bool(progress)
        with tqdm(total=todo, unit="col", desc="pii_frames scan", disable=not show, file=sys.stderr,
                  dynamic_ncols=True, leave=False) as bar:
            for plan, cols in selected:
                results.extend(_scan_table(plan, cols, detector, scan_policy, min_share, min_score, bar))
        loaded = state["detector"]
        if loaded is None and model is not None and hasattr(model, "detect_arrow"):
            loaded = model
        return ScanReport(
            results,
            source=source.description,
            model=None if loaded is None else loaded.model_id,
            labels=None if loaded is None else loaded.span_labels,
            settings={"sample_rows": sample_rows, "seed": seed, "min_share": min_share, "min_score": min_score},
            seconds=time.perf_counter() - started,
        )


def _check_share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")


# Policy arguments that only say how values are replaced: a scan always shows placeholders.
_OPERATOR_KEYS = {"operator", "per_label", "key", "key_env", "key_id", "key_source", "mask_char", "keep_last"}
_SCAN_KEYS = ("labels", "min_score", "allow", "deny")


def _scan_policy(policy: Any):
    """The caller's choice of labels, score floor and allow/deny lists, with placeholders as operator."""
    if policy is None:
        return None
    from pii_frames.redaction.policy import Policy

    if isinstance(policy, Mapping):
        unknown = sorted(set(policy) - _OPERATOR_KEYS - set(_SCAN_KEYS))
        if unknown:
            raise ValueError(f"unknown policy key(s) {unknown}; a scan uses {list(_SCAN_KEYS)}")
        spec = {key: policy[key] for key in _SCAN_KEYS if key in policy}
    elif isinstance(policy, Policy):
        spec = {key: getattr(policy, key) for key in _SCAN_KEYS}
    else:
        raise TypeError(f"policy must be a pii_frames.Policy or a dict of its arguments, got {type(policy).__name__}")
    return Policy("placeholder", **spec)


def _select_columns(plans: list[TablePlan], wanted: Sequence[str] | None,
                    description: str) -> list[tuple[TablePlan, list[ColumnInfo]]]:
    if wanted is None:
        return [(plan, list(plan.columns)) for plan in plans]
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = list(dict.fromkeys(wanted))
    matched: set[str] = set()
    selected = []
    for plan in plans:
        keep = []
        for column in plan.columns:
            hits = {column.name, f"{plan.name}.{column.name}"} & set(wanted)
            if hits:
                matched |= hits
                keep.append(column)
        if keep:
            selected.append((plan, keep))
    missing = [name for name in wanted if name not in matched]
    if missing:
        known = ", ".join(f"{p.name}.{c.name}" if len(plans) > 1 else c.name for p in plans for c in p.columns)
        raise ScanError(f"column(s) {', '.join(map(repr, missing))} not found in {description}; "
                        f"its columns: {known or 'none'}")
    return selected


def _require_text(selected: list[tuple[TablePlan, list[ColumnInfo]]], description: str) -> None:
    if any(column.text for _, columns in selected for column in columns):
        return
    listed = [f"{column.name}: {column.type}" for _, columns in selected for column in columns]
    shown = ", ".join(listed[:8]) + (f" and {len(listed) - 8} more" if len(listed) > 8 else "")
    raise ScanError(f"nothing to scan in {description}: no text columns ({shown or 'no columns'}); "
                    "scan reads string columns only")


def _scan_table(plan: TablePlan, columns: list[ColumnInfo], detector, policy, min_share: float,
                min_score: float, bar) -> list[ColumnScan]:
    names = [c.name for c in columns if c.text and c.skip_reason is None]
    sample = plan.read_sample(names) if names else None
    rows_total = plan.rows_total
    results = []
    for column in columns:
        base = dict(table=plan.name, column=column.name, type=column.type, rows_total=rows_total)
        if not column.text or column.skip_reason is not None:
            results.append(ColumnScan(**base, verdict=VERDICT_SKIPPED, reason=column.skip_reason or "not text"))
            continue
        values = sample.column(column.name).combine_chunks()
        sampled = len(values)
        bar.set_postfix_str(f"{plan.name}.{column.name}", refresh=False)
        if sampled == 0:
            results.append(ColumnScan(**base, verdict=VERDICT_SKIPPED, reason="the table has no rows"))
        elif values.null_count == sampled:
            reason = (f"all {sampled:,} rows are null" if rows_total == sampled
                      else f"all {sampled:,} sampled rows are null")
            results.append(ColumnScan(**base, verdict=VERDICT_SKIPPED, reason=reason, rows_sampled=sampled))
        else:
            detected = detector().detect_arrow(values, policy=policy, column=column.name, on_error="null",
                                               progress=False)
            results.append(analyze_column(values, detected, min_share=min_share, min_score=min_score, **base))
        bar.update(1)
    return results


def analyze_column(values: pa.Array, detected: pa.StructArray, *, table: str, column: str, type: str,
                   rows_total: int | None = None, min_share: float = DEFAULT_MIN_SHARE,
                   min_score: float = DEFAULT_MIN_SCORE) -> ColumnScan:
    """Count the spans of one column's sample and decide its verdict (the rule in the module docstring).

    ``values`` are the sampled texts and ``detected`` the engine's output for
    them (:meth:`pii_frames.Detector.detect_arrow`); only span label, start,
    end and score are read, and snippets come from ``redacted_text``.

    >>> import pyarrow as pa
    >>> values = pa.array(["mail ann@example.com", "hi <PRIVATE_PERSON>", None])
    >>> spans = [[{"label": "private_email", "start": 5, "end": 20, "score": 0.99}],
    ...          [{"label": "private_person", "start": 3, "end": 19, "score": 0.9}], None]
    >>> detected = pa.StructArray.from_arrays(
    ...     [pa.array(["mail <PRIVATE_EMAIL>", "hi <PRIVATE_PERSON>", None]), pa.array(spans)],
    ...     names=["redacted_text", "spans"])
    >>> result = analyze_column(values, detected, table="t", column="body", type="string")
    >>> result.verdict, result.found_labels, result.values_scanned, result.examples
    ('pii', ['private_email'], 2, ['mail <PRIVATE_EMAIL>'])
    """
    texts = values.to_pylist()
    redacted = detected.field("redacted_text").to_pylist()
    span_lists = detected.field("spans").to_pylist()
    valid = detected.is_valid().to_pylist()
    scanned = errors = with_pii = 0
    rows_by_label: dict[str, int] = {}
    spans_by_label: dict[str, int] = {}
    score_by_label: dict[str, float] = {}
    candidates: list[tuple[str, str]] = []  # (first counted label, snippet)
    for text, ok, spans, clean in zip(texts, valid, span_lists, redacted):
        if text is None:
            continue
        if not ok or spans is None:
            errors += 1
            continue
        scanned += 1
        counted = _counted_spans(text, spans, min_score)
        if not counted:
            continue
        with_pii += 1
        for label in {s["label"] for s in counted}:
            rows_by_label[label] = rows_by_label.get(label, 0) + 1
        for s in counted:
            spans_by_label[s["label"]] = spans_by_label.get(s["label"], 0) + 1
            score_by_label[s["label"]] = score_by_label.get(s["label"], 0.0) + float(s["score"])
        if clean is not None:
            first = min(spans, key=lambda s: (int(s["start"]), int(s["end"])))
            candidates.append((counted[0]["label"], _snippet(clean, int(first["start"]))))
    labels = [
        LabelStats(label, rows, rows / scanned, spans_by_label[label], score_by_label[label] / spans_by_label[label],
                   found=rows / scanned >= min_share)
        for label, rows in rows_by_label.items()
    ]
    labels.sort(key=lambda s: (-s.share, s.label))
    total_spans = sum(spans_by_label.values())
    found = any(s.found for s in labels)
    verdict = VERDICT_PII if found else (VERDICT_CLEAN if scanned else VERDICT_SKIPPED)
    reason = None if scanned else f"none of the {len(texts):,} sampled values could be processed"
    return ColumnScan(
        table=table, column=column, type=type, verdict=verdict, reason=reason, rows_total=rows_total,
        rows_sampled=len(texts), values_scanned=scanned, rows_with_pii=with_pii, spans=total_spans,
        mean_score=(sum(score_by_label.values()) / total_spans) if total_spans else None,
        labels=labels, examples=_pick_examples(candidates, {s.label for s in labels if s.found}), errors=errors,
    )


def _counted_spans(text: str, spans: Iterable[dict], min_score: float) -> list[dict]:
    """Spans scored at least ``min_score`` with a letter or digit outside pii_frames placeholders."""
    masked = None
    counted = []
    for span in spans:
        if span["score"] is None or span["score"] < min_score:
            continue
        if masked is None:
            # Same-length filler keeps the span offsets valid.
            masked = PLACEHOLDER_RE.sub(lambda m: "#" * len(m.group()), text) if ("<" in text or "***" in text) else text
        if _WORD_CHAR.search(masked, int(span["start"]), int(span["end"])):
            counted.append(span)
    return counted


def _snippet(redacted: str, start: int) -> tuple[str, int]:
    """A short window of the redacted text around ``start`` and how many words in it were masked.

    The window is cut at spaces and keeps placeholders whole. Outside
    placeholders, every word with a capital letter, a digit or an ``@`` is
    shown as :data:`MASKED_WORD` (runs of them as one): those are the words
    most likely to be part of a value the model missed.
    """
    start = max(0, min(start, len(redacted)))
    lo = max(0, start - SNIPPET_BEFORE)
    hi = min(len(redacted), lo + SNIPPET_CHARS)
    for match in PLACEHOLDER_RE.finditer(redacted, max(0, lo - 64), min(len(redacted), hi + 64)):
        if match.start() < lo < match.end():
            lo = match.start()
        if match.start() < hi < match.end():
            hi = match.end()
    if lo > 0:
        space = redacted.find(" ", lo, start)
        if space != -1:
            lo = space + 1
    if hi < len(redacted):
        space = redacted.rfind(" ", start + 1, hi)
        if space != -1 and not any(m.start() < space < m.end() for m in PLACEHOLDER_RE.finditer(redacted, lo, hi)):
            hi = space
    body = _SPACES.sub(" ", redacted[lo:hi]).strip()
    pieces, cursor, masked = [], 0, 0
    for match in PLACEHOLDER_RE.finditer(body):
        text, count = _mask_words(body[cursor:match.start()])
        pieces += [text, match.group()]
        masked += count
        cursor = match.end()
    text, count = _mask_words(body[cursor:])
    pieces.append(text)
    masked += count
    body = _MASK_RUN.sub(MASKED_WORD, "".join(pieces))
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(redacted) else ""), masked


def _mask_words(text: str) -> tuple[str, int]:
    count = 0

    def mask(match: re.Match) -> str:
        nonlocal count
        word = match.group()
        if "@" in word or any(ch.isdigit() or ch.isupper() for ch in word):
            count += 1
            return MASKED_WORD
        return word

    return _TOKEN.sub(mask, text), count


def _pick_examples(candidates: list[tuple[str, tuple[str, int]]], found: set[str]) -> list[str]:
    """Up to :data:`MAX_EXAMPLES` distinct snippets, one per found label first.

    Snippets with the fewest masked words come first (each may hide part of a
    value the model missed), then shorter ones, and further examples never
    mask more words than the first ones; sorting also makes the choice
    independent of the order the sample came back in.
    """
    unique: dict[str, tuple[str, int]] = {}
    for label, (snippet, masked) in candidates:
        unique.setdefault(snippet, (label, masked))
    ordered = sorted(unique.items(),
                     key=lambda item: (item[1][0] not in found, item[1][1], item[1][0], len(item[0]), item[0]))
    picked: list[str] = []
    seen_labels: set[str] = set()
    ceiling = 0
    for snippet, (label, masked) in ordered:
        if label not in seen_labels and len(picked) < MAX_EXAMPLES:
            picked.append(snippet)
            seen_labels.add(label)
            ceiling = max(ceiling, masked)
    for snippet, (_, masked) in ordered:
        if len(picked) >= MAX_EXAMPLES:
            break
        if snippet not in picked and masked <= ceiling:
            picked.append(snippet)
    return picked
