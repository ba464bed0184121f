"""Stream Parquet, CSV and JSON Lines files batch by batch, and write them atomically.

(Moved here from ``pii_frames/cli.py``, where they were the ``table`` command's
``_Source`` and ``_Sink``.)

- :class:`FileSource` yields pyarrow Tables of at most ``batch_rows`` rows, for
  every format (CSV too: the reader's block size follows ``batch_rows`` and its
  blocks are re-cut to exactly that many rows), with the text columns checked
  for invalid UTF-8 (:func:`pii_frames.io.text.null_invalid_utf8`).
- :class:`FileSink` writes Tables to a temporary file beside the output and
  renames it into place on :meth:`~FileSink.commit`; earlier runs' temporaries
  left by a crash are swept when the next sink for that output opens.
- :func:`check_output_path` refuses an output that is an input (through ``..``,
  symlinks or hard links) or lies inside an input folder.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pii_frames.io import atomic
from pii_frames.io.paths import inside, resolved, same_location
from pii_frames.io.text import InvalidTextError, null_invalid_utf8

FORMATS = ("parquet", "csv", "jsonl")
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl"}
#: CSV blocks hold about ``batch_rows`` rows, within these bounds (a block must hold the longest row:
#: when one does not, the file is re-read from that row on with 4x larger blocks).
CSV_BLOCK_MIN = 1 << 20
CSV_BLOCK_MAX = 64 << 20
CSV_BLOCK_LIMIT = 1 << 30
#: What to do about a text cell the encoding rejects, in every format's message.
BAD_TEXT_HINT = ("pass --encoding with the file's encoding (e.g. --encoding latin-1), or --on-error null to write "
                 "null for such cells and keep the other rows")


class TableIOError(ValueError):
    """An input or output that cannot be used, with a message naming the file and what to do.

    ``usage`` is True for mistakes in how the output or format was given (the
    CLI exits with status 2 for those).
    """

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def one_line(error: BaseException) -> str:
    """An exception's message on one line (Arrow's messages span several).

    >>> one_line(ValueError("a\\n  b"))
    'a b'
    """
    return " ".join(str(error).split())


def format_of(path: str, explicit: str | None, role: str) -> str:
    """The format of ``path`` ("parquet", "csv" or "jsonl"): ``explicit``, else from its extension.

    ``role`` is "input" or "output"; a folder input is Parquet.

    >>> format_of("clean.csv.gz", None, "output")
    'csv'
    """
    if explicit:
        return explicit
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".lz4"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in EXTENSIONS:
        return EXTENSIONS[suffixes[-1]]
    if role == "input" and Path(path).is_dir():
        return "parquet"
    raise TableIOError(f"cannot tell the {role} format of {path!r} from its extension; pass "
                       f"{'--format' if role == 'input' else '--out-format'} parquet|csv|jsonl", usage=True)


def check_output_path(output: str, inputs: Sequence[str]) -> None:
    """Refuse an output that would replace an input or be read back as part of one.

    The same file (also through ``..``, symlinks and hard links), a path inside
    an input folder, and an output that is an existing folder are refused.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> try:
    ...     check_output_path(os.path.join(folder, "clean.parquet"), [folder])
    ... except TableIOError as error:
    ...     print(str(error).replace(folder, "DS"))
    output DS/clean.parquet is inside the input folder DS; write it outside the folder, or it is read back as input on the next run
    """
    for source in inputs:
        if same_location(output, source):
            raise TableIOError(f"output {output} is the input {source} (same file: {resolved(source)}); "
                               "write to another path, the input must stay as it is")
        if inside(output, source):
            raise TableIOError(f"output {output} is inside the input folder {source}; write it outside the folder, "
                               "or it is read back as input on the next run")
    if os.path.isdir(output):
        raise TableIOError(f"output {output} is a folder; give a file path such as {os.path.join(output, 'clean.parquet')}")


def check_columns(schema, columns: Sequence[str], path: str, *, csv: bool = False) -> None:
    """Every column is present and (unless read from CSV, where all is text) holds text."""
    from pii_frames.io.locations import is_text_type

    for column in columns:
        if column not in schema.names:
            raise TableIOError(f"column {column!r} not found in {path}; its columns are: {', '.join(schema.names)}")
        if not csv and not is_text_type(schema.field(column).type):
            raise TableIOError(f"column {column!r} in {path} has type {schema.field(column).type}, not text; "
                               "only text columns can be redacted")


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TableIOError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None


def decode_bytes(data: bytes, encoding: str, source: str) -> str:
    """``data`` decoded, or a TableIOError naming ``source``, the byte and its offset."""
    try:
        return data.decode(encoding)
    except LookupError:
        raise TableIOError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None
    except UnicodeDecodeError as error:
        raise TableIOError(
            f"{source} is not valid {encoding} (byte {data[error.start]:#04x} at offset {error.start}); "
            "pass --encoding with the file's encoding, e.g. --encoding latin-1"
        ) from None


class FileSource:
    """Batches of an input file (or folder of Parquet files) as pyarrow Tables.

    Each batch has at most ``batch_rows`` rows. The text ``columns`` are checked
    for invalid UTF-8: ``on_error="raise"`` stops naming the column and row (rows
    counted from 0 over the whole input, header excluded), ``"null"`` sets those
    cells to null with a warning. ``total_rows`` is the row count when known
    cheaply (Parquet), else None.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "in.csv")
    >>> _ = open(path, "w").write("id,body\\n1,hello\\n2,\\n3,world\\n")
    >>> [t.column("body").to_pylist() for t in FileSource(path, "csv", ["body"], batch_rows=2)]
    [['hello', None], ['world']]
    """

    def __init__(self, path: str, fmt: str, columns: Sequence[str], batch_rows: int, encoding: str = "utf-8",
                 on_error: str = "raise"):
        if not os.path.exists(path):
            raise TableIOError(f"input not found: {path}")
        if batch_rows <= 0:
            raise TableIOError("batch_rows must be positive", usage=True)
        self.path, self.fmt, self.columns = path, fmt, list(columns)
        self.batch_rows, self.encoding, self.on_error = batch_rows, encoding, on_error
        self.total_rows: int | None = None
        self.rows_read = 0
        getattr(self, f"_open_{fmt}")()

    # ------------------------------------------------------------------ open
    def _open_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.dataset as ds

        try:
            self._dataset = ds.dataset(self.path, format="parquet")
            self.schema = self._dataset.schema
            self.total_rows = self._dataset.count_rows()
        except (pa.ArrowInvalid, OSError) as error:
            raise TableIOError(f"cannot read {self.path} as Parquet: {one_line(error)}") from None
        check_columns(self.schema, self.columns, self.path)

    def _open_csv(self) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        _check_encoding(self.encoding)
        self._block_size = self._csv_block_size()
        try:
            with pcsv.open_csv(self.path, read_options=self._csv_read_options(self._block_size)) as probe:
                names = probe.schema.names
        except (pa.ArrowInvalid, OSError) as error:
            raise TableIOError(f"cannot read {self.path} as CSV: {one_line(error)}") from None
        self.schema = pa.schema([(n, pa.string()) for n in names])
        check_columns(self.schema, self.columns, self.path, csv=True)
        # CSV has no types: every column is read as text, so nothing is reinterpreted on the way
        # through; only an empty cell is null ("NA", "null"... are kept as written). The columns to
        # redact are read as bytes, so that a cell with bad bytes is found and named instead of
        # failing the whole file.
        self._convert_options = pcsv.ConvertOptions(
            column_types={n: (pa.binary() if n in self.columns else pa.string()) for n in names},
            strings_can_be_null=True, null_values=[""],
        )

    def _csv_read_options(self, block_size: int):
        import pyarrow.csv as pcsv

        return pcsv.ReadOptions(encoding=self.encoding, block_size=block_size)

    def _csv_block_size(self) -> int:
        """About ``batch_rows`` rows' worth of bytes, estimated from the file's first MiB."""
        with open(self.path, "rb") as handle:
            sample = handle.read(CSV_BLOCK_MIN)
        lines = sample.split(b"\n")
        per_row = len(sample) / max(len(lines) - 1, 1)
        longest = max((len(line) for line in lines), default=0)
        wanted = int(per_row * self.batch_rows * 1.25)
        return max(CSV_BLOCK_MIN, min(CSV_BLOCK_MAX, max(wanted, 4 * longest)))

    def _open_jsonl(self) -> None:
        import pyarrow as pa

        _check_encoding(self.encoding)
        self.schema = pa.schema([(c, pa.string()) for c in self.columns])

    # ------------------------------------------------------------------ read
    def __iter__(self) -> Iterator[Any]:
        for table in getattr(self, f"_iter_{self.fmt}")():
            first = self.rows_read
            table = self._checked_text(table, first)
            self.rows_read += table.num_rows
            yield table

    def _checked_text(self, table, first: int):
        where = lambda row: f"row {first + row} of {self.path}"  # noqa: E731
        try:
            table, _ = null_invalid_utf8(
                table, self.columns, on_error=self.on_error, where=where, encoding=self.encoding, hint=BAD_TEXT_HINT,
            )
        except InvalidTextError as error:
            raise TableIOError(str(error)) from None
        return table

    def _iter_parquet(self) -> Iterator[Any]:
        import pyarrow as pa

        # Little read-ahead: the model is the bottleneck, and every batch read ahead is memory held.
        scanner = self._dataset.scanner(batch_size=self.batch_rows, batch_readahead=1, fragment_readahead=1)
        try:
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, OSError) as error:
            raise TableIOError(f"cannot read {self.path} as Parquet: {one_line(error)}") from None

    def _iter_csv(self) -> Iterator[Any]:
        import pyarrow as pa

        pending: list = []
        rows = 0
        for batch in self._csv_batches():
            while batch.num_rows:
                take = min(batch.num_rows, self.batch_rows - rows)
                pending.append(batch.slice(0, take))
                rows += take
                batch = batch.slice(take)
                if rows == self.batch_rows:
                    yield pa.Table.from_batches(pending)
                    pending, rows = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    def _csv_batches(self) -> Iterator[Any]:
        """Record batches of the CSV; re-reads with larger blocks past a row longer than a block."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        done = 0
        block_size = self._block_size
        while True:
            skip = done
            try:
                with pcsv.open_csv(self.path, read_options=self._csv_read_options(block_size),
                                   convert_options=self._convert_options) as reader:
                    for batch in reader:
                        if skip:
                            if batch.num_rows <= skip:
                                skip -= batch.num_rows
                                continue
                            batch, skip = batch.slice(skip), 0
                        done += batch.num_rows
                        yield batch
                return
            except pa.ArrowInvalid as error:
                message = one_line(error)
                if "straddl" in message and block_size < CSV_BLOCK_LIMIT:
                    block_size *= 4
                    continue
                if "UTF8" in message or "UTF-8" in message:
                    raise TableIOError(f"{self.path} is not valid {self.encoding}; pass --encoding with the file's "
                                       "encoding, e.g. --encoding latin-1") from None
                raise TableIOError(f"cannot read {self.path} as CSV: {message}") from None

    def _iter_jsonl(self) -> Iterator[Any]:
        lines: list[bytes] = []
        nulled: dict[str, list[int]] = {}
        first_line = 1
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not lines:
                    first_line = number
                text = self._jsonl_text(raw, number, nulled)
                if text.strip():
                    lines.append(text.strip().encode("utf-8"))
                if len(lines) >= self.batch_rows:
                    yield self._jsonl_batch(lines, first_line, nulled)
                    lines, nulled = [], {}
        if lines:
            yield self._jsonl_batch(lines, first_line, nulled)

    def _jsonl_batch(self, lines: list[bytes], first_line: int, nulled: dict[str, list[int]]):
        import warnings

        table = self._parse_json(lines, first_line)
        if nulled:  # warned before the batch is handed on, as for CSV and Parquet cells
            listed = "; ".join(
                f"column {name!r}: {', '.join(f'line {line} of {self.path}' for line in numbers[:10])}"
                f"{' ...' if len(numbers) > 10 else ''}"
                for name, numbers in nulled.items()
            )
            warnings.warn(f"pii_frames: cells that are not valid {self.encoding} were set to null ({listed})",
                          RuntimeWarning, stacklevel=3)
        return table

    def _jsonl_text(self, raw: bytes, number: int, nulled: dict[str, list[int]]) -> str:
        """Line ``number`` decoded; bytes the encoding rejects in a redacted column's value follow ``on_error``.

        Like a bad CSV or Parquet cell, such a value stops the run naming the
        column and line, or (``on_error="null"``, recorded in ``nulled``)
        becomes null alone: the rest of the line and every other line are
        kept. Bad bytes anywhere else (another key's value, a key, the JSON
        syntax) cannot be carried to the output, so they stop the run naming
        the line (and the key).
        """
        where = f"{self.path} line {number}"
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            pass
        try:
            # Each undecodable byte becomes a lone surrogate U+DC80..U+DCFF, found again below.
            record = json.loads(raw.decode(self.encoding, errors="surrogateescape"))
        except (UnicodeDecodeError, ValueError):
            record = None
        if not isinstance(record, dict):  # the bad byte is in the JSON syntax, or the line is no object
            return decode_bytes(raw, self.encoding, where)
        for key, value in record.items():
            if _escaped_byte(key, self.encoding) is not None:
                return decode_bytes(raw, self.encoding, f"a key on {where}")
            if key in self.columns and isinstance(value, str):
                bad = _escaped_byte(value, self.encoding)
                if bad is None:
                    continue
                if self.on_error == "raise":
                    raise TableIOError(f"column {key!r} line {number} of {self.path} is not valid {self.encoding} "
                                       f"(byte {bad[0]:#04x} at offset {bad[1]}); {BAD_TEXT_HINT}")
                record[key] = None
                nulled.setdefault(key, []).append(number)
                continue
            bad = _escaped_byte(json.dumps(value, ensure_ascii=False), self.encoding)
            if bad is not None:
                raise TableIOError(
                    f"the value of {key!r} on {where} is not valid {self.encoding} (byte {bad[0]:#04x}); only "
                    f"the redacted column(s) {', '.join(map(repr, self.columns))} can be set to null, so pass "
                    "--encoding with the file's encoding (e.g. --encoding latin-1) or fix the file"
                )
        return json.dumps(record, ensure_ascii=False)

    def _parse_json(self, lines: list[bytes], first_line: int):
        import pyarrow as pa
        import pyarrow.json as pj

        data = b"\n".join(lines)
        try:
            table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=len(data) + 1))
        except pa.ArrowInvalid as error:
            raise TableIOError(f"cannot parse {self.path} (lines from {first_line}) as JSON Lines: "
                               f"{one_line(error)}") from None
        for column in self.columns:
            if column not in table.column_names:
                if first_line == 1:
                    raise TableIOError(f"column {column!r} not found in {self.path}; its rows have the keys: "
                                       f"{', '.join(table.column_names)}")
                table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
            elif pa.types.is_null(table.schema.field(column).type):
                index = table.column_names.index(column)
                table = table.set_column(index, column, table.column(column).cast(pa.string()))
        check_columns(table.schema, self.columns, self.path)
        return table


