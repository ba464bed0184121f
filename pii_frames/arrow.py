"""PII detection on Apache Arrow arrays and tables (no Polars or pandas needed).

This module is also the common ground of every dataframe adapter: the Polars
expressions, the DuckDB SQL functions and the pandas accessor all turn their
column into an Arrow array, call :func:`detect_array` (which hands it to
:meth:`pii_frames.Detector.detect_arrow`, where batching, deduplication and
the model live) and convert the result back. Nothing here batches or caches.

Output types (the same in every adapter):

- redacted text: ``string``
- spans: ``list<struct<label: string, start: int32, end: int32, score: double,
  source: string>>``, offsets in Python code points, end-exclusive; no raw
  text unless ``with_text=True`` (which appends ``text: string`` and writes
  raw PII: never for a table you publish)
- category: ``string`` (null when the model has no document head)
- detect: ``struct<redacted_text, spans, category, labels: list<string>>``

Nulls stay nulls in every output. Example::

    >>> import pyarrow as pa, pii_frames.arrow as pa_pii
    >>> pa_pii.redact_array(pa.array(["Contact: anna@example.com", None])).to_pylist()
    ['Contact: <PRIVATE_EMAIL>', None]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pii_frames.engine.options import PER_CALL, split_options

# The engine declares the output types once (re-exported here for users).
from pii_frames.engine.schema import DETECT_TYPE, SPAN_TYPE, SPANS_TYPE, detect_type, is_text_type

if TYPE_CHECKING:
    from pii_frames.engine.detector import Detector

__all__ = [
    "SPAN_TYPE",
    "SPANS_TYPE",
    "DETECT_TYPE",
    "DETECT_OPTIONS",
    "SPANS_SUFFIX",
    "CATEGORY_SUFFIX",
    "resolve_detector",
    "split_options",
    "as_text_array",
    "detect_array",
    "redact_array",
    "spans_array",
    "category_array",
    "detect_table",
    "redact_table",
    "apply_detections",
]

# Keyword arguments that configure one detection call (the rest configure the shared Detector).
DETECT_OPTIONS = PER_CALL

# Names of the columns added next to a text column (the engine's detect_table uses the same).
SPANS_SUFFIX = "_pii_spans"
CATEGORY_SUFFIX = "_pii_category"

ArrayLike = pa.Array | pa.ChunkedArray | Sequence[Any]


def resolve_detector(model: Any = None, **load_options: Any) -> Detector:
    """Return the Detector for ``model``: an existing Detector, a checkpoint, a name or None.

    Goes through :func:`pii_frames.engine.loading.shared_detector`: one Detector
    per model argument and options in the process, so its result cache serves
    the next batch and sibling expressions (redact + spans + category of one
    column run the model once), and no batch rescans the model caches.

    >>> resolve_detector("default") is resolve_detector("default")
    True
    """
    if model is not None and hasattr(model, "detect_arrow"):
        if load_options:
            raise ValueError(
                f"options {sorted(load_options)} configure loading a model, but an already loaded "
                "Detector was passed as model=; pass them to pii_frames.load instead"
            )
        return model
    from pii_frames.engine.loading import shared_detector

    return shared_detector(model, **load_options)


def as_text_array(values: ArrayLike, *, name: str = "input") -> pa.Array | pa.ChunkedArray:
    """Check that ``values`` hold text and return them as an Arrow string array.

    Accepts Arrow arrays and chunked arrays of string, large_string,
    string_view, dictionary<string> or null type, and Python sequences of
    ``str``/``None``. Anything else raises a :class:`TypeError` naming
    ``name`` (the column) and its type.

    >>> as_text_array(["a", None]).to_pylist()
    ['a', None]
    >>> as_text_array(pa.array([1, 2]), name="age")
    Traceback (most recent call last):
    ...
    TypeError: column 'age' has type int64, but PII detection needs text; cast it to string first (for example pc.cast(column, pa.string()))
    """
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        try:
            values = pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            found = sorted({type(v).__name__ for v in values if v is not None and not isinstance(v, str)})
            raise TypeError(
                f"column {name!r} holds {', '.join(found)} values, but PII detection needs text "
                "(str or None); convert them to str first"
            ) from None
    arrow_type = values.type
    if not is_text_type(arrow_type):
        raise TypeError(
            f"column {name!r} has type {arrow_type}, but PII detection needs text; cast it to string "
            "first (for example pc.cast(column, pa.string()))"
        )
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return values
    # Dictionary, view and all-null columns are decoded to plain strings, which the engine reads.
    return values.cast(pa.large_string() if pa.types.is_string_view(arrow_type) else pa.string())


def _chunk_lengths(values: pa.Array | pa.ChunkedArray) -> list[int] | None:
    if isinstance(values, pa.ChunkedArray):
        return [len(chunk) for chunk in values.chunks]
    return None


def _rechunk(result: pa.Array, lengths: list[int] | None, arrow_type: pa.DataType):
    if lengths is None:
        return result
    chunks, offset = [], 0
    for length in lengths:
        chunks.append(result.slice(offset, length))
        offset += length
    return pa.chunked_array(chunks, type=arrow_type)


def _detect_flat(values: ArrayLike, *, name: str, model: Any, options: Mapping[str, Any]):
    text = as_text_array(values, name=name)
    lengths = _chunk_lengths(text)
    flat = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    load_options, detect_options = split_options(options)
    out_type = detect_type(bool(detect_options.get("with_text")))
    if len(flat) == 0:
        return pa.array([], type=out_type), lengths
    if flat.null_count == len(flat):
        # Nothing to look at: answer without loading a model.
        return pa.nulls(len(flat), type=out_type), lengths
    detector = resolve_detector(model, **load_options)
    result = detector.detect_arrow(flat, column=name, **detect_options)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    if len(result) != len(flat):
        raise RuntimeError(
            f"the detector returned {len(result)} rows for {len(flat)} rows of column {name!r}; "
            "this is a bug in pii_frames, please report it"
        )
    return _conform(result, out_type), lengths


def _conform(result: pa.StructArray, out_type: pa.StructType) -> pa.StructArray:
    """Return ``result`` with exactly ``out_type`` (a :func:`detect_type`), keeping its nulls.

    Casting field by field (instead of the whole struct) keeps working when
    the engine uses large list/string variants.
    """
    if result.type == out_type:
        return result
    fields = [result.field(field.name).cast(field.type) for field in out_type]
    return pa.StructArray.from_arrays(fields, fields=list(out_type), mask=result.is_null())


def detect_array(values: ArrayLike, *, model: Any = None, name: str = "input", **options: Any):
    """Detect PII in a text array and return one struct per row (:data:`DETECT_TYPE`).

    ``model`` is a checkpoint path, a model name, a loaded Detector or None
    (default resolution). Other keywords: ``policy``, ``output_mode``,
    ``decode_mode``, ``biases``, ``on_error`` for the detection, the rest
    (``device``, ``dtype``, ...) for :func:`pii_frames.load`. Spans carry no
    raw text unless ``with_text=True``. A ChunkedArray comes back as a
    ChunkedArray with the same chunk lengths; ``name`` is used in error
    messages. All-null input never loads a model.

    >>> out = detect_array(pa.array(["Contact: bob@example.com", None]))
    >>> pc.struct_field(out, "redacted_text").to_pylist()
    ['Contact: <PRIVATE_EMAIL>', None]
    """
    result, lengths = _detect_flat(values, name=name, model=model, options=options)
    return _rechunk(result, lengths, result.type)


def _field(values: ArrayLike, field: str, *, model: Any, name: str, options: Mapping[str, Any]):
    result, lengths = _detect_flat(values, name=name, model=model, options=options)
    # A null row is a null struct; its children are null there too because the
    # engine writes nulls for null rows, and pc.struct_field propagates the parent mask.
    column = pc.struct_field(result, field)
    return _rechunk(column, lengths, column.type)


def redact_array(values: ArrayLike, *, model: Any = None, name: str = "input", **options: Any):
    """Return the redacted text of each row (string array; nulls stay null).

    >>> redact_array(pa.array(["Contact: anna@example.com"])).to_pylist()
    ['Contact: <PRIVATE_EMAIL>']
    """
    return _field(values, "redacted_text", model=model, name=name, options=options)


def spans_array(values: ArrayLike, *, model: Any = None, name: str = "input", **options: Any):
    """Return the detected spans of each row (:data:`SPANS_TYPE`; nulls stay null).

    Spans say where (``start``, ``end``), what (``label``), how sure
    (``score``) and who found it (``source``), never the value itself;
    ``with_text=True`` adds the raw ``text`` (raw PII: for inspection only).

    >>> [(s["label"], s["start"], s["end"]) for s in spans_array(pa.array(["Contact: bob@example.com"]))[0].as_py()]
    [('private_email', 9, 24)]
    """
    return _field(values, "spans", model=model, name=name, options=options)


def category_array(values: ArrayLike, *, model: Any = None, name: str = "input", **options: Any):
    """Return the document category of each row (null without a document head).

    >>> from pii_frames.engine.loading import shared_detector
    >>> category_array(pa.array(["The match ended 2-1"])).to_pylist()[0] in shared_detector().doc_classes
    True
    """
    return _field(values, "category", model=model, name=name, options=options)


def _column_names(table: pa.Table | pa.RecordBatch, columns: str | Iterable[str] | None) -> list[str]:
    if columns is None:
        names = [field.name for field in table.schema if is_text_type(field.type)]
        if not names:
            raise ValueError(f"no text columns found among {table.schema.names}; pass columns=[...]")
        return names
    names = [columns] if isinstance(columns, str) else list(columns)
    missing = [name for name in names if name not in table.schema.names]
    if missing:
        raise KeyError(f"column(s) {missing} not found; the table has columns {table.schema.names}")
    for name in names:  # all checked before the model runs on any of them
        arrow_type = table.schema.field(name).type
        if not is_text_type(arrow_type):
            raise TypeError(
                f"column {name!r} has type {arrow_type}, but PII detection needs text; cast it to string first"
            )
    return names


def detect_table(
    table: pa.Table | pa.RecordBatch,
    columns: str | Iterable[str] | None = None,
    *,
    model: Any = None,
    max_call_bytes: int | None = None,
    **options: Any,
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """Run detection on the given text columns; return ``{column: detect struct array}``.

    ``columns=None`` means every string column. Errors name the column.
    ``max_call_bytes`` hands the model at most that much text per call: a
    longer column is cut into consecutive row slices
    (:func:`pii_frames.io.text.text_slices`) and the memory each slice used is
    given back to the OS before the next, so the engine's working memory
    follows the slice, not the table (the table paths of the CLI and the
    Airflow job pass :data:`pii_frames.io.text.MODEL_CALL_BYTES`). A bad row
    is then still named by its row in the whole table.

    >>> table = pa.table({"id": [1], "body": ["Call 555-0100"]})
    >>> detect_table(table, ["body"])["body"].type == DETECT_TYPE
    True
    >>> detect_table(table, ["body"], max_call_bytes=4)["body"].type == DETECT_TYPE
    True
    """
    names = _column_names(table, columns)
    return {name: _detect_column(table.column(name), name, model, max_call_bytes, options) for name in names}


def _detect_column(values, name: str, model: Any, max_call_bytes: int | None, options: Mapping[str, Any]):
    if max_call_bytes is None:
        return detect_array(values, model=model, name=name, **options)
    from pii_frames.io.text import text_slices

    slices = text_slices(values, max_call_bytes)
    if len(slices) <= 1:
        return detect_array(values, model=model, name=name, **options)
    from pii_frames.engine.rows import RowError
    from pii_frames.io.memory import release_memory

    parts = []
    for start, stop in slices:
        try:
            part = detect_array(values.slice(start, stop - start), model=model, name=name, **options)
        except RowError as error:  # the engine counts rows within the slice; the caller counts in the table
            raise RowError(start + error.row, error.cause, error.column) from None
        parts.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
        release_memory()
    return pa.chunked_array(parts) if isinstance(values, pa.ChunkedArray) else pa.concat_arrays(parts)


def redact_table(
    table: pa.Table | pa.RecordBatch,
    columns: str | Iterable[str] | None = None,
    *,
    model: Any = None,
    spans: bool = False,
    category: bool = False,
    **options: Any,
) -> pa.Table | pa.RecordBatch:
    """Return ``table`` with each listed column replaced by its redacted text.

    ``spans=True`` adds ``<column>_pii_spans`` and ``category=True`` adds
    ``<column>_pii_category`` right after each column. Other columns, the row
    order and (for tables) the chunk layout are kept; a RecordBatch gives a
    RecordBatch.

    >>> table = pa.table({"id": [1, 2], "body": ["Mail anna@example.com", None]})
    >>> redact_table(table, ["body"], spans=True).column_names
    ['id', 'body', 'body_pii_spans']
    """
    detected = detect_table(table, columns, model=model, **options)
    return apply_detections(table, detected, spans=spans, category=category)


def apply_detections(
    table: pa.Table | pa.RecordBatch,
    detected: Mapping[str, pa.Array | pa.ChunkedArray],
    *,
    spans: bool = False,
    category: bool = False,
) -> pa.Table | pa.RecordBatch:
    """Replace each detected column by its redacted text and add the requested columns.

    ``detected`` is what :func:`detect_table` returns. Split from
    :func:`redact_table` so callers can also read the spans (for counts)
    without running detection twice. Other columns keep their fields as they
    are (type, nullability, metadata).

    >>> table = pa.table({"body": ["x"]})
    >>> found = {"body": pa.array([{"redacted_text": "y", "spans": [], "category": None, "labels": []}],
    ...                           type=DETECT_TYPE)}
    >>> apply_detections(table, found, spans=True).to_pylist()
    [{'body': 'y', 'body_pii_spans': []}]
    """
    out_fields: list[pa.Field] = []
    out_columns: list[Any] = []
    for field, column in zip(table.schema, table.columns):
        if field.name not in detected:
            out_fields.append(field)  # as it was: type, nullability and field metadata
            out_columns.append(column)
            continue
        result = detected[field.name]
        added = [(field.name, "redacted_text")]
        if spans:
            added.append((field.name + SPANS_SUFFIX, "spans"))
        if category:
            added.append((field.name + CATEGORY_SUFFIX, "category"))
        for name, part in added:
            values = pc.struct_field(result, part)
            out_fields.append(pa.field(name, values.type))
            out_columns.append(values)
    out_names = [field.name for field in out_fields]
    duplicated = sorted({name for name in out_names if out_names.count(name) > 1})
    if duplicated:
        raise ValueError(
            f"output column(s) {duplicated} would appear twice; rename or drop the existing column(s), "
            "or do not ask for the span/category columns"
        )
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(out_columns, schema=pa.schema(out_fields))
    return pa.Table.from_arrays(out_columns, schema=pa.schema(out_fields))
