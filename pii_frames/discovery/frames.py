"""In-memory tables to scan: Arrow Tables and RecordBatches, Polars DataFrames and LazyFrames, pandas
DataFrames and DuckDB relations, each a :class:`~pii_frames.discovery.plans.TablePlan`.

>>> import pyarrow as pa
>>> frame_plan(pa.table({"id": [1], "note": ["a"]}), "t", (10, 0), required=True).rows_total
1
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pii_frames.discovery.databases import RelationPlan
from pii_frames.discovery.plans import ColumnInfo, TablePlan, all_null_reason, arrow_column, sample_indices

__all__ = ["frame_plan"]


def frame_plan(data: Any, name: Any, options: tuple[int, int], *, required: bool) -> TablePlan:
    """The plan of one in-memory table; ``options`` is ``(sample_rows, seed)``. A TypeError names what it cannot read."""
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
        return RelationPlan(data, name, *options)
    raise TypeError(
        f"scan() cannot read a {type(data).__module__}.{type(data).__name__}"
        + (f" (table {name!r})" if name != "data" else "")
        + "; pass a Polars or pandas DataFrame, a Polars LazyFrame, a pyarrow Table, a DuckDB relation or "
        "connection, a mapping of table names to those, or a path (Parquet file or folder, CSV, JSON Lines, "
        ".duckdb file, duckdb:///file.duckdb::schema.table)"
    )


class _ArrowPlan(TablePlan):
    def __init__(self, table: pa.Table, name: str, sample_rows: int, seed: int):
        rows = table.num_rows
        columns = [arrow_column(f.name, f.type, table.column(f.name).null_count, rows) for f in table.schema]
        super().__init__(name, columns, rows, sample_rows, seed)
        self.table = table

    def _read(self, names: list[str]) -> pa.Table:
        indices = sample_indices(self.table.num_rows, self.sample_rows, self.seed)
        return self.table.select(names).take(pa.array(indices))


def _polars_column(name: str, dtype: Any, null_count: Callable[[], int] | None, rows: int | None) -> ColumnInfo:
    import polars as pl

    if dtype == pl.Null:
        return ColumnInfo(name, str(dtype), True, all_null_reason(rows))
    if not (dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))):
        return ColumnInfo(name, str(dtype), False, f"type {dtype} is not text")
    if rows and null_count is not None and null_count() >= rows:
        return ColumnInfo(name, str(dtype), True, all_null_reason(rows))
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
                columns.append(ColumnInfo(label, str(dtype), True, all_null_reason(rows)))
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
