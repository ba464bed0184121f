"""Files to scan: Parquet files and folders (only the row groups that hold sampled rows are read), CSV and
JSON Lines (one streaming pass keeps the sample), and DuckDB database files (handed to
:mod:`~pii_frames.discovery.databases`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pii_frames.discovery.databases import duckdb_connection_source, open_duckdb_file
from pii_frames.discovery.plans import (
    ColumnInfo,
    KeySampler,
    ScanError,
    Source,
    TablePlan,
    arrow_column,
    arrow_text_type,
    infer_text_type,
    one_line,
    sample_indices,
)

__all__ = ["path_source"]

PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
CSV_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
DUCKDB_SUFFIXES = {".duckdb", ".ddb", ".db"}
COMPRESSION_SUFFIXES = {".gz", ".bz2", ".zst", ".lz4"}
# Rows read per batch when streaming Parquet row groups, CSV and JSON Lines.
BATCH_ROWS = 65_536


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


def path_source(path: Path, shown: str, options: tuple[int, int]) -> Source:
    """The Source of a file or folder (``shown`` is how the user wrote it), its format told by name or magic bytes."""
    if not path.exists():
        raise ScanError(f"no such file or folder: {shown}")
    if not os.access(path, os.R_OK):
        raise ScanError(f"cannot read {shown}: permission denied")
    kind = _kind_of(path)
    if kind == "duckdb":
        con = open_duckdb_file(path, shown)
        return duckdb_connection_source(con, f"DuckDB {shown}", options, close=con.close, location=shown)
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
            raise ScanError(f"cannot read {shown} as Parquet: {one_line(error)}") from None
        if not self.dataset.files:
            raise ScanError(f"{shown} holds no Parquet files")
        rows = sum(count for _, _, count in self.groups)
        columns = [arrow_column(f.name, f.type, nulls.get(f.name), rows) for f in schema]
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
            raise ScanError(f"cannot read {self.shown} as Parquet: {one_line(error)}") from None
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
                columns.append(arrow_column(field.name, field.type, column.null_count,
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
            sampler = KeySampler(self.sample_rows, self.seed)
            with pcsv.open_csv(str(self.path), read_options=read, parse_options=parse, convert_options=convert) as reader:
                schema = reader.schema
                for batch in reader:
                    sampler.add(pa.Table.from_batches([batch]))
        except (pa.ArrowInvalid, OSError) as error:
            raise ScanError(f"cannot read {self.shown} as CSV: {one_line(error)}") from None
        return sampler.result(schema), sampler.seen


class _JsonlPlan(_StreamedPlan):
    def _stream(self) -> tuple[pa.Table, int]:
        import pyarrow.json as pj

        # Lines are sampled as raw bytes and only the kept ones are parsed: memory is
        # bounded by the sample and every sampled row is typed alike.
        sampler = KeySampler(self.sample_rows, self.seed)
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
            raise ScanError(f"cannot read {self.shown} as JSON Lines: {one_line(error)}") from None
        return table, sampler.seen
