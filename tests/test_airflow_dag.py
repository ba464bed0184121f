"""The example DAG and the operator under real Apache Airflow 3 (``dag.test()``, SQLite, no scheduler).

Airflow reads its configuration when first imported, so nothing here imports
Airflow at module level: the session fixture points AIRFLOW_HOME at a
temporary folder, migrates the metadata database and serializes the DAGs
first. The 5,000-row run uses the embedded default model.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faker_names import core_name

from pii_frames.airflow.jobs import SanitizeJob

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[1]
from shared_paths import OPF_TINY  # noqa: E402

TINY = str(OPF_TINY)
ORIGINAL_SANITIZE_CHUNK = SanitizeJob.sanitize_chunk
ORIGINAL_SANITIZE_TABLE = SanitizeJob.sanitize_table
ROWS = 5_000
ROWS_PER_CHUNK = 1_000
FAILING_FROM_CHUNK = 2

OPERATOR_DAG = '''
from airflow.sdk import DAG
from pii_frames.airflow import PiiSanitizeOperator

with DAG("pii_frames_operator_check", schedule=None, render_template_as_native_obj=True,
         params={"source": "", "destination": "", "model": None}):
    PiiSanitizeOperator(
        task_id="sanitize",
        source="{{ params.source }}",
        columns=["body"],
        destination="{{ params.destination }}",
        model="{{ params.model }}",
        policy={"operator": "mask"},
        include_spans=True,
        rows_per_chunk=60,
    )
'''


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A throwaway Airflow home (SQLite) with the example DAG and an operator DAG, migrated and serialized."""
    # conftest created the suite's Airflow home before collection (Airflow may be imported by then).
    home = Path(os.environ["AIRFLOW_HOME"])
    dags = home / "dags"
    dags.mkdir(exist_ok=True)
    shutil.copy(REPO / "airflow_dags" / "pii_sanitize_table.py", dags)
    (dags / "pii_frames_operator_check.py").write_text(OPERATOR_DAG)
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        pytest.fail("Airflow was imported before the airflow_home fixture; it would use another configuration")
    patcher = pytest.MonkeyPatch()
    for name, value in settings.items():
        patcher.setenv(name, value)
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *command], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"airflow {' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    yield home
    patcher.undo()


