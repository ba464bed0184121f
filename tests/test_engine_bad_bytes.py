"""Bad bytes and odd text in every adapter: the row is named, on_error is honoured, the rest is kept."""

from __future__ import annotations

import warnings

import pandas as pd
import pyarrow as pa
import pytest

import pii_frames as pii
import pii_frames.arrow as pa_pii
import pii_frames.pandas  # noqa: F401  (registers the accessor)


def invalid_utf8_column() -> pa.Array:
    """A string column whose second row holds the byte 0xff (Parquet files from other tools can)."""
    # The last row is plain text the default model leaves alone; a lone word would test the model's reading of
    # one-word cells (which over-redacts some, see its model card), not the bad-bytes path.
    values = [b"Contact: bob@example.com", b"bad \xff byte", None, b"All good, thanks."]
    binary = pa.array(values, type=pa.binary())
    return pa.Array.from_buffers(pa.string(), len(binary), binary.buffers(), null_count=binary.null_count)


def test_invalid_utf8_row_is_named_and_nulled_under_on_error_null():
    table = pa.table({"id": [1, 2, 3, 4], "body": invalid_utf8_column()})
    with pytest.raises(ValueError, match=r"column 'body', row 1: .*not valid UTF-8"):
        pa_pii.redact_table(table, ["body"], model="default")
    with pytest.warns(RuntimeWarning, match=r"1 row\(s\) of column 'body' .*rows 1;.*not valid UTF-8"):
        out = pa_pii.redact_table(table, ["body"], model="default", on_error="null")
    assert out.column("body").to_pylist() == ["Contact: <PRIVATE_EMAIL>", None, None, "All good, thanks."]
    assert out.column("id").to_pylist() == [1, 2, 3, 4]


def test_pandas_lone_surrogate_follows_on_error_and_names_the_row():
    series = pd.Series(["Contact: bob@example.com", "x\ud800y", None], name="body", dtype=object)
    with pytest.raises(ValueError, match=r"column 'body', row 1: .*lone surrogate"):
        series.pii.redact(model="default")
    with pytest.warns(RuntimeWarning, match=r"column 'body' .*rows 1;"):
        out = series.pii.redact(model="default", on_error="null")
    assert out.tolist()[0] == "Contact: <PRIVATE_EMAIL>" and pd.isna(out.tolist()[1]) and out.tolist()[2] is None


def test_lone_surrogates_are_kept_outside_spans_and_offsets_index_the_input():
    detector = pii.load("default")
    text = "Hello there \ud800 Contact: bob@example.com \udfff."
    result = detector.redact(text)
    assert result.redacted_text == "Hello there \ud800 Contact: <PRIVATE_EMAIL> \udfff."
    for span in result.detected_spans:
        assert text[span.start : span.end] == span.text
    assert result.warning and "surrogate" in result.warning


def test_result_cache_is_bounded_in_bytes_too():
    detector = pii.load("default", cache_size=1000, cache_bytes=50_000)
    texts = [f"note {i}: " + "lorem ipsum " * 200 for i in range(40)]  # ~2.4 kB each, ~10 kB per entry
    detector.redact_many(texts)
    assert 0 < len(detector._cache) < 10
    assert detector._cache_used_bytes <= 50_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detector.redact_many(texts[-1:])[0].redacted_text.startswith("note 39")
