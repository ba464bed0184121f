"""What a scan reads: :class:`Source` (tables), :class:`TablePlan` (columns, row count, a sample reader),
:class:`ColumnInfo`, and the rules shared by every kind of input: the seeded uniform sample and which
column types are text.

The readers of each kind of input are :mod:`~pii_frames.discovery.frames` (Arrow, Polars, pandas),
:mod:`~pii_frames.discovery.databases` (DuckDB) and :mod:`~pii_frames.discovery.files` (Parquet, CSV,
JSON Lines); :func:`pii_frames.discovery.sources.open_source` picks one.

>>> ColumnInfo("note", "string", True).skip_reason is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ScanError",
    "ColumnInfo",
    "TablePlan",
    "Source",
    "KeySampler",
    "sample_indices",
    "arrow_text_type",
    "arrow_column",
    "all_null_reason",
    "infer_text_type",
    "one_line",
]


class ScanError(ValueError):
    """The input cannot be scanned (missing or unreadable file, unknown format, nothing to scan)."""


class ColumnInfo:
    """One column of a table: its type as the source names it and whether it can be scanned.

    ``skip_reason`` is set for columns known before detection to be
    unscannable (not text, or null in every row).

    >>> ColumnInfo("id", "BIGINT", False, "type BIGINT is not text")
    ColumnInfo('id', 'BIGINT', text=False, skip_reason='type BIGINT is not text')
    """

    __slots__ = ("name", "type", "text", "skip_reason")

    def __init__(self, name: str, type: str, text: bool, skip_reason: str | None = None):
        self.name, self.type, self.text, self.skip_reason = name, type, text, skip_reason

    def __repr__(self) -> str:
        return f"ColumnInfo({self.name!r}, {self.type!r}, text={self.text}, skip_reason={self.skip_reason!r})"


class TablePlan:
    """A table to scan: name, columns, row count (when known) and a reader of its sample.

    Subclasses read their sample in :meth:`_read`; :meth:`read_sample` turns
    every requested column into a plain ``string`` array (nulls kept).
    """

    def __init__(self, name: str, columns: list[ColumnInfo], rows_total: int | None, sample_rows: int, seed: int):
        self.name = name
        self._columns = columns
        self._rows_total = rows_total
        self.sample_rows = int(sample_rows)
        self.seed = int(seed)

    @property
    def columns(self) -> list[ColumnInfo]:
        return self._columns

    @property
    def rows_total(self) -> int | None:
        """Rows in the table (None when the source cannot tell without reading it all)."""
        return self._rows_total

    def read_sample(self, names: Sequence[str]) -> pa.Table:
        """The sampled rows of the text columns ``names`` as a table of ``string`` columns."""
        names = list(names)
        if not names:
            return pa.table({})
        table = self._read(names)
        arrays = []
        for name in names:
            column = table.column(name)
            if column.type not in (pa.string(), pa.large_string()):
                column = column.cast(pa.string())
            arrays.append(column.combine_chunks())
        return pa.Table.from_arrays(arrays, names=names)

    def _read(self, names: list[str]) -> pa.Table:  # pragma: no cover - every plan overrides it
        raise NotImplementedError


class Source:
    """Something to scan: a description for the report and the tables it holds.

    Use it as a context manager (or call :meth:`close`): a DuckDB file opened
    for the scan is closed at the end.
    """

    def __init__(self, description: str, tables: Callable[[], list[TablePlan]], close: Callable[[], None] | None = None):
        self.description = description
        self._tables = tables
        self._close = close

    def tables(self) -> list[TablePlan]:
        return self._tables()

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------- sampling
def sample_indices(total: int, sample_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices of a uniform random sample without replacement (all rows when there are fewer).

    >>> sample_indices(10, 3, seed=0).tolist()
    [5, 6, 9]
    >>> sample_indices(3, 10, seed=0).tolist()
    [0, 1, 2]
    """
    if total <= sample_rows:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=sample_rows, replace=False)).astype(np.int64)


