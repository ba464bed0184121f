"""SQL tables as SanitizeJob sources and destinations, against a real PostgreSQL server.

The server is Debian's ``postgresql`` package, started by ``postgres_server``
in a temporary folder on a free local port (as the ``postgres`` user when the
tests run as root) and stopped at the end; the module is skipped, with that
reason, only where the binaries are missing. Every job runs the embedded
default model on real text; every check on the output is a SQL query.
"""

from __future__ import annotations

import json
import os
import re

import pytest

sa = pytest.importorskip("sqlalchemy", reason="SQL locations need SQLAlchemy: pip install 'pii_frames[sql]'")
pytest.importorskip("psycopg", reason="the PostgreSQL tests need psycopg 3: pip install 'pii_frames[sql]'")

from pii_frames.airflow.jobs import SanitizeJob, SanitizeJobError  # noqa: E402
from pii_frames.io import sql as sql_io  # noqa: E402
from pii_frames.io.locations import parse_location  # noqa: E402

from postgres_server import MISSING, PostgresServer, postgres_binaries  # noqa: E402

EMAIL = re.compile(r"[a-z0-9.]+@example\.(com|org)")


@pytest.fixture(scope="module")
def server():
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip(MISSING)
    pg = PostgresServer(binaries).start()
    try:
        yield pg
    finally:
        sql_io.location._ENGINES.clear()
        pg.stop()


@pytest.fixture(scope="module")
def db(server):
    url = server.create_database("crm")
    engine = sa.create_engine(url)
    yield url, engine
    engine.dispose()


@pytest.fixture
def schema(db, request):
    """A fresh schema per test, named after it."""
    url, engine = db
    name = "t_" + re.sub(r"\W", "_", request.node.name)[:50].lower()
    with engine.begin() as con:
        con.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        con.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    return name


def make_source(engine, schema: str, rows: int, table: str = "tickets") -> None:
    """A table with text to sanitize and columns of many other types that must come through untouched."""
    with engine.begin() as con:
        con.execute(sa.text(f"""
            CREATE TABLE "{schema}"."{table}" (
                id bigint PRIMARY KEY,
                body text,
                subject varchar(200),
                amount numeric(10, 2) NOT NULL,
                created timestamptz,
                meta jsonb,
                tags text[],
                flag boolean,
                ref uuid,
                ratio real
            )"""))
        con.execute(sa.text(f"""
            INSERT INTO "{schema}"."{table}"
            SELECT i * 7,
                   CASE WHEN i % 9 = 0 THEN NULL
                        ELSE 'Ticket ' || i || ': please reach Maria Lopez at maria.lopez' || i
                             || '@example.com or +1 415-555-' || lpad((i % 10000)::text, 4, '0') END,
                   'Order ' || i || ' for john.smith' || i || '@example.org',
                   (i * 1.25)::numeric(10, 2),
                   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
                   jsonb_build_object('n', i, 'tier', 'gold'),
                   ARRAY['a' || i, 'b'],
                   i % 2 = 0,
                   md5(i::text)::uuid,
                   i / 3.0
            FROM generate_series(1, :n) AS i"""), {"n": rows})


def job(url: str, schema: str, destination: str = "clean", *, source: str = "tickets", **options) -> SanitizeJob:
    options.setdefault("rows_per_chunk", 40)
    options.setdefault("columns", ["body", "subject"])
    return SanitizeJob(
        source=f"{url}::{schema}.{source}?key=id",
        destination={"url": url, "table": f"{schema}.{destination}", "key": "id"},
        model=None,
        **options,
    )


def scalar(engine, query: str, **params):
    with engine.connect() as con:
        return con.execute(sa.text(query), params).scalar()


def column_types(engine, schema: str, table: str) -> list[tuple]:
    with engine.connect() as con:
        return [tuple(row) for row in con.execute(sa.text(
            "SELECT column_name, data_type, udt_name, character_maximum_length, numeric_precision, numeric_scale, "
            "is_nullable FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
            "ORDER BY ordinal_position"), {"s": schema, "t": table})]


OTHER_COLUMNS = "id, amount, created, meta, tags, flag, ref, ratio"


