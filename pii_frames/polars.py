"""Polars expressions that find and remove PII in text columns.

Each function takes a column name or an expression and returns a lazy
``pl.Expr``; nothing runs (and no model loads) until the frame is collected::

    >>> import polars as pl, pii_frames as pii
    >>> df = pl.DataFrame({"id": [1, 2], "body": ["Contact: bob@example.com", None]})
    >>> df.with_columns(pii.redact("body"))["body"].to_list()
    ['Contact: <PRIVATE_EMAIL>', None]

Output names follow Polars' ``str`` expressions: :func:`redact` and
:func:`detect` keep the input column's name (so ``with_columns`` replaces the
column), :func:`spans` and :func:`category` add the suffixes ``_pii_spans``
and ``_pii_category`` so all three fit in one ``with_columns``. Use ``.alias()`` for
other names.

Every output dtype is declared up front (the model never runs just to learn a
dtype) and the expressions are elementwise, so they work in eager, lazy and
streaming (``collect(engine="streaming")``) queries; Polars may hand the data
over in several slices, and the engine batches inside each slice.

In ``group_by(...).agg(pii.redact("body"))`` the expression is evaluated on
the whole column first and then split by group, so each group gets a list of
redacted texts and the model runs over all rows together, not once per group.

Importing this module also registers a ``.pii`` namespace on expressions and
series as sugar: ``pl.col("body").pii.redact()``, ``df["body"].pii.spans()``.

When you need several outputs of one column, :func:`detect` plus ``unnest``
is the cheapest: Polars evaluates :func:`redact`, :func:`spans` and
:func:`category` separately. The engine remembers recent texts, so the model
still runs once, but the rows are decoded three times.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pii_frames.arrow import CATEGORY_SUFFIX, SPANS_SUFFIX, detect_array
from pii_frames.engine.schema import detect_type, span_type
from pii_frames.redaction.policy import as_policy

__all__ = [
    "SPAN_DTYPE",
    "SPANS_DTYPE",
    "DETECT_DTYPE",
    "redact",
    "spans",
    "category",
    "detect",
    "reveal_expr",
    "PiiExprNamespace",
    "PiiSeriesNamespace",
]

def _polars_dtype(arrow_type) -> pl.DataType:
    """The Polars dtype of an engine Arrow type (declared once, in pii_frames.engine.schema)."""
    return pl.from_arrow(pa.array([], type=arrow_type)).dtype


SPAN_DTYPE = _polars_dtype(span_type())
SPANS_DTYPE = pl.List(SPAN_DTYPE)
DETECT_DTYPE = _polars_dtype(detect_type())
_DETECT_DTYPE_WITH_TEXT = _polars_dtype(detect_type(with_text=True))


def _output_dtype(field: str | None, with_text: bool) -> pl.DataType:
    struct = _DETECT_DTYPE_WITH_TEXT if with_text else DETECT_DTYPE
    if field is None:
        return struct
    return {f.name: f.dtype for f in struct.fields}[field]


class _DetectBatch:
    """The batch function Polars calls: Series of text in, Series of results out.

    A plain class with plain attributes (rather than a closure) so the
    expression stays picklable and shows readable options in ``repr``.
    """

    def __init__(self, field: str | None, model: Any, options: dict[str, Any]):
        self.field = field
        self.model = model
        self.options = options

    def __repr__(self) -> str:
        return f"pii_frames.polars({self.field or 'detect'}, model={self.model!r}, options={self.options!r})"

    def __call__(self, series: pl.Series) -> pl.Series:
        return_dtype = _output_dtype(self.field, bool(self.options.get("with_text")))
        if isinstance(series.dtype, pl.Categorical | pl.Enum):
            series = series.cast(pl.String)
        if series.dtype not in (pl.String, pl.Null):
            raise TypeError(
                f"column {series.name!r} has dtype {series.dtype}, but PII detection needs text; "
                f'cast it first, for example pii.redact(pl.col("{series.name}").cast(pl.String))'
            )
        result = detect_array(series.to_arrow(), model=self.model, name=series.name, **self.options)
        if self.field is not None:
            # struct_field (unlike StructArray.field) carries the row nulls into the field.
            result = pc.struct_field(result, self.field)
        return pl.Series(series.name, result, dtype=return_dtype)


def _options(
    policy: Any,
    output_mode: str | None,
    decode_mode: str | None,
    device: str | None,
    dtype: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    options = dict(extra)
    # A dict policy becomes a Policy now: its key is hidden from repr and follows Policy's pickling rule
    # (a literal key is not copied into a pickled expression unless allowed), and a bad spec fails here.
    for key, value in (
        ("policy", as_policy(policy)),
        ("output_mode", output_mode),
        ("decode_mode", decode_mode),
        ("device", device),
        ("dtype", dtype),
    ):
        if value is not None:
            options[key] = value
    return options


def _to_expr(column: str | pl.Expr) -> pl.Expr:
    if isinstance(column, str):
        return pl.col(column)
    if isinstance(column, pl.Expr):
        return column
    raise TypeError(
        f"expected a column name or a pl.Expr, got {type(column).__name__}; "
        'pass for example "body" or pl.col("body")'
    )


def _map(column: str | pl.Expr, field: str | None, model: Any, options: dict[str, Any]) -> pl.Expr:
    return _to_expr(column).map_batches(
        _DetectBatch(field, model, options),
        return_dtype=_output_dtype(field, bool(options.get("with_text"))),
        is_elementwise=True,
    )


def redact(
    column: str | pl.Expr,
    *,
    model: Any = None,
    policy: Any = None,
    output_mode: str | None = None,
    decode_mode: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    **options: Any,
) -> pl.Expr:
    """Redacted text of ``column`` (String), named like the input column.

    ``model``: checkpoint directory, model name, loaded Detector or None for
    the default model. ``policy``: a :class:`pii_frames.Policy` (or a dict of
    its arguments). ``output_mode``: ``"typed"`` (``<PRIVATE_EMAIL>``) or
    ``"redacted"`` (``<REDACTED>``). ``decode_mode``: ``"viterbi"`` or
    ``"argmax"``. ``device``/``dtype`` and any other keyword go to
    :func:`pii_frames.load`. Nulls stay null.

    >>> import polars as pl, pii_frames as pii
    >>> pl.DataFrame({"body": ["Contact: anna@example.com"]}).select(pii.redact("body")).item()
    'Contact: <PRIVATE_EMAIL>'
    """
    opts = _options(policy, output_mode, decode_mode, device, dtype, options)
    return _map(column, "redacted_text", model, opts)


def spans(
    column: str | pl.Expr,
    *,
    model: Any = None,
    policy: Any = None,
    decode_mode: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    **options: Any,
) -> pl.Expr:
    """Detected spans of ``column``, named ``<column>_pii_spans``.

    Type ``List(Struct(label, start, end, score, source))``: where each span
    is, never the value, so the column can sit beside the redacted text.
    ``start``/``end`` are Python string indices (code points), end-exclusive,
    into the original text. ``with_text=True`` appends the raw ``text``: that
    writes raw PII, for inspection only. Explode with ``.explode()`` then
    ``.struct.unnest()``. Same options as :func:`redact` (a policy's
    ``labels``/``min_score``/``allow``/``deny`` filter the spans).

    >>> import polars as pl, pii_frames as pii
    >>> df = pl.DataFrame({"body": ["Contact: bob@example.com"]})
    >>> df.select(pii.spans("body")).explode("body_pii_spans").unnest("body_pii_spans").columns
    ['label', 'start', 'end', 'score', 'source']
    """
    opts = _options(policy, None, decode_mode, device, dtype, options)
    return _map(column, "spans", model, opts).name.suffix(SPANS_SUFFIX)


def category(
    column: str | pl.Expr,
    *,
    model: Any = None,
    device: str | None = None,
    dtype: Any = None,
    **options: Any,
) -> pl.Expr:
    """Document category of ``column`` (String), named ``<column>_pii_category``.

    Null for every row when the model has no document head (only multitask
    checkpoints have one; see ``pii.load().doc_classes``).

    >>> import polars as pl, pii_frames as pii
    >>> kinds = pii.load("default").doc_classes
    >>> pl.DataFrame({"body": ["The match ended 2-1"]}).select(pii.category("body")).item() in kinds
    True
    """
    opts = _options(None, None, None, device, dtype, options)
    return _map(column, "category", model, opts).name.suffix(CATEGORY_SUFFIX)


def detect(
    column: str | pl.Expr,
    *,
    model: Any = None,
    policy: Any = None,
    output_mode: str | None = None,
    decode_mode: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    **options: Any,
) -> pl.Expr:
    """Everything at once: a Struct of ``redacted_text``, ``spans``, ``category``, ``labels``.

    Named like the input column; ``.struct.unnest()`` (or
    ``df.unnest(...)``) turns it into four columns. ``labels`` lists the
    labels found in the row. One pass of the model gives all four.

    >>> import polars as pl, pii_frames as pii
    >>> df = pl.DataFrame({"body": ["Contact: anna@example.com"]})
    >>> df.select(pii.detect("body").alias("pii")).unnest("pii").columns
    ['redacted_text', 'spans', 'category', 'labels']
    """
    opts = _options(policy, output_mode, decode_mode, device, dtype, options)
    return _map(column, None, model, opts)


class _RevealBatch:
    """The batch function of :func:`reveal_expr`; keeps the keys out of ``repr``."""

    def __init__(self, key: Any, keys: Any, on_error: str):
        from pii_frames.redaction.encryption import _check_on_error, _key_ring

        _check_on_error(on_error)
        self.ring = _key_ring(key, keys)  # a bad key fails when the expression is built
        self.on_error = on_error

    def __repr__(self) -> str:
        return f"pii_frames.polars.reveal({self.ring!r}, on_error={self.on_error!r})"

    def __call__(self, series: pl.Series) -> pl.Series:
        from pii_frames.redaction.encryption import reveal_many

        if isinstance(series.dtype, pl.Categorical | pl.Enum):
            series = series.cast(pl.String)
        if series.dtype not in (pl.String, pl.Null):
            raise TypeError(
                f"column {series.name!r} has dtype {series.dtype}, but reveal needs text; "
                f'cast it first, for example pii.reveal_expr(pl.col("{series.name}").cast(pl.String), key=...)'
            )
        values = reveal_many(series.to_list(), keys=self.ring, on_error=self.on_error, name=series.name)
        return pl.Series(series.name, values, dtype=pl.String)


def reveal_expr(column: str | pl.Expr, *, key: Any = None, keys: Any = None, on_error: str = "raise") -> pl.Expr:
    """Text of ``column`` with every ``Policy("encrypt")`` token restored (String), named like the input.

    ``key``: the secret (str/bytes); ``keys``: ``{key_id: secret}`` when tokens
    of several keys are mixed (rotation). ``on_error="null"`` turns rows with a
    wrong-key, unknown-key-id or damaged token into null with a warning instead
    of raising an error naming the row (counted within the slice Polars hands
    over: the whole column except in streaming queries; the error also shows
    the token's head, to find the row). Never runs the model; nulls stay null.

    >>> import polars as pl, pii_frames.polars as pii_pl
    >>> from pii_frames import Policy
    >>> token = Policy("encrypt", key="s3cret").replacement("private_email", "ann@example.com")
    >>> df = pl.DataFrame({"body": [f"mail {token}", None]})
    >>> df.select(pii_pl.reveal_expr("body", key="s3cret"))["body"].to_list()
    ['mail ann@example.com', None]
    """
    return _to_expr(column).map_batches(
        _RevealBatch(key, keys, on_error), return_dtype=pl.String(), is_elementwise=True
    )


@pl.api.register_expr_namespace("pii")
class PiiExprNamespace:
    """``pl.col("body").pii.redact()`` and friends: the functions above as methods.

    >>> import polars as pl, pii_frames.polars  # registers the namespace
    >>> pl.DataFrame({"body": ["Contact: anna@example.com"]}).select(pl.col("body").pii.redact()).item()
    'Contact: <PRIVATE_EMAIL>'
    """

    def __init__(self, expr: pl.Expr):
        self._expr = expr

    def redact(self, **options: Any) -> pl.Expr:
        """Redacted text; see :func:`pii_frames.polars.redact`."""
        return redact(self._expr, **options)

    def spans(self, **options: Any) -> pl.Expr:
        """Detected spans; see :func:`pii_frames.polars.spans`."""
        return spans(self._expr, **options)

    def category(self, **options: Any) -> pl.Expr:
        """Document category; see :func:`pii_frames.polars.category`."""
        return category(self._expr, **options)

    def detect(self, **options: Any) -> pl.Expr:
        """All outputs as one Struct; see :func:`pii_frames.polars.detect`."""
        return detect(self._expr, **options)

    def reveal(self, *, key: Any = None, keys: Any = None, on_error: str = "raise") -> pl.Expr:
        """Encrypted tokens restored; see :func:`pii_frames.polars.reveal_expr`."""
        return reveal_expr(self._expr, key=key, keys=keys, on_error=on_error)


@pl.api.register_series_namespace("pii")
class PiiSeriesNamespace:
    """``series.pii.redact()`` and friends for eager Series.

    >>> import polars as pl, pii_frames.polars  # registers the namespace
    >>> pl.Series("body", ["Contact: anna@example.com", None]).pii.redact().to_list()
    ['Contact: <PRIVATE_EMAIL>', None]
    """

    def __init__(self, series: pl.Series):
        self._series = series

    def _run(self, function, options: dict[str, Any]) -> pl.Series:
        frame = self._series.to_frame()
        return frame.select(function(pl.col(self._series.name), **options)).to_series()

    def redact(self, **options: Any) -> pl.Series:
        """Redacted text; see :func:`pii_frames.polars.redact`."""
        return self._run(redact, options)

    def spans(self, **options: Any) -> pl.Series:
        """Detected spans; see :func:`pii_frames.polars.spans`."""
        return self._run(spans, options)

    def category(self, **options: Any) -> pl.Series:
        """Document category; see :func:`pii_frames.polars.category`."""
        return self._run(category, options)

    def detect(self, **options: Any) -> pl.Series:
        """All outputs as one Struct; see :func:`pii_frames.polars.detect`."""
        return self._run(detect, options)

    def reveal(self, *, key: Any = None, keys: Any = None, on_error: str = "raise") -> pl.Series:
        """Encrypted tokens restored; see :func:`pii_frames.polars.reveal_expr`."""
        return self._run(reveal_expr, {"key": key, "keys": keys, "on_error": on_error})
