"""DuckDB inputs to scan: a connection (every base table of every schema), a database file opened read-only,
or a ``duckdb:///path.db::schema.table`` location; sampled with ``USING SAMPLE reservoir(N ROWS) REPEATABLE (seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from pii_frames.discovery.plans import ColumnInfo, ScanError, Source, TablePlan, one_line

__all__ = ["DUCKDB_PREFIX", "RelationPlan", "duckdb_connection_source", "duckdb_location", "open_duckdb_file",
           "quote_identifier"]

DUCKDB_PREFIX = "duckdb://"


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


class RelationPlan(TablePlan):
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


def duckdb_connection_source(con: Any, description: str, options: tuple[int, int], *,
                             only: tuple[str, str] | None = None, close: Callable[[], None] | None = None,
                             location: str | None = None) -> Source:
    """The base tables of ``con`` (only the ``(schema, table)`` ``only`` when given) as a :class:`Source`."""
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


def open_duckdb_file(path: Path, shown: str):
    """A read-only DuckDB connection to ``path``, or a ScanError naming ``shown``."""
    import duckdb

    if not path.exists():
        raise ScanError(f"no such file or folder: {shown}")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        raise ScanError(f"cannot open {shown} as a DuckDB database: {one_line(error)}") from None


def duckdb_location(location: str, options: tuple[int, int]) -> Source:
    """The Source of a ``duckdb:///file.duckdb[::schema.table]`` location."""
    rest = location[len(DUCKDB_PREFIX):]
    database, _, table = rest.partition("::")
    if not database:
        raise ScanError(f"{location!r} names no database file; write duckdb:///path/to/file.duckdb[::schema.table]")
    only = None
    if table:
        schema, _, name = table.rpartition(".")
        only = (schema or "main", name)
    con = open_duckdb_file(Path(database).expanduser(), database)
    return duckdb_connection_source(con, location, options, only=only, close=con.close, location=database)