def test_postgres_table_is_sanitized_with_types_and_other_columns_kept(db, schema):
    url, engine = db
    make_source(engine, schema, 150)
    summary = job(url, schema, include_spans=True).run(run_id="first")
    assert summary["changed"] and summary["rows"] == 150 and summary["chunks"] == 4

    assert scalar(engine, f'SELECT count(*) FROM "{schema}".clean') == 150
    # No raw email or phone is left in any sanitized column (checked by the database).
    assert scalar(engine, f"""SELECT count(*) FROM "{schema}".clean
                             WHERE body ~ '@example\\.(com|org)' OR subject ~ '@example\\.(com|org)'
                                OR body ~ '415-555-'""") == 0
    assert scalar(engine, f"""SELECT count(*) FROM "{schema}".clean WHERE body LIKE '%<PRIVATE_EMAIL>%'""") == 150 - 150 // 9
    # Nulls stay nulls; every other column is the source's, value for value, type for type.
    assert scalar(engine, f'SELECT count(*) FROM "{schema}".clean WHERE body IS NULL') == 150 // 9
    assert scalar(engine, f"""SELECT count(*) FROM (
        (SELECT {OTHER_COLUMNS} FROM "{schema}".tickets EXCEPT SELECT {OTHER_COLUMNS} FROM "{schema}".clean)
        UNION ALL
        (SELECT {OTHER_COLUMNS} FROM "{schema}".clean EXCEPT SELECT {OTHER_COLUMNS} FROM "{schema}".tickets)) d""") == 0
    source_types = column_types(engine, schema, "tickets")
    clean_types = column_types(engine, schema, "clean")
    assert clean_types[: len(source_types)] == source_types
    assert [row[:3] for row in clean_types[len(source_types):]] == [
        ("body_pii_spans", "jsonb", "jsonb"), ("subject_pii_spans", "jsonb", "jsonb")]
    # The primary key came along; spans carry no raw text.
    assert scalar(engine, """SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                             JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = :s AND c.relname = 'clean' AND i.indisprimary""", s=schema) == 1
    spans = scalar(engine, f'SELECT body_pii_spans FROM "{schema}".clean WHERE id = 7')
    assert {s["label"] for s in spans} >= {"private_email", "private_phone"}
    assert all(set(s) == {"label", "start", "end", "score"} for s in spans)

    # The audit: one row per chunk, rows adding up, the table marked with the output digest.
    with engine.connect() as con:
        audit = con.execute(sa.text(f'SELECT chunk_index, "rows", spans_by_label, source, columns '
                                    f'FROM "{schema}".clean_pii_audit ORDER BY chunk_index')).fetchall()
    assert [row[0] for row in audit] == [0, 1, 2, 3] and sum(row[1] for row in audit) == 150
    assert json.loads(audit[0][2])["private_email"] > 0 and json.loads(audit[0][4]) == ["body", "subject"]
    assert audit[0][3] == f"{url}::{schema}.tickets?key=id"
    assert scalar(engine, "SELECT obj_description(CAST(:t AS regclass))", t=f"{schema}.clean") == \
        "pii_frames:" + summary["digest"]


def test_rerun_rewrites_nothing_and_a_killed_run_resumes_to_the_same_table(db, schema, monkeypatch):
    url, engine = db
    make_source(engine, schema, 120)
    first = job(url, schema, "clean").run()
    oid = scalar(engine, "SELECT CAST(:t AS regclass)::oid", t=f"{schema}.clean")
    again = job(url, schema, "clean").run()
    assert not again["changed"] and again["recomputed"] == 0
    assert scalar(engine, "SELECT CAST(:t AS regclass)::oid", t=f"{schema}.clean") == oid  # the very same table

    # A run that dies in its third chunk publishes nothing; the retry computes only what is missing.
    original = SanitizeJob.sanitize_table
    calls = []

    def failing(self, table):
        calls.append(table.column("id")[0].as_py())
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return original(self, table)

    monkeypatch.setattr(SanitizeJob, "sanitize_table", failing)
    second = job(url, schema, "clean_again")
    with pytest.raises(RuntimeError, match="worker killed"):
        second.run()
    assert not scalar(engine, "SELECT to_regclass(:t) IS NOT NULL", t=f"{schema}.clean_again")
    calls.clear()
    resumed = job(url, schema, "clean_again").run()
    assert resumed["recomputed"] == 1 and len(calls) == 1
    assert resumed["digest"] == first["digest"]
    checksum = "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM \"{}\".{} t"
    assert scalar(engine, checksum.format(schema, "clean")) == scalar(engine, checksum.format(schema, "clean_again"))


