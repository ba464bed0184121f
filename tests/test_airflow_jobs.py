"""The table-sanitization job behind the Airflow operators, without a scheduler.

Runs the real engine on the tiny fixture checkpoint (meaningless predictions,
real code paths); the end-to-end DAG test with the default model is in
test_airflow_dag.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pii_frames.airflow.jobs import SanitizeJob, SanitizeJobError, parse_columns, resolve_policy
from pii_frames.airflow.tables import parse_location, plan_parquet_pieces

from shared_paths import OPF_TINY  # noqa: E402

TINY = str(OPF_TINY)
REPO = Path(__file__).resolve().parents[1]
ORIGINAL_SANITIZE_TABLE = SanitizeJob.sanitize_table


def make_table(n: int) -> pa.Table:
    bodies = [None if i % 9 == 0 else f"ticket {i}: mail ann{i}@example.com or call 555-01{i % 100:02d}" for i in range(n)]
    return pa.table({"id": pa.array(range(n), pa.int64()), "body": bodies, "score": [float(i) for i in range(n)]})


@pytest.fixture
def parquet_source(tmp_path: Path) -> tuple[Path, pa.Table]:
    table = make_table(260)
    folder = tmp_path / "raw"
    folder.mkdir()
    pq.write_table(table.slice(0, 160), folder / "part-a.parquet", row_group_size=50)
    pq.write_table(table.slice(160), folder / "part-b.parquet", row_group_size=100)
    (folder / "_SUCCESS").write_text("")  # writer markers are not data
    return folder, table


def job_for(source, destination, **options) -> SanitizeJob:
    options.setdefault("model", TINY)
    options.setdefault("rows_per_chunk", 70)
    return SanitizeJob(source=str(source), columns=["body"], destination=str(destination), **options)


class CountingSanitizer:
    """Wraps SanitizeJob.sanitize_table to count model runs and optionally fail on chosen chunks."""

    def __init__(self, monkeypatch, fail_on_rows_starting_with: set[int] = frozenset()):
        self.calls = 0
        self.fail_on = set(fail_on_rows_starting_with)
        def wrapped(job, table):
            first_id = table.column("id")[0].as_py() if table.num_rows else None
            if first_id in self.fail_on:
                raise RuntimeError(f"simulated worker crash on chunk starting at id {first_id}")
            self.calls += 1
            return ORIGINAL_SANITIZE_TABLE(job, table)

        monkeypatch.setattr(SanitizeJob, "sanitize_table", wrapped)


def test_locations_and_columns_parse():
    assert parse_location("duckdb:///tmp/w.db::t").schema == "main"
    assert parse_location("duckdb://rel/w.db::s.t").database == os.path.abspath("rel/w.db")
    with pytest.raises(ValueError, match="names no table"):
        parse_location("duckdb:///tmp/w.db")
    with pytest.raises(ValueError, match="only local"):
        parse_location("s3://bucket/key")
    assert parse_columns("['a', 'b']") == ["a", "b"]
    assert parse_columns(["a"]) == ["a"]
    with pytest.raises(ValueError, match="twice"):
        parse_columns("a,a")
    assert resolve_policy("None") is None
    assert resolve_policy({"operator": "mask", "labels": ["private_email"]}).operator == "mask"


def test_plan_packs_row_groups_and_splits_large_ones(parquet_source):
    folder, _ = parquet_source
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    chunks = plan_parquet_pieces(files, 70)
    assert sum(c["rows"] for c in chunks) == 260
    assert all(c["rows"] <= 70 for c in chunks)
    # part-b has one 100-row group: split into two ranges that cover it exactly once
    b_pieces = [p for c in chunks for p in c["pieces"] if p["file"].endswith("part-b.parquet")]
    assert [(p["offset"], p["length"]) for p in b_pieces] == [(0, 50), (50, 50)]
    job = job_for(folder, folder.parent / "out", max_chunks=2)
    plan = job.plan()
    assert len(plan) <= 2 and sum(c["rows"] for c in plan) == 260


def test_bad_input_errors_name_the_problem(parquet_source, tmp_path):
    folder, _ = parquet_source
    with pytest.raises(ValueError, match="column 'missing' is not in Parquet"):
        SanitizeJob(source=str(folder), columns="missing", destination=str(tmp_path / "o"), model=TINY).plan()
    with pytest.raises(ValueError, match="column 'score' .* has type double, not text"):
        SanitizeJob(source=str(folder), columns="score", destination=str(tmp_path / "o"), model=TINY).plan()
    with pytest.raises(ValueError, match="overlaps the source"):
        SanitizeJob(source=str(folder), columns="body", destination=str(folder / "clean"), model=TINY)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not ours")
    with pytest.raises(SanitizeJobError, match="was not written by pii_frames"):
        job_for(folder, foreign).run()
    assert (foreign / "keep.txt").read_text() == "not ours"


def test_parquet_run_resume_and_noop(parquet_source, tmp_path, monkeypatch):
    folder, table = parquet_source
    destination = tmp_path / "clean"
    planner = job_for(folder, destination)
    plan = planner.plan()
    crash_ids = {planner.read_chunk(plan[i]).column("id")[0].as_py() for i in (2, 3)}

    crashing = CountingSanitizer(monkeypatch, crash_ids)
    job = job_for(folder, destination, include_spans=True)
    done = []
    for chunk in plan:
        try:
            done.append(job.sanitize_chunk(chunk, run_id="run-1"))
        except RuntimeError:
            pass
    assert crashing.calls == len(plan) - 2 and len(done) == len(plan) - 2
    with pytest.raises(SanitizeJobError, match="missing"):
        job.publish(plan, done)
    assert not destination.exists()  # nothing is published from a partial run

    resumed = CountingSanitizer(monkeypatch)
    summary = job_for(folder, destination, include_spans=True).run(run_id="run-2")
    assert resumed.calls == 2  # only the two crashed chunks ran the model again
    assert summary["changed"] and summary["recomputed"] == 2 and summary["rows"] == 260

    output = pq.read_table(destination)
    assert output.column("id").to_pylist() == list(range(260))  # nothing lost, duplicated or reordered
    assert output.column_names == ["id", "body", "body_pii_spans", "score"]
    assert [v is None for v in output.column("body").to_pylist()] == [v is None for v in table.column("body").to_pylist()]
    span_fields = [f.name for f in output.schema.field("body_pii_spans").type.value_type]
    assert span_fields == ["label", "start", "end", "score"]  # the raw PII text is not copied

    audit = pq.read_table(str(destination) + "_pii_audit.parquet").to_pylist()
    assert [row["chunk_index"] for row in audit] == list(range(len(plan)))
    assert sum(row["rows"] for row in audit) == 260
    assert len({row["fingerprint"] for row in audit}) == len(plan)
    assert {row["computed_in_run"] for i, row in enumerate(audit) if i in (2, 3)} == {"run-2"}
    assert {row["computed_in_run"] for i, row in enumerate(audit) if i not in (2, 3)} == {"run-1"}
    assert all(row["model_id"].startswith(TINY + "@") and row["duration_s"] >= 0 for row in audit)

    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in destination.iterdir()}
    audit_before = Path(str(destination) + "_pii_audit.parquet").stat().st_mtime_ns
    again = CountingSanitizer(monkeypatch)
    summary = job_for(folder, destination, include_spans=True).run(run_id="run-3")
    assert again.calls == 0 and not summary["changed"] and summary["recomputed"] == 0
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in destination.iterdir()} == before
    assert Path(str(destination) + "_pii_audit.parquet").stat().st_mtime_ns == audit_before


def test_new_policy_recomputes_and_prunes_old_chunks(parquet_source, tmp_path, monkeypatch):
    folder, _ = parquet_source
    destination = tmp_path / "clean"
    first = job_for(folder, destination).run()
    counting = CountingSanitizer(monkeypatch)
    second = job_for(folder, destination, policy={"operator": "mask"}).run()
    assert counting.calls == second["chunks"] and second["changed"]
    assert first["policy_hash"] != second["policy_hash"] and first["digest"] != second["digest"]
    work = Path(str(destination) + ".pii_work") / "chunks"
    assert len(list(work.glob("*.parquet"))) == second["chunks"]  # the first policy's chunks are gone
    manifest = json.loads((destination / "_pii_frames_manifest.json").read_text())
    assert manifest["digest"] == second["digest"]


def test_duckdb_source_and_destination(tmp_path, monkeypatch):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("rows", make_table(150))
        con.execute("CREATE SCHEMA raw; CREATE TABLE raw.tickets AS SELECT * FROM rows")
        con.execute("DELETE FROM raw.tickets WHERE id BETWEEN 40 AND 59")  # row-id gaps are fine
    job = SanitizeJob(
        source=f"duckdb://{database}::raw.tickets",
        columns="body",
        destination=f"duckdb://{database}::clean.tickets",
        model=TINY,
        rows_per_chunk=40,
        include_category=True,
    )
    summary = job.run(run_id="r1")
    assert summary["rows"] == 130 and summary["changed"]
    with duckdb.connect(str(database), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM clean.tickets").fetchall()]
        audit_rows = con.execute("SELECT sum(rows), count(*) FROM clean.tickets_pii_audit").fetchall()
        columns = [r[0] for r in con.execute("DESCRIBE clean.tickets").fetchall()]
    assert ids == [i for i in range(150) if not 40 <= i <= 59]
    assert audit_rows == [(130, summary["chunks"])]
    assert columns == ["id", "body", "body_pii_category", "score"]

    counting = CountingSanitizer(monkeypatch)
    again = SanitizeJob(**{**job_kwargs(job), "include_category": True}).run(run_id="r2")
    assert counting.calls == 0 and not again["changed"]

    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE main.handmade AS SELECT 1 AS x")
    with pytest.raises(SanitizeJobError, match="was not written by pii_frames"):
        SanitizeJob(**{**job_kwargs(job), "destination": f"duckdb://{database}::main.handmade"}).run()


def job_kwargs(job: SanitizeJob) -> dict:
    return {
        "source": job.source,
        "columns": job.columns,
        "destination": job.destination,
        "model": job.model,
        "rows_per_chunk": job.rows_per_chunk,
    }


def test_empty_source_publishes_an_empty_table(tmp_path):
    source = tmp_path / "empty.parquet"
    pq.write_table(make_table(0), source)
    summary = job_for(source, tmp_path / "out", include_spans=True).run()
    assert summary["rows"] == 0 and summary["chunks"] == 1
    output = pq.read_table(tmp_path / "out")
    assert output.num_rows == 0 and output.column_names == ["id", "body", "body_pii_spans", "score"]


def test_importing_pii_frames_never_imports_airflow():
    code = (
        "import sys, pii_frames, pii_frames.engine.loading\n"
        "from pii_frames.airflow import SanitizeJob\n"
        "import pii_frames.airflow.jobs\n"
        "assert 'airflow.sdk' not in sys.modules and 'airflow' not in sys.modules, sorted(m for m in sys.modules if m.startswith('airflow'))\n"
        "from pii_frames.airflow import PiiSanitizeOperator\n"
        "assert 'airflow.sdk' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_publish_reads_mapped_results_with_one_slice(monkeypatch):
    """Iterating Airflow's lazy XCom sequence probes one past the end and logs "[error] XCom not found"."""
    pytest.importorskip("airflow.sdk")
    import pii_frames.airflow.operators as operators

    class LazyResults(Sequence):
        def __init__(self, items):
            self.items = items

        def __len__(self):
            return len(self.items)

        def __getitem__(self, key):
            if isinstance(key, slice):
                return list(self.items[key])
            raise AssertionError("publish must not read mapped results one index at a time")

        def __iter__(self):
            raise AssertionError("publish must not iterate the lazy XCom sequence")

    seen = {}

    class FakeJob:
        def publish(self, plan, results):
            seen["results"] = results
            return {"rows": 2}

    monkeypatch.setattr(operators, "_make_job", lambda job: FakeJob())
    monkeypatch.setattr(operators, "get_current_context", lambda: {})
    monkeypatch.setattr(operators, "emit_asset_event", lambda context, summary, alias: None)
    summary = operators.publish.function([{"index": 0}, {"index": 1}], LazyResults([{"rows": 1}, {"rows": 1}]), {})
    assert summary == {"rows": 2} and seen["results"] == [{"rows": 1}, {"rows": 1}]


