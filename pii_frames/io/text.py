"""Bytes that are not valid UTF-8 in a text column: name the column and row, then stop or null that cell.

Parquet and Arrow IPC do not check that string columns hold valid UTF-8, so a
file written by a careless producer reads fine until the first Python string
conversion fails with a bare ``'utf-8' codec can't decode byte 0xff`` and no
hint where. :func:`null_invalid_utf8` checks the columns about to be redacted
(a vectorized validation; rows are decoded one by one only in a column that
fails it) and either raises :class:`InvalidTextError` naming the column and row
or sets exactly those cells to null, keeping every other row.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

ON_ERROR = ("raise", "null")
#: Text handed to the model in one call by the table paths (CLI ``table``, Airflow job): at about
#: 200 bytes a row that is ~650 rows, ~40k tokens; the engine's working memory follows this, not
#: the read batch (8,192 rows by default) or the job chunk (50,000 rows). Smaller calls cost
#: throughput (64 KiB: ~25% more CPU per row on the embedded model), larger ones memory.
MODEL_CALL_BYTES = 128 << 10


class InvalidTextError(ValueError):
    """A text cell is not valid UTF-8; ``column`` and ``row`` say which."""

    def __init__(self, message: str, column: str, row: int):
        super().__init__(message)
        self.column = column
        self.row = row


def _as_bytes(values: pa.Array) -> pa.Array:
    """The same cells as binary, without copying or validating."""
    if pa.types.is_string(values.type):
        return values.view(pa.binary())
    if pa.types.is_large_string(values.type):
        return values.view(pa.large_binary())
    if pa.types.is_string_view(values.type):
        return values.view(pa.binary_view())
    return values


def _is_valid(values: pa.Array) -> bool:
    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type) or pa.types.is_binary_view(values.type):
        target = pa.large_string() if pa.types.is_large_binary(values.type) else pa.string()
        try:
            values.cast(target)  # binary -> string casts check UTF-8
        except pa.ArrowInvalid:
            return False
        return True
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def invalid_utf8_rows(values: pa.Array | pa.ChunkedArray) -> list[tuple[int, int, int]]:
    """``(row, byte, offset)`` for every cell of a string or binary column that is not valid UTF-8.

    >>> bad = pa.array([b"ok", b"ab\\xffcd", None]).view(pa.string())
    >>> invalid_utf8_rows(bad)
    [(1, 255, 2)]
    """
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    found: list[tuple[int, int, int]] = []
    start = 0
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        if not _is_valid(chunk):
            for row, data in enumerate(_as_bytes(chunk).to_pylist()):
                if data is None:
                    continue
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as error:
                    found.append((start + row, data[error.start], error.start))
        start += len(chunk)
    return found


def null_invalid_utf8(
    table: pa.Table,
    columns: Sequence[str],
    *,
    on_error: str = "raise",
    where: Callable[[int], str] = lambda row: f"row {row}",
    hint: str = "fix the data, or pass on_error='null' to null such cells",
    encoding: str = "utf-8",
) -> tuple[pa.Table, dict[str, list[int]]]:
    """Check ``columns`` of ``table`` for invalid UTF-8; raise naming the first bad cell, or null the bad cells.

    ``where(row)`` words the position of a row for messages (e.g. the file and
    row number in it); ``hint`` says what to do. Binary columns (how the CLI
    reads CSV text columns, so that a bad cell is found rather than failing the
    whole file) come back as strings. Returns the table and ``{column: nulled rows}``;
    with ``on_error="null"`` a RuntimeWarning names the columns and rows.

    >>> bad = pa.table({"id": [1, 2], "body": pa.array([b"caf\\xe9", b"fine"]).view(pa.string())})
    >>> try:
    ...     null_invalid_utf8(bad, ["body"])
    ... except InvalidTextError as error:
    ...     print(error)
    column 'body' row 0 is not valid utf-8 (byte 0xe9 at offset 3); fix the data, or pass on_error='null' to null such cells
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     fixed, nulled = null_invalid_utf8(bad, ["body"], on_error="null")
    >>> fixed.column("body").to_pylist(), nulled
    ([None, 'fine'], {'body': [0]})
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    nulled: dict[str, list[int]] = {}
    for name in columns:
        index = table.schema.get_field_index(name)
        column = table.column(index)
        data_type = column.type
        binary = pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type)
        bad = invalid_utf8_rows(column)
        if bad and on_error == "raise":
            row, byte, offset = bad[0]
            more = f" ({len(bad) - 1} more such row(s) in this batch)" if len(bad) > 1 else ""
            raise InvalidTextError(
                f"column {name!r} {where(row)} is not valid {encoding} (byte {byte:#04x} at offset {offset}){more}; "
                f"{hint}",
                name,
                row,
            )
        if not bad and not binary:
            continue
        target = (pa.large_string() if pa.types.is_large_binary(data_type) else pa.string()) if binary \
            else _text_of(data_type)
        if bad:
            as_bytes = _bytes_column(column)
            mask = [False] * table.num_rows
            for row, _, _ in bad:
                mask[row] = True
            column = pc.if_else(pa.array(mask, pa.bool_()), pa.scalar(None, as_bytes.type), as_bytes)
            nulled[name] = [row for row, _, _ in bad]
        column = column.cast(target)
        table = table.set_column(index, pa.field(name, column.type), column)
    if nulled:
        listed = "; ".join(
            f"column {name!r}: {', '.join(where(row) for row in rows[:10])}{' ...' if len(rows) > 10 else ''}"
            for name, rows in nulled.items()
        )
        warnings.warn(f"pii_frames: cells that are not valid {encoding} were set to null ({listed})",
                      RuntimeWarning, stacklevel=2)
    return table, nulled


def _bytes_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    data_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    chunks = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in column.chunks]
    return pa.chunked_array([_as_bytes(c) for c in chunks], type=_as_bytes(pa.array([], data_type)).type)


def _text_of(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return data_type if not pa.types.is_null(data_type) else pa.string()


def text_slices(values: pa.Array | pa.ChunkedArray, max_chars: int) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges covering ``values`` with at most about ``max_chars`` characters each.

    The model's working memory grows with the text it is given in one call, so
    table paths hand the engine one slice at a time rather than a whole read
    batch: memory stays bounded whatever ``--batch-rows`` or ``rows_per_chunk``
    is. A single longer row is a slice of its own. Counted in bytes (UTF-8),
    which bounds the characters and, roughly, the tokens.

    >>> text_slices(pa.array(["aaaa", "bb", None, "cccccc", "d"]), 6)
    [(0, 3), (3, 4), (4, 5)]
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type) or len(values) == 0:
        return [(0, len(values))] if len(values) else []
    lengths = pc.fill_null(pc.binary_length(_as_bytes(values)), 0).to_numpy(zero_copy_only=False)
    slices: list[tuple[int, int]] = []
    start, size = 0, 0
    for row, length in enumerate(lengths.tolist()):
        if row > start and size + length > max_chars:
            slices.append((start, row))
            start, size = row, 0
        size += length
    slices.append((start, len(lengths)))
    return slices
