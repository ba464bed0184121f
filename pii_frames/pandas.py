"""A ``.pii`` accessor on pandas Series: ``s.pii.redact()``, ``.spans()``, ``.category()``, ``.detect()``.

Importing this module registers the accessor::

    >>> import pandas as pd, pii_frames.pandas
    >>> s = pd.Series(["Contact: anna@example.com", None], index=["a", "b"], name="body")
    >>> s.pii.redact().to_dict()
    {'a': 'Contact: <PRIVATE_EMAIL>', 'b': nan}

Text columns of every flavour work: pandas 3's default ``str`` dtype,
``string`` (python or pyarrow storage), ``ArrowDtype`` string types,
categoricals of strings and ``object`` columns holding ``str`` and missing
values. The index and name are kept and missing values stay missing (with
the column's own missing marker). Text outputs keep the input's dtype
(categoricals give ``str``); spans come back as an ``ArrowDtype``
``list<struct<label, start, end, score, source>>`` (no raw text unless
``with_text=True``, which writes raw PII).

The series goes to the engine as one Arrow array, so identical values are
detected once and the model batches the rest.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pii_frames.arrow import as_text_array, detect_array
from pii_frames.engine.rows import RowError, report_row_errors

__all__ = ["PiiSeriesAccessor"]


def _describe(series: pd.Series) -> str:
    return f"column {series.name!r}" if series.name is not None else "the series"


def _is_text_dtype(dtype: Any) -> bool:
    if isinstance(dtype, pd.StringDtype) or dtype == object:
        return True
    if isinstance(dtype, pd.ArrowDtype):
        arrow_type = dtype.pyarrow_dtype
        return (
            pa.types.is_string(arrow_type)
            or pa.types.is_large_string(arrow_type)
            or pa.types.is_string_view(arrow_type)
            or (pa.types.is_dictionary(arrow_type) and pa.types.is_string(arrow_type.value_type))
        )
    if isinstance(dtype, pd.CategoricalDtype):
        return _is_text_dtype(dtype.categories.dtype)
    return False


@pd.api.extensions.register_series_accessor("pii")
class PiiSeriesAccessor:
    """PII detection for a text Series; see the module docstring.

    Options (all methods): ``model`` (checkpoint directory, name, Detector or
    None), ``policy`` (a :class:`pii_frames.Policy` or a dict of its
    arguments), ``output_mode``, ``decode_mode``, ``biases``, ``on_error``,
    and ``device``/``dtype``/other :func:`pii_frames.load` options.

    >>> import pandas as pd, pii_frames.pandas
    >>> pd.Series([1, 2]).pii
    Traceback (most recent call last):
    ...
    AttributeError: the series has dtype int64, but the .pii accessor needs text (str, string, object of str or Arrow string); convert it first, for example s.astype("str")
    """

    def __init__(self, series: pd.Series):
        # pandas' accessor rule: reject unfit data with AttributeError at access time.
        if not _is_text_dtype(series.dtype):
            raise AttributeError(
                f"{_describe(series)} has dtype {series.dtype}, but the .pii accessor needs text "
                '(str, string, object of str or Arrow string); convert it first, for example s.astype("str")'
            )
        self._series = series

    # ----------------------------------------------------------- plumbing
    def _arrow_input(self, on_error: str = "raise") -> pa.Array:
        series = self._series
        if series.dtype == object:
            try:
                values = pa.array(series, from_pandas=True, type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                for label, value in series.items():
                    if not (isinstance(value, str) or pd.isna(value)):
                        raise TypeError(
                            f"{_describe(series)} holds a {type(value).__name__} at index {label!r} ({value!r}); "
                            "the .pii accessor needs str or missing values, convert them first"
                        ) from None
                raise
            except UnicodeEncodeError:
                values = self._without_unencodable_rows(on_error)
        else:
            values = pa.array(series, from_pandas=True)
        return as_text_array(values, name=str(series.name) if series.name is not None else "series")

    def _without_unencodable_rows(self, on_error: str) -> pa.Array:
        """Rows Arrow cannot hold (lone surrogates are not UTF-8) become null and follow ``on_error``."""
        values, errors = [], []
        for position, value in enumerate(self._series):
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as error:
                    errors.append(RowError(position, ValueError(
                        f"the text holds a lone surrogate {value[error.start]!r} at character {error.start}, "
                        "which has no UTF-8 form; clean the text (e.g. encode with errors='replace')"
                    ), _describe(self._series)))
                    value = None
            values.append(None if not isinstance(value, str) else value)
        report_row_errors(errors, on_error, stacklevel=5)
        return pa.array(values, type=pa.string())

    def _detect(self, options: dict[str, Any]) -> pa.StructArray:
        name = str(self._series.name) if self._series.name is not None else "series"
        return detect_array(self._arrow_input(options.get("on_error") or "raise"), name=name, **options)

    def _text_output(self, values: pa.Array) -> pd.Series:
        series = self._series
        out = pd.Series(pd.arrays.ArrowExtensionArray(values), index=series.index, name=series.name)
        dtype = series.dtype
        if isinstance(dtype, pd.StringDtype):
            return out.astype(dtype)
        if isinstance(dtype, pd.ArrowDtype):
            return out.astype(pd.ArrowDtype(pa.large_string() if pa.types.is_large_string(dtype.pyarrow_dtype) else pa.string()))
        if isinstance(dtype, pd.CategoricalDtype):
            return out.astype("str")
        out = out.astype(object)
        missing = series.isna()
        if missing.any():
            # Give back the column's own missing markers (None, NaN or pd.NA).
            out[missing] = series[missing]
        return out

    def _nested_output(self, values: pa.Array) -> pd.Series:
        series = self._series
        return pd.Series(pd.arrays.ArrowExtensionArray(values), index=series.index, name=series.name)

    # --------------------------------------------------------- public API
    def redact(self, **options: Any) -> pd.Series:
        """Redacted text, same index, name and dtype; missing stays missing.

        >>> import pandas as pd, pii_frames.pandas
        >>> pd.Series(["Contact: anna@example.com"]).pii.redact().tolist()
        ['Contact: <PRIVATE_EMAIL>']
        """
        return self._text_output(pc.struct_field(self._detect(options), "redacted_text"))

    def spans(self, **options: Any) -> pd.Series:
        """Detected spans as ``ArrowDtype(list<struct<label, start, end, score, source>>)``.

        Offsets index the original Python string (code points, end-exclusive).
        ``.list.flatten()`` and ``.struct.explode()`` unpack them.
        ``with_text=True`` appends the raw ``text`` (raw PII: inspection only).

        >>> import pandas as pd, pii_frames.pandas
        >>> [(s["label"], s["start"], s["end"]) for s in pd.Series(["Contact: bob@example.com"]).pii.spans()[0]]
        [('private_email', 9, 24)]
        """
        return self._nested_output(pc.struct_field(self._detect(options), "spans"))

    def category(self, **options: Any) -> pd.Series:
        """Document category per row (missing without a document head), same dtype as the text.

        >>> import pandas as pd, pii_frames.pandas
        >>> import pii_frames as pii
        >>> pd.Series(["The match ended 2-1"]).pii.category()[0] in pii.load("default").doc_classes
        True
        """
        return self._text_output(pc.struct_field(self._detect(options), "category"))

    def reveal(self, *, key: Any = None, keys: Any = None, on_error: str = "raise") -> pd.Series:
        """Text with every ``Policy("encrypt")`` token restored; same index, name and dtype.

        ``key``: the secret; ``keys``: ``{key_id: secret}`` (rotation).
        ``on_error="null"`` gives missing values (and a warning) for rows that
        cannot be revealed instead of an error naming the row. Never runs the model.

        >>> import pandas as pd, pii_frames.pandas
        >>> from pii_frames import Policy
        >>> token = Policy("encrypt", key="s3cret").replacement("private_person", "Ada")
        >>> pd.Series([f"Hi {token}", None], dtype=object).pii.reveal(key="s3cret").tolist()
        ['Hi Ada', None]
        """
        from pii_frames.redaction.encryption import RevealError, reveal_arrow

        name = str(self._series.name) if self._series.name is not None else "series"
        try:
            revealed = reveal_arrow(self._arrow_input(), key=key, keys=keys, on_error=on_error, name=name)
        except RevealError as error:
            label = self._series.index[error.row]
            raise RevealError(f"{error.reason} (index label {label!r})", row=error.row, column=name) from None
        return self._text_output(revealed)

    def detect(self, **options: Any) -> pd.DataFrame:
        """All outputs in one pass: a DataFrame with ``redacted_text``, ``spans``, ``category``, ``labels``.

        >>> import pandas as pd, pii_frames.pandas
        >>> pd.Series(["Hi Anna"], index=[7]).pii.detect().columns.tolist()
        ['redacted_text', 'spans', 'category', 'labels']
        """
        result = self._detect(options)
        return pd.DataFrame(
            {
                "redacted_text": self._text_output(pc.struct_field(result, "redacted_text")),
                "spans": self._nested_output(pc.struct_field(result, "spans")),
                "category": self._text_output(pc.struct_field(result, "category")),
                "labels": self._nested_output(pc.struct_field(result, "labels")),
            },
            index=self._series.index,
        )
