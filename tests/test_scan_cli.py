"""``pii-frames scan``: report formats, the --fail-on exit status, and bad input as one clear line.

Successful scans run in-process (the embedded model is loaded once); failures
that must happen before any model is loaded run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pii_frames.cli import main
from pii_frames.discovery.command import EXIT_PII_FOUND

EMAILS = ["maria.lopez@example.com", "john.smith@example.org", "anna.svensson@example.net",
          "peter.mueller@example.de", "sofia.rossi@example.it"]


@pytest.fixture()
def contacts(tmp_path):
    path = tmp_path / "contacts.parquet"
    pq.write_table(pa.table({
        "id": pa.array(range(len(EMAILS) + 1), pa.int64()),
        "email": EMAILS + [None],
        "status": ["open", "closed", "open", "pending", "closed", "open"],
    }), path)
    return path


def test_json_report_and_fail_on_exit_status(contacts, capsys):
    status = main(["scan", str(contacts), "--json", "--fail-on", "private_email,private_phone", "--no-progress"])
    out, err = capsys.readouterr()
    assert status == EXIT_PII_FOUND == 3
    report = json.loads(out)
    columns = {c["column"]: c for c in report["tables"][0]["columns"]}
    assert columns["email"]["verdict"] == "pii" and columns["email"]["found_labels"] == ["private_email"]
    assert columns["id"] == {**columns["id"], "verdict": "skipped", "reason": "type int64 is not text"}
    assert columns["status"]["verdict"] == "no pii found"
    assert report["settings"] == {"sample_rows": 1000, "seed": 0, "min_share": 0.05, "min_score": 0.5}
    assert "pii-frames: PII found in 1 column: contacts.email (private_email)" in err
    assert not [e for e in EMAILS if e in out or e in err]


def test_fail_on_labels_not_found_and_any(contacts, capsys):
    assert main(["scan", str(contacts), "--fail-on", "private_url", "--no-progress"]) == 0
    assert "PII found" not in capsys.readouterr().err
    assert main(["scan", str(contacts), "--fail-on", "any", "--sample-rows", "3", "--seed", "2"]) == EXIT_PII_FOUND
    assert main(["scan", str(contacts)]) == 0  # without --fail-on a scan only reports


def test_table_output_and_html_page(contacts, tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["scan", str(contacts), "--html", str(page), "--column", "email", "--column", "id"]) == 0
    out, err = capsys.readouterr()
    assert "contacts: PII in 1 of 1 scanned columns (email: private_email)" in out.replace("\n", " ")
    assert "status" not in out and f"wrote {page}" in err
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "private_email" in html and "width:100.0%" in html
    assert not [e for e in EMAILS if e in html or e in out]
    assert oct(page.stat().st_mode & 0o777) != oct(0o600)


def test_bad_options_are_one_line(contacts, tmp_path, capsys):
    assert main(["scan", str(contacts), "--fail-on", "privat_email"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pii-frames: error: --fail-on names unknown label(s) ['privat_email']")
    assert main(["scan", str(contacts), "--sample-rows", "0"]) == 2
    assert capsys.readouterr().err.strip() == "pii-frames: error: --sample-rows must be a positive integer"
    assert main(["scan", str(contacts), "--html", str(tmp_path / "no" / "such" / "r.html")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["scan", str(contacts), "--column", "nope"]) == 1
    assert "column(s) 'nope' not found" in capsys.readouterr().err


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PII_FRAMES_")}
    return subprocess.run([sys.executable, "-m", "pii_frames.cli", "scan", *args], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no such file or folder: "),
    ("unreadable", "as Parquet: "),
    ("no_text", "no text columns (id: int64, amount: double)"),
    ("empty_folder", "holds no Parquet files"),
])
def test_bad_input_is_one_clear_line_and_non_zero_exit(tmp_path, case, fragment):
    path = tmp_path / f"{case}.parquet"
    if case == "unreadable":
        path.write_bytes(b"PAR1 but then garbage")
    elif case == "no_text":
        pq.write_table(pa.table({"id": [1, 2], "amount": [1.5, 2.5]}), path)
    elif case == "empty_folder":
        path.mkdir()
    done = run_cli(str(path))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pii-frames: error: ") and fragment in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