def test_policy_hash_is_the_one_earlier_runs_recorded(monkeypatch):
    # Hashes written by the job before it hashed Policy.description(): a rerun over a destination published
    # then must find its chunks' fingerprints unchanged (no recompute, no republish).
    monkeypatch.setenv("PII_TEST_HASH_KEY", "correct horse")
    recorded = {
        None: "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        '{"operator": "mask"}': "a1aa3e06aafa2093151781bea274eab8783716f1a0a65edf304a49ae7170eddf",
        '{"operator": "pseudonym", "key": "correct horse"}':
            "1ea29568ef6dac24ae1f4b4ba1168411ae9c19894e364a8bfbf1912a798ec667",
        '{"operator": "pseudonym", "key_env": "PII_TEST_HASH_KEY"}':
            "1ea29568ef6dac24ae1f4b4ba1168411ae9c19894e364a8bfbf1912a798ec667",
        '{"operator": "keep_last", "labels": ["account_number"], "deny": ["ACME-42"], "min_score": 0.4}':
            "909594082277019aa7bba2bbd73beef119af368e7ea9373c8197c841d56ba409",
    }
    for policy, expected in recorded.items():
        job = SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/out", policy=policy)
        assert job.policy_hash == expected, policy


def test_policy_recognizers_are_part_of_the_policy_hash():
    # Chunks redacted with other recognizers must not be reused as if the policy were the same.
    custom = {"custom": [{"name": "employee_id", "label": "employee_id", "regex": r"EMP-\d{6}"}]}
    plain = SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/out", policy={"operator": "mask"})
    with_rules = SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/out",
                             policy={"operator": "mask", "recognizers": custom})
    assert plain.policy_hash != with_rules.policy_hash
