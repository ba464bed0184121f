"""Turn each kind of scan input into tables of columns with a reproducible random row sample.

:func:`open_source` accepts a Polars DataFrame or LazyFrame, a pandas
DataFrame, an Arrow Table or RecordBatch, a DuckDB relation or connection
(every base table of every schema), a mapping of table name to any of
those, or a path: a Parquet file or folder, a CSV or JSON Lines file, a
DuckDB database file (opened read-only) or a ``duckdb:///path.db::schema.table``
location as the Airflow operators write them.

Each table is a :class:`TablePlan`: its name, its columns with their type
and, for columns that cannot be scanned, the reason. A sample is
``sample_rows`` rows picked uniformly at random with a seeded generator (the
same rows for every column of a table; never simply the first N rows), so the
same input, ``sample_rows`` and ``seed`` give the same sample:

- in-memory frames and Parquet: row indices drawn from the row count, then
  only those rows are taken (Parquet: only the row groups that hold sampled
  rows are read, batch by batch, and only the text columns);
- DuckDB: ``USING SAMPLE reservoir(N ROWS) REPEATABLE (seed)``;
- CSV and JSON Lines (no random access): one streaming pass that keeps the
  rows with the smallest seeded random keys, so memory is bounded by the
  sample; column types come from the sampled values, as pyarrow would type them.

>>> import pyarrow as pa
>>> source = open_source(pa.table({"id": [1, 2, 3], "note": ["a", None, "b"]}), sample_rows=2, seed=0)
>>> plan = source.tables()[0]
>>> [(c.name, c.text, c.skip_reason) for c in plan.columns]
[('id', False, 'type int64 is not text'), ('note', True, None)]
>>> plan.read_sample(["note"]).column("note").to_pylist()
[None, 'b']
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ScanError",
    "ColumnInfo",
    "TablePlan",
    "Source",
    "open_source",
    "sample_indices",
    "arrow_text_type",
    "infer_text_type",
    "quote_identifier",
    "DUCKDB_PREFIX",
]

DUCKDB_PREFIX = "duckdb://"
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
CSV_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
DUCKDB_SUFFIXES = {".duckdb", ".ddb", ".db"}
COMPRESSION_SUFFIXES = {".gz", ".bz2", ".zst", ".lz4"}
# Rows read per batch when streaming Parquet row groups, CSV and JSON Lines.
BATCH_ROWS = 65_536


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


class _KeySampler:
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


def _all_null_reason(rows: int | None) -> str:
    return "every row is null" if rows is None else f"all {rows:,} rows are null"


def _arrow_column(name: str, arrow_type: pa.DataType, null_count: int | None, rows: int | None) -> ColumnInfo:
    if pa.types.is_null(arrow_type):
        return ColumnInfo(name, str(arrow_type), True, _all_null_reason(rows))
    if not arrow_text_type(arrow_type):
        return ColumnInfo(name, str(arrow_type), False, f"type {arrow_type} is not text")
    if rows and null_count is not None and null_count >= rows:
        return ColumnInfo(name, str(arrow_type), True, _all_null_reason(rows))
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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# ------------------------------------------------------------------ dispatch
def open_source(data: Any, *, sample_rows: int = 1000, seed: int = 0, name: str | None = None) -> Source:
    """A :class:`Source` for ``data`` (see the module docstring for what is accepted).

    ``name`` names the table of a single frame (default ``"data"``; paths use
    the file or folder name, DuckDB ``schema.table``). Raises
    :class:`ScanError` for a missing, unreadable or unrecognised path and
    :class:`TypeError` for an object scan cannot read.

    >>> open_source("/nonexistent/tickets.parquet")
    Traceback (most recent call last):
    ...
    pii_frames.discovery.sources.ScanError: no such file or folder: /nonexistent/tickets.parquet
    """
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows <= 0:
        raise ValueError(f"sample_rows must be a positive integer, got {sample_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    options = (sample_rows, seed)
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith(DUCKDB_PREFIX):
            return _duckdb_location(text, options)
        return _path_source(Path(text).expanduser(), text, options)
    if isinstance(data, Mapping):
        plans = [_frame_plan(frame, table, options, required=True) for table, frame in data.items()]
        return Source(f"{len(plans)} tables", lambda: plans)
    import sys

    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(data, duckdb.DuckDBPyConnection):
        return _duckdb_connection_source(data, "DuckDB connection", options)
    plan = _frame_plan(data, name or "data", options, required=True)
    return Source(f"{type(data).__module__.split('.')[0]}.{type(data).__name__}", lambda: [plan])


def _frame_plan(data: Any, name: Any, options: tuple[int, int], *, required: bool) -> TablePlan:
    import sys

    if not isinstance(name, str) or not name:
        raise TypeError(f"table names of a scan() mapping must be non-empty strings, got {name!r}")
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return _ArrowPlan(data, name, *options)
    polars = sys.modules.get("polars")
    if polars is not None:
        if isinstance(data, polars.DataFrame):
            return _PolarsPlan(data, name, *options)
        if isinstance(data, polars.LazyFrame):
            return _LazyPlan(data, name, *options)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return _PandasPlan(data, name, *options)
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(data, duckdb.DuckDBPyRelation):
        return _RelationPlan(data, name, *options)
    raise TypeError(
        f"scan() cannot read a {type(data).__module__}.{type(data).__name__}"
        + (f" (table {name!r})" if name != "data" else "")
        + "; pass a Polars or pandas DataFrame, a Polars LazyFrame, a pyarrow Table, a DuckDB relation or "
        "connection, a mapping of table names to those, or a path (Parquet file or folder, CSV, JSON Lines, "
        ".duckdb file, duckdb:///file.duckdb::schema.table)"
    )


# ------------------------------------------------------------------ Arrow / Polars / pandas
class _ArrowPlan(TablePlan):
    def __init__(self, table: pa.Table, name: str, sample_rows: int, seed: int):
        rows = table.num_rows
        columns = [_arrow_column(f.name, f.type, table.column(f.name).null_count, rows) for f in table.schema]
        super().__init__(name, columns, rows, sample_rows, seed)
        self.table = table

    def _read(self, names: list[str]) -> pa.Table:
        indices = sample_indices(self.table.num_rows, self.sample_rows, self.seed)
        return self.table.select(names).take(pa.array(indices))


def _polars_column(name: str, dtype: Any, null_count: Callable[[], int] | None, rows: int | None) -> ColumnInfo:
    import polars as pl

    if dtype == pl.Null:
        return ColumnInfo(name, str(dtype), True, _all_null_reason(rows))
    if not (dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))):
        return ColumnInfo(name, str(dtype), False, f"type {dtype} is not text")
    if rows and null_count is not None and null_count() >= rows:
        return ColumnInfo(name, str(dtype), True, _all_null_reason(rows))
    return ColumnInfo(name, str(dtype), True)


class _PolarsPlan(TablePlan):
    def __init__(self, frame: Any, name: str, sample_rows: int, seed: int):
        rows = frame.height
        columns = [
            _polars_column(column, dtype, frame[column].null_count, rows) for column, dtype in frame.schema.items()
        ]
        super().__init__(name, columns, rows, sample_rows, seed)
        self.frame = frame

    def _read(self, names: list[str]) -> pa.Table:
        import polars as pl

        indices = sample_indices(self.frame.height, self.sample_rows, self.seed)
        picked = self.frame.select(names)[pl.Series(indices)]
        return picked.with_columns(pl.col(n).cast(pl.String) for n in names).to_arrow()


class _LazyPlan(TablePlan):
    def __init__(self, frame: Any, name: str, sample_rows: int, seed: int):
        self.schema = frame.collect_schema()
        columns = [_polars_column(column, dtype, None, None) for column, dtype in self.schema.items()]
        super().__init__(name, columns, None, sample_rows, seed)
        self.frame = frame

    @property
    def rows_total(self) -> int | None:
        import polars as pl

        if self._rows_total is None:
            self._rows_total = int(self.frame.select(pl.len()).collect().item())
        return self._rows_total

    def _read(self, names: list[str]) -> pa.Table:
        import polars as pl

        index = "__pii_frames_row"
        while index in self.schema:
            index += "_"
        wanted = pl.Series(sample_indices(self.rows_total or 0, self.sample_rows, self.seed))
        # The streaming engine keeps only the sampled rows in memory, not the frame.
        picked = (
            self.frame.select(names)
            .with_row_index(index)
            .filter(pl.col(index).is_in(wanted.cast(pl.get_index_type()).implode()))
            .drop(index)
            .with_columns(pl.col(n).cast(pl.String) for n in names)
            .collect(engine="streaming")
        )
        return picked.to_arrow()


class _PandasPlan(TablePlan):
    def __init__(self, frame: Any, name: str, sample_rows: int, seed: int):
        import pandas as pd

        rows = len(frame)
        self.frame = frame
        self.indices = sample_indices(rows, sample_rows, seed)
        self.labels = {}
        columns = []
        for position, column in enumerate(frame.columns):
            label = str(column)
            self.labels[label] = position
            series = frame.iloc[:, position]
            dtype = series.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                text = dtype.categories.dtype == object or pd.api.types.is_string_dtype(dtype.categories.dtype)
            else:
                text = isinstance(dtype, pd.StringDtype) or dtype == object
            if not text:
                columns.append(ColumnInfo(label, str(dtype), False, f"type {dtype} is not text"))
                continue
            if rows and int(series.isna().sum()) >= rows:
                columns.append(ColumnInfo(label, str(dtype), True, _all_null_reason(rows)))
                continue
            # object columns may hold anything: they are text when the sampled values are.
            other = sorted({type(v).__name__ for v in series.iloc[self.indices].tolist()
                            if not isinstance(v, str) and not _pandas_missing(v)})
            if other:
                columns.append(ColumnInfo(label, str(dtype), False, f"{dtype} column holds {', '.join(other)} values, not text"))
            else:
                columns.append(ColumnInfo(label, str(dtype), True))
        super().__init__(name, columns, rows, sample_rows, seed)

    def _read(self, names: list[str]) -> pa.Table:
        arrays = []
        for label in names:
            values = self.frame.iloc[self.indices, self.labels[label]].tolist()
            arrays.append(pa.array([None if _pandas_missing(v) else v for v in values], type=pa.string()))
        return pa.Table.from_arrays(arrays, names=names)


def _pandas_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# ------------------------------------------------------------------ DuckDB
def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes (embedded quotes doubled).

    >>> quote_identifier('my "odd" table')
    '"my ""odd"" table"'
    """
    return '"' + name.replace('"', '""') + '"'


