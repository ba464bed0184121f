"""Read labelled examples in the opf format and project their gold spans onto tokens.

The format is the one ``opf eval`` and ``opf train`` read: JSON lines (``.jsonl``), a JSON array or object
(``.json``), either optionally gzip-compressed (``.gz``), a directory of such files, or a glob. Every record has
a ``"text"`` and its gold spans in one of two forms::

    {"text": "Call Ada at 555-0100", "spans": {"private_person: Ada": [[5, 8]], "private_phone: 555-0100": [[12, 20]]}}
    {"text": "Call Ada at 555-0100", "label": [{"category": "private_person", "start": 5, "end": 8}]}

Offsets are Python ``str`` (code point) indices, end exclusive; ``"info"`` is optional. Problems are reported
as :class:`DatasetError` naming the file and line.

Example:
    >>> from pii_frames.training.data import examples_from_records
    >>> [ex] = examples_from_records([{"text": "Call Ada", "spans": {"private_person: Ada": [[5, 8]]}}])
    >>> ex.spans
    (GoldSpan(label='private_person', start=5, end=8),)
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pii_frames.model.config import DEFAULT_SPAN_CLASS_NAMES

__all__ = [
    "DatasetError",
    "GoldSpan",
    "Example",
    "LabelSpaceSpec",
    "DEFAULT_LABEL_SPACE",
    "expand_span_classes",
    "read_examples",
    "load_examples",
    "examples_from_records",
    "read_label_space_json",
    "label_space_from_names",
    "drop_overlapping_spans",
    "project_spans_to_tokens",
    "gold_token_aligned_spans",
]

_BOUNDARY_TAGS = ("B", "I", "E", "S")


def expand_span_classes(class_names: Iterable[str]) -> tuple[str, ...]:
    """Token label names of span classes: ``"O"``, then ``B-/I-/E-/S-`` per class (opf's order).

    >>> expand_span_classes(["secret"])
    ('O', 'B-secret', 'I-secret', 'E-secret', 'S-secret')
    """
    return ("O",) + tuple(f"{tag}-{name}" for name in class_names if name != "O" for tag in _BOUNDARY_TAGS)


class DatasetError(ValueError):
    """A dataset or label-space file cannot be used; the message names the file, line and fix."""


@dataclass(frozen=True)
class GoldSpan:
    """One gold span: a label and ``[start, end)`` code-point offsets into the example text."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    """One labelled text.

    ``source`` says where it came from (``file.jsonl:12``), so later errors can point at the record;
    ``example_id`` is the sha256 of the record's text, position and spans, like opf's example ids.
    """

    text: str
    spans: tuple[GoldSpan, ...]
    info: dict = field(default_factory=dict, compare=False)
    example_id: str = ""
    source: str = ""

    @property
    def kind(self) -> str | None:
        """The document kind from ``info["kind"]`` (the document class), if any."""
        value = self.info.get("kind") if isinstance(self.info, dict) else None
        return str(value) if value is not None else None


@dataclass(frozen=True)
class LabelSpaceSpec:
    """A token label space: ``"O"`` first, then ``B-/I-/E-/S-`` per span class.

    >>> spec = label_space_from_names(["O", "custom_secret"])
    >>> spec.names
    ('O', 'B-custom_secret', 'I-custom_secret', 'E-custom_secret', 'S-custom_secret')
    """

    names: tuple[str, ...]
    category_version: str = "custom"

    @property
    def span_labels(self) -> tuple[str, ...]:
        """Span classes in model order (without ``"O"``)."""
        classes: list[str] = []
        for name in self.names[1:]:
            if name[2:] not in classes:
                classes.append(name[2:])
        return tuple(classes)

    def to_label_space(self):
        """The equivalent :class:`pii_frames.decode.labels.LabelSpace` (used for decoding)."""
        from pii_frames.decode.labels import LabelSpace

        return LabelSpace.from_names(self.names)


DEFAULT_LABEL_SPACE = LabelSpaceSpec(expand_span_classes(DEFAULT_SPAN_CLASS_NAMES), "v2")


# --------------------------------------------------------------------------------------------------------------
# Label spaces
# --------------------------------------------------------------------------------------------------------------

def label_space_from_names(names: Sequence[str], *, category_version: str = "custom",
                           source: str = "label space") -> LabelSpaceSpec:
    """Build a label space from span class names or from full BIOES token label names.

    ``"O"`` must be present and is moved first; token label lists must give all four tags for every class.

    >>> label_space_from_names(["B-x", "O", "I-x", "E-x", "S-x"]).names
    ('O', 'B-x', 'I-x', 'E-x', 'S-x')
    """
    names = [str(n) for n in names]
    if "O" not in names:
        raise DatasetError(f"{source}: the label names must include the background label 'O'")
    if len(set(names)) != len(names):
        raise DatasetError(f"{source}: duplicate label names {sorted({n for n in names if names.count(n) > 1})}")
    rest = [n for n in names if n != "O"]
    if not rest:
        raise DatasetError(f"{source}: needs at least one span class besides 'O'")
    tagged = [n for n in rest if n[:2] in ("B-", "I-", "E-", "S-")]
    if not tagged:
        return LabelSpaceSpec(expand_span_classes(rest), category_version)
    if len(tagged) != len(rest):
        raise DatasetError(f"{source}: mixes BIOES token labels with plain class names: "
                           f"{[n for n in rest if n not in tagged]}; use one form")
    classes = []
    for name in rest:
        if name[2:] not in classes:
            classes.append(name[2:])
    missing = [f"{tag}-{c}" for c in classes for tag in _BOUNDARY_TAGS if f"{tag}-{c}" not in rest]
    if missing:
        raise DatasetError(f"{source}: every class needs B-, I-, E- and S- labels; missing {missing}")
    return LabelSpaceSpec(("O",) + tuple(rest), category_version)


def read_label_space_json(path: str | os.PathLike) -> LabelSpaceSpec:
    """Read an opf ``--label-space-json`` file.

    Accepted forms: ``{"category_version": "custom_v1", "span_class_names": ["O", "x", ...]}`` or the same with
    ``"ner_class_names"`` (full ``B-x``/``I-x``/``E-x``/``S-x`` names, kept in the given order).

    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.json"
    >>> _ = p.write_text(json.dumps({"category_version": "custom_v1", "span_class_names": ["O", "custom_secret"]}))
    >>> read_label_space_json(p).span_labels
    ('custom_secret',)
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: label-space file not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object with span_class_names or ner_class_names")
    names = raw.get("ner_class_names") or raw.get("span_class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: needs a non-empty list of strings under 'span_class_names' "
                           f"(e.g. [\"O\", \"my_label\"]) or 'ner_class_names'")
    return label_space_from_names(names, category_version=str(raw.get("category_version", "custom")),
                                  source=str(path))


# --------------------------------------------------------------------------------------------------------------
# Reading records
# --------------------------------------------------------------------------------------------------------------

def _resolve_paths(path: str | os.PathLike) -> list[Path]:
    text = os.fspath(path)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise DatasetError(f"{text}: the glob matched no files")
        return matches
    target = Path(text).expanduser()
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.is_file() and _is_data_file(p))
        if not files:
            raise DatasetError(f"{target}: directory holds no .jsonl, .json or .gz files")
        return files
    if not target.is_file():
        raise DatasetError(f"{target}: dataset file not found")
    return [target]


