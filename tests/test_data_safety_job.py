"""SanitizeJob never loses data that is not its own, and never leaks its key (issue 16).

Each case failed on the job as it was: a DuckDB destination differing from the
source only in letter case overwrote the source, `main.FINANCE` replaced a
user's `finance`, an audit could replace the source or a user's file, an audit
inside the output folder became data rows, a symlinked destination (`current ->
v1`) broke after publishing, dead runs' temporaries stayed forever, one bad
UTF-8 byte failed the whole column, and repr/pickle showed the pseudonym key.
Runs the real engine on the tiny fixture checkpoint.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pii_frames.airflow.jobs import SanitizeJob, SanitizeJobError
from pii_frames.io import atomic

from shared_paths import OPF_TINY  # noqa: E402

if not OPF_TINY.is_dir():
    pytest.skip(f"shared fixture model {OPF_TINY} is absent", allow_module_level=True)

TINY = str(OPF_TINY)
ORIGINAL_SANITIZE_TABLE = SanitizeJob.sanitize_table


def make_table(n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "body": [f"ticket {i}: mail ann{i}@example.com" for i in range(n)]})


def job(source, destination, **options) -> SanitizeJob:
    options.setdefault("model", TINY)
    options.setdefault("rows_per_chunk", 40)
    return SanitizeJob(source=str(source), columns=["body"], destination=str(destination), **options)


@pytest.fixture
def model_calls(monkeypatch) -> list[int]:
    calls: list[int] = []

    def counting(self, table):
        calls.append(table.num_rows)
        return ORIGINAL_SANITIZE_TABLE(self, table)

    monkeypatch.setattr(SanitizeJob, "sanitize_table", counting)
    return calls


@pytest.fixture
def warehouse(tmp_path) -> Path:
    database = tmp_path / "w.db"
    with duckdb.connect(str(database)) as con:
        con.register("rows", make_table(50))
        con.execute("CREATE TABLE main.raw_tickets AS SELECT * FROM rows")
        con.execute("CREATE TABLE main.finance AS SELECT 42 AS balance")
    return database


def rows_of(database: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


# ---------------------------------------------------------------- DuckDB names
def test_duckdb_destination_differing_only_in_case_is_the_source(warehouse):
    before = rows_of(warehouse, "main.raw_tickets")
    for destination in ("main.RAW_TICKETS", "MAIN.Raw_Tickets", "raw_tickets"):
        with pytest.raises(ValueError, match="is the source table"):
            job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse}::{destination}")
    # The same file under another name is the same database.
    os.symlink(warehouse, warehouse.parent / "alias.db")
    with pytest.raises(ValueError, match="is the source table"):
        job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse.parent / 'alias.db'}::main.RAW_TICKETS")
    assert rows_of(warehouse, "main.raw_tickets") == before


def test_existing_user_table_in_another_case_is_refused_before_any_work_unless_overwrite(warehouse, model_calls):
    source = f"duckdb://{warehouse}::main.raw_tickets"
    with pytest.raises(SanitizeJobError, match=r"exists as table main\.finance .* not written by pii_frames"):
        job(source, f"duckdb://{warehouse}::main.FINANCE").run()
    assert model_calls == []  # refused at planning, before the model ran
    assert rows_of(warehouse, "main.finance") == [(42,)]
    summary = job(source, f"duckdb://{warehouse}::main.FINANCE", overwrite=True).run()
    assert summary["rows"] == 50 and len(rows_of(warehouse, "main.finance")) == 50
    # Once pii_frames wrote it, re-runs need no overwrite (and under any letter case).
    assert not job(source, f"duckdb://{warehouse}::main.finance").run()["changed"]


def test_duckdb_views_are_never_replaced(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE VIEW main.report AS SELECT * FROM main.finance")
    with pytest.raises(SanitizeJobError, match="is the view"):
        job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse}::main.REPORT", overwrite=True).run()
    assert rows_of(warehouse, "main.report") == [(42,)]


# ----------------------------------------------------------------------- audit
def test_audit_may_not_be_the_source_or_inside_the_output(tmp_path, warehouse):
    source = tmp_path / "in.parquet"
    pq.write_table(make_table(10), source)
    before = source.read_bytes()
    with pytest.raises(ValueError, match="audit_destination .* overlaps the source"):
        job(source, tmp_path / "out", audit_destination=str(source))
    with pytest.raises(ValueError, match="audit_destination .* overlaps the source"):
        job(source, tmp_path / "out", audit_destination=str(tmp_path / "x" / ".." / "in.parquet"))
    with pytest.raises(ValueError, match="an audit inside the output"):
        job(source, tmp_path / "out", audit_destination=str(tmp_path / "out" / "audit.parquet"))
    with pytest.raises(ValueError, match="audit_destination .* overlaps the source"):
        job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse}::main.clean",
            audit_destination=f"duckdb://{warehouse}::main.Raw_Tickets")
    with pytest.raises(ValueError, match="audit_destination .* overlaps the source"):
        job(f"duckdb://{warehouse}::main.raw_tickets", tmp_path / "out", audit_destination=str(warehouse))
    with pytest.raises(ValueError, match="an audit inside the output"):
        job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse}::main.clean",
            audit_destination=f"duckdb://{warehouse}::main.CLEAN")
    assert source.read_bytes() == before


def test_a_user_file_or_table_with_the_default_audit_name_is_kept(tmp_path, warehouse, model_calls):
    source = tmp_path / "in.parquet"
    pq.write_table(make_table(10), source)
    user_file = tmp_path / "out_pii_audit.parquet"
    pq.write_table(pa.table({"mine": [1, 2, 3]}), user_file)
    before = user_file.read_bytes()
    with pytest.raises(SanitizeJobError, match="audit_destination .* not written by pii_frames"):
        job(source, tmp_path / "out").run()
    assert user_file.read_bytes() == before and not (tmp_path / "out").exists() and model_calls == []

    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE main.clean_pii_audit AS SELECT 'mine' AS x")
    with pytest.raises(SanitizeJobError, match="audit_destination .* not written by pii_frames"):
        job(f"duckdb://{warehouse}::main.raw_tickets", f"duckdb://{warehouse}::main.clean").run()
    assert rows_of(warehouse, "main.clean_pii_audit") == [("mine",)]

    summary = job(source, tmp_path / "out", overwrite=True).run()
    assert pq.read_table(user_file).num_rows == summary["chunks"]  # replaced on purpose


def test_work_dir_may_not_overlap_source_or_destination(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    pq.write_table(make_table(10), folder / "part.parquet")
    with pytest.raises(ValueError, match="work_dir .* overlaps the source"):
        job(folder, tmp_path / "out", work_dir=str(folder / "work"))
    with pytest.raises(ValueError, match="work_dir .* overlaps the destination"):
        job(folder, tmp_path / "out", work_dir=str(tmp_path / "out" / "work"))


# ------------------------------------------------------------ symlinked output
def test_symlinked_destination_publishes_a_new_sibling_and_swaps_the_link(tmp_path):
    source = tmp_path / "in.parquet"
    pq.write_table(make_table(30), source)
    job(source, tmp_path / "v1").run()
    v1_files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "v1").iterdir()}
    os.symlink("v1", tmp_path / "current")

    first = job(source, tmp_path / "current", policy="mask").run()
    link = tmp_path / "current"
    assert link.is_symlink() and os.readlink(link) == f"current.pii-{first['digest'][:12]}"  # still relative
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "v1").iterdir()} == v1_files  # v1 untouched
    assert pq.read_table(link).column("id").to_pylist() == list(range(30))
    assert (tmp_path / "current_pii_audit.parquet").exists()

    second = job(source, tmp_path / "current", policy="placeholder").run()
    assert second["changed"] and os.readlink(link) == f"current.pii-{second['digest'][:12]}"
    assert not (tmp_path / f"current.pii-{first['digest'][:12]}").exists()  # our previous version is gone
    assert not job(source, tmp_path / "current", policy="placeholder").run()["changed"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["in.parquet", "v1", "v1.pii_work", "v1_pii_audit.parquet", "current",
                            f"current.pii-{second['digest'][:12]}", "current.pii_work", "current_pii_audit.parquet"])


def test_symlink_to_a_foreign_folder_is_refused_unless_overwrite(tmp_path):
    source = tmp_path / "in.parquet"
    pq.write_table(make_table(5), source)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "notes.txt").write_text("mine")
    os.symlink(tmp_path / "v1", tmp_path / "current")
    with pytest.raises(SanitizeJobError, match="not written by pii_frames"):
        job(source, tmp_path / "current").run()
    summary = job(source, tmp_path / "current", overwrite=True).run()
    assert os.readlink(tmp_path / "current") == str(tmp_path / f"current.pii-{summary['digest'][:12]}")
    assert (tmp_path / "v1" / "notes.txt").read_text() == "mine"  # the old target is not ours: kept


# ----------------------------------------------------------------- temporaries
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_runs_temporaries_are_swept_and_nothing_else(tmp_path):
    source = tmp_path / "in.parquet"
    pq.write_table(make_table(10), source)
    host, dead, alive = atomic._host_tag(), dead_pid(), os.getpid()
    stale_publish = tmp_path / f".out.pii-publish-{host}-{dead}-0123abcd"
    stale_publish.mkdir()
    os.link(source, stale_publish / "part-00000.parquet")  # hard links kept pruned data on disk
    stale_audit = tmp_path / f".out_pii_audit.parquet.pii-tmp-{host}-{dead}-89abcdef"
    stale_audit.write_bytes(b"half an audit")
    legacy = tmp_path / ".out.publish-0123456789ab"  # pii_frames 0.1's name: swept once a day old
    legacy.mkdir()
    os.utime(legacy, (0, 0))
    kept = [
        tmp_path / f".out.pii-publish-{host}-{alive}-0123abcd",  # a live process is still writing
        tmp_path / ".out.publish-ba9876543210",  # 0.1's name, but recent: its writer may be alive
        tmp_path / ".out.swp",  # another program's
        tmp_path / f".elsewhere.pii-tmp-{host}-{dead}-0123abcd",  # a temporary for another target
    ]
    for path in kept:
        path.mkdir()
    job(source, tmp_path / "out").run()
    assert not stale_publish.exists() and not stale_audit.exists() and not legacy.exists()
    assert all(path.exists() for path in kept)
    assert os.stat(source).st_nlink == 1


# ------------------------------------------------------------------ bad bytes
def test_invalid_utf8_names_file_and_row_or_nulls_only_that_cell(tmp_path):
    source = tmp_path / "in.parquet"
    bodies = pa.array([b"Anna", b"mail bob@example.com", b"caf\xe9", None, b"ok"]).view(pa.string())
    pq.write_table(pa.table({"id": list(range(5)), "body": bodies}), source, row_group_size=2)
    with pytest.raises(SanitizeJobError, match=rf"column 'body' row 0 of chunk 1 \({source} row 2\) is not valid utf-8"):
        job(source, tmp_path / "out", rows_per_chunk=2).run()
    job(source, tmp_path / "out", rows_per_chunk=2, detect_options={"on_error": "null"}).run()
    output = pq.read_table(tmp_path / "out")
    assert output.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert [v is None for v in output.column("body").to_pylist()] == [False, False, True, True, False]


# ---------------------------------------------------------------------- secrets
KEY = "correct horse battery staple"


def test_key_is_hidden_from_repr(tmp_path):
    for policy in ({"operator": "pseudonym", "key": KEY}, json.dumps({"operator": "pseudonym", "key": KEY})):
        shown = repr(job(tmp_path / "in.parquet", tmp_path / "out", policy=policy))
        assert KEY not in shown and "hidden" in shown


def test_literal_key_is_pickled_only_on_purpose_and_a_key_reference_travels_instead(tmp_path, monkeypatch):
    literal = job(tmp_path / "in.parquet", tmp_path / "out", policy={"operator": "pseudonym", "key": KEY})
    with pytest.raises(pickle.PicklingError, match="key_env"):
        pickle.dumps(literal)

    allowed = job(tmp_path / "in.parquet", tmp_path / "out", policy={"operator": "pseudonym", "key": KEY},
                  allow_key_in_pickle=True)
    data = pickle.dumps(allowed)
    assert KEY.encode() in data and b"allow_key_in_pickle=True" in data  # says that it holds a secret
    assert pickle.loads(data).policy_hash == literal.policy_hash

    monkeypatch.setenv("PII_TEST_JOB_KEY", KEY)
    by_reference = job(tmp_path / "in.parquet", tmp_path / "out",
                       policy={"operator": "pseudonym", "key_env": "PII_TEST_JOB_KEY"})
    by_reference.detector()  # a loaded model must not travel either
    data = pickle.dumps(by_reference)
    assert KEY.encode() not in data and b"PII_TEST_JOB_KEY" in data
    # On the worker the key is read from its environment: the same pseudonyms as the literal key.
    code = (
        "import pickle, sys\n"
        "job = pickle.loads(sys.stdin.buffer.read())\n"
        "assert job._detector is None\n"
        "print(job.policy_hash, job.policy_object.replacement('private_person', 'Ann'))\n"
    )
    worker = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120,
                            env={**os.environ, "PII_TEST_JOB_KEY": KEY})
    assert worker.returncode == 0, worker.stderr.decode()
    digest, pseudonym = worker.stdout.decode().split()
    assert digest == literal.policy_hash
    assert pseudonym == literal.policy_object.replacement("private_person", "Ann")



def test_model_calls_stay_bounded_within_a_big_chunk(tmp_path, monkeypatch):
    from pii_frames.engine.detector import Detector
    from pii_frames.io.text import MODEL_CALL_BYTES

    rows = [f"ticket {i}: mail ann{i}@example.com, phone 555-01{i % 100:02d}. " * 8 for i in range(700)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(700)), "body": rows}), source)
    calls: list[int] = []
    original = Detector.detect_arrow

    def recording(self, array, **options):
        calls.append(sum(len(v.encode()) for v in array.to_pylist() if v))
        return original(self, array, **options)

    monkeypatch.setattr(Detector, "detect_arrow", recording)
    job(source, tmp_path / "out", rows_per_chunk=50_000).run()
    assert sum(calls) == sum(len(r.encode()) for r in rows) and len(calls) >= 3
    assert max(calls) <= MODEL_CALL_BYTES
    output = pq.read_table(tmp_path / "out")
    expected = [r.redacted_text for r in SanitizeJob(source=str(source), columns="body", destination=str(tmp_path / "o2"),
                                                      model=TINY).detector().redact_many(rows)]
    assert output.column("body").to_pylist() == expected