def _duckdb_column(name: str, sql_type: str) -> ColumnInfo:
    upper = sql_type.upper()
    if upper in ('"NULL"', "NULL"):
        return ColumnInfo(name, sql_type, True, "every row is null")
    if upper == "VARCHAR" or upper.startswith("VARCHAR(") or upper.startswith("ENUM("):
        return ColumnInfo(name, sql_type, True)
    return ColumnInfo(name, sql_type, False, f"type {sql_type} is not text")


def _duckdb_sample_sql(relation_sql: str, names: Sequence[str], sample_rows: int, seed: int) -> str:
    selected = ", ".join(f"CAST({quote_identifier(n)} AS VARCHAR) AS {quote_identifier(n)}" for n in names)
    return (f"SELECT {selected} FROM {relation_sql} "
            f"USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({int(seed)})")


def _fetch_arrow(result: Any) -> pa.Table:
    for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        if hasattr(result, method):
            table = getattr(result, method)()
            return table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    raise RuntimeError("this duckdb version returns no Arrow tables")  # pragma: no cover


class _RelationPlan(TablePlan):
    VIEW = "__pii_frames_scan_source"

    def __init__(self, relation: Any, name: str | None, sample_rows: int, seed: int):
        alias = relation.alias
        if name in (None, "data"):
            name = "relation" if alias.startswith("unnamed_relation") else alias
        columns = [_duckdb_column(c, str(t)) for c, t in zip(relation.columns, relation.types)]
        super().__init__(name, columns, None, sample_rows, seed)
        self.relation = relation

    def _read(self, names: list[str]) -> pa.Table:
        sql = _duckdb_sample_sql(self.VIEW, names, self.sample_rows, self.seed)
        return _fetch_arrow(self.relation.query(self.VIEW, sql))