class KeySampler:
    """Streaming uniform sample: keeps the rows with the smallest seeded random keys.

    Every row gets a key from one seeded generator in input order, so the kept
    rows depend only on the seed and the data; memory holds one batch plus the sample.
    """

    def __init__(self, sample_rows: int, seed: int):
        self.sample_rows = sample_rows
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.rows = np.empty(0, dtype=np.int64)
        self.kept: pa.Table | None = None
        self.seen = 0

    def add(self, batch: pa.Table) -> None:
        n = batch.num_rows
        keys = self.rng.random(n)
        rows = np.arange(self.seen, self.seen + n, dtype=np.int64)
        self.seen += n
        if self.kept is None:
            candidates, all_keys, all_rows = batch, keys, rows
        else:
            candidates = pa.concat_tables([self.kept, batch], promote_options="permissive")
            all_keys, all_rows = np.concatenate([self.keys, keys]), np.concatenate([self.rows, rows])
        if len(all_keys) > self.sample_rows:
            keep = np.argpartition(all_keys, self.sample_rows - 1)[: self.sample_rows]
        else:
            keep = np.arange(len(all_keys))
        self.kept = candidates.take(pa.array(keep))
        self.keys, self.rows = all_keys[keep], all_rows[keep]

    def result(self, schema: pa.Schema) -> pa.Table:
        if self.kept is None:
            return schema.empty_table()
        # Input order, so the sample reads like the data.
        return self.kept.take(pa.array(np.argsort(self.rows, kind="stable")))


# ------------------------------------------------------------------ type checks
def arrow_text_type(arrow_type: pa.DataType) -> bool:
    """Whether an Arrow column of this type holds text the model can read (the null type excluded).

    >>> arrow_text_type(pa.large_string()), arrow_text_type(pa.dictionary(pa.int32(), pa.string()))
    (True, True)
    >>> arrow_text_type(pa.int64()), arrow_text_type(pa.list_(pa.string()))
    (False, False)
    """
    if pa.types.is_dictionary(arrow_type):
        return arrow_text_type(arrow_type.value_type)
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type)


def all_null_reason(rows: int | None) -> str:
    """Why a column null in every row is skipped."""
    return "every row is null" if rows is None else f"all {rows:,} rows are null"


def arrow_column(name: str, arrow_type: pa.DataType, null_count: int | None, rows: int | None) -> ColumnInfo:
    """The :class:`ColumnInfo` of an Arrow column: text or not, and skipped when every row is null."""
    if pa.types.is_null(arrow_type):
        return ColumnInfo(name, str(arrow_type), True, all_null_reason(rows))
    if not arrow_text_type(arrow_type):
        return ColumnInfo(name, str(arrow_type), False, f"type {arrow_type} is not text")
    if rows and null_count is not None and null_count >= rows:
        return ColumnInfo(name, str(arrow_type), True, all_null_reason(rows))
    return ColumnInfo(name, str(arrow_type), True)


# Types tried, in order, on the values of an untyped (CSV) column: what pyarrow.csv would infer.
_INFERRED = (("int64", pa.int64()), ("double", pa.float64()), ("bool", pa.bool_()), ("timestamp", pa.timestamp("s")))
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def infer_text_type(values: pa.Array) -> str | None:
    """The non-text type every non-null value of a text column parses as, or None when it is text.

    >>> infer_text_type(pa.array(["1", "22", None])), infer_text_type(pa.array(["2024-01-02 10:00:00"]))
    ('int64', 'timestamp')
    >>> infer_text_type(pa.array(["Maria Lopez", "3"])) is None
    True
    """
    present = pc.drop_null(values)
    if len(present) == 0:
        return None
    if all(_DATE_RE.fullmatch(v) for v in present.to_pylist()) and _casts(present, pa.date32()):
        return "date32"
    for label, arrow_type in _INFERRED:
        if _casts(present, arrow_type):
            return label
    return None


def _casts(values: pa.Array, arrow_type: pa.DataType) -> bool:
    try:
        pc.cast(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def one_line(error: BaseException) -> str:
    """An error message on one line (Arrow's and DuckDB's span several).

    >>> one_line(ValueError("a\\n  b"))
    'a b'
    """
    return " ".join(str(error).split())
