"""Polars expressions and the .pii namespace against Detector.redact_many on the tiny fixture model."""

from __future__ import annotations

import polars as pl
import pytest
from polars.exceptions import ComputeError

import pii_frames
import pii_frames.polars as pii
import pii_frames.polars as pii_polars

from shared_paths import ADAPTER_ROWS, OPF_TINY  # noqa: E402

MODEL = str(OPF_TINY)
ROWS = ADAPTER_ROWS


@pytest.fixture(scope="module")
def frame():
    return pl.DataFrame({"id": list(range(len(ROWS))), "body": ROWS})


@pytest.fixture(scope="module")
def expected():
    results = pii_frames.load(MODEL).redact_many(ROWS)
    redacted = [None if r is None else r.redacted_text for r in results]
    spans = [
        None
        if r is None
        else [{"label": s.label, "start": s.start, "end": s.end, "score": s.score, "source": s.source} for s in r.detected_spans]
        for r in results
    ]
    return redacted, spans


def test_eager_outputs_names_and_dtypes(frame, expected):
    redacted, spans = expected
    out = frame.with_columns(
        pii.redact("body", model=MODEL), pii.spans("body", model=MODEL), pii.category("body", model=MODEL)
    )
    assert out.columns == ["id", "body", "body_pii_spans", "body_pii_category"]
    assert out.schema["body"] == pl.String
    assert out.schema["body_pii_spans"] == pii_polars.SPANS_DTYPE
    assert out["body"].to_list() == redacted
    got_spans = out["body_pii_spans"].to_list()
    assert [None if s is None else [{**x, "score": pytest.approx(x["score"])} for x in s] for s in spans] == got_spans
    assert out["body_pii_category"].null_count() == len(ROWS)


def test_detect_struct_unnests(frame, expected):
    out = frame.select(pii.detect(pl.col("body"), model=MODEL)).unnest("body")
    assert out.columns == ["redacted_text", "spans", "category", "labels"]
    assert out["redacted_text"].to_list() == expected[0]
    assert out.schema == pl.Schema(dict(pii_polars.DETECT_DTYPE.to_schema()))


def test_lazy_schema_never_runs_the_model(frame):
    # The model path does not exist: resolving the schema must not try to load it.
    lazy = frame.lazy().with_columns(
        pii.redact("body", model="/nonexistent"), pii.detect("body", model="/nonexistent").alias("all")
    )
    schema = lazy.collect_schema()
    assert schema["body"] == pl.String and schema["all"] == pii_polars.DETECT_DTYPE


def test_lazy_streaming_engine_matches(frame, expected):
    big = pl.concat([frame] * 50).with_row_index("row")
    lazy = big.lazy().filter(pl.col("row") % 3 != 1).with_columns(pl.col("body").pii.redact(model=MODEL))
    out = lazy.collect(engine="streaming")
    want = [expected[0][i % len(ROWS)] for i in range(len(big)) if i % 3 != 1]
    assert out["body"].to_list() == want
    assert out["id"].to_list() == [i % len(ROWS) for i in range(len(big)) if i % 3 != 1]


def test_expression_input_and_alias(frame, expected):
    out = frame.select(pii.redact(pl.col("body").str.strip_chars(), model=MODEL).alias("clean"))
    detector = pii_frames.load(MODEL)
    want = [None if r is None else r.redacted_text for r in detector.redact_many([None if t is None else t.strip() for t in ROWS])]
    assert out["clean"].to_list() == want


def test_group_by_agg_gives_lists_per_group(frame, expected):
    grouped = (
        frame.with_columns((pl.col("id") % 2).alias("g"))
        .group_by("g", maintain_order=True)
        .agg(pii.redact("body", model=MODEL))
    )
    assert grouped["body"].to_list() == [expected[0][0::2], expected[0][1::2]]


def test_series_namespace(frame, expected):
    assert frame["body"].pii.redact(model=MODEL).to_list() == expected[0]
    assert frame["body"].pii.spans(model=MODEL).name == "body_pii_spans"


def test_all_null_and_categorical_columns(expected):
    nulls = pl.DataFrame({"body": [None, None]}, schema={"body": pl.String})
    assert nulls.select(pii.redact("body", model="/nonexistent"))["body"].to_list() == [None, None]
    cats = pl.DataFrame({"body": pl.Series(ROWS, dtype=pl.Categorical)})
    assert cats.select(pii.redact("body", model=MODEL))["body"].to_list() == expected[0]


def test_non_text_column_error_names_column_and_dtype(frame):
    with pytest.raises((TypeError, ComputeError), match=r"column 'id' has dtype Int64.*text"):
        frame.select(pii.redact("id", model=MODEL))
    with pytest.raises(TypeError, match="column name or a pl.Expr"):
        pii.redact(42)


def test_options_reach_the_engine(frame):
    detector = pii_frames.load(MODEL)
    want = [None if r is None else r.redacted_text for r in detector.redact_many(ROWS, output_mode="redacted")]
    out = frame.select(pii.redact("body", model=MODEL, output_mode="redacted"))
    assert out["body"].to_list() == want


def test_top_level_names_are_the_polars_functions():
    # DESIGN: `import pii_frames as pii; pii.redact("body")`. No subpackage may shadow the function
    # (redaction lives in pii_frames.redaction), even after the engine imported everything.
    pii_frames.load(MODEL).redact("warm up the engine imports")
    frame = pl.DataFrame({"body": [ROWS[0]]})
    for name in ("redact", "spans", "category", "detect"):
        function = getattr(pii_frames, name)
        assert callable(function), f"pii_frames.{name} is {function!r}, not the Polars function"
        want = frame.select(getattr(pii_polars, name)("body", model=MODEL))
        assert frame.select(function("body", model=MODEL)).equals(want), name


def test_scan_is_the_function_whatever_was_imported_first():
    import pii_frames.discovery  # noqa: F401

    assert pii_frames.scan is pii_frames.discovery.scan and callable(pii_frames.scan)
