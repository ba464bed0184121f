"""The result of :func:`pii_frames.scan`: which columns of which tables hold personal data.

A :class:`ScanReport` holds one :class:`ColumnScan` per column (scanned or
skipped) and renders itself as a rich table in a terminal (``print(report)``
through rich, or :meth:`ScanReport.print`), as HTML in Jupyter
(``_repr_html_``, with a bar per label share), and converts to Arrow, Polars,
a dict and JSON. It never holds a raw value: example snippets are cut from
the redacted text.

>>> report = ScanReport([ColumnScan("t", "email", "string", VERDICT_PII, rows_sampled=4, values_scanned=4,
...                                 rows_with_pii=4, spans=4, mean_score=0.97,
...                                 labels=[LabelStats("private_email", 4, 1.0, 4, 0.97, True)],
...                                 examples=["mail <PRIVATE_EMAIL>"])],
...                     source="example")
>>> report.summary_lines()
['t: PII in 1 of 1 scanned columns (email: private_email) · 4 rows sampled']
>>> report.to_dict()["tables"][0]["columns"][0]["verdict"]
'pii'
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = [
    "VERDICT_PII",
    "VERDICT_CLEAN",
    "VERDICT_SKIPPED",
    "VERDICTS",
    "LabelStats",
    "ColumnScan",
    "ScanReport",
    "REPORT_VERSION",
]

VERDICT_PII = "pii"
VERDICT_CLEAN = "no pii found"
VERDICT_SKIPPED = "skipped"
VERDICTS = (VERDICT_PII, VERDICT_CLEAN, VERDICT_SKIPPED)
REPORT_VERSION = 1

LABEL_TYPE = pa.struct(
    [
        pa.field("label", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("share", pa.float64()),
        pa.field("spans", pa.int64()),
        pa.field("mean_score", pa.float64()),
        pa.field("found", pa.bool_()),
    ]
)
#: Schema of :meth:`ScanReport.to_arrow`: one row per column of every table.
ARROW_SCHEMA = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("column", pa.string()),
        pa.field("type", pa.string()),
        pa.field("verdict", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("rows_total", pa.int64()),
        pa.field("rows_sampled", pa.int64()),
        pa.field("values_scanned", pa.int64()),
        pa.field("rows_with_pii", pa.int64()),
        pa.field("pii_share", pa.float64()),
        pa.field("spans", pa.int64()),
        pa.field("mean_score", pa.float64()),
        pa.field("found_labels", pa.list_(pa.string())),
        pa.field("labels", pa.list_(LABEL_TYPE)),
        pa.field("examples", pa.list_(pa.string())),
        pa.field("errors", pa.int64()),
    ]
)


@dataclass
class LabelStats:
    """One label in one column: sampled rows with a counted span of it, their share, spans, mean score.

    ``found`` says whether the label passed the scan's thresholds (see :func:`pii_frames.discovery.scan`).
    """

    label: str
    rows: int
    share: float
    spans: int
    mean_score: float
    found: bool

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "rows": self.rows, "share": round(self.share, 6), "spans": self.spans,
                "mean_score": round(self.mean_score, 6), "found": self.found}


@dataclass
class ColumnScan:
    """The scan of one column: its verdict, why, and what was counted on its sample.

    ``rows_sampled`` rows were drawn; ``values_scanned`` of them were non-null
    and went through the model; ``rows_with_pii`` had at least one counted
    span; ``labels`` has one :class:`LabelStats` per label seen (largest share
    first); ``examples`` are up to three redacted snippets; ``errors`` counts
    values the engine could not process (left out of the shares).
    """

    table: str
    column: str
    type: str
    verdict: str
    reason: str | None = None
    rows_total: int | None = None
    rows_sampled: int = 0
    values_scanned: int = 0
    rows_with_pii: int = 0
    spans: int = 0
    mean_score: float | None = None
    labels: list[LabelStats] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def pii_share(self) -> float | None:
        """Share of the scanned values with at least one counted span (None when nothing was scanned)."""
        return self.rows_with_pii / self.values_scanned if self.values_scanned else None

    @property
    def found_labels(self) -> list[str]:
        """Labels that passed the thresholds, largest share first."""
        return [stats.label for stats in self.labels if stats.found]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    def to_dict(self, *, examples: bool = True) -> dict[str, Any]:
        share = self.pii_share
        return {
            "table": self.table,
            "column": self.column,
            "type": self.type,
            "verdict": self.verdict,
            "reason": self.reason,
            "rows_total": self.rows_total,
            "rows_sampled": self.rows_sampled,
            "values_scanned": self.values_scanned,
            "rows_with_pii": self.rows_with_pii,
            "pii_share": None if share is None else round(share, 6),
            "spans": self.spans,
            "mean_score": None if self.mean_score is None else round(self.mean_score, 6),
            "found_labels": self.found_labels,
            "labels": [stats.to_dict() for stats in self.labels],
            "examples": list(self.examples) if examples else [],
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnScan:
        known = {k: data[k] for k in ("table", "column", "type", "verdict", "reason", "rows_total", "rows_sampled",
                                      "values_scanned", "rows_with_pii", "spans", "mean_score", "errors") if k in data}
        labels = [LabelStats(**{k: item[k] for k in ("label", "rows", "share", "spans", "mean_score", "found")})
                  for item in data.get("labels") or []]
        return cls(**known, labels=labels, examples=list(data.get("examples") or []))


def _percent(share: float | None) -> str:
    if share is None:
        return "–"
    if 0 < share < 0.01:
        return "<1%"
    return f"{share:.0%}"


class ScanReport:
    """Where a scan found personal data: one :class:`ColumnScan` per column, grouped by table.

    ``settings`` holds the sampling and threshold parameters the scan used
    (``sample_rows``, ``seed``, ``min_share``, ``min_score``), ``model`` the
    model id and ``labels`` the labels the model knows.
    """

    def __init__(self, columns: Iterable[ColumnScan], *, source: str = "", model: str | None = None,
                 settings: dict[str, Any] | None = None, labels: Sequence[str] | None = None,
                 seconds: float | None = None):
        self.columns = list(columns)
        self.source = source
        self.model = model
        self.settings = dict(settings or {})
        self.labels = list(labels or [])
        self.seconds = seconds

    # ------------------------------------------------------------ queries
    def tables(self) -> list[str]:
        """Table names in scan order."""
        return list(dict.fromkeys(column.table for column in self.columns))

    def table_columns(self, table: str) -> list[ColumnScan]:
        return [column for column in self.columns if column.table == table]

    def column(self, name: str, table: str | None = None) -> ColumnScan:
        """The scan of column ``name`` (``"table.column"`` or ``name`` with ``table=``).

        >>> ScanReport([ColumnScan("t", "a", "string", VERDICT_SKIPPED, "every row is null")]).column("t.a").reason
        'every row is null'
        """
        for column in self.columns:
            if (table is None and (column.column == name or column.name == name)) or (
                column.table == table and column.column == name
            ):
                return column
        known = ", ".join(column.name for column in self.columns) or "none"
        where = f" of table {table!r}" if table else ""
        raise KeyError(f"no column {name!r}{where} in this scan report; columns: {known}")

    @property
    def pii_columns(self) -> list[ColumnScan]:
        """Columns whose verdict is ``pii``."""
        return [column for column in self.columns if column.verdict == VERDICT_PII]

    @property
    def skipped(self) -> list[ColumnScan]:
        """Columns that were not scanned, each with its ``reason``."""
        return [column for column in self.columns if column.verdict == VERDICT_SKIPPED]

    def found(self, labels: Iterable[str] | None = None) -> list[ColumnScan]:
        """``pii`` columns where any of ``labels`` (default: any label) was found.

        >>> report = ScanReport([ColumnScan("t", "a", "string", VERDICT_PII,
        ...                                 labels=[LabelStats("private_email", 3, 1.0, 3, 0.9, True)])])
        >>> [c.name for c in report.found(["private_email"])], report.found(["secret"])
        (['t.a'], [])
        """
        wanted = None if labels is None else set(labels)
        return [
            column for column in self.pii_columns
            if wanted is None or wanted & set(column.found_labels)
        ]

    def has_pii(self, labels: Iterable[str] | None = None) -> bool:
        """Whether any column holds any of ``labels`` (default: any label)."""
        return bool(self.found(labels))

    def summary_lines(self) -> list[str]:
        """One line per table: PII columns and their labels, skipped columns, rows sampled."""
        return [self._table_summary(table) for table in self.tables()]

    def _table_summary(self, table: str) -> str:
        columns = self.table_columns(table)
        scanned = [c for c in columns if c.verdict != VERDICT_SKIPPED]
        pii = [c for c in scanned if c.verdict == VERDICT_PII]
        skipped = len(columns) - len(scanned)
        if pii:
            named = ", ".join(f"{c.column}: {', '.join(c.found_labels)}" for c in pii)
            head = f"PII in {len(pii)} of {len(scanned)} scanned columns ({named})"
        elif scanned:
            head = f"no PII found in {len(scanned)} scanned column{'s' if len(scanned) != 1 else ''}"
        else:
            head = "nothing scanned"
        parts = [head]
        if skipped:
            parts.append(f"{skipped} skipped")
        sampled = max((c.rows_sampled for c in columns), default=0)
        total = next((c.rows_total for c in columns if c.rows_total is not None), None)
        if scanned:
            parts.append(f"{sampled:,} of {total:,} rows sampled" if total is not None and total != sampled
                         else f"{sampled:,} rows sampled")
        return f"{table}: " + " · ".join(parts)

    # ------------------------------------------------------------ export
    def to_dict(self, *, examples: bool = True) -> dict[str, Any]:
        """A JSON-ready dict: source, model, settings, totals and per table its summary and columns.

        ``examples=False`` leaves the redacted snippets out (smaller, e.g. for an Airflow XCom).
        """
        tables = []
        for table in self.tables():
            columns = self.table_columns(table)
            tables.append({
                "table": table,
                "rows_total": next((c.rows_total for c in columns if c.rows_total is not None), None),
                "summary": self._table_summary(table),
                "columns": [c.to_dict(examples=examples) for c in columns],
            })
        return {
            "version": REPORT_VERSION,
            "source": self.source,
            "model": self.model,
            "settings": dict(self.settings),
            "labels": list(self.labels),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "totals": {
                "tables": len(tables),
                "columns": len(self.columns),
                "pii_columns": len(self.pii_columns),
                "skipped_columns": len(self.skipped),
                "found_labels": sorted({label for c in self.pii_columns for label in c.found_labels}),
            },
            "tables": tables,
        }

    def to_json(self, *, indent: int | None = 2, examples: bool = True) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(examples=examples), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. an Airflow XCom).

        >>> report = ScanReport([ColumnScan("t", "a", "string", VERDICT_CLEAN, rows_sampled=3, values_scanned=3)])
        >>> ScanReport.from_dict(report.to_dict()).to_dict() == report.to_dict()
        True
        """
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"not a pii_frames scan report of version {REPORT_VERSION} (got {data.get('version')!r})")
        columns = [ColumnScan.from_dict(c) for table in data.get("tables", []) for c in table.get("columns", [])]
        return cls(columns, source=data.get("source", ""), model=data.get("model"), settings=data.get("settings"),
                   labels=data.get("labels"), seconds=data.get("seconds"))

    def to_arrow(self) -> pa.Table:
        """One row per column (schema :data:`ARROW_SCHEMA`), labels as a list of structs."""
        rows = [c.to_dict() for c in self.columns]
        return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)

    def to_polars(self):
        """:meth:`to_arrow` as a Polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    # ------------------------------------------------------------ terminal
    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return (f"ScanReport({len(self.tables())} tables, {len(self.columns)} columns: {len(self.pii_columns)} pii, "
                f"{len(self.skipped)} skipped)")

    def __str__(self) -> str:
        lines = []
        for table in self.tables():
            lines.append(self._table_summary(table))
            for c in self.table_columns(table):
                if c.verdict == VERDICT_SKIPPED:
                    lines.append(f"  {c.column} ({c.type}): skipped, {c.reason}")
                else:
                    shares = ", ".join(f"{s.label} {_percent(s.share)}" for s in c.labels if s.found)
                    lines.append(f"  {c.column} ({c.type}): {c.verdict}" + (f" ({shares})" if shares else ""))
        return "\n".join(lines)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from pii_frames._html import label_color

        styles = {VERDICT_PII: "bold red", VERDICT_CLEAN: "green", VERDICT_SKIPPED: "dim"}
        parts: list[Any] = [Text(f"pii_frames scan · {self.source}" if self.source else "pii_frames scan", style="bold")]
        for name in self.tables():
            # One table per scanned table, its summary line as the caption.
            table = Table(title=name, title_justify="left", title_style="bold", caption=self._table_summary(name),
                          caption_justify="left", expand=False)
            table.add_column("column", overflow="fold")
            table.add_column("verdict", no_wrap=True)
            table.add_column("scanned", justify="right", no_wrap=True)
            table.add_column("labels (share of rows)", overflow="fold")
            table.add_column("score", justify="right", no_wrap=True)
            table.add_column("example (redacted)", overflow="fold", max_width=48)
            for c in self.table_columns(name):
                if c.verdict == VERDICT_SKIPPED:
                    labels = Text(c.reason or "", style="dim")
                else:
                    labels = Text()
                    for s in c.labels:
                        if labels:
                            labels.append(", ")
                        labels.append(f"{s.label} {_percent(s.share)}",
                                      style=f"bold {label_color(s.label)}" if s.found else "dim")
                    if not c.labels:
                        labels.append("–", style="dim")
                table.add_row(
                    Text.assemble(c.column, (f" {c.type}", "dim")),
                    Text(c.verdict, style=styles[c.verdict]),
                    f"{c.values_scanned:,}" if c.verdict != VERDICT_SKIPPED else "",
                    labels,
                    "" if c.mean_score is None else f"{c.mean_score:.2f}",
                    Text(c.examples[0] if c.examples else "", style="italic"),
                )
            parts.append(table)
        parts.append(Text(self._footer(), style="dim"))
        return Group(*parts)

    def _footer(self) -> str:
        s = self.settings
        parts = []
        if "min_share" in s and "min_score" in s:
            parts.append(f"pii = a label on >= {s['min_share']:.0%} of sampled non-null rows, "
                         f"spans scored >= {s['min_score']:.2f}")
        if "sample_rows" in s:
            parts.append(f"sample {s['sample_rows']:,} rows, seed {s.get('seed', 0)}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        return " · ".join(parts)

    def print(self, console: Any = None) -> None:
        """Print the rich table and the per-table summary lines (to stdout by default)."""
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        console.print(self)

    # ------------------------------------------------------------ HTML
    def _repr_html_(self) -> str:
        from pii_frames._html import label_color

        esc = html.escape
        cell = 'style="text-align:left;vertical-align:top;padding:3px 8px;border-bottom:1px solid #e5e5e5"'
        colors = {VERDICT_PII: "#b42318", VERDICT_CLEAN: "#067647", VERDICT_SKIPPED: "#667085"}
        out = ['<div class="pii-frames-scan" style="font-family:system-ui,sans-serif;font-size:13px">']
        out.append(f"<div style=\"font-weight:600;margin-bottom:4px\">pii_frames scan{' · ' + esc(self.source) if self.source else ''}</div>")
        for name in self.tables():
            out.append(f'<div style="margin:8px 0 2px 0;font-weight:600">{esc(self._table_summary(name))}</div>')
            out.append('<table style="border-collapse:collapse">')
            header = ["column", "type", "verdict", "scanned", "label share of sampled rows", "score", "examples (redacted)"]
            out.append("<thead><tr>" + "".join(f"<th {cell}>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
            for c in self.table_columns(name):
                verdict = f'<span style="color:{colors[c.verdict]};font-weight:600">{esc(c.verdict)}</span>'
                if c.verdict == VERDICT_SKIPPED:
                    bars = f'<span style="color:#667085">{esc(c.reason or "")}</span>'
                else:
                    bars = "".join(self._bar(s, label_color(s.label)) for s in c.labels) or '<span style="color:#667085">–</span>'
                examples = "<br>".join(f"<code>{esc(e)}</code>" for e in c.examples)
                cells = [esc(c.column), f'<span style="color:#667085">{esc(c.type)}</span>', verdict,
                         "" if c.verdict == VERDICT_SKIPPED else f"{c.values_scanned:,}", bars,
                         "" if c.mean_score is None else f"{c.mean_score:.2f}", examples]
                out.append("<tr>" + "".join(f"<td {cell}>{v}</td>" for v in cells) + "</tr>")
            out.append("</tbody></table>")
        footer = self._footer()
        if footer:
            out.append(f'<div style="margin-top:6px;color:#667085">{esc(footer)}</div>')
        out.append("</div>")
        return "".join(out)

    @staticmethod
    def _bar(stats: LabelStats, color: str) -> str:
        width = max(1.0, min(100.0, stats.share * 100)) if stats.share > 0 else 0.0
        weight = "600" if stats.found else "400"
        opacity = "1" if stats.found else "0.45"
        return (
            f'<div style="display:flex;align-items:center;gap:6px;opacity:{opacity}" title="{stats.rows:,} rows, '
            f'{stats.spans:,} spans, mean score {stats.mean_score:.2f}">'
            f'<span style="width:10em;font-weight:{weight}">{html.escape(stats.label)}</span>'
            f'<span style="display:inline-block;width:120px;height:10px;background:#f2f4f7;border-radius:2px">'
            f'<span style="display:block;width:{width:.1f}%;height:10px;background:{color};border-radius:2px"></span>'
            f"</span><span>{_percent(stats.share)}</span></div>"
        )

    def to_html(self) -> str:
        """A standalone HTML page of the report (what ``pii-frames scan --html`` writes)."""
        title = html.escape(f"pii_frames scan · {self.source}" if self.source else "pii_frames scan")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
                f"<body>{self._repr_html_()}</body></html>\n")
