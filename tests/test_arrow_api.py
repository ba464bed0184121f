"""pyarrow functions (pii_frames.arrow) against Detector.redact_many on the tiny fixture model."""

from __future__ import annotations

import pyarrow as pa
import pytest

import pii_frames
import pii_frames.arrow as pa_pii

from shared_paths import ADAPTER_ROWS, OPF_TINY  # noqa: E402

MODEL = str(OPF_TINY)
ROWS = ADAPTER_ROWS + [None]


def expected_rows(rows):
    detector = pii_frames.load(MODEL, device="cpu")
    out = []
    for result in detector.redact_many(rows):
        if result is None:
            out.append(None)
            continue
        spans = [
            {"label": s.label, "start": s.start, "end": s.end, "score": pytest.approx(s.score), "source": s.source}
            for s in result.detected_spans
        ]
        out.append({"redacted_text": result.redacted_text, "spans": spans, "category": result.category})
    return out


@pytest.fixture(scope="module")
def expected():
    return expected_rows(ROWS)


def test_detect_array_matches_redact_many(expected):
    out = pa_pii.detect_array(pa.array(ROWS), model=MODEL, device="cpu")
    assert out.type == pa_pii.DETECT_TYPE
    got = out.to_pylist()
    for _row, want, have in zip(ROWS, expected, got):
        if want is None:
            assert have is None
            continue
        assert have["redacted_text"] == want["redacted_text"]
        assert have["spans"] == want["spans"]
        assert have["category"] == want["category"]
        assert have["labels"] == sorted({s["label"] for s in want["spans"]})
        assert all(set(span) == {"label", "start", "end", "score", "source"} for span in have["spans"])


def test_spans_with_text_only_when_asked_by_name(expected):
    out = pa_pii.detect_array(pa.array(ROWS), model=MODEL, device="cpu", with_text=True)
    assert out.type == pa_pii.detect_type(with_text=True)
    assert out.type.field("spans").type.value_type.names == ["label", "start", "end", "score", "source", "text"]
    for row, have in zip(ROWS, out.to_pylist()):
        for span in (have or {}).get("spans", []):
            assert row[span["start"] : span["end"]] == span["text"]
    assert any(have and have["spans"] for have in out.to_pylist())


def test_field_functions_keep_nulls_and_types(expected):
    values = pa.array(ROWS)
    redacted = pa_pii.redact_array(values, model=MODEL)
    spans = pa_pii.spans_array(values, model=MODEL)
    category = pa_pii.category_array(values, model=MODEL)
    assert redacted.type == pa.string() and spans.type == pa_pii.SPANS_TYPE and category.type == pa.string()
    assert redacted.to_pylist() == [None if e is None else e["redacted_text"] for e in expected]
    assert spans.to_pylist() == [None if e is None else e["spans"] for e in expected]
    assert category.is_null().to_pylist() == [True] * len(ROWS)  # the tiny model has no document head


def test_chunked_array_keeps_chunk_layout(expected):
    chunked = pa.chunked_array([pa.array(ROWS[:3]), pa.array([], pa.string()), pa.array(ROWS[3:])])
    out = pa_pii.redact_array(chunked, model=MODEL)
    assert isinstance(out, pa.ChunkedArray)
    assert [len(c) for c in out.chunks] == [3, 0, len(ROWS) - 3]
    assert out.to_pylist() == [None if e is None else e["redacted_text"] for e in expected]


def test_other_text_types_and_python_lists(expected):
    want = [None if e is None else e["redacted_text"] for e in expected]
    for values in (
        pa.array(ROWS, pa.large_string()),
        pa.array(ROWS, pa.string_view()),
        pa.array(ROWS).dictionary_encode(),
        ROWS,
    ):
        assert pa_pii.redact_array(values, model=MODEL).to_pylist() == want