def _escaped_byte(text: str, encoding: str = "utf-8") -> tuple[int, int] | None:
    """``(byte, offset in bytes)`` of the first byte a ``surrogateescape`` decode kept as U+DC80..U+DCFF.

    >>> _escaped_byte(b"caf\\xe9".decode("utf-8", "surrogateescape")), _escaped_byte("fine")
    ((233, 3), None)
    """
    for index, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return ord(char) - 0xDC00, len(text[:index].encode(encoding, "surrogateescape"))
    return None


#: The first output batch of a table run holds at most this many rows, and each next one twice as many
#: up to ``batch_rows``: on the embedded CPU model ~1,000 rows take ~6 s, so the first rows reach the
#: output within seconds, while later batches keep the size that writes large row groups.
FIRST_BATCH_ROWS = 1024


def ramp_up(tables: Iterable, batch_rows: int, first_rows: int = FIRST_BATCH_ROWS) -> Iterator:
    """``tables`` (each at most ``batch_rows`` rows) re-cut so batches grow from ``first_rows`` to ``batch_rows``.

    Rows and their order are unchanged; only the first few batches are smaller.

    >>> import pyarrow as pa
    >>> [t.num_rows for t in ramp_up([pa.table({"a": list(range(10))})] * 2, batch_rows=10, first_rows=2)]
    [2, 4, 4, 10]
    """
    limit = max(1, min(first_rows, batch_rows))
    for table in tables:
        offset = 0
        while limit < batch_rows and offset < table.num_rows:
            piece = table.slice(offset, limit)
            offset += piece.num_rows
            yield piece
            limit = min(batch_rows, limit * 2)
        if offset < table.num_rows:
            yield table.slice(offset) if offset else table


