"""Turn each kind of scan input into tables of columns with a reproducible random row sample.

:func:`open_source` accepts a Polars DataFrame or LazyFrame, a pandas
DataFrame, an Arrow Table or RecordBatch, a DuckDB relation or connection
(every base table of every schema), a mapping of table name to any of
those, or a path: a Parquet file or folder, a CSV or JSON Lines file, a
DuckDB database file (opened read-only) or a ``duckdb:///path.db::schema.table``
location as the Airflow operators write them.

Each table is a :class:`~pii_frames.discovery.plans.TablePlan`: its name, its columns with their type
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

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pii_frames.discovery.databases import DUCKDB_PREFIX, duckdb_connection_source, duckdb_location
from pii_frames.discovery.files import path_source
from pii_frames.discovery.frames import frame_plan
from pii_frames.discovery.plans import Source

__all__ = ["open_source", "DUCKDB_PREFIX"]


def open_source(data: Any, *, sample_rows: int = 1000, seed: int = 0, name: str | None = None) -> Source:
    """A :class:`Source` for ``data`` (see the module docstring for what is accepted).

    ``name`` names the table of a single frame (default ``"data"``; paths use
    the file or folder name, DuckDB ``schema.table``). Raises
    :class:`ScanError` for a missing, unreadable or unrecognised path and
    :class:`TypeError` for an object scan cannot read.

    >>> open_source("/nonexistent/tickets.parquet")
    Traceback (most recent call last):
    ...
    pii_frames.discovery.plans.ScanError: no such file or folder: /nonexistent/tickets.parquet
    """
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows <= 0:
        raise ValueError(f"sample_rows must be a positive integer, got {sample_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    options = (sample_rows, seed)
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith(DUCKDB_PREFIX):
            return duckdb_location(text, options)
        return path_source(Path(text).expanduser(), text, options)
    if isinstance(data, Mapping):
        plans = [frame_plan(frame, table, options, required=True) for table, frame in data.items()]
        return Source(f"{len(plans)} tables", lambda: plans)
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(data, duckdb.DuckDBPyConnection):
        return duckdb_connection_source(data, "DuckDB connection", options)
    plan = frame_plan(data, name or "data", options, required=True)
    return Source(f"{type(data).__module__.split('.')[0]}.{type(data).__name__}", lambda: [plan])
