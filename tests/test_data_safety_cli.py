"""`pii-frames table` never loses data: outputs that are inputs, signals, crashes, bad bytes, batch sizes.

Issue 16. Each case failed on the CLI as it was: `-o in.parquet` replaced the
raw input, an output inside the input folder was read back on the next run,
SIGTERM and kill -9 left `.OUT.xxxx.tmp` files for good, an invalid UTF-8 byte
in a Parquet string column gave a bare codec error, and CSV ignored
--batch-rows. Runs the CLI as a subprocess on the tiny fixture model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pii_frames.io import atomic
from pii_frames.io.files import FileSource

from shared_paths import OPF_TINY  # noqa: E402

if not OPF_TINY.is_dir():
    pytest.skip(f"shared fixture model {OPF_TINY} is absent", allow_module_level=True)

MODEL = str(OPF_TINY)
ENV = {**os.environ, "PII_FRAMES_MODEL": MODEL, "PII_FRAMES_PROGRESS": "0"}


def cli(*args: str, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "pii_frames.cli", *args], env=ENV, capture_output=True,
                          timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pii_frames.cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def one_line_error(done, *fragments: str) -> str:
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("pii-frames: error: ")]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_input(path: Path, rows: int = 6) -> pa.Table:
    table = pa.table({"id": list(range(rows)), "body": [f"mail ann{i}@example.com" for i in range(rows)]})
    pq.write_table(table, path)
    return table


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# ------------------------------------------------------------ output = input
def test_output_that_is_the_input_is_refused_through_dotdot_symlinks_and_hard_links(tmp_path):
    source = tmp_path / "in.parquet"
    write_input(source)
    before = snapshot(source)
    (tmp_path / "sub").mkdir()
    os.symlink(source, tmp_path / "link.parquet")
    os.link(source, tmp_path / "hard.parquet")
    for out in (source, tmp_path / "sub" / ".." / "in.parquet", tmp_path / "link.parquet", tmp_path / "hard.parquet"):
        one_line_error(cli("table", str(source), "-c", "body", "-o", str(out)), "is the input", "write to another path")
        assert snapshot(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.parquet", "in.parquet", "link.parquet", "sub"]


def test_output_inside_the_input_folder_is_refused(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    write_input(folder / "part-0.parquet", rows=4)
    for out in (folder / "clean.parquet", folder / "deeper" / "clean.parquet"):
        one_line_error(cli("table", str(folder), "-c", "body", "-o", str(out)), "inside the input folder")
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]
    # Beside the folder is fine, and a second run reads the same 4 rows, not its own output.
    out = tmp_path / "clean.parquet"
    for _ in range(2):
        done = cli("table", str(folder), "-c", "body", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert pq.read_table(out).num_rows == 4


# ------------------------------------------------------- signals and crashes
def _feed_fifo(fifo: Path, lines: list[str], release: threading.Event) -> threading.Thread:
    """Open the FIFO for writing (blocks until the CLI opens it), write lines, hold it open until released."""

    def run():
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            release.wait(120)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_temporary(folder: Path, out: Path, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [p for p in folder.iterdir() if atomic.is_temporary_of(str(p), str(out)) and p.stat().st_size > 4]
        if found:
            return found[0]
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("the CLI never wrote its first batch")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_midway_removes_the_temporary_and_keeps_the_previous_output(tmp_path, signum):
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous output")
    release = threading.Event()
    process = start("table", str(fifo), "-c", "body", "-o", str(out), "--batch-rows", "2")
    feeder = _feed_fifo(fifo, ['{"body": "Anna at anna@example.com"}'] * 3, release)
    try:
        # The first batch of two rows is written; the CLI then waits for more input.
        _wait_for_temporary(tmp_path, out, process)
        process.send_signal(signum)
        stderr = process.communicate(timeout=60)[1].decode()
    finally:
        release.set()
        feeder.join(10)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, stderr
    assert f"terminated by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.parquet"]


def test_kill_9_leftovers_are_swept_by_the_next_run_and_nothing_else(tmp_path):
    fifo = tmp_path / "stream.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out.parquet"
    release = threading.Event()
    process = start("table", str(fifo), "-c", "body", "-o", str(out), "--batch-rows", "2")
    feeder = _feed_fifo(fifo, ['{"body": "call 555-0100"}'] * 3, release)
    try:
        leftover = _wait_for_temporary(tmp_path, out, process)
        process.kill()
        process.wait(30)
    finally:
        release.set()
        feeder.join(10)
    assert leftover.exists()  # kill -9 leaves no chance to clean up

    # Files that are not a dead run's temporaries for this output must survive the sweep.
    live = tmp_path / f".out.parquet.pii-tmp-{atomic._host_tag()}-{os.getpid()}-0123abcd"  # this live process's
    others = [tmp_path / ".out.parquet.swp", tmp_path / ".other.parquet.pii-tmp-00000000-1-0123abcd", live]
    for path in others:
        path.write_text("keep me")
    source = tmp_path / "in.parquet"
    write_input(source)
    done = cli("table", str(source), "-c", "body", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert not leftover.exists()
    assert str(leftover) in done.stderr.decode()  # the sweep says what it removed
    assert all(path.read_text() == "keep me" for path in others)
    assert pq.read_table(out).num_rows == 6


# ------------------------------------------------------------------ bad bytes
def _bad_parquet(path: Path) -> None:
    bodies = pa.array([b"Anna", b"Bob at bob@example.com", None, b"caf\xe9 \xff", b"fine"]).view(pa.string())
    pq.write_table(pa.table({"id": list(range(5)), "body": bodies}), path, row_group_size=2)


def test_invalid_utf8_in_parquet_names_column_and_row_or_nulls_that_cell(tmp_path):
    source = tmp_path / "bad.parquet"
    _bad_parquet(source)
    out = tmp_path / "out.parquet"
    one_line_error(cli("table", str(source), "-c", "body", "-o", str(out), "--batch-rows", "2"),
                   "column 'body'", "row 3 of", "bad.parquet", "not valid utf-8", "byte 0xe9", "--on-error null")
    assert not out.exists()

    done = cli("table", str(source), "-c", "body", "-o", str(out), "--batch-rows", "2", "--on-error", "null")
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr.decode() and "row 3 of" in done.stderr.decode()
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [0, 1, 2, 3, 4]
    bodies = table.column("body").to_pylist()
    assert bodies[2] is None and bodies[3] is None  # the null row stays null, the bad cell becomes null
    assert all(isinstance(value, str) for i, value in enumerate(bodies) if i not in (2, 3))


def test_invalid_utf8_in_one_csv_cell_is_named_and_nulled_alone(tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,body\n1,Anna\n2,caf\xe9\n3,fine\n")
    out = tmp_path / "out.jsonl"
    one_line_error(cli("table", str(source), "-c", "body", "-o", str(out)),
                   "column 'body'", "row 1 of", "not valid utf-8", "--encoding")
    done = cli("table", str(source), "-c", "body", "-o", str(out), "--on-error", "null")
    assert done.returncode == 0, done.stderr
    import json

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["body"] is None and rows[0]["body"] is not None and rows[2]["body"] is not None


# ------------------------------------------------------------- bounded memory
def test_csv_honours_batch_rows(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,body\n" + "".join(f"{i},row {i} of the file\n" for i in range(1200)), encoding="utf-8")
    out = tmp_path / "out.parquet"
    done = cli("table", str(source), "-c", "body", "-o", str(out), "--batch-rows", "500")
    assert done.returncode == 0, done.stderr
    metadata = pq.ParquetFile(out).metadata  # one row group per written batch
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [500, 500, 200]


def test_csv_rows_longer_than_a_read_block_are_read_whole(tmp_path):
    source = tmp_path / "wide.csv"
    huge = "x" * (5 << 20)  # longer than the 4 MiB blocks the CLI read CSV with, and than its first-MiB sample
    with open(source, "w", encoding="utf-8") as handle:
        handle.write("id,body\n")
        handle.write("".join(f"{i},short {i}\n" for i in range(60_000)))
        handle.write(f"60000,{huge}\n60001,after\n")
    batches = list(FileSource(str(source), "csv", ["body"], batch_rows=20_000))
    assert [t.num_rows for t in batches] == [20_000, 20_000, 20_000, 2]
    assert batches[-1].column("body").to_pylist() == [huge, "after"]


def test_model_calls_stay_bounded_whatever_batch_rows(tmp_path, monkeypatch):
    import pii_frames
    from pii_frames import cli
    from pii_frames.engine.detector import Detector
    from pii_frames.io.text import MODEL_CALL_BYTES

    rows = [f"row {i}: write to ann{i}@example.com or call 555-01{i % 100:02d}. " * 8 for i in range(900)]
    rows[7] = None
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"id": list(range(900)), "body": rows}), source)
    calls: list[int] = []
    original = Detector.detect_arrow

    def recording(self, array, **options):
        calls.append(sum(len(v.encode()) for v in array.to_pylist() if v))
        return original(self, array, **options)

    monkeypatch.setattr(Detector, "detect_arrow", recording)
    assert cli.main(["table", str(source), "-c", "body", "-o", str(out), "--model", MODEL, "--no-progress"]) == 0
    total = sum(len(r.encode()) for r in rows if r)
    assert total > 2 * MODEL_CALL_BYTES and len(calls) >= 3  # one 900-row read batch, several model calls
    assert sum(calls) == total and max(calls) <= MODEL_CALL_BYTES
    expected = [None if r is None else r.redacted_text for r in pii_frames.load(MODEL).redact_many(rows)]
    assert pq.read_table(out).column("body").to_pylist() == expected


def test_the_first_output_batch_is_small_whatever_batch_rows_says(tmp_path):
    """The first rows reach the output within seconds: batches grow 1,024, 2,048, ... up to --batch-rows."""
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    table = write_input(source, rows=5000)
    done = cli("table", str(source), "-c", "body", "-o", str(out), "--batch-rows", "8192")
    assert done.returncode == 0, done.stderr.decode()
    metadata = pq.ParquetFile(out).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [1024, 2048, 1928]
    assert pq.read_table(out).column("id").to_pylist() == table.column("id").to_pylist()
