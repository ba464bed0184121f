"""Arrow types of the engine's output, declared once for every adapter.

Adapters (Polars, DuckDB, pandas, Spark, Ray) derive their return types from
these without ever running the model.

A span struct is ``label, start, end, score, source``: where the span is, what
it is, how sure the detector was and what found it (``"model"``, ``"pattern"``
or ``"deny_list"``). It never holds the matched text, because span columns sit
next to redacted columns in sanitized tables. Callers who need the raw values
(to inspect or evaluate detections, never to publish) ask for them by name:
``with_text=True`` appends a ``text`` field at the end.
"""

from __future__ import annotations

import pyarrow as pa

SPAN_FIELDS = (
    pa.field("label", pa.string()),
    pa.field("start", pa.int32()),
    pa.field("end", pa.int32()),
    pa.field("score", pa.float64()),
    pa.field("source", pa.string()),
)
TEXT_FIELD = pa.field("text", pa.string())
LABELS_TYPE = pa.list_(pa.string())


def span_type(with_text: bool = False) -> pa.StructType:
    """Struct type of one span; ``with_text=True`` appends the raw matched ``text``.

    >>> span_type().names
    ['label', 'start', 'end', 'score', 'source']
    >>> span_type(with_text=True).names[-1]
    'text'
    """
    return pa.struct(list(SPAN_FIELDS) + ([TEXT_FIELD] if with_text else []))


def spans_type(with_text: bool = False) -> pa.ListType:
    """List of :func:`span_type` (one list per row)."""
    return pa.list_(span_type(with_text))


def detect_type(with_text: bool = False) -> pa.StructType:
    """The engine's per-row struct: ``redacted_text``, ``spans``, ``category``, ``labels``.

    >>> detect_type().names
    ['redacted_text', 'spans', 'category', 'labels']
    """
    return pa.struct(
        [
            pa.field("redacted_text", pa.string()),
            pa.field("spans", spans_type(with_text)),
            pa.field("category", pa.string()),
            pa.field("labels", LABELS_TYPE),
        ]
    )


SPAN_TYPE = span_type()
SPANS_TYPE = spans_type()
DETECT_TYPE = detect_type()

TEXT_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def is_text_type(dtype: pa.DataType) -> bool:
    """True for the Arrow text types the engine accepts: strings, views, dictionaries of them, all-null.

    >>> is_text_type(pa.large_string()), is_text_type(pa.dictionary(pa.int32(), pa.string())), is_text_type(pa.int64())
    (True, True, False)
    """
    if pa.types.is_dictionary(dtype):
        return is_text_type(dtype.value_type)
    return dtype in TEXT_TYPES or pa.types.is_null(dtype)
