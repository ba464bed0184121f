"""The examples run end to end on the embedded default model (scripts and the notebook)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEFAULT_MODEL = ROOT / "pii_frames" / "assets" / "default_model" / "model.safetensors"

needs_default_model = pytest.mark.skipif(
    not DEFAULT_MODEL.is_file(),
    reason=f"the embedded default model is not built yet ({DEFAULT_MODEL.relative_to(ROOT)} is missing)",
)


def example_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PII_FRAMES_MODEL", None)  # the examples document the default model
    env["PII_FRAMES_MODEL"] = "default"  # ...and must not pick up a locally downloaded one
    env["PII_FRAMES_PROGRESS"] = "0"
    return env


def run_example(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLES, env=example_env(), capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_sample_table_is_the_committed_faker_output():
    lines = (EXAMPLES / "sample_customers.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "ticket_id,created_at,channel,priority,customer,body"
    assert len(lines) == 201


@needs_default_model
def test_polars_script(tmp_path):
    out = tmp_path / "clean.parquet"
    stdout = run_example("polars_tickets.py", str(out))
    assert "wrote 200 rows" in stdout
    import polars as pl

    clean = pl.read_parquet(out)
    raw = pl.read_csv(EXAMPLES / "sample_customers.csv")
    assert clean["ticket_id"].to_list() == raw["ticket_id"].to_list()
    assert clean["body"].is_null().to_list() == raw["body"].is_null().to_list()
    assert clean["body"].str.contains("<PRIVATE_").any()


@needs_default_model
def test_duckdb_script():
    stdout = run_example("duckdb_tickets.py")
    assert "ticket_id" in stdout and "label" in stdout


@needs_default_model
def test_notebook_executes():
    import nbclient
    import nbformat

    notebook = nbformat.read(EXAMPLES / "clean_tickets.ipynb", as_version=4)
    previous = os.environ.get("PII_FRAMES_MODEL")
    os.environ["PII_FRAMES_MODEL"] = "default"  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(
            notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(EXAMPLES)}}
        )
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("PII_FRAMES_MODEL", None)
        else:
            os.environ["PII_FRAMES_MODEL"] = previous
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the label plot was not drawn"
    assert any("<mark" in o.get("data", {}).get("text/html", "") for o in outputs), "no highlighted spans shown"
