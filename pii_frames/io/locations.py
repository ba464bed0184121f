"""Where a table job reads from and writes to: Parquet files/folders and DuckDB tables.

(Moved here from ``pii_frames.airflow.tables``, which re-exports it.)

A location is written as a plain string so it can travel through Airflow
params, templates and XCom:

- ``/data/tickets.parquet`` or ``/data/tickets/`` (a folder of ``*.parquet``
  files, read in sorted path order; names starting with ``_`` or ``.`` are
  skipped, as Spark/Hive/pyarrow do),
- ``duckdb:///abs/path/warehouse.db::schema.table`` or
  ``duckdb://relative/path.db::table`` (schema defaults to ``main``),
- a SQL table, ``{"conn_id": "warehouse", "table": "raw.tickets", "key": "id"}``
  or ``postgresql+psycopg://user@host/db::raw.tickets?key=id`` (see :mod:`pii_frames.io.sql`).

Two locations *conflict* when writing one could change the other's data:
Parquet paths that are the same or nested (through ``..``, symlinks and hard
links), a Parquet path and a DuckDB database file likewise, and two DuckDB
tables of one database whose names DuckDB considers equal (it folds ASCII
case, quoted or not). See :func:`conflicts`.

Nothing here imports Airflow; the operators and TaskFlow tasks in
:mod:`pii_frames.airflow.operators` are thin wrappers over this module and
:mod:`pii_frames.airflow.jobs`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pii_frames.io.paths import fold_duckdb_identifier, overlaps, same_location
from pii_frames.io.sql import SQLLocation, is_sql_location, parse_sql_location

__all__ = [
    "DUCKDB_PREFIX", "DuckDBLocation", "Location", "ParquetLocation", "conflicts", "connect_duckdb",
    "describe_parquet_row", "duckdb_table_comment", "duckdb_table_exists", "find_duckdb_relation", "first_row",
    "is_text_type", "list_parquet_files", "parse_location", "plan_duckdb_ranges", "plan_parquet_pieces",
    "SQLLocation", "quote_identifier", "read_duckdb_range", "read_duckdb_schema", "read_parquet_pieces", "read_parquet_schema",
]

DUCKDB_PREFIX = "duckdb://"


@dataclass(frozen=True)
class ParquetLocation:
    """A Parquet file, or a folder of Parquet files, given by an absolute path."""

    path: str

    @property
    def uri(self) -> str:
        return self.path

    @property
    def asset_uri(self) -> str:
        return "file://" + self.path

    @property
    def footprint(self) -> str:
        """The file or folder a write to this location replaces."""
        return self.path

    def describe(self) -> str:
        return f"Parquet {self.path}"


@dataclass(frozen=True)
class DuckDBLocation:
    """A table inside a DuckDB database file."""

    database: str
    schema: str
    table: str

    @property
    def uri(self) -> str:
        return f"{DUCKDB_PREFIX}{self.database}::{self.schema}.{self.table}"

    @property
    def asset_uri(self) -> str:
        return f"duckdb://{self.database}?table={self.schema}.{self.table}"

    @property
    def qualified_name(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.table)}"

    @property
    def footprint(self) -> str:
        """The database file holding the table."""
        return self.database

    def with_table(self, table: str) -> DuckDBLocation:
        return DuckDBLocation(self.database, self.schema, table)

    def same_table(self, other: DuckDBLocation) -> bool:
        """Whether ``other`` names this very table, by DuckDB's rules (same file, names equal up to ASCII case).

        >>> DuckDBLocation("/w.db", "main", "raw_tickets").same_table(DuckDBLocation("/w.db", "MAIN", "RAW_TICKETS"))
        True
        """
        return (
            fold_duckdb_identifier(self.schema) == fold_duckdb_identifier(other.schema)
            and fold_duckdb_identifier(self.table) == fold_duckdb_identifier(other.table)
            and same_location(self.database, other.database)
        )

    def describe(self) -> str:
        return f"DuckDB table {self.schema}.{self.table} in {self.database}"


Location = ParquetLocation | DuckDBLocation | SQLLocation


def conflicts(first: Location, second: Location) -> bool:
    """Whether writing one location could overwrite or change the data of the other.

    Two DuckDB locations in one database conflict only when they are the same
    table; any other pair conflicts when their files/folders are the same or
    nested (``..``, symlinks and hard links resolved).

    >>> conflicts(parse_location("duckdb:///w.db::main.raw"), parse_location("duckdb:///w.db::main.RAW"))
    True
    >>> conflicts(parse_location("/data/raw"), parse_location("/data/raw/../raw/clean"))
    True
    >>> conflicts(parse_location("/data/raw"), parse_location("/data/raw_clean"))
    False
    """
    if isinstance(first, SQLLocation) or isinstance(second, SQLLocation):
        # A SQL table and a file never share storage; two SQL locations do when they name one table.
        return isinstance(first, SQLLocation) and isinstance(second, SQLLocation) and first.same_table(second)
    if isinstance(first, DuckDBLocation) and isinstance(second, DuckDBLocation) and same_location(
        first.database, second.database
    ):
        return first.same_table(second)
    return overlaps(first.footprint, second.footprint)


def quote_identifier(name: str) -> str:
    """Quote a SQL identifier for DuckDB (double quotes, embedded quotes doubled).

    >>> quote_identifier('my "odd" table')
    '"my ""odd"" table"'
    """
    return '"' + name.replace('"', '""') + '"'


def parse_location(text: str, *, role: str = "source") -> Location:
    """Parse a location string into a :class:`ParquetLocation` or :class:`DuckDBLocation`.

    ``role`` ("source" or "destination") only makes error messages precise.

    >>> parse_location("duckdb:///tmp/w.db::raw.tickets")
    DuckDBLocation(database='/tmp/w.db', schema='raw', table='tickets')
    >>> parse_location("/tmp/out/").path
    '/tmp/out'
    >>> parse_location({"conn_id": "warehouse", "table": "raw.tickets", "key": "id"}).uri
    'airflow-conn://warehouse::raw.tickets?key=id'
    """
    if is_sql_location(text):
        return parse_sql_location(text, role=role)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"{role} must be a Parquet path or 'duckdb:///path.db::schema.table', got {text!r}"
        )
    text = text.strip()
    if text.startswith(DUCKDB_PREFIX):
        body = text[len(DUCKDB_PREFIX):]
        database, sep, table_part = body.rpartition("::")
        if not sep or not database or not table_part:
            raise ValueError(
                f"{role} {text!r} names no table; write it as 'duckdb:///path/to/file.db::schema.table'"
            )
        parts = table_part.split(".")
        if len(parts) == 1:
            schema, table = "main", parts[0]
        elif len(parts) == 2:
            schema, table = parts
        else:
            raise ValueError(
                f"{role} {text!r}: the table must be 'table' or 'schema.table', got {table_part!r}"
            )
        if not schema or not table:
            raise ValueError(f"{role} {text!r}: empty schema or table name in {table_part!r}")
        return DuckDBLocation(os.path.abspath(os.path.expanduser(database)), schema, table)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        raise ValueError(
            f"{role} {text!r}: only local/shared-filesystem Parquet paths and duckdb:// tables are supported"
        )
    return ParquetLocation(os.path.abspath(os.path.expanduser(text)).rstrip(os.sep) or os.sep)


# --------------------------------------------------------------------------- Parquet


def list_parquet_files(location: ParquetLocation) -> list[str]:
    """Return the Parquet files of a file or folder location, in a stable order.

    >>> list_parquet_files(ParquetLocation("/nonexistent/x.parquet"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: source Parquet path /nonexistent/x.parquet does not exist; check the 'source' parameter
    """
    path = location.path
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"source Parquet path {path} does not exist; check the 'source' parameter")
    found = []
    for root, dirs, files in os.walk(path):
        # Hidden and underscore folders hold temporary or metadata files in every Parquet writer.
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in files:
            if name.endswith(".parquet") and not name.startswith(("_", ".")):
                found.append(os.path.join(root, name))
    if not found:
        raise FileNotFoundError(f"source folder {path} holds no *.parquet files")
    return sorted(found)


def read_parquet_schema(files: list[str]) -> pa.Schema:
    """The common Arrow schema of Parquet files; differing files are an error naming the file."""
    first = pq.read_schema(files[0]).remove_metadata()
    for other in files[1:]:
        schema = pq.read_schema(other).remove_metadata()
        if not schema.equals(first):
            raise ValueError(
                f"Parquet file {other} has schema {schema} but {files[0]} has {first}; "
                "rewrite the files with one schema or sanitize them as separate sources"
            )
    return first


def plan_parquet_pieces(files: list[str], rows_per_chunk: int) -> list[dict[str, Any]]:
    """Group row groups into chunks of at most ``rows_per_chunk`` rows.

    Whole row groups are packed together while they fit; a row group larger than
    the target is split into near-equal row ranges. Each chunk is a dict with
    ``rows`` and ``pieces`` (``file``, ``row_group``, ``offset``, ``length``).
    """
    chunks: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    current_rows = 0

    def flush() -> None:
        nonlocal current, current_rows
        if current:
            chunks.append({"rows": current_rows, "pieces": current})
        current, current_rows = [], 0

    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            n = metadata.row_group(group).num_rows
            if n == 0:
                continue
            if n > rows_per_chunk:
                flush()
                parts = math.ceil(n / rows_per_chunk)
                bounds = [round(i * n / parts) for i in range(parts + 1)]
                for lo, hi in zip(bounds, bounds[1:]):
                    chunks.append({"rows": hi - lo, "pieces": [_piece(path, group, lo, hi - lo)]})
                continue
            if current_rows + n > rows_per_chunk:
                flush()
            current.append(_piece(path, group, 0, n))
            current_rows += n
    flush()
    return chunks


def _piece(path: str, group: int, offset: int, length: int) -> dict[str, Any]:
    return {"file": path, "row_group": group, "offset": offset, "length": length}


def read_parquet_pieces(pieces: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Read a chunk's row-group pieces into one table with the planned schema."""
    tables = []
    open_files: dict[str, pq.ParquetFile] = {}
    for piece in pieces:
        path = piece["file"]
        if path not in open_files:
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"Parquet file {path} was planned but is gone; the source changed during the run, re-run the DAG"
                )
            open_files[path] = pq.ParquetFile(path)
        group = open_files[path].read_row_group(piece["row_group"])
        tables.append(group.slice(piece["offset"], piece["length"]))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).cast(schema)


