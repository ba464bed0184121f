"""Rows that cannot be processed: the one ``on_error`` rule every adapter and the engine follow.

A bad row (invalid UTF-8 in an Arrow buffer, a lone surrogate pandas cannot encode, a text the
engine fails on) becomes a :class:`RowError` naming its column and row; :func:`report_row_errors`
then raises the first one (``on_error="raise"``) or warns once and leaves those rows null
(``on_error="null"``), so one bad row never loses the others' results.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import pyarrow as pa

__all__ = ["RowError", "arrow_text_values", "report_row_errors"]


class RowError(ValueError):
    """A row could not be processed; ``row`` is its index in the input, ``column`` its column when known."""

    def __init__(self, row: int, cause: BaseException, column: str | None = None):
        self.row = row
        self.cause = cause
        self.column = column
        where = f"{column}, row {row}" if column else f"row {row}"
        super().__init__(f"{where}: {type(cause).__name__}: {cause} (pass on_error='null' to keep the other rows)")


def report_row_errors(errors: Sequence[RowError], on_error: str, *, stacklevel: int = 3) -> None:
    """The one on_error rule: raise the first error, or warn once naming the rows set to null.

    Every adapter that finds bad rows before the engine sees them (pandas
    surrogates, invalid UTF-8 in Arrow buffers) reports them through this.

    >>> report_row_errors([], "raise")
    """
    if not errors:
        return
    errors = sorted(errors, key=lambda error: error.row)
    if on_error == "raise":
        raise errors[0]
    rows = ", ".join(str(error.row) for error in errors[:20])
    more = "" if len(errors) <= 20 else f" and {len(errors) - 20} more"
    where = f" of {errors[0].column}" if errors[0].column else ""
    warnings.warn(
        f"pii_frames: {len(errors)} row(s){where} could not be processed and were set to null: rows {rows}{more}; "
        f"first error: {errors[0].cause}",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def arrow_text_values(array: pa.Array, column: str | None = None) -> tuple[list, list[RowError]]:
    """Python values of a text array; rows whose bytes are not valid UTF-8 become None plus a RowError.

    >>> arrow_text_values(pa.array(["a", None]))
    (['a', None], [])
    """
    try:
        return array.to_pylist(), []
    except UnicodeDecodeError:
        pass
    values: list = []
    errors: list[RowError] = []
    for row in range(len(array)):
        try:
            values.append(array[row].as_py())
        except UnicodeDecodeError as error:
            values.append(None)
            errors.append(RowError(row, ValueError(f"the text is not valid UTF-8 ({error.reason} at byte "
                                                   f"{error.start}); fix the encoding of the source"), column))
    return values, errors