def test_a_key_that_is_not_unique_fails_before_anything_is_written(db, schema):
    url, engine = db
    make_source(engine, schema, 30)
    with engine.begin() as con:
        con.execute(sa.text(f'ALTER TABLE "{schema}".tickets DROP CONSTRAINT tickets_pkey'))
        con.execute(sa.text(f'ALTER TABLE "{schema}".tickets ALTER COLUMN id DROP NOT NULL'))
        con.execute(sa.text(f'UPDATE "{schema}".tickets SET id = 14 WHERE id = 21'))
    with pytest.raises(ValueError, match=r"key column 'id' of SQL table .*tickets .* is not unique: 30 rows, 29 "
                                         r"distinct non-null keys \(value 14 appears 2 times\)"):
        job(url, schema).plan()
    with engine.begin() as con:
        con.execute(sa.text(f'UPDATE "{schema}".tickets SET id = NULL WHERE id = 14'))
    with pytest.raises(ValueError, match=r"2 null key\(s\)"):
        job(url, schema).run()
    assert not scalar(engine, "SELECT to_regclass(:t) IS NOT NULL", t=f"{schema}.clean")
    assert not scalar(engine, "SELECT to_regclass(:t) IS NOT NULL", t=f"{schema}.clean_pii_audit")


def test_unknown_table_column_or_key_is_one_clear_error(db, schema):
    url, engine = db
    make_source(engine, schema, 5)
    with pytest.raises(ValueError, match=rf"source SQL table {schema}.missing \(key id\) in .* does not exist"):
        job(url, schema, source="missing").plan()
    with pytest.raises(ValueError, match=r"column 'bodyy' is not in SQL table .*; its columns are \['id', 'body'"):
        job(url, schema, columns=["bodyy"]).plan()
    with pytest.raises(ValueError, match=r"key column 'nope' is not in"):
        SanitizeJob(source=f"{url}::{schema}.tickets?key=nope", columns="body",
                    destination={"url": url, "table": f"{schema}.clean", "key": "nope"}).plan()
    with pytest.raises(ValueError, match=r"column 'amount' .* has type NUMERIC\(10, 2\), not text"):
        job(url, schema, columns=["amount"]).plan()
    with pytest.raises(ValueError, match="is the source table"):
        job(url, schema, "tickets").plan()
    with pytest.raises(ValueError, match="is the source table"):  # unqualified: the default schema resolved
        SanitizeJob(source=f"{url}::public.t?key=id", columns="body", destination=f"{url}::t?key=id").plan()


def test_odd_identifiers_are_quoted_not_pasted(db, schema):
    url, engine = db
    odd_schema, odd_table = schema + ' "x"', 'tick"ets; DROP TABLE x'
    with engine.begin() as con:
        con.execute(sa.text('CREATE SCHEMA "{}"'.format(odd_schema.replace('"', '""'))))
        con.execute(sa.text('CREATE TABLE "{}"."{}" ("Key" int PRIMARY KEY, "Body Text" text)'.format(
            odd_schema.replace('"', '""'), odd_table.replace('"', '""'))))
        con.execute(sa.text('INSERT INTO "{}"."{}" VALUES (1, :a), (2, NULL), (3, :b)'.format(
            odd_schema.replace('"', '""'), odd_table.replace('"', '""'))),
            {"a": "write to ann.lee@example.com", "b": "no personal data here"})
    location = {"url": url, "schema": odd_schema, "table": odd_table, "key": "Key"}
    summary = SanitizeJob(source=location, columns=["Body Text"], model=None,
                          destination={**location, "table": "clean table"}).run()
    assert summary["rows"] == 3
    with engine.connect() as con:
        rows = con.execute(sa.text('SELECT "Key", "Body Text" FROM "{}"."clean table" ORDER BY 1'.format(
            odd_schema.replace('"', '""')))).fetchall()
    assert rows[0][1] == "write to <PRIVATE_EMAIL>" and rows[1][1] is None and rows[2][1] == "no personal data here"


def test_a_table_pii_frames_did_not_write_is_refused_unless_overwrite(db, schema):
    url, engine = db
    make_source(engine, schema, 20)
    with engine.begin() as con:
        con.execute(sa.text(f'CREATE TABLE "{schema}".clean (precious text)'))
        con.execute(sa.text(f"INSERT INTO \"{schema}\".clean VALUES ('keep me')"))
    with pytest.raises(SanitizeJobError, match=r"destination SQL table .*clean .* was not written by pii_frames"):
        job(url, schema).plan()
    assert scalar(engine, f'SELECT precious FROM "{schema}".clean') == "keep me"
    summary = job(url, schema, overwrite=True).run()
    assert summary["changed"] and scalar(engine, f'SELECT count(*) FROM "{schema}".clean') == 20


