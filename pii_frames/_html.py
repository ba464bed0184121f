"""Notebook display of detections: highlighted, labelled spans in a small table.

``pii_frames.show(...)`` returns a :class:`DetectionTable`, which Jupyter
renders as HTML (one row per text: the text with its spans highlighted and
labelled, reusing ``RedactionResult._repr_html_``), the redacted text and
the category; a terminal prints it as plain text. Label colours are those
of ``RedactionResult`` (the CLI uses them too).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["label_color", "highlight_html", "DetectionRow", "DetectionTable", "show"]

def label_color(label: str) -> str:
    """Background colour (hex) of ``label``: the same as in ``RedactionResult._repr_html_`` and the CLI.

    >>> label_color("private_email") == label_color("private_email")
    True
    >>> label_color("my_custom_label").startswith("#")
    True
    """
    from pii_frames.redaction.result import label_colour

    return label_colour(label)


def _span_fields(span: Any) -> tuple[str, int, int, float | None]:
    if isinstance(span, dict):
        return span["label"], int(span["start"]), int(span["end"]), span.get("score")
    return span.label, int(span.start), int(span.end), getattr(span, "score", None)


def highlight_html(text: str, spans: Iterable[Any]) -> str:
    """HTML for ``text`` with each span in a coloured ``<mark>`` followed by its label.

    ``spans`` are dicts or objects with ``label``, ``start``, ``end`` (code
    points, end-exclusive) and optionally ``score``; overlapping spans after
    the first are skipped.

    >>> highlight_html("Hi Ann <3", [{"label": "private_person", "start": 3, "end": 6}])[:40]
    'Hi <mark class="pii-span" style="backgro'
    """
    parts: list[str] = []
    cursor = 0
    for label, start, end, score in sorted((_span_fields(s) for s in spans), key=lambda s: (s[1], s[2])):
        if start < cursor or end <= start:
            continue
        title = label if score is None else f"{label} ({score:.2f})"
        parts.append(html.escape(text[cursor:start]))
        parts.append(
            f'<mark class="pii-span" style="background:{label_color(label)};color:#111;padding:0 2px;'
            f'border-radius:3px" title="{html.escape(title, quote=True)}">{html.escape(text[start:end])}'
            f'<sub style="font-size:0.65em;opacity:0.75;margin-left:2px">{html.escape(label)}</sub></mark>'
        )
        cursor = end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts).replace("\n", "<br>")


@dataclass
class DetectionRow:
    """One displayed text: its spans, redacted text and category (all None for a null row)."""

    text: str | None
    spans: list = field(default_factory=list)
    redacted_text: str | None = None
    category: str | None = None
    result: Any = None  # the RedactionResult, when there is one: its own HTML view is reused


class DetectionTable:
    """A displayable table of detections; Jupyter shows it as HTML.

    >>> table = DetectionTable([DetectionRow("Hi Ann", [{"label": "private_person", "start": 3, "end": 6}],
    ...                                      "Hi <PRIVATE_PERSON>")])
    >>> "private_person" in table._repr_html_()
    True
    >>> print(table)
    [0] Hi <PRIVATE_PERSON>   (private_person: 1)
    """

    def __init__(self, rows: Sequence[DetectionRow], *, total_rows: int | None = None, title: str | None = None):
        self.rows = list(rows)
        self.total_rows = len(self.rows) if total_rows is None else total_rows
        self.title = title

    @classmethod
    def from_results(cls, results: Iterable[Any], **kwargs: Any) -> DetectionTable:
        """Build from ``RedactionResult`` objects (None for null rows)."""
        rows = [
            DetectionRow(None)
            if result is None
            else DetectionRow(result.text, list(result.detected_spans), result.redacted_text, result.category, result)
            for result in results
        ]
        return cls(rows, **kwargs)

    def label_counts(self) -> dict[str, int]:
        """Spans per label over the displayed rows, sorted by label."""
        counts: dict[str, int] = {}
        for row in self.rows:
            for span in row.spans:
                label = _span_fields(span)[0]
                counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        lines = []
        for i, row in enumerate(self.rows):
            if row.text is None:
                lines.append(f"[{i}] null")
                continue
            counts: dict[str, int] = {}
            for span in row.spans:
                counts[_span_fields(span)[0]] = counts.get(_span_fields(span)[0], 0) + 1
            found = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items())) or "no PII"
            category = f" [{row.category}]" if row.category else ""
            lines.append(f"[{i}] {row.redacted_text}   ({found}){category}")
        if self.total_rows > len(self.rows):
            lines.append(f"... showing {len(self.rows)} of {self.total_rows} rows")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        show_category = any(row.category for row in self.rows)
        cell = 'style="text-align:left;vertical-align:top;padding:4px 8px"'
        header = ["#", "text (detected spans)", "redacted"] + (["category"] if show_category else [])
        out = ['<div class="pii-frames-table">']
        if self.title:
            out.append(f"<b>{html.escape(self.title)}</b>")
        out.append('<table style="border-collapse:collapse">')
        out.append("<thead><tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        for i, row in enumerate(self.rows):
            if row.text is None:
                cells = [str(i), "<i>null</i>", "<i>null</i>"] + (["<i>null</i>"] if show_category else [])
            else:
                view = row.result._repr_html_() if hasattr(row.result, "_repr_html_") else highlight_html(row.text, row.spans)
                cells = [str(i), view, html.escape(row.redacted_text or "")]
                if show_category:
                    cells.append(html.escape(row.category or ""))
            out.append("<tr>" + "".join(f"<td {cell}>{c}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table>")
        legend = " ".join(
            f'<mark style="background:{label_color(label)};color:#111;padding:0 4px;border-radius:3px">'
            f"{html.escape(label)}: {n}</mark>"
            for label, n in self.label_counts().items()
        )
        footer = f"{len(self.rows)} of {self.total_rows} rows" if self.total_rows > len(self.rows) else ""
        if legend or footer:
            out.append(f'<div style="margin-top:4px">{legend} {html.escape(footer)}</div>')
        out.append("</div>")
        return "".join(out)


def _texts_from(data: Any, column: str | None) -> list:
    """A list of str/None from a column-like or frame-like object."""
    if column is not None:
        try:
            data = data[column]
        except (KeyError, TypeError, Exception) as error:  # frame libraries raise their own types
            raise KeyError(f"column {column!r} not found in the given data: {error}") from None
    if type(data).__module__.split(".")[0] in ("pandas", "numpy"):
        # pandas' missing markers (NaN, pd.NA, NaT) are nulls; checked before to_list, which pandas also has.
        import pandas as pd

        return [None if (v is None or (not isinstance(v, str) and pd.isna(v))) else v for v in data.tolist()]
    for method in ("to_pylist", "to_list"):  # pyarrow, Polars
        if hasattr(data, method):
            return list(getattr(data, method)())
    if isinstance(data, str):
        return [data]
    return list(data)


def show(data: Any, column: str | None = None, *, model: Any = None, max_rows: int = 20, **options: Any) -> DetectionTable:
    """Display detections in a notebook: highlighted, labelled spans per row.

    ``data`` is a RedactionResult, a list of them, a text, or a column of
    texts (list, pyarrow array, Polars/pandas Series, or a DataFrame with
    ``column=``). Texts are run through the model (only the first
    ``max_rows``, it is a preview); options as in :func:`pii_frames.load`
    and ``Detector.redact_many`` (``policy``, ``output_mode``, ...).

    >>> import pii_frames as pii
    >>> len(pii.show(["Contact: anna@example.com", None], model="default").rows)
    2
    """
    if hasattr(data, "detected_spans"):
        return DetectionTable.from_results([data])
    if isinstance(data, list | tuple) and data and all(r is None or hasattr(r, "detected_spans") for r in data):
        return DetectionTable.from_results(data[:max_rows], total_rows=len(data))
    texts = _texts_from(data, column)
    bad = next((i for i, t in enumerate(texts) if t is not None and not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"row {bad} is a {type(texts[bad]).__name__}, not text; show() displays text columns")
    from pii_frames.arrow import resolve_detector, split_options

    load_options, detect_options = split_options(options)
    detector = resolve_detector(model, **load_options)
    detect_options.pop("progress", None)
    results = detector.redact_many(texts[:max_rows], **detect_options)
    title = f"column {column!r}" if column else None
    return DetectionTable.from_results(results, total_rows=len(texts), title=title)
