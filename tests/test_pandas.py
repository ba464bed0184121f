"""pandas .pii accessor against Detector.redact_many on the tiny fixture model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import pii_frames
import pii_frames.pandas  # noqa: F401  (registers the accessor)

from shared_paths import ADAPTER_ROWS, OPF_TINY  # noqa: E402

MODEL = str(OPF_TINY)
ROWS = ADAPTER_ROWS
INDEX = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def expected():
    results = pii_frames.load(MODEL).redact_many(ROWS)
    redacted = [None if r is None else r.redacted_text for r in results]
    spans = [
        None
        if r is None
        else [{"label": s.label, "start": s.start, "end": s.end, "score": pytest.approx(s.score), "source": s.source} for s in r.detected_spans]
        for r in results
    ]
    return redacted, spans


DTYPES = ["str", "string", "string[pyarrow]", object, pd.ArrowDtype(pa.string()), pd.ArrowDtype(pa.large_string()), "category"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_redact_keeps_index_name_dtype_and_missing(dtype, expected):
    series = pd.Series(ROWS, index=INDEX, name="body", dtype=dtype)
    out = series.pii.redact(model=MODEL)
    assert out.index.tolist() == INDEX and out.name == "body"
    assert out.dtype == (pd.StringDtype(na_value=np.nan) if dtype == "category" else series.dtype)
    assert out.isna().tolist() == series.isna().tolist()
    assert [None if pd.isna(v) else v for v in out] == expected[0]


def test_object_column_keeps_its_own_missing_markers(expected):
    series = pd.Series([ROWS[0], np.nan, ROWS[2], None], dtype=object)
    out = series.pii.redact(model=MODEL)
    assert out.dtype == object
    assert out[0] == expected[0][0] and out[2] == expected[0][2]
    assert out[1] is np.nan or (isinstance(out[1], float) and np.isnan(out[1]))
    assert out[3] is None


def test_spans_are_arrow_list_of_struct(expected):
    out = pd.Series(ROWS, index=INDEX).pii.spans(model=MODEL)
    assert out.dtype == pd.ArrowDtype(pii_frames.arrow.SPANS_TYPE)
    assert out.index.tolist() == INDEX
    assert [None if v is None or v is pd.NA else list(v) for v in out.tolist()] == expected[1]


def test_detect_returns_a_frame(expected):
    frame = pd.Series(ROWS, index=INDEX, name="body").pii.detect(model=MODEL)
    assert frame.columns.tolist() == ["redacted_text", "spans", "category", "labels"]
    assert frame.index.tolist() == INDEX
    assert [None if pd.isna(v) else v for v in frame["redacted_text"]] == expected[0]
    assert frame["category"].isna().all()


def test_category_and_options(expected):
    series = pd.Series(ROWS, dtype="string")
    assert series.pii.category(model=MODEL).isna().all()
    want = [None if r is None else r.redacted_text for r in pii_frames.load(MODEL).redact_many(ROWS, output_mode="redacted")]
    out = series.pii.redact(model=MODEL, output_mode="redacted")
    assert [None if pd.isna(v) else v for v in out] == want


def test_non_text_dtypes_are_rejected_with_the_column_name():
    with pytest.raises(AttributeError, match=r"column 'age' has dtype int64.*needs text"):
        pd.Series([1, 2], name="age").pii
    with pytest.raises(TypeError, match=r"column 'mixed' holds a int at index 'y'"):
        pd.Series(["ok", 5], index=["x", "y"], name="mixed", dtype=object).pii.redact(model=MODEL)
