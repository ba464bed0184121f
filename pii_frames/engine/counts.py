"""Counting what was found, per label, from the engine's detect struct (the one counter every summary uses)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["LabelCounts"]


class LabelCounts:
    """Spans and rows per label, accumulated batch by batch; only counts, never a detected value.

    Example:
        >>> import pyarrow as pa
        >>> from pii_frames.engine.schema import detect_type
        >>> found = pa.array([{"redacted_text": "x", "category": None, "labels": ["secret"],
        ...                    "spans": [{"label": "secret", "start": 0, "end": 1, "score": 1.0, "source": "model"}] * 2},
        ...                   None], type=detect_type())
        >>> counts = LabelCounts()
        >>> counts.add(found)
        >>> counts.spans, counts.rows, counts.rows_with_pii, counts.total_spans
        ({'secret': 2}, {'secret': 1}, 1, 2)
    """

    def __init__(self):
        self.spans: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.rows_with_pii = 0

    def add(self, detected: pa.Array | pa.ChunkedArray) -> None:
        """Count one detect struct array (nulls count as nothing)."""
        if isinstance(detected, pa.ChunkedArray):
            detected = detected.combine_chunks() if detected.num_chunks else pa.array([], type=detected.type)
        if not len(detected):
            return
        span_labels = pc.struct_field(pc.list_flatten(pc.struct_field(detected, "spans")), "label")
        row_labels = pc.list_flatten(pc.struct_field(detected, "labels"))
        for store, values in ((self.spans, span_labels), (self.rows, row_labels)):
            if len(values):
                for item in pc.value_counts(values).to_pylist():
                    store[item["values"]] = store.get(item["values"], 0) + int(item["counts"])
        with_pii = pc.greater(pc.list_value_length(pc.struct_field(detected, "labels")), 0)
        self.rows_with_pii += int(pc.sum(with_pii).as_py() or 0)

    @property
    def total_spans(self) -> int:
        return sum(self.spans.values())

    def to_dict(self) -> dict:
        """``{"rows_with_pii", "spans", "labels": {label: {"spans", "rows"}}}``, labels sorted."""
        return {
            "rows_with_pii": self.rows_with_pii,
            "spans": self.total_spans,
            "labels": {label: {"spans": self.spans[label], "rows": self.rows.get(label, 0)} for label in sorted(self.spans)},
        }