def test_all_null_and_empty_inputs_do_not_need_a_model():
    # A model path that does not exist proves the model is never loaded here.
    assert pa_pii.redact_array(pa.nulls(3), model="/nonexistent/model").to_pylist() == [None] * 3
    assert len(pa_pii.detect_array(pa.array([], pa.string()), model="/nonexistent/model")) == 0


def test_non_text_input_names_the_column():
    with pytest.raises(TypeError, match=r"column 'age' has type int64.*text"):
        pa_pii.redact_array(pa.array([1, 2]), model=MODEL, name="age")
    with pytest.raises(TypeError, match=r"column 'input' holds int values"):
        pa_pii.redact_array(["a", 3], model=MODEL)


def test_redact_table_replaces_columns_and_adds_requested_ones(expected):
    table = pa.table({"id": list(range(len(ROWS))), "body": ROWS, "note": ROWS[::-1]})
    out = pa_pii.redact_table(table, ["body", "note"], model=MODEL, spans=True, category=True)
    assert out.column_names == [
        "id", "body", "body_pii_spans", "body_pii_category", "note", "note_pii_spans", "note_pii_category",
    ]
    assert out.column("id").to_pylist() == list(range(len(ROWS)))
    assert out.column("body").to_pylist() == [None if e is None else e["redacted_text"] for e in expected]
    assert out.column("note").to_pylist() == [None if e is None else e["redacted_text"] for e in expected[::-1]]
    batch = pa_pii.redact_table(table.to_batches()[0], "body", model=MODEL)
    assert isinstance(batch, pa.RecordBatch) and batch.column_names == ["id", "body", "note"]


def test_redact_table_errors_name_the_column():
    table = pa.table({"id": [1], "body": ["x"]})
    with pytest.raises(KeyError, match="'missing'"):
        pa_pii.redact_table(table, ["missing"], model=MODEL)
    with pytest.raises(TypeError, match="column 'id' has type int64"):
        pa_pii.redact_table(table, ["body", "id"], model=MODEL)


def test_policy_and_output_mode_options_pass_through():
    text = ROWS[0]
    detector = pii_frames.load(MODEL)
    policy = pii_frames.Policy("mask")
    want_masked = detector.redact(text, policy=policy).redacted_text
    want_untyped = detector.redact(text, output_mode="redacted").redacted_text
    assert pa_pii.redact_array([text], model=MODEL, policy={"operator": "mask"}).to_pylist() == [want_masked]
    assert pa_pii.redact_array([text], model=MODEL, output_mode="redacted").to_pylist() == [want_untyped]
    # An already loaded Detector is used as is.
    assert pa_pii.redact_array([text], model=detector).to_pylist() == [detector.redact(text).redacted_text]


def test_bad_policy_mapping_hides_the_key():
    with pytest.raises(ValueError) as error:
        pa_pii.split_options({"policy": {"operator": "pseudonym", "key": "topsecret", "bogus": 1}})
    assert "topsecret" not in str(error.value) and "bogus" in str(error.value)


def test_detect_table_in_bounded_calls_gives_the_same_rows_and_names_bad_rows_in_the_table():
    from pii_frames.engine.rows import RowError

    rows = [f"row {i}: mail ann{i}@example.com" for i in range(40)]
    table = pa.table({"body": rows})
    whole = pa_pii.detect_table(table, ["body"], model=MODEL, device="cpu")["body"]
    sliced = pa_pii.detect_table(table, ["body"], model=MODEL, device="cpu", max_call_bytes=200)["body"]
    assert sliced.num_chunks > 1 and sliced.to_pylist() == whole.to_pylist()

    bad = pa.array([r.encode() for r in rows[:30]] + [b"caf\xe9"] + [r.encode() for r in rows[31:]]).view(pa.string())
    with pytest.raises(RowError) as raised:
        pa_pii.detect_table(pa.table({"body": bad}), ["body"], model=MODEL, device="cpu", max_call_bytes=200)
    assert raised.value.row == 30  # counted in the table, not in the slice the model was given