class FileSink:
    """Writes Tables to a temporary file next to ``path``; :meth:`commit` renames it into place.

    Opening a sink first sweeps temporaries that earlier, dead runs left for
    the same output (see :func:`pii_frames.io.atomic.sweep_stale_temporaries`).

    >>> import tempfile, pyarrow as pa
    >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> sink = FileSink(path, "jsonl")
    >>> sink.write(pa.table({"body": ["x", None]}))
    >>> sink.commit(pa.schema([("body", pa.string())]))
    >>> open(path).read()
    '{"body": "x"}\\n{"body": null}\\n'
    """

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = os.path.abspath(path), fmt
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        self.swept = atomic.sweep_stale_temporaries(self.path)
        self.tmp = atomic.temporary_sibling(self.path)
        os.close(os.open(self.tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._writer = None
        self._schema = None
        self._text = None
        self.rows = 0

    def write(self, table) -> None:
        import pyarrow as pa

        if self.fmt == "jsonl":
            if self._text is None:
                self._text = open(self.tmp, "w", encoding="utf-8")
            for row in table.to_pylist():
                self._text.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            if self.fmt == "csv":
                table = flatten_nested(table)
            if self._schema is None:
                self._schema = table.schema
                self._writer = self._open_writer(table.schema)
            elif table.schema != self._schema:
                try:
                    table = table.cast(self._schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as error:
                    raise TableIOError(f"rows {self.rows}+ have a different schema than the first batch "
                                       f"({one_line(error)}); try a larger --batch-rows") from None
            self._writer.write_table(table)
        self.rows += table.num_rows

    def _open_writer(self, schema):
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self.tmp, schema)
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(self.tmp, schema)

    def commit(self, empty_schema) -> None:
        """Finish the file and rename it to ``path`` (``empty_schema`` shapes an output without rows)."""
        if self.fmt != "jsonl" and self._writer is None:
            # Nothing was read: still write a valid, empty output with the right columns.
            schema = flatten_nested(empty_schema.empty_table()).schema if self.fmt == "csv" else empty_schema
            self._writer = self._open_writer(schema)
        if self._writer is not None:
            self._writer.close()
        if self._text is not None:
            self._text.close()
        with open(self.tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(self.tmp, output_mode(self.path))
        os.replace(self.tmp, self.path)
        atomic.fsync_directory(os.path.dirname(self.path))

    def abort(self) -> None:
        """Close and remove the temporary file (the previous output, if any, stays as it was)."""
        for closer in (self._writer, self._text):
            try:
                if closer is not None:
                    closer.close()
            except Exception:
                pass
        try:
            os.remove(self.tmp)
        except FileNotFoundError:
            pass


def output_mode(path: str) -> int:
    """Permissions for an output: those of the file it replaces, else the usual umask default.

    (Temporaries are created private, 0600, which would surprise whoever reads the output next.)
    """
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def flatten_nested(table):
    """CSV cannot hold lists or structs: write those columns as JSON text.

    >>> import pyarrow as pa
    >>> flatten_nested(pa.table({"s": [[1, 2], None]})).column("s").to_pylist()
    ['[1, 2]', None]
    """
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            encoded = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                 for v in table.column(index).to_pylist()],
                type=pa.string(),
            )
            table = table.set_column(index, field.name, encoded)
    return table
