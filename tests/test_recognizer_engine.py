"""The recognizer layer inside the engine: on by default, one switch off, custom rules from every entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pii_frames as pii
import pii_frames.arrow as pa_pii
import pii_frames.duckdb as pii_duckdb
from pii_frames.redaction import Policy

EMPLOYEE_POLICY = {
    "operator": "placeholder",
    "recognizers": {"custom": [{"name": "employee_id", "label": "employee_id", "regex": r"EMP-\d{6}",
                                "context": ["employee"]}]},
}
TEXT = "Refund to IBAN DE89 3704 0044 0532 0130 00 for employee EMP-004217, card 4111 1111 1111 1111."


@pytest.fixture(scope="module")
def detector():
    return pii.load("default")


def test_on_by_default_and_spans_say_where_they_came_from(detector):
    result = detector.redact(TEXT)
    found = {(s.text, s.label, s.source) for s in result.detected_spans}
    assert ("DE89 3704 0044 0532 0130 00", "account_number", "pattern") in found
    assert ("4111 1111 1111 1111", "account_number", "pattern") in found
    spans = pa_pii.spans_array(pa.array([TEXT])).to_pylist()[0]
    assert {"pattern"} <= {span["source"] for span in spans}


def test_recognizers_none_gives_exactly_the_models_spans(detector):
    model_only = pii.load("default", recognizers=None)
    reference = pii.load("default", opf_compatible=True)
    texts = [TEXT, "Mail ann@example.com or call +44 20 7946 0958", "nothing here"]
    for text in texts:
        assert all(span.source == "model" for span in model_only.redact(text).detected_spans)
        # Without patterns, only edge snapping separates the two; their model spans start alike.
        assert [s.start for s in model_only.redact(text).detected_spans] == \
            [s.start for s in reference.redact(text).detected_spans]
    assert all(span.source == "model" for span in reference.redact(TEXT).detected_spans)


def test_policy_labels_and_min_score_filter_pattern_spans(detector):
    only_secrets = detector.redact(TEXT, policy={"labels": ["secret"]})
    assert "DE89 3704" in only_secrets.redacted_text and "4111 1111" in only_secrets.redacted_text
    assert detector.redact("IBAN DE89 3704 0044 0532 0130 00", policy={"min_score": 1.0}).detected_spans == ()


def test_custom_recognizer_from_python_with_its_own_placeholder(detector):
    policy = Policy(**EMPLOYEE_POLICY)
    result = detector.redact(TEXT, policy=policy)
    assert "<EMPLOYEE_ID>" in result.redacted_text and "EMP-004217" not in result.redacted_text
    assert result.summary["by_label"]["employee_id"] == 1
    assert Policy(**EMPLOYEE_POLICY, labels=["employee_id"]).labels == frozenset({"employee_id"})
    detector.redact(TEXT, policy=Policy(**EMPLOYEE_POLICY, labels=["employee_id"]))  # a known label now


def test_custom_recognizer_from_a_policy_file_in_the_cli(tmp_path):
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(EMPLOYEE_POLICY))
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2], "body": [TEXT, None]}), table)
    out, summary = tmp_path / "out.parquet", tmp_path / "summary.json"
    env = {**os.environ, "PII_FRAMES_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-m", "pii_frames.cli", "table", str(table), "-c", "body", "-o", str(out),
                           "--policy", str(policy_file), "--summary-json", str(summary)],
                          env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    body = pq.read_table(out).column("body").to_pylist()
    assert "<EMPLOYEE_ID>" in body[0] and body[1] is None
    assert json.loads(summary.read_text())["columns"]["body"]["labels"]["employee_id"]["spans"] == 1
    plain = subprocess.run([sys.executable, "-m", "pii_frames.cli", "redact", "--no-recognizers", "--policy",
                            str(policy_file), TEXT], env=env, capture_output=True, timeout=300)
    assert plain.returncode == 0 and "<EMPLOYEE_ID>" not in plain.stdout.decode()


def test_custom_recognizer_in_duckdb_and_dbt():
    con = pii_duckdb.register(duckdb.connect(), "default", policy=EMPLOYEE_POLICY)
    assert "<EMPLOYEE_ID>" in con.execute("SELECT pii_redact(?)", [TEXT]).fetchall()[0][0]
    pytest.importorskip("dbt.adapters.duckdb")
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.duckdb.plugins import BasePlugin

    credentials = DuckDBCredentials(database="memory", schema="main", path=":memory:")
    plugin = BasePlugin.create("pii_frames.dbt", config={"model": "default", "policy": EMPLOYEE_POLICY},
                               credentials=credentials)
    con = duckdb.connect()
    plugin.configure_connection(con)
    assert "<EMPLOYEE_ID>" in con.cursor().execute("SELECT pii_redact(?)", [TEXT]).fetchall()[0][0]


def test_bad_custom_recognizers_name_themselves():
    with pytest.raises(ValueError, match="employee_id"):
        Policy(recognizers={"custom": [{"name": "employee_id", "label": "employee_id", "regex": "EMP-(\\d"}]})
    with pytest.raises(ValueError, match="badge"):
        pii.load("default", recognizers={"custom": [{"name": "badge", "label": "badge", "regex": "B\\d+",
                                                      "validator": "no_such_check"}]})
    with pytest.raises(ValueError, match="nameless|label"):
        Policy(recognizers={"custom": [{"name": "nameless", "label": "", "regex": "X\\d+"}]})


def test_recognizer_config_travels_in_pickles_of_the_policy():
    import pickle

    policy = Policy(**EMPLOYEE_POLICY)
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_recognizers_none_reaches_the_engine_from_every_adapter():
    import polars as pl

    text = "card 4111 1111 1111 1111"
    sources = {span["source"] for span in pa_pii.spans_array(pa.array([text]), model="default",
                                                             recognizers=None).to_pylist()[0]}
    assert sources <= {"model"}
    polars_spans = pl.DataFrame({"b": [text]}).select(pii.spans("b", model="default", recognizers=None)).item()
    assert {span["source"] for span in polars_spans} <= {"model"}
    con = pii_duckdb.register(duckdb.connect(), "default", recognizers=None)
    assert {span["source"] for span in con.execute("SELECT pii_spans(?)", [text]).fetchall()[0][0]} <= {"model"}