def describe_parquet_row(pieces: list[dict[str, Any]], row: int) -> str:
    """Where row ``row`` of a chunk read by :func:`read_parquet_pieces` lives: its file and row number there.

    Only used for error messages, so the file metadata is read lazily.
    """
    for piece in pieces:
        if row < piece["length"]:
            metadata = pq.ParquetFile(piece["file"]).metadata
            before = sum(metadata.row_group(g).num_rows for g in range(piece["row_group"]))
            return f"{piece['file']} row {before + piece['offset'] + row}"
        row -= piece["length"]
    return f"row {row} past the end of the chunk"


# --------------------------------------------------------------------------- DuckDB


def connect_duckdb(location: DuckDBLocation, *, read_only: bool):
    """Open the location's database file (read-only sources never take the write lock)."""
    import duckdb

    if read_only and not os.path.exists(location.database):
        raise FileNotFoundError(
            f"DuckDB database {location.database} does not exist; check the 'source' parameter"
        )
    os.makedirs(os.path.dirname(location.database) or ".", exist_ok=True)
    return duckdb.connect(location.database, read_only=read_only)


def first_row(con, query: str, params: list | None = None) -> tuple | None:
    """The first row of a query, reading the result to the end (DuckDB 2 keeps unfinished results open)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0] if rows else None


def find_duckdb_relation(con, location: DuckDBLocation) -> tuple[str, str, str] | None:
    """``(schema, name, type)`` of the table or view DuckDB resolves ``location`` to, or None.

    Matches names the way DuckDB does (ASCII case folded), so ``main.RAW`` finds
    a table created as ``main.raw``; ``type`` is ``BASE TABLE``, ``VIEW``...
    """
    rows = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database()"
    ).fetchall()
    schema, table = fold_duckdb_identifier(location.schema), fold_duckdb_identifier(location.table)
    for row in rows:
        if fold_duckdb_identifier(row[0]) == schema and fold_duckdb_identifier(row[1]) == table:
            return str(row[0]), str(row[1]), str(row[2])
    return None


def duckdb_table_exists(con, location: DuckDBLocation) -> bool:
    """Whether a table or view DuckDB would resolve ``location`` to exists (names matched as DuckDB does)."""
    return find_duckdb_relation(con, location) is not None


def duckdb_table_comment(con, location: DuckDBLocation) -> str | None:
    """The comment of the table (or view) DuckDB resolves ``location`` to, or None."""
    found = find_duckdb_relation(con, location)
    if found is None:
        return None
    catalog = "duckdb_views()" if found[2] == "VIEW" else "duckdb_tables()"
    row = first_row(
        con,
        f"SELECT comment FROM {catalog} WHERE database_name = current_database() "
        "AND schema_name = ? AND " + ("view_name" if found[2] == "VIEW" else "table_name") + " = ?",
        [found[0], found[1]],
    )
    return None if not row or row[0] is None else str(row[0])


def read_duckdb_schema(con, location: DuckDBLocation) -> pa.Schema:
    found = find_duckdb_relation(con, location)
    if found is None:
        raise ValueError(f"{location.describe()} does not exist; check the 'source' parameter")
    if found[2] != "BASE TABLE":
        raise ValueError(
            f"{location.describe()} is a {found[2].lower()}; chunks are row-id ranges, so materialize it "
            "as a table first (CREATE TABLE ... AS SELECT ...)"
        )
    return con.sql(f"SELECT * FROM {location.qualified_name} LIMIT 0").to_arrow_table().schema


def plan_duckdb_ranges(con, location: DuckDBLocation, rows_per_chunk: int, max_chunks: int) -> list[dict[str, Any]]:
    """Split a DuckDB table into ``rowid`` ranges of about ``rows_per_chunk`` rows.

    Each chunk is a dict with ``rows``, ``rowid_start`` and ``rowid_stop`` (end-exclusive).
    """
    low, high = first_row(con, f"SELECT min(rowid), max(rowid) FROM {location.qualified_name}")
    if low is None:
        return []
    span = high - low + 1
    width = max(rows_per_chunk, math.ceil(span / max_chunks))
    counts = dict(
        con.execute(
            f"SELECT (rowid - {int(low)}) // {int(width)} AS k, count(*) FROM {location.qualified_name} GROUP BY k"
        ).fetchall()
    )
    chunks = []
    for k in range(math.ceil(span / width)):
        start = low + k * width
        chunks.append({"rows": int(counts.get(k, 0)), "rowid_start": int(start), "rowid_stop": int(start + width)})
    return [c for c in chunks if c["rows"] > 0]


def read_duckdb_range(con, location: DuckDBLocation, start: int, stop: int, schema: pa.Schema) -> pa.Table:
    table = con.sql(
        f"SELECT * FROM {location.qualified_name} WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
        params=[start, stop],
    ).to_arrow_table()
    return table.replace_schema_metadata(None).cast(schema)


def is_text_type(data_type: pa.DataType) -> bool:
    """True for Arrow types a text column may have (string, large/view strings, dictionary of them, null)."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
        or pa.types.is_null(data_type)
    )