@pytest.fixture(scope="module", autouse=True)
def restore_root_logging():
    """Airflow installs its own root handler and level on import; later test modules get theirs back."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def load_dag(dag_folder: Path, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_folder))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags[dag_id]


def asset_events(uri: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent.extra, AssetEvent.source_run_id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
        )
        return [tuple(row) for row in session.execute(query).all()]


def task_states(dagrun) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dagrun.get_task_instances()}


def contact_table(rows: int) -> tuple[pa.Table, list[str], list[str], dict[int, str]]:
    """A table of contact notes (a null every 50 rows) and the emails, phones and names (by row id) in it."""
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(8)
    templates = (
        "Hi, I'm {name}. Email me at {email} or call {phone}.",
        "Please reach {name} on {phone}, backup address {email}.",
        "New contact: {email}, phone {phone}.",
        "{name} asked to be called back at {phone} (mail: {email}).",
    )
    bodies, emails, phones, names = [], [], [], {}
    for i in range(rows):
        if i % 50 == 0:
            bodies.append(None)
            continue
        email, phone = fake.unique.email(), fake.numerify(fake.random_element(("###-###-####", "(###) ###-####")))
        emails.append(email)
        phones.append(phone)
        template = templates[i % len(templates)]
        name = fake.name()
        if "{name}" in template:
            names[i] = name
        bodies.append(template.format(name=name, email=email, phone=phone))
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "body": bodies, "region": [f"r{i % 7}" for i in range(rows)]})
    return table, emails, phones, names


def test_dag_folder_imports_without_errors(airflow_home):
    dag = load_dag(REPO / "airflow_dags", "pii_sanitize_table")
    assert {"source", "columns", "destination", "policy", "model"} <= set(dag.params.keys())
    assert {"pii_sanitize.plan_chunks", "pii_sanitize.sanitize_chunk", "pii_sanitize.publish"} <= set(dag.task_ids)
    publish = dag.get_task("pii_sanitize.publish")
    assert [outlet.name for outlet in publish.outlets] == ["pii_frames_sanitized"]


@pytest.fixture(scope="module")
def example_dag_runs(airflow_home, tmp_path_factory):
    """Three runs of the example DAG: one whose chunks >= 2 crash, a resuming run, then a no-op run."""
    work = tmp_path_factory.mktemp("pii_dag_run")
    table, emails, phones, names = contact_table(ROWS)
    source = work / "contacts.parquet"
    pq.write_table(table, source, row_group_size=ROWS_PER_CHUNK)
    destination = work / "clean"
    conf = {
        "source": str(source),
        "columns": ["body"],
        "destination": str(destination),
        "rows_per_chunk": ROWS_PER_CHUNK,
        "include_spans": True,
    }
    dag = load_dag(airflow_home / "dags", "pii_sanitize_table")
    model_runs: list[int] = []
    patcher = pytest.MonkeyPatch()
    patcher.delenv("PII_FRAMES_MODEL", raising=False)  # the DAG's default: the embedded model

    def crashing_chunk(job, chunk, *, run_id=None):
        if chunk["index"] >= FAILING_FROM_CHUNK:
            raise RuntimeError(f"simulated worker loss in chunk {chunk['index']}")
        return ORIGINAL_SANITIZE_CHUNK(job, chunk, run_id=run_id)

    def counting_table(job, chunk_table):
        model_runs.append(chunk_table.num_rows)
        return ORIGINAL_SANITIZE_TABLE(job, chunk_table)

    try:
        patcher.setattr(SanitizeJob, "sanitize_table", counting_table)
        patcher.setattr(SanitizeJob, "sanitize_chunk", crashing_chunk)
        failed = dag.test(run_conf=conf)
        runs_after_failure = len(model_runs)
        patcher.setattr(SanitizeJob, "sanitize_chunk", ORIGINAL_SANITIZE_CHUNK)
        resumed = dag.test(run_conf=conf)
        runs_after_resume = len(model_runs)
        snapshot = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in destination.iterdir()}
        events_after_resume = asset_events(f"file://{destination}")
        repeated = dag.test(run_conf=conf)
    finally:
        patcher.undo()
    return {
        "table": table,
        "emails": emails,
        "phones": phones,
        "names": names,
        "destination": destination,
        "failed": failed,
        "resumed": resumed,
        "repeated": repeated,
        "model_runs": model_runs,
        "runs_after_failure": runs_after_failure,
        "runs_after_resume": runs_after_resume,
        "snapshot": snapshot,
        "events_after_resume": events_after_resume,
    }


def test_failed_run_publishes_nothing(example_dag_runs):
    failed = example_dag_runs["failed"]
    states = task_states(failed)
    assert str(failed.state) == "failed"
    assert [states[("pii_sanitize.sanitize_chunk", i)] for i in range(5)] == ["success"] * 2 + ["failed"] * 3
    assert states[("pii_sanitize.publish", -1)] == "upstream_failed"
    assert states[("scan_published", -1)] == "upstream_failed"  # nothing published, nothing to scan
    labels = {ti.rendered_map_index for ti in failed.get_task_instances() if ti.map_index >= 0}
    assert labels == {f"chunk {i}" for i in range(5)}  # mapped tasks are named after their chunk in the UI
    assert example_dag_runs["runs_after_failure"] == FAILING_FROM_CHUNK


def test_resumed_run_completes_without_duplicates(example_dag_runs):
    resumed = example_dag_runs["resumed"]
    assert str(resumed.state) == "success"
    assert task_states(resumed)[("scan_published", -1)] == "success"  # the post-check found no email left
    # only the chunks lost in the failed run ran the model again
    assert example_dag_runs["runs_after_resume"] - example_dag_runs["runs_after_failure"] == 5 - FAILING_FROM_CHUNK
    output = pq.read_table(example_dag_runs["destination"])
    assert output.num_rows == ROWS
    assert output.column("id").to_pylist() == list(range(ROWS))
    assert output.column("region").equals(example_dag_runs["table"].column("region"))
    assert output.column("body").null_count == example_dag_runs["table"].column("body").null_count


def test_no_email_or_phone_of_the_input_remains(example_dag_runs):
    text = "\n".join(v for v in pq.read_table(example_dag_runs["destination"]).column("body").to_pylist() if v)
    leaked_emails = [e for e in example_dag_runs["emails"] if e in text]
    leaked_phones = [p for p in example_dag_runs["phones"] if p in text]
    assert not leaked_emails, f"{len(leaked_emails)} emails left, e.g. {leaked_emails[:3]}"
    assert not leaked_phones, f"{len(leaked_phones)} phones left, e.g. {leaked_phones[:3]}"
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)


@pytest.mark.xfail(strict=True, reason="issue 15 target, not met by the shipped default model yet (464 of 3,700 "
                   "names left whole or in part): remove this mark with the model that meets it")
def test_every_name_of_the_input_is_redacted_whole(example_dag_runs):
    # Word by word within its row, so that a half-redacted name ("<PRIVATE_PERSON> Hunt") counts as a leak.
    table = pq.read_table(example_dag_runs["destination"]).sort_by("id")
    leaked = []
    for row_id, body in zip(table.column("id").to_pylist(), table.column("body").to_pylist()):
        name = example_dag_runs["names"].get(row_id)
        words = set(re.findall(r"[^\W\d_][\w'-]*", body))
        if name is not None and {part.strip(".") for part in core_name(name).split()} & words:
            leaked.append((name, body))
    assert example_dag_runs["names"] and not leaked, f"{len(leaked)} names not redacted whole, e.g. {leaked[:5]}"


def test_audit_table_is_complete(example_dag_runs):
    failed, resumed = example_dag_runs["failed"], example_dag_runs["resumed"]
    audit = pq.read_table(str(example_dag_runs["destination"]) + "_pii_audit.parquet").to_pylist()
    assert [row["chunk_index"] for row in audit] == list(range(5))
    assert [row["rows"] for row in audit] == [ROWS_PER_CHUNK] * 5
    assert [row["computed_in_run"] for row in audit] == [failed.run_id] * 2 + [resumed.run_id] * 3
    assert len({row["fingerprint"] for row in audit}) == 5
    assert len({row["policy_hash"] for row in audit}) == 1
    assert all(row["model_id"].startswith("pii-frames/default@") for row in audit)
    assert all(row["duration_s"] > 0 for row in audit)
    for row in audit:
        by_label = dict(row["spans_by_label"])
        assert row["spans_total"] == sum(by_label.values())
        assert by_label.get("private_email", 0) > 0 and by_label.get("private_phone", 0) > 0


def test_asset_event_is_emitted_once(example_dag_runs):
    events = example_dag_runs["events_after_resume"]
    assert len(events) == 1
    extra, run_id = events[0]
    assert run_id == example_dag_runs["resumed"].run_id
    assert extra["rows"] == ROWS and extra["chunks"] == 5


def test_second_run_after_success_is_a_no_op(example_dag_runs):
    repeated = example_dag_runs["repeated"]
    assert str(repeated.state) == "success"
    assert len(example_dag_runs["model_runs"]) == example_dag_runs["runs_after_resume"]  # no chunk recomputed
    destination = example_dag_runs["destination"]
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in destination.iterdir()} == example_dag_runs["snapshot"]
    assert asset_events(f"file://{destination}") == example_dag_runs["events_after_resume"]  # nothing new to announce


def test_operator_sanitizes_a_duckdb_table(airflow_home, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    table, _, _, _ = contact_table(200)
    with duckdb.connect(str(database)) as con:
        con.register("contacts", table)
        con.execute("CREATE TABLE raw_contacts AS SELECT * FROM contacts")
    dag = load_dag(airflow_home / "dags", "pii_frames_operator_check")
    dagrun = dag.test(
        run_conf={
            "source": f"duckdb://{database}::raw_contacts",
            "destination": f"duckdb://{database}::clean.contacts",
            "model": TINY,
        }
    )
    assert str(dagrun.state) == "success"
    with duckdb.connect(str(database), read_only=True) as con:
        ids = [row[0] for row in con.execute("SELECT id FROM clean.contacts").fetchall()]
        audit = con.execute("SELECT count(*), sum(rows) FROM clean.contacts_pii_audit").fetchall()
        columns = [row[0] for row in con.execute("DESCRIBE clean.contacts").fetchall()]
    assert ids == list(range(200))
    assert audit == [(4, 200)]
    assert columns == ["id", "body", "body_pii_spans", "region"]
    from airflow.sdk import Asset

    # Consumers declare Asset("duckdb:///path.db?table=schema.table"); Airflow normalizes both sides alike.
    events = asset_events(Asset(uri=f"duckdb://{database}?table=clean.contacts").uri)
    assert len(events) == 1 and events[0][0]["rows"] == 200