class _DuckDBTablePlan(TablePlan):
    def __init__(self, con: Any, qualified: str, name: str, columns: list[ColumnInfo], rows: int,
                 sample_rows: int, seed: int):
        super().__init__(name, columns, rows, sample_rows, seed)
        self.con, self.qualified = con, qualified

    def _read(self, names: list[str]) -> pa.Table:
        # A cursor of its own: the caller's connection may be in the middle of a query.
        sql = _duckdb_sample_sql(self.qualified, names, self.sample_rows, self.seed)
        return _fetch_arrow(self.con.cursor().sql(sql))


def _duckdb_connection_source(con: Any, description: str, options: tuple[int, int], *,
                              only: tuple[str, str] | None = None, close: Callable[[], None] | None = None,
                              location: str | None = None) -> Source:
    def tables() -> list[TablePlan]:
        # A cursor of its own leaves the caller's connection (and any result pending on it) alone.
        cur = con.cursor()
        current = cur.execute("SELECT current_database()").fetchall()[0][0]
        query = (
            "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_catalog NOT IN ('system', 'temp') "
            "ORDER BY table_catalog <> current_database(), table_catalog, table_schema, table_name"
        )
        found = cur.execute(query).fetchall()
        if only is not None:
            everything = found
            found = [row for row in found if row[0] == current and (row[1], row[2]) == only]
            if not found:
                listed = ", ".join(f"{s}.{t}" for c, s, t in everything if c == current) or "none"
                raise ScanError(f"table {only[0]}.{only[1]} not found in {location}; its tables: {listed}")
        plans: list[TablePlan] = []
        for catalog, schema, table in found:
            info = cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = ? "
                "AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [catalog, schema, table],
            ).fetchall()
            qualified = ".".join(quote_identifier(part) for part in (catalog, schema, table))
            shown = f"{schema}.{table}" if catalog == current else f"{catalog}.{schema}.{table}"
            rows = int(cur.execute(f"SELECT count(*) FROM {qualified}").fetchall()[0][0])
            columns = [_duckdb_column(c, t) for c, t in info]
            plans.append(_DuckDBTablePlan(con, qualified, shown, columns, rows, *options))
        return plans

    return Source(description, tables, close)


