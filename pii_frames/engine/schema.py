"""Arrow types of the engine's output, declared once for every adapter.

Adapters (Polars, DuckDB, pandas) declare their return types from these
without ever running the model.
"""

from __future__ import annotations

import pyarrow as pa

SPAN_TYPE = pa.struct(
    [
        pa.field("label", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("score", pa.float64()),
    ]
)
SPANS_TYPE = pa.list_(SPAN_TYPE)
LABELS_TYPE = pa.list_(pa.string())
DETECT_TYPE = pa.struct(
    [
        pa.field("redacted_text", pa.string()),
        pa.field("spans", SPANS_TYPE),
        pa.field("category", pa.string()),
        pa.field("labels", LABELS_TYPE),
    ]
)

TEXT_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def is_text_type(dtype: pa.DataType) -> bool:
    """True for the Arrow string types the engine accepts (and the all-null type).

    >>> is_text_type(pa.large_string()), is_text_type(pa.int64())
    (True, False)
    """
    return dtype in TEXT_TYPES or pa.types.is_null(dtype)
