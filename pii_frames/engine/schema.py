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

from typing import Sequence

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


def span_type(with_text: bool = False, *, with_source: bool = True) -> pa.StructType:
    """Struct type of one span; ``with_text=True`` appends the raw matched ``text``.

    ``with_source=False`` leaves ``source`` out: the spans the Airflow job publishes, whose
    format predates ``source`` (chunks written by earlier runs publish together with new ones).

    >>> span_type().names
    ['label', 'start', 'end', 'score', 'source']
    >>> span_type(with_text=True).names[-1]
    'text'
    >>> span_type(with_source=False).names
    ['label', 'start', 'end', 'score']
    """
    fields = [field for field in SPAN_FIELDS if with_source or field.name != "source"]
    return pa.struct(fields + ([TEXT_FIELD] if with_text else []))


def spans_type(with_text: bool = False, *, with_source: bool = True) -> pa.ListType:
    """List of :func:`span_type` (one list per row)."""
    return pa.list_(span_type(with_text, with_source=with_source))


def spans_as(spans: pa.Array | pa.ChunkedArray, struct: pa.StructType) -> pa.ListArray:
    """A spans column whose spans hold only the fields of ``struct`` (e.g. without the raw ``text``); nulls kept.

    >>> spans = pa.array([[{"label": "secret", "start": 0, "end": 2, "score": 1.0, "source": "model",
    ...                     "text": "pw"}], None], type=spans_type(with_text=True))
    >>> spans_as(spans, span_type(with_source=False)).to_pylist()
    [[{'label': 'secret', 'start': 0, 'end': 2, 'score': 1.0}], None]
    """
    if isinstance(spans, pa.ChunkedArray):
        spans = spans.combine_chunks() if spans.num_chunks else pa.array([], type=spans.type)
    values = spans.values
    kept = pa.StructArray.from_arrays([values.field(field.name).cast(field.type) for field in struct], fields=list(struct))
    return pa.ListArray.from_arrays(spans.offsets, kept, mask=spans.is_null())


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


def results_to_arrow(results: Sequence, *, with_text: bool = False) -> pa.StructArray:
    """Pack RedactionResult | None rows into the engine's StructArray (None -> null row).

    Span structs hold no raw text unless ``with_text=True``.
    """
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
            {"label": s.label, "start": s.start, "end": s.end, "score": float(s.score), "source": s.source}
            for s in result.detected_spans
        ]
        if with_text:
            for span_dict, span in zip(row_spans, result.detected_spans):
                span_dict["text"] = span.text
        redacted.append(result.redacted_text)
        spans.append(row_spans)
        categories.append(result.category)
        labels.append(sorted({s["label"] for s in row_spans}))
        valid.append(True)
    fields = list(detect_type(with_text))
    children = [
        pa.array(redacted, type=fields[0].type),
        pa.array(spans, type=fields[1].type),
        pa.array(categories, type=fields[2].type),
        pa.array(labels, type=fields[3].type),
    ]
    mask = pa.array([not v for v in valid], type=pa.bool_())
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