def test_a_failed_swap_leaves_the_old_table_and_no_staging_table(db, schema):
    url, engine = db
    make_source(engine, schema, 20)
    job(url, schema).run()
    before = scalar(engine, f"SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM \"{schema}\".clean t")
    with engine.begin() as con:
        con.execute(sa.text(f'CREATE VIEW "{schema}".clean_view AS SELECT id FROM "{schema}".clean'))
        con.execute(sa.text(f"UPDATE \"{schema}\".tickets SET body = 'call bob at bob@example.com' WHERE id = 7"))
    with pytest.raises(SanitizeJobError, match=r"cannot replace SQL table .*clean .*depend"):
        job(url, schema).run()
    assert scalar(engine, f"SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM \"{schema}\".clean t") == before
    assert scalar(engine, "SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename LIKE 'pii_stage_%'",
                  s=schema) == 0


def test_location_forms_and_passwords(db):
    url, _ = db
    with_password = url.replace("postgres@", "postgres:s3cret@")
    location = parse_location(f"{with_password}::raw.t?key=id")
    assert location.uri == url.replace("postgres@", "postgres:***@") + "::raw.t?key=id"
    assert "s3cret" not in repr(location) and "s3cret" not in location.describe()
    assert parse_location(json.dumps(location.spec)) == location
    job_ = SanitizeJob(source=f"{with_password}::raw.t?key=id", columns="body",
                       destination=f"{with_password}::clean.t?key=id")
    assert "s3cret" not in repr(job_)
    assert job_.audit_location == location.with_table("t_pii_audit").__class__(
        table="t_pii_audit", key="id", schema="clean", url=with_password)
    conn = parse_location({"conn_id": "warehouse", "table": "raw.tickets", "key": "id"})
    assert conn.uri == "airflow-conn://warehouse::raw.tickets?key=id" and parse_location(conn.uri) == conn
    for bad, message in (
        ({"table": "t", "key": "id", "url": url, "conn_id": "x"}, "exactly one of"),
        ({"conn_id": "x", "table": "t"}, "names no key column"),
        ({"conn_id": "x", "table": "t", "key": "id", "tabel": "y"}, r"unknown key\(s\) \['tabel'\]"),
        (f"{url}::t", r"add '\?key=<unique column>'"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_location(bad)
    with pytest.raises(ValueError, match="must be a table of the same database"):
        SanitizeJob(source="/data/x.parquet", columns="body", destination=f"{url}::clean.t?key=id")


def test_airflow_connection_is_read_through_its_dbapi_hook(server, db, schema, monkeypatch, tmp_path):
    pytest.importorskip("airflow.providers.postgres", reason="needs apache-airflow-providers-postgres")
    url, engine = db
    make_source(engine, schema, 12)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW_CONN_PII_TEST_PG", url.replace("postgresql+psycopg", "postgresql"))
    location = {"conn_id": "pii_test_pg", "table": f"{schema}.tickets", "key": "id"}
    summary = SanitizeJob(source=location, columns=["body"], model=None,
                          destination={**location, "table": f"{schema}.clean"},
                          work_dir=str(tmp_path / "work")).run()
    assert summary["rows"] == 12 and summary["asset_uri"] == f"postgres://127.0.0.1:{server.port}/crm/{schema}/clean"
    assert scalar(engine, f"SELECT count(*) FROM \"{schema}\".clean WHERE body ~ '@example'") == 0
    assert scalar(engine, f"SELECT source FROM \"{schema}\".clean_pii_audit LIMIT 1") == \
        f"airflow-conn://pii_test_pg::{schema}.tickets?key=id"


def test_parquet_destination_from_a_postgres_source(db, schema, tmp_path):
    url, engine = db
    make_source(engine, schema, 25)
    import pyarrow.parquet as pq

    summary = SanitizeJob(source=f"{url}::{schema}.tickets?key=id", columns=["body"], model=None,
                          destination=str(tmp_path / "clean"), rows_per_chunk=10).run()
    table = pq.read_table(tmp_path / "clean")
    assert summary["rows"] == 25 and table.column("id").to_pylist() == [7 * i for i in range(1, 26)]
    assert not any(EMAIL.search(v or "") for v in table.column("body").to_pylist())
    assert str(table.schema.field("amount").type) == "decimal128(10, 2)"
    assert str(table.schema.field("created").type) == "timestamp[us, tz=UTC]"
    assert os.path.exists(tmp_path / "clean_pii_audit.parquet")
