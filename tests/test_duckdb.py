"""DuckDB SQL functions against Detector.redact_many on the tiny fixture model."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pii_frames
import pii_frames.duckdb as pii_duckdb

from shared_paths import ADAPTER_ROWS, OPF_TINY  # noqa: E402

MODEL = str(OPF_TINY)
ROWS = ADAPTER_ROWS


@pytest.fixture()
def con():
    connection = duckdb.connect()
    pii_duckdb.register(connection, model=MODEL)
    connection.register("tickets_view", pa.table({"id": list(range(len(ROWS))), "body": ROWS}))
    connection.execute("CREATE TABLE tickets AS SELECT * FROM tickets_view ORDER BY id")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def expected():
    return pii_frames.load(MODEL).redact_many(ROWS)


def test_functions_match_redact_many(con, expected):
    rows = con.sql(
        "SELECT pii_redact(body), pii_spans(body), pii_category(body), pii_detect(body) FROM tickets ORDER BY id"
    ).fetchall()
    for (redacted, spans, category, detected), want in zip(rows, expected):
        if want is None:
            assert (redacted, spans, category, detected) == (None, None, None, None)
            continue
        want_spans = [
            {"label": s.label, "start": s.start, "end": s.end, "score": pytest.approx(s.score), "source": s.source}
            for s in want.detected_spans
        ]
        assert redacted == want.redacted_text
        assert spans == want_spans
        assert category is None
        assert detected["redacted_text"] == want.redacted_text and detected["spans"] == want_spans
        assert detected["labels"] == sorted({s.label for s in want.detected_spans})


def test_declared_sql_types(con):
    types = con.sql("SELECT pii_redact(body) r, pii_spans(body) s, pii_detect(body) d FROM tickets LIMIT 1").types
    assert str(types[0]) == "VARCHAR"
    assert str(types[1]) == 'STRUCT("label" VARCHAR, "start" INTEGER, "end" INTEGER, score DOUBLE, "source" VARCHAR)[]'
    assert str(types[2]).startswith('STRUCT(redacted_text VARCHAR, spans STRUCT("label" VARCHAR')


def test_register_twice_and_with_other_options(con, expected):
    pii_duckdb.register(con, model=MODEL)
    pii_duckdb.register(con, model=MODEL, output_mode="redacted")
    detector = pii_frames.load(MODEL)
    got = con.sql("SELECT pii_redact(body) FROM tickets ORDER BY id").fetchall()
    assert [r[0] for r in got] == [
        None if r is None else r.redacted_text for r in detector.redact_many(ROWS, output_mode="redacted")
    ]
    pii_duckdb.unregister(con)
    with pytest.raises(duckdb.CatalogException):
        con.sql("SELECT pii_redact('x')").fetchall()


def test_null_constant_and_unnest(con, expected):
    assert con.sql("SELECT pii_redact(NULL), pii_spans(NULL)").fetchall() == [(None, None)]
    first = expected[0]
    assert con.execute("SELECT pii_redact(?)", [ROWS[0]]).fetchall() == [(first.redacted_text,)]
    labels = con.sql("SELECT s.label FROM (SELECT unnest(pii_spans(body)) s FROM tickets) ORDER BY ALL").fetchall()
    assert [l for (l,) in labels] == sorted(s.label for r in expected if r is not None for s in r.detected_spans)


def test_parquet_scan_of_10000_rows(tmp_path, con):
    texts = [None if i % 97 == 0 else f"ticket {i % 400}: contact Anna Berg at anna{i % 400}@example.com" for i in range(10_000)]
    path = tmp_path / "tickets.parquet"
    pq.write_table(pa.table({"id": list(range(10_000)), "body": texts}), path, row_group_size=3000)
    rows = con.sql(
        f"SELECT id, body, pii_redact(body) AS clean FROM read_parquet('{path}') ORDER BY id"
    ).fetchall()
    assert len(rows) == 10_000
    unique = sorted({t for t in texts if t is not None})
    want = dict(zip(unique, [r.redacted_text for r in pii_frames.load(MODEL).redact_many(unique)]))
    for row_id, body, clean in rows:
        assert body == texts[row_id]
        assert clean == (None if body is None else want[body])


def test_non_text_argument_and_bad_connection(con):
    with pytest.raises(duckdb.BinderException):
        con.sql("SELECT pii_redact(42)").fetchall()
    with pytest.raises(TypeError, match="duckdb connection"):
        pii_duckdb.register("not a connection")
    with pytest.raises(ValueError, match="policy"):
        pii_duckdb.register(con, policy={"operator": "mask", "bogus": True})
