"""The dbt-duckdb plugin (in-process) and the dbt package + integration project (real dbt, subprocess)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from shared_paths import OPF_TINY  # noqa: E402

pytestmark = pytest.mark.dbt

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_macros" / "integration_tests"
TINY = str(OPF_TINY)


def make_plugin(config: dict, settings: dict | None = None):
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.duckdb.plugins import BasePlugin

    credentials = DuckDBCredentials(database="memory", schema="main", path=":memory:", settings=settings)
    return BasePlugin.create("pii_frames.dbt", config=config, credentials=credentials)


def test_plugin_registers_functions_on_connection_and_cursors():
    plugin = make_plugin({"model": TINY, "device": "cpu", "policy": {"operator": "mask"}})
    con = duckdb.connect()
    plugin.configure_connection(con)
    cursor = con.cursor()  # dbt-duckdb runs every model on a cursor of this connection
    rows = cursor.execute(
        "SELECT pii_redact(NULL), pii_spans(NULL), pii_category(NULL), typeof(pii_redact('a')) "
    ).fetchall()
    assert rows == [(None, None, None, "VARCHAR")]
    masked = cursor.execute("SELECT pii_redact('write to ann@example.com')").fetchall()[0][0]
    assert len(masked) == len("write to ann@example.com") and set(masked) - set("write to ann@example.com") <= {"*"}


def test_plugin_rejects_unknown_keys_and_ignores_duckdb_settings():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['modle'\]"):
        make_plugin({"modle": TINY})
    # dbt-duckdb copies the profile's DuckDB `settings` into every plugin config
    plugin = make_plugin({"model": TINY, "memory_limit": "1GB"}, settings={"memory_limit": "1GB"})
    assert plugin.options == {} and plugin.model == TINY
    with pytest.raises(Exception, match="does not exist"):
        make_plugin({"model": "/nonexistent/checkpoint"})
    with pytest.raises(ValueError, match="invalid config in profiles.yml: invalid policy .*unknown Policy operator .shred."):
        make_plugin({"model": TINY, "policy": {"operator": "shred"}})


@pytest.fixture(scope="module")
def dbt_env(tmp_path_factory) -> dict[str, str]:
    scratch = tmp_path_factory.mktemp("dbt")
    env = dict(os.environ)
    env.update(
        DBT_TARGET_PATH=str(scratch / "target"),
        DBT_LOG_PATH=str(scratch / "logs"),
        PII_FRAMES_DBT_PACKAGES_PATH=str(scratch / "dbt_packages"),
        PII_FRAMES_DBT_DUCKDB_PATH=str(scratch / "integration.duckdb"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_USE_COLORS="false",
    )
    env.pop("PII_FRAMES_MODEL", None)  # the profile's default: the embedded model
    return env


def dbt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    dbt_cli = shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"
    return subprocess.run(
        [dbt_cli, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def git_status(path: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored", str(path)],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout


def test_dbt_deps_and_build_pass_without_touching_the_source_tree(dbt_env):
    before = git_status(REPO / "dbt_macros")
    deps = dbt(dbt_env, "deps")
    assert deps.returncode == 0, deps.stdout[-4000:]
    build = dbt(dbt_env, "build")
    assert build.returncode == 0, build.stdout[-6000:]
    assert "PASS=9" in build.stdout and "WARN=1" in build.stdout and "ERROR=0" in build.stdout, build.stdout[-3000:]
    # pii_frames.no_pii: the sanitized note passes; the raw seed's emails fail it (as a warning), row by row
    assert re.search(r"PASS pii_frames_no_pii_sanitized_contacts_note__", build.stdout), build.stdout[-3000:]
    warned = re.search(r"WARN (\d+) pii_frames_no_pii_raw_contacts_email__", build.stdout)
    assert warned and 12 <= int(warned.group(1)) <= 24, build.stdout[-3000:]
    assert f"Got {warned.group(1)} results, configured to warn if != 0" in build.stdout
    assert git_status(REPO / "dbt_macros") == before

    with duckdb.connect(dbt_env["PII_FRAMES_DBT_DUCKDB_PATH"], read_only=True) as con:
        raw = dict(con.execute("SELECT id, email FROM raw_contacts").fetchall())
        clean = dict(con.execute("SELECT id, coalesce(note, '') || contact_line FROM sanitized_contacts").fetchall())
        null_notes = con.execute("SELECT count(*) FROM sanitized_contacts WHERE note IS NULL").fetchall()
    assert raw.keys() == clean.keys()
    assert not [i for i, email in raw.items() if email in clean[i]]
    assert null_notes == [(1,)]

    # the no_pii test's failing rows (what store_failures would keep) hold redacted values only
    compiled = next((Path(dbt_env["DBT_TARGET_PATH"]) / "compiled").rglob("pii_frames_no_pii_raw_contacts_email__*.sql"))
    from pii_frames.duckdb import register

    with duckdb.connect(dbt_env["PII_FRAMES_DBT_DUCKDB_PATH"], read_only=True) as con:
        register(con, device="cpu")
        failures = con.execute(compiled.read_text()).fetchall()
    assert len(failures) == int(warned.group(1))
    assert all(labels == ["private_email"] and spans >= 1 for _, labels, spans in failures)
    assert not [email for email in raw.values() if any(email in str(row) for row in failures)]


def test_macros_fail_clearly_on_other_adapters(dbt_env):
    done = dbt(dbt_env, "run-operation", "pii_frames.default__pii_redact", "--args", "{column: body}")
    assert done.returncode != 0
    assert "pii_frames.pii_redact has no implementation for the 'duckdb' adapter" in done.stdout
    assert "dispatch" in done.stdout
