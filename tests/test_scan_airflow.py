"""PiiScanOperator (real Airflow 3, in a subprocess) and the Airflow-free gate it uses.

Airflow reads its configuration on first import, and tests/test_airflow_dag.py
needs to be the first to import it in a session, so the operator runs in a
child process with its own throwaway AIRFLOW_HOME. The example DAG's
post-publish scan runs in tests/test_airflow_dag.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pii_frames.discovery import VERDICT_CLEAN, VERDICT_PII, VERDICT_SKIPPED, ColumnScan, LabelStats, ScanReport
from pii_frames.discovery.gate import check_labels, compact_report, describe_hits, offending_columns, parse_fail_on

EMAILS = ["maria.lopez@example.com", "john.smith@example.org", "anna.svensson@example.net"]

SCRIPT = textwrap.dedent('''
    import json, sys
    from pii_frames.airflow import PiiScanOperator

    source, cases = sys.argv[1], json.loads(sys.argv[2])

    class TI:
        def __init__(self):
            self.pushed = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    for fail_on in cases:
        ti = TI()
        operator = PiiScanOperator(task_id="scan", source=source, columns='["email", "status"]', sample_rows="50",
                                   fail_on=fail_on)
        try:
            result = operator.execute({"ti": ti})
        except Exception as error:
            result = {"error": type(error).__name__, "message": str(error), "pushed": ti.pushed}
        print("RESULT " + json.dumps(result), flush=True)
''')


def run_operator(tmp_path, cases: list) -> tuple[list[dict], str]:
    """Each ``fail_on`` case through PiiScanOperator.execute in one child process: (results, log)."""
    if importlib.util.find_spec("airflow") is None:
        pytest.skip("apache-airflow is not installed")
    source = tmp_path / "contacts.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "email": EMAILS + [None], "status": ["open", "closed", "open", "x"]}),
                   source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PII_FRAMES_"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow_home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(source), json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == len(cases), done.stdout[-3000:]
    return results, done.stdout + done.stderr


pytestmark = pytest.mark.airflow


def test_operator_records_or_fails_and_pushes_the_report(tmp_path):
    cases = [None, ["private_email", "private_phone"], ["private_url"], "private_emial"]
    (report, failed, passed, unknown), log = run_operator(tmp_path, cases)
    assert report["totals"]["pii_columns"] == 1 and report["settings"]["sample_rows"] == 50
    columns = {c["column"]: c for c in report["tables"][0]["columns"]}
    assert set(columns) == {"email", "status"} and columns["email"]["verdict"] == VERDICT_PII
    assert "contacts: PII in 1 of 2 scanned columns (email: private_email)" in log
    assert "recorded only" in log

    assert failed["error"] == "AirflowFailException"
    assert failed["message"].startswith("PII found in 1 column: contacts.email (private_email) (scan of Parquet")
    assert failed["pushed"]["pii_scan_report"]["totals"]["found_labels"] == ["private_email"]
    assert "error" not in passed and passed["totals"]["pii_columns"] == 1  # found, but not a fail_on label
    assert unknown["error"] == "ValueError" and "unknown label(s) ['private_emial']" in unknown["message"]
    assert not [e for e in EMAILS if e in json.dumps([report, failed, passed]) or e in log]


def many_columns_report(columns: int) -> ScanReport:
    scans = []
    for i in range(columns):
        verdict = (VERDICT_PII, VERDICT_CLEAN, VERDICT_SKIPPED)[i % 3]
        labels = [LabelStats("private_email", 9, 0.9, 9, 0.95, True)] if verdict == VERDICT_PII else []
        scans.append(ColumnScan(f"t{i // 10}", f"column_{i}", "string", verdict,
                                reason="type int64 is not text" if verdict == VERDICT_SKIPPED else None,
                                rows_sampled=10, values_scanned=10, labels=labels,
                                examples=["mail <PRIVATE_EMAIL> about the order " * 3] * 3 if labels else []))
    return ScanReport(scans, source="many", labels=["private_email", "private_phone"])


def test_compact_report_fits_the_limit_step_by_step():
    small = many_columns_report(6)
    assert compact_report(small) == small.to_dict()
    big = many_columns_report(600)
    for limit in (200_000, 60_000, 20_000):
        data = compact_report(big, max_bytes=limit)
        assert data["truncated"] is True and data["totals"] == big.to_dict()["totals"]
        size = len(json.dumps(data).encode())
        columns = [c for t in data["tables"] for c in t["columns"]]
        assert all(not c.get("examples") for c in columns)
        if size > limit:  # only the last step may stay above the limit: pii columns alone
            assert all(c["verdict"] == VERDICT_PII for c in columns) and len(columns) == 200


def test_gate_helpers():
    assert parse_fail_on(None) is None and parse_fail_on("") is None and parse_fail_on("null") is None
    assert parse_fail_on('["private_email"]') == ["private_email"] == parse_fail_on(["private_email", " "])
    assert parse_fail_on("any") == ["any"]
    with pytest.raises(TypeError):
        parse_fail_on(5)
    report = many_columns_report(6)
    assert [c.name for c in offending_columns(report, ["any"])] == ["t0.column_0", "t0.column_3"]
    assert offending_columns(report, ["private_phone"]) == [] and offending_columns(report, None) == []
    assert describe_hits(offending_columns(report, ["private_email"]), ["private_email"]) == (
        "PII found in 2 columns: t0.column_0 (private_email), t0.column_3 (private_email)")
    check_labels(["any"], report.labels)
    check_labels(["private_phone"], [])  # no model was needed: nothing to check against
    with pytest.raises(ValueError, match="unknown label"):
        check_labels(["nope"], report.labels)