def _open_duckdb_file(path: Path, shown: str):
    import duckdb

    if not path.exists():
        raise ScanError(f"no such file or folder: {shown}")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        raise ScanError(f"cannot open {shown} as a DuckDB database: {_one_line(error)}") from None


def _duckdb_location(location: str, options: tuple[int, int]) -> Source:
    rest = location[len(DUCKDB_PREFIX):]
    database, _, table = rest.partition("::")
    if not database:
        raise ScanError(f"{location!r} names no database file; write duckdb:///path/to/file.duckdb[::schema.table]")
    only = None
    if table:
        schema, _, name = table.rpartition(".")
        only = (schema or "main", name)
    con = _open_duckdb_file(Path(database).expanduser(), database)
    return _duckdb_connection_source(con, location, options, only=only, close=con.close, location=database)


# ------------------------------------------------------------------ paths
def _kind_of(path: Path) -> str:
    if path.is_dir():
        return "parquet"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    for kind, known in (("parquet", PARQUET_SUFFIXES), ("csv", CSV_SUFFIXES), ("jsonl", JSONL_SUFFIXES),
                        ("duckdb", DUCKDB_SUFFIXES)):
        if last in known:
            return kind
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError as error:
        raise ScanError(f"cannot read {path}: {error.strerror or error}") from None
    if head[:4] == b"PAR1":
        return "parquet"
    if head[8:12] == b"DUCK":  # DuckDB's main header: an 8-byte checksum, then its magic bytes
        return "duckdb"
    raise ScanError(
        f"cannot tell the format of {path} from its name; scan reads Parquet (.parquet or a folder of them), "
        "CSV (.csv), JSON Lines (.jsonl, .ndjson) and DuckDB (.duckdb) files"
    )


