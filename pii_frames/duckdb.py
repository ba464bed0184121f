"""DuckDB SQL functions that find and remove PII: ``pii_redact``, ``pii_spans``, ``pii_category``, ``pii_detect``.

Register them once per connection, then use them in any query, on tables,
views or Parquet/CSV scans::

    >>> import duckdb, pii_frames.duckdb
    >>> con = duckdb.connect()
    >>> _ = pii_frames.duckdb.register(con)
    >>> con.sql("SELECT pii_redact('Contact: anna@example.com')").fetchall()
    [('Contact: <PRIVATE_EMAIL>',)]

SQL signatures:

- ``pii_redact(VARCHAR) -> VARCHAR``
- ``pii_spans(VARCHAR) -> STRUCT(label VARCHAR, start INTEGER, "end" INTEGER,
  score DOUBLE, source VARCHAR)[]`` (explode with ``UNNEST(pii_spans(body), recursive := true)``;
  ``start``/``end`` are code-point offsets, end-exclusive, 0-based). No raw
  text; ``pii_spans_with_text(VARCHAR)`` (or ``register(con, with_text=True)``
  for ``pii_spans`` and ``pii_detect``) appends ``text VARCHAR``, which is
  raw PII: for inspection, never for a published table.
- ``pii_category(VARCHAR) -> VARCHAR`` (NULL without a document head)
- ``pii_detect(VARCHAR) -> STRUCT(redacted_text VARCHAR, spans ...[],
  category VARCHAR, labels VARCHAR[])``
- ``pii_reveal(VARCHAR) -> VARCHAR``: ``Policy("encrypt")`` tokens restored
  (registered only when ``register(..., reveal_key=...)`` or ``reveal_keys=``
  is given; it never runs the model)

They are vectorized Arrow UDFs: DuckDB hands over up to a vector (2,048 rows)
at a time and the engine batches, deduplicates and caches inside. NULL in
gives NULL out. The model loads on the first call, not at registration.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pii_frames.arrow import detect_array, split_options
from pii_frames.engine.options import NONE_MEANS_OFF
from pii_frames.engine.schema import detect_type
from pii_frames.redaction.policy import as_policy

__all__ = ["FUNCTION_NAMES", "REVEAL_FUNCTION", "register", "unregister"]

_SQL_SCALARS = {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.float64(): "DOUBLE"}


def sql_type(arrow_type: pa.DataType) -> str:
    """DuckDB type of an engine Arrow type (the engine's schema is the one definition).

    >>> sql_type(detect_type().field("spans").type)
    'STRUCT("label" VARCHAR, "start" INTEGER, "end" INTEGER, "score" DOUBLE, "source" VARCHAR)[]'
    """
    if pa.types.is_list(arrow_type):
        return sql_type(arrow_type.value_type) + "[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f'"{field.name}" {sql_type(field.type)}' for field in arrow_type)
        return f"STRUCT({fields})"
    return _SQL_SCALARS[arrow_type]


# SQL name -> field of the engine's detect struct (None for all of it)
FUNCTION_NAMES: dict[str, str | None] = {
    "pii_redact": "redacted_text",
    "pii_spans": "spans",
    "pii_spans_with_text": "spans",
    "pii_category": "category",
    "pii_detect": None,
}
# Functions whose name says they return raw detected values.
WITH_TEXT_FUNCTIONS = frozenset({"pii_spans_with_text"})


def _return_type(field: str | None, with_text: bool) -> str:
    struct = detect_type(with_text)
    return sql_type(struct if field is None else struct.field(field).type)

REVEAL_FUNCTION = "pii_reveal"

# DuckDB keeps only a borrowed handle to a Python UDF in some paths (a dropped
# callable can crash the process), so every registered callable stays referenced
# here, per connection, until it is replaced or unregistered.
_LIVE_FUNCTIONS: dict[int, dict[str, _ArrowUDF]] = {}
_LIVE_LOCK = threading.Lock()


class _ArrowUDF:
    """One SQL function: an Arrow column of VARCHAR in, an Arrow column out."""

    def __init__(self, sql_name: str, field: str | None, model: Any, options: dict[str, Any]):
        self.sql_name = sql_name
        self.field = field
        self.model = model
        self.options = options

    def __repr__(self) -> str:
        return f"pii_frames.duckdb.{self.sql_name}(model={self.model!r}, options={self.options!r})"

    def __call__(self, values: pa.ChunkedArray) -> pa.Array:
        result = detect_array(values, model=self.model, name=f"argument of {self.sql_name}", **self.options)
        if isinstance(result, pa.ChunkedArray):
            result = result.combine_chunks()
        if self.field is None:
            return result
        # struct_field carries the row nulls into the field (NULL in -> NULL out).
        return pc.struct_field(result, self.field)


class _RevealUDF:
    """``pii_reveal``: encrypted tokens restored; the keys stay out of ``repr``."""

    def __init__(self, key: Any, keys: Any, on_error: str):
        from pii_frames.redaction.encryption import _check_on_error, _key_ring

        _check_on_error(on_error)
        self.ring = _key_ring(key, keys)
        self.on_error = on_error

    def __repr__(self) -> str:
        return f"pii_frames.duckdb.{REVEAL_FUNCTION}({self.ring!r}, on_error={self.on_error!r})"

    def __call__(self, values: pa.ChunkedArray) -> pa.Array:
        from pii_frames.redaction.encryption import RevealError, reveal_arrow

        try:
            return reveal_arrow(values, keys=self.ring, on_error=self.on_error, name=f"argument of {REVEAL_FUNCTION}")
        except RevealError as error:
            # DuckDB hands over one vector at a time, so a row number would not point at the table's row;
            # the token's head in the reason does (WHERE body LIKE '%<head>%').
            raise RevealError(
                f"{REVEAL_FUNCTION}: {error.reason} (pass reveal_on_error='null' to register() for NULL instead)"
            ) from None


def register(
    con: duckdb.DuckDBPyConnection,
    model: Any = None,
    *,
    reveal_key: Any = None,
    reveal_keys: Any = None,
    reveal_on_error: str = "raise",
    **options: Any,
) -> duckdb.DuckDBPyConnection:
    """Register ``pii_redact``, ``pii_spans``, ``pii_category`` and ``pii_detect`` on ``con``.

    ``model`` is a checkpoint directory, a model name, a loaded Detector or
    None (default resolution: ``PII_FRAMES_MODEL``, a local
    openai/privacy-filter, the embedded model). Keyword options as in the
    Polars functions: ``policy`` (a Policy or a dict of its arguments),
    ``output_mode``, ``decode_mode``, ``biases``, ``on_error``, and
    ``device``/``dtype``/other :func:`pii_frames.load` options. Calling it
    again replaces the functions (for example with other options). Returns
    ``con``.

    ``reveal_key`` (a secret) or ``reveal_keys`` (``{key_id: secret}``) also
    registers ``pii_reveal(VARCHAR) -> VARCHAR``, which restores
    ``Policy("encrypt")`` tokens; ``reveal_on_error="null"`` gives NULL (and a
    warning) for rows it cannot reveal instead of an error naming the row.
    Without a key ``pii_reveal`` is not registered (and removed if it was).

    >>> import duckdb, pii_frames.duckdb
    >>> from pii_frames import Policy
    >>> token = Policy("encrypt", key="s3cret").replacement("private_person", "Ada")
    >>> con = pii_frames.duckdb.register(duckdb.connect(), reveal_key="s3cret")
    >>> con.execute("SELECT pii_reveal(?)", [f"Hi {token}"]).fetchone()
    ('Hi Ada',)

    >>> import duckdb, pii_frames.duckdb
    >>> con = pii_frames.duckdb.register(duckdb.connect(), output_mode="redacted")
    >>> con.sql("SELECT pii_redact(NULL), pii_redact('Contact: anna@example.com')").fetchall()
    [(None, 'Contact: <REDACTED>')]
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise TypeError(
            f"register() needs a duckdb connection (duckdb.connect()), got {type(con).__name__}"
        )
    options = {key: value for key, value in options.items() if value is not None or key in NONE_MEANS_OFF}
    split_options(options)  # a malformed policy fails here, not in the middle of a query
    if options.get("policy") is not None:
        # A Policy (whose repr hides the key) rather than the caller's dict, which may hold the key in clear.
        options["policy"] = as_policy(options["policy"])
    with_text = bool(options.get("with_text"))
    functions = {
        name: _ArrowUDF(name, field, model, dict(options, with_text=True) if name in WITH_TEXT_FUNCTIONS else options)
        for name, field in FUNCTION_NAMES.items()
    }
    reveal = None
    if reveal_key is not None or reveal_keys is not None:
        reveal = _RevealUDF(reveal_key, reveal_keys, reveal_on_error)
    with _LIVE_LOCK:
        for name, field in FUNCTION_NAMES.items():
            _remove_if_present(con, name)
            con.create_function(
                name,
                functions[name],
                ["VARCHAR"],
                _return_type(field, with_text or name in WITH_TEXT_FUNCTIONS),
                type="arrow",
                null_handling="special",
                side_effects=False,
            )
        _remove_if_present(con, REVEAL_FUNCTION)
        if reveal is not None:
            con.create_function(
                REVEAL_FUNCTION,
                reveal,
                ["VARCHAR"],
                "VARCHAR",
                type="arrow",
                null_handling="special",
                side_effects=False,
            )
            functions = dict(functions, **{REVEAL_FUNCTION: reveal})
        _LIVE_FUNCTIONS[id(con)] = functions
    return con


def unregister(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the pii_* functions from ``con`` (no error when they are absent).

    >>> import duckdb, pii_frames.duckdb
    >>> pii_frames.duckdb.unregister(duckdb.connect())
    """
    with _LIVE_LOCK:
        for name in (*FUNCTION_NAMES, REVEAL_FUNCTION):
            _remove_if_present(con, name)
        _LIVE_FUNCTIONS.pop(id(con), None)


def _remove_if_present(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.remove_function(name)
    except duckdb.InvalidInputException:
        pass  # not registered on this connection yet
