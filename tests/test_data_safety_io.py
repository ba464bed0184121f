"""pii_frames.io building blocks the data-safety guarantees rest on (issue 16)."""

from __future__ import annotations

import os
import platform
import signal
import sys
import time

import pytest

from pii_frames.io import atomic, memory
from pii_frames.io.locations import conflicts, parse_location
from pii_frames.io.paths import fold_duckdb_identifier, inside, same_location


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_memory_is_given_back_with_malloc_trim_on_glibc():
    assert memory.release_memory() is True


def test_release_memory_is_a_no_op_elsewhere(monkeypatch):
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory.release_memory() is False
    finally:
        memory._malloc_trim.cache_clear()


def test_loading_a_model_caps_the_native_kernel_caches_before_torch_reads_them():
    """oneDNN's and ideep's per-shape kernel caches (1,024 entries each) held ~430 MB on long table runs.

    A fresh process, since the libraries read the caps once: loading a model sets them unless the user
    already did, and a value the user set is kept.
    """
    import subprocess

    script = ("import os, pii_frames as pii; pii.load('default').redact('warm up'); "
              "print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])")
    env = {k: v for k, v in os.environ.items() if k not in memory.NATIVE_CACHE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(memory.NATIVE_CACHE_ENTRIES)] * 2
    done = subprocess.run([sys.executable, "-c", script], env={**env, "LRU_CACHE_CAPACITY": "64"},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == [str(memory.NATIVE_CACHE_ENTRIES), "64"], done.stderr


def test_temporaries_of_other_hosts_are_swept_only_when_a_day_old(tmp_path):
    target = tmp_path / "out.parquet"
    recent = tmp_path / ".out.parquet.pii-tmp-ffffffff-1-0123abcd"
    old = tmp_path / ".out.parquet.pii-tmp-ffffffff-2-0123abcd"
    for path in (recent, old):
        path.write_text("x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    if atomic._host_tag() == "ffffffff":
        pytest.skip("this host's tag happens to be ffffffff")
    assert atomic.sweep_stale_temporaries(str(target)) == [str(old)]
    assert recent.exists()


def test_an_embedding_applications_signal_handler_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with atomic.terminate_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_paths_and_tables_compare_as_the_filesystem_and_duckdb_do(tmp_path):
    data = tmp_path / "ds"
    data.mkdir()
    os.symlink(data, tmp_path / "alias")
    assert inside(tmp_path / "alias" / "clean.parquet", data)
    assert same_location(tmp_path / "alias", data / "sub" / "..")
    assert not inside(tmp_path / "ds_clean", data)
    assert fold_duckdb_identifier("RAW_Tickets") == "raw_tickets"
    assert conflicts(parse_location(f"duckdb://{tmp_path}/w.db::main.raw"), parse_location(f"duckdb://{tmp_path}/w.db::RAW"))
    assert not conflicts(parse_location(f"duckdb://{tmp_path}/w.db::main.raw"),
                         parse_location(f"duckdb://{tmp_path}/w.db::main.clean"))
    # Non-ASCII letters do not fold in DuckDB: two different tables.
    assert not conflicts(parse_location(f"duckdb://{tmp_path}/w.db::Ét"), parse_location(f"duckdb://{tmp_path}/w.db::ét"))