def _table_name(path: Path) -> str:
    name = path.name
    for suffix in reversed(path.suffixes):
        if name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def _path_source(path: Path, shown: str, options: tuple[int, int]) -> Source:
    if not path.exists():
        raise ScanError(f"no such file or folder: {shown}")
    if not os.access(path, os.R_OK):
        raise ScanError(f"cannot read {shown}: permission denied")
    kind = _kind_of(path)
    if kind == "duckdb":
        con = _open_duckdb_file(path, shown)
        return _duckdb_connection_source(con, f"DuckDB {shown}", options, close=con.close, location=shown)
    if kind == "parquet":
        plan: TablePlan = _ParquetPlan(path, shown, *options)
    elif kind == "csv":
        plan = _CsvPlan(path, shown, *options)
    else:
        plan = _JsonlPlan(path, shown, *options)
    return Source(f"{ {'parquet': 'Parquet', 'csv': 'CSV', 'jsonl': 'JSON Lines'}[kind] } {shown}", lambda: [plan])


class _ParquetPlan(TablePlan):
    def __init__(self, path: Path, shown: str, sample_rows: int, seed: int):
        import pyarrow.dataset as ds

        self.shown = shown
        try:
            self.dataset = ds.dataset(str(path), format="parquet")
            schema = self.dataset.schema
            text_names = [f.name for f in schema if arrow_text_type(f.type)]
            self.groups: list[tuple[Any, int, int]] = []  # (fragment, row group, rows)
            nulls: dict[str, int | None] = dict.fromkeys(text_names, 0)
            for fragment in self.dataset.get_fragments():
                metadata = fragment.metadata
                leaves = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
                for index in range(metadata.num_row_groups):
                    group = metadata.row_group(index)
                    self.groups.append((fragment, index, group.num_rows))
                    for name in text_names:
                        stats = group.column(leaves[name]).statistics if name in leaves else None
                        if stats is None or not stats.has_null_count or nulls[name] is None:
                            nulls[name] = None  # unknown: the sample will tell
                        else:
                            nulls[name] += stats.null_count
        except (pa.ArrowInvalid, OSError) as error:
            raise ScanError(f"cannot read {shown} as Parquet: {_one_line(error)}") from None
        if not self.dataset.files:
            raise ScanError(f"{shown} holds no Parquet files")
        rows = sum(count for _, _, count in self.groups)
        columns = [_arrow_column(f.name, f.type, nulls.get(f.name), rows) for f in schema]
        super().__init__(_table_name(path), columns, rows, sample_rows, seed)

    def _read(self, names: list[str]) -> pa.Table:
        wanted = sample_indices(self.rows_total or 0, self.sample_rows, self.seed)
        pieces = []
        start = 0
        try:
            for fragment, index, count in self.groups:
                lo, hi = np.searchsorted(wanted, [start, start + count])
                if hi > lo:  # row groups without a sampled row are never read
                    pieces.append(_take_from_row_group(fragment, index, names, wanted[lo:hi] - start))
                start += count
        except (pa.ArrowInvalid, OSError) as error:
            raise ScanError(f"cannot read {self.shown} as Parquet: {_one_line(error)}") from None
        if not pieces:
            return pa.schema([self.dataset.schema.field(n) for n in names]).empty_table()
        return pa.concat_tables(pieces, promote_options="permissive")


def _take_from_row_group(fragment: Any, index: int, names: list[str], local: np.ndarray) -> pa.Table:
    """The rows at ``local`` offsets of one row group, read batch by batch, the named columns only."""
    pieces = []
    offset = 0
    for batch in fragment.subset(row_group_ids=[index]).to_batches(columns=names, batch_size=BATCH_ROWS):
        lo, hi = np.searchsorted(local, [offset, offset + batch.num_rows])
        if hi > lo:
            pieces.append(pa.Table.from_batches([batch]).take(pa.array(local[lo:hi] - offset)))
        offset += batch.num_rows
        if hi >= len(local):
            break  # the rest of the row group holds no sampled row
    return pa.concat_tables(pieces)