def _is_data_file(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".json", ".gz"))


def _read_text(path: Path) -> str:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); expected UTF-8 JSON lines, optionally gzip-compressed") \
            from None


def _iter_raw_records(path: Path) -> Iterable[tuple[Any, str]]:
    content = _read_text(path)
    inner_name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if inner_name.endswith(".json"):
        try:
            whole = json.loads(content)
        except json.JSONDecodeError:
            whole = None  # not a single JSON document: read it as JSON lines below
        if isinstance(whole, list):
            for position, record in enumerate(whole):
                yield record, f"{path}[{position}]"
            return
        if isinstance(whole, dict):
            yield whole, f"{path}"
            return
    for line_number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{line_number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        yield record, f"{path}:{line_number}"


def _offset_pair(value: Any, where: str, what: str, text_length: int) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise DatasetError(f"{where}: {what} must be a [start, end] pair of integers, got {value!r}")
    start, end = value
    if not 0 <= start < end <= text_length:
        raise DatasetError(f"{where}: {what} [{start}, {end}] is outside the text (length {text_length}) or empty; "
                           "offsets are code-point indices with start < end")
    return start, end


def _parse_record(record: Any, position: int, where: str) -> Example:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object with 'text' and 'spans', got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise DatasetError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    spans: list[GoldSpan] = []
    if "spans" in record:
        raw_spans = record["spans"]
        if not isinstance(raw_spans, dict):
            raise DatasetError(f"{where}: 'spans' must be an object {{\"<label>: <text>\": [[start, end], ...]}}")
        for key, offsets in raw_spans.items():
            label = key.split(": ", 1)[0].strip()
            if not label:
                raise DatasetError(f"{where}: span key {key!r} has no label; write it as '<label>: <text>'")
            if not isinstance(offsets, list):
                raise DatasetError(f"{where}: offsets of span {key!r} must be a list of [start, end] pairs")
            for pair in offsets:
                start, end = _offset_pair(pair, where, f"span {key!r}", len(text))
                spans.append(GoldSpan(label, start, end))
        key_data = raw_spans
    elif "label" in record:
        raw_labels = record["label"]
        if not isinstance(raw_labels, list):
            raise DatasetError(f"{where}: 'label' must be a list of {{\"category\", \"start\", \"end\"}} objects")
        for item in raw_labels:
            if not isinstance(item, dict) or not isinstance(item.get("category"), str):
                raise DatasetError(f"{where}: every 'label' entry needs a string 'category', got {item!r}")
            start, end = _offset_pair([item.get("start"), item.get("end")], where,
                                      f"label {item['category']!r}", len(text))
            spans.append(GoldSpan(item["category"], start, end))
        key_data = raw_labels
    else:
        raise DatasetError(f"{where}: record has neither 'spans' nor 'label'; add \"spans\": {{}} for a text "
                           "without personal data")
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    digest = hashlib.sha256(json.dumps({"text": text, "index": position, "spans": key_data}, sort_keys=True,
                                       ensure_ascii=False).encode("utf-8")).hexdigest()
    spans.sort(key=lambda s: (s.start, s.end, s.label))
    return Example(text=text, spans=tuple(spans), info=info, example_id=digest, source=where)


def examples_from_records(records: Iterable[dict], *, source: str = "<records>") -> list[Example]:
    """Validate in-memory records (e.g. from :func:`pii_frames.synthetic.generate`) into examples.

    >>> examples_from_records([{"text": "hi", "spans": {}}])[0].spans
    ()
    """
    return [_parse_record(record, position, f"{source}[{position}]") for position, record in enumerate(records)]


def read_examples(path: str | os.PathLike, *, max_examples: int | None = None) -> list[Example]:
    """Read examples from a file, directory or glob of ``.jsonl`` / ``.json`` / ``.gz`` files.

    Raises :class:`DatasetError` naming the file and line of the first bad record.

    >>> from pii_frames.training.data import read_examples
    >>> examples = read_examples("../shared/data/opf-examples/sample_eval_five_examples.jsonl")  # doctest: +SKIP
    >>> len(examples), examples[0].spans[0].label  # doctest: +SKIP
    (5, 'private_person')
    """
    examples: list[Example] = []
    for file_path in _resolve_paths(path):
        for record, where in _iter_raw_records(file_path):
            if max_examples is not None and len(examples) >= max_examples:
                return examples
            examples.append(_parse_record(record, len(examples), where))
    if not examples:
        raise DatasetError(f"{os.fspath(path)}: no records found")
    return examples


# --------------------------------------------------------------------------------------------------------------
# Gold projection onto tokens
# --------------------------------------------------------------------------------------------------------------

def load_examples(records, *, max_examples: int | None = None) -> list[Example]:
    """Examples from a path (file, directory, glob), a list of :class:`Example` or a list of record dicts.

    >>> [ex.text for ex in load_examples([{"text": "hi", "spans": {}}])]
    ['hi']
    """
    if isinstance(records, (str, os.PathLike)):
        return read_examples(records, max_examples=max_examples)
    records = list(records)
    if max_examples is not None:
        records = records[:max_examples]
    if all(isinstance(r, Example) for r in records):
        return records
    return examples_from_records(records)


def drop_overlapping_spans(spans: Iterable[GoldSpan]) -> list[GoldSpan]:
    """Keep a non-overlapping subset: by start, longer first, dropping spans that overlap a kept one.

    >>> drop_overlapping_spans([GoldSpan("a", 0, 5), GoldSpan("b", 3, 8), GoldSpan("c", 0, 2)])
    [GoldSpan(label='a', start=0, end=5)]
    """
    kept: list[GoldSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return kept


def _assign_tokens(kept: Sequence[GoldSpan], starts: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Token indices of every kept span: each token goes to the span it overlaps most (ties: earlier span)."""
    if not kept or starts.shape[0] == 0:
        return [np.zeros(0, dtype=np.int64) for _ in kept]
    span_starts = np.array([s.start for s in kept], dtype=np.int64)
    span_ends = np.array([s.end for s in kept], dtype=np.int64)
    overlap = np.minimum(ends[:, None], span_ends[None, :]) - np.maximum(starts[:, None], span_starts[None, :])
    best = overlap.argmax(axis=1)  # first maximum, i.e. the earlier span, wins ties
    has_span = overlap[np.arange(starts.shape[0]), best] > 0
    return [np.flatnonzero(has_span & (best == i)) for i in range(len(kept))]


def project_spans_to_tokens(
    spans: Sequence[GoldSpan],
    token_starts: np.ndarray,
    token_ends: np.ndarray,
    label_space=DEFAULT_LABEL_SPACE,
    *,
    typed: bool = True,
    source: str = "",
) -> np.ndarray:
    """Token label ids for gold character spans, following opf's projection.

    Overlapping gold spans are removed first; each token goes to the span it overlaps most (ties: the
    earlier span); a span covering one token is ``S-``, longer ones ``B- I.. E-``; other tokens are ``O``.
    ``typed=False`` maps every span to the first class of the label space (untyped evaluation).
    ``label_space`` is a :class:`LabelSpaceSpec` or a :class:`pii_frames.decode.labels.LabelSpace`.

    >>> import numpy as np
    >>> starts, ends = np.array([0, 4, 8, 13]), np.array([4, 8, 13, 20])   # "Call| Ada| Love|lace..."
    >>> ids = project_spans_to_tokens([GoldSpan("private_person", 5, 17)], starts, ends)
    >>> [DEFAULT_LABEL_SPACE.names[i] for i in ids]
    ['O', 'B-private_person', 'I-private_person', 'E-private_person']
    """
    index = {name: i for i, name in enumerate(label_space.names)}
    classes = tuple(label_space.span_labels)
    starts = np.asarray(token_starts, dtype=np.int64)
    ends = np.asarray(token_ends, dtype=np.int64)
    labels = np.zeros(starts.shape[0], dtype=np.int64)
    kept = drop_overlapping_spans(spans)
    span_classes = []
    for span in kept:
        name = span.label if typed else classes[0]
        if f"B-{name}" not in index:
            where = f"{source}: " if source else ""
            raise DatasetError(f"{where}gold label {span.label!r} is not in the label space {list(classes)}; "
                               "pass a matching --label-space-json, or evaluate with --mode untyped")
        span_classes.append(name)
    for token_ids, name in zip(_assign_tokens(kept, starts, ends), span_classes):
        if token_ids.size == 1:
            labels[token_ids[0]] = index[f"S-{name}"]
        elif token_ids.size > 1:
            labels[token_ids] = index[f"I-{name}"]
            labels[token_ids[0]] = index[f"B-{name}"]
            labels[token_ids[-1]] = index[f"E-{name}"]
    return labels


def gold_token_aligned_spans(
    spans: Sequence[GoldSpan],
    token_starts: np.ndarray,
    token_ends: np.ndarray,
    text: str,
    *,
    trim_whitespace: bool = True,
) -> list[GoldSpan]:
    """Gold spans as the model can express them: snapped to the tokens they were projected onto.

    This equals rebuilding spans from :func:`project_spans_to_tokens` labels (opf's evaluation gold) while
    keeping each span's original label; spans that received no token are dropped; whitespace is trimmed.

    >>> import numpy as np
    >>> gold_token_aligned_spans([GoldSpan("private_person", 5, 8)], np.array([0, 4]), np.array([4, 8]), "Call Ada")
    [GoldSpan(label='private_person', start=5, end=8)]
    """
    starts = np.asarray(token_starts, dtype=np.int64)
    ends = np.asarray(token_ends, dtype=np.int64)
    kept = drop_overlapping_spans(spans)
    aligned = []
    for span, token_ids in zip(kept, _assign_tokens(kept, starts, ends)):
        if token_ids.size == 0:
            continue
        start, end = int(starts[token_ids[0]]), int(ends[token_ids[-1]])
        if trim_whitespace:
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
        if end > start:
            aligned.append(GoldSpan(span.label, start, end))
    return aligned