class _StreamedPlan(TablePlan):
    """CSV and JSON Lines: one pass keeps the sample; column types come from the sampled values."""

    infer_types = False  # CSV: type text cells as pyarrow.csv would (JSON values carry their own types)

    def __init__(self, path: Path, shown: str, sample_rows: int, seed: int):
        self.path, self.shown = path, shown
        self._sample: pa.Table | None = None
        super().__init__(_table_name(path), [], None, sample_rows, seed)

    def _load(self) -> pa.Table:
        if self._sample is None:
            self._sample, self._rows_total = self._stream()
            columns = []
            for field in self._sample.schema:
                column = self._sample.column(field.name)
                if self.infer_types and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
                    inferred = infer_text_type(column.combine_chunks())
                    if inferred is not None:
                        columns.append(ColumnInfo(field.name, inferred, False, f"values are {inferred}, not text"))
                        continue
                columns.append(_arrow_column(field.name, field.type, column.null_count,
                                             self._sample.num_rows if self._rows_total == self._sample.num_rows else None))
            self._columns = columns
        return self._sample

    @property
    def columns(self) -> list[ColumnInfo]:
        self._load()
        return self._columns

    @property
    def rows_total(self) -> int | None:
        self._load()
        return self._rows_total

    def _read(self, names: list[str]) -> pa.Table:
        return self._load().select(names)

    def _stream(self) -> tuple[pa.Table, int]:  # pragma: no cover - subclasses
        raise NotImplementedError


class _CsvPlan(_StreamedPlan):
    infer_types = True

    def _stream(self) -> tuple[pa.Table, int]:
        import pyarrow.csv as pcsv

        is_tsv = ".tsv" in [s.lower() for s in self.path.suffixes]
        parse = pcsv.ParseOptions(delimiter="\t" if is_tsv else ",")
        read = pcsv.ReadOptions(block_size=1 << 22)
        try:
            with pcsv.open_csv(str(self.path), read_options=read, parse_options=parse) as probe:
                names = probe.schema.names
            # Every column as text (a later block then cannot fail to convert); only an empty
            # cell is null. The sample is typed afterwards, as pyarrow would type the file.
            convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                          null_values=[""])
            sampler = _KeySampler(self.sample_rows, self.seed)
            with pcsv.open_csv(str(self.path), read_options=read, parse_options=parse, convert_options=convert) as reader:
                schema = reader.schema
                for batch in reader:
                    sampler.add(pa.Table.from_batches([batch]))
        except (pa.ArrowInvalid, OSError) as error:
            raise ScanError(f"cannot read {self.shown} as CSV: {_one_line(error)}") from None
        return sampler.result(schema), sampler.seen


class _JsonlPlan(_StreamedPlan):
    def _stream(self) -> tuple[pa.Table, int]:
        import pyarrow.json as pj

        # Lines are sampled as raw bytes and only the kept ones are parsed: memory is
        # bounded by the sample and every sampled row is typed alike.
        sampler = _KeySampler(self.sample_rows, self.seed)
        lines: list[bytes] = []
        numbers: list[int] = []
        try:
            with open(self.path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if raw.strip():
                        lines.append(raw.strip())
                        numbers.append(number)
                    if len(lines) >= BATCH_ROWS:
                        sampler.add(pa.table({"line": pa.array(lines, pa.binary()), "number": numbers}))
                        lines, numbers = [], []
            if lines:
                sampler.add(pa.table({"line": pa.array(lines, pa.binary()), "number": numbers}))
        except OSError as error:
            raise ScanError(f"cannot read {self.shown}: {error.strerror or error}") from None
        kept = sampler.result(pa.schema([("line", pa.binary()), ("number", pa.int64())]))
        if kept.num_rows == 0:
            return pa.table({}), 0
        for line, number in zip(kept.column("line").to_pylist(), kept.column("number").to_pylist()):
            # pyarrow's reader names no line; a first check on the sampled lines does.
            try:
                value = json.loads(line)
            except ValueError as error:
                raise ScanError(f"cannot parse {self.shown} line {number} as JSON: {error}") from None
            if not isinstance(value, dict):
                raise ScanError(f"{self.shown} line {number} is not a JSON object; JSON Lines needs one object per line")
        data = b"\n".join(kept.column("line").to_pylist())
        try:
            table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=len(data) + 1))
        except pa.ArrowInvalid as error:
            raise ScanError(f"cannot read {self.shown} as JSON Lines: {_one_line(error)}") from None
        return table, sampler.seen
