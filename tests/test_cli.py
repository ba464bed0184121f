"""The pii-frames command line, run as subprocesses on the tiny fixture model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pii_frames

from shared_paths import OPF_TINY  # noqa: E402

MODEL = str(OPF_TINY)
TEXT = "Hello, my name is John Smith and my email is john.smith@example.com"
ROWS = [
    TEXT,
    None,
    "héllo wörld 🎉 — Ms. Zoë Łukasiewicz, 12 Rue de Rivoli, Paris",
    "Call +1 (415) 555-0100 before 2024-03-01 or visit https://example.org/x?id=7",
    TEXT,
    "",
    "Dear Anna, your account 12-3456-7890 is blocked.",
]


def cli(*args: str, stdin: str | bytes | None = None, env: dict | None = None, cwd: Path | None = None):
    full_env = {**os.environ, "PII_FRAMES_MODEL": MODEL, "PII_FRAMES_PROGRESS": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pii_frames.cli", *args],
        input=stdin.encode("utf-8") if isinstance(stdin, str) else stdin,
        env=full_env,
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )


def assert_clean_failure(completed, *fragments: str, code: int = 1) -> str:
    """A failure is one line on stderr, no traceback, non-zero status."""
    stderr = completed.stderr.decode("utf-8")
    assert completed.returncode == code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pii-frames: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def detector():
    return pii_frames.load(MODEL)


# ------------------------------------------------------------------ redact
def test_redact_text_argument(detector):
    done = cli("redact", TEXT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == detector.redact(TEXT).redacted_text + "\n"


def test_redact_files_as_json_with_options(tmp_path, detector):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(TEXT, encoding="utf-8")
    second.write_text(ROWS[2], encoding="utf-8")
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\noperator = "pseudonym"\nper_label = { secret = "mask" }\n', encoding="utf-8")
    done = cli("redact", "-f", str(first), "-f", str(second), "--json", "--json-indent", "0", "--mode", "redacted",
               "--decode-mode", "argmax", "--policy", str(policy), "--key-env", "PII_KEY", env={"PII_KEY": "s3cret"})
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.decode().splitlines()]
    want_policy = pii_frames.Policy("pseudonym", key="s3cret", per_label={"secret": "mask"})
    want = [
        detector.redact(text, policy=want_policy, output_mode="redacted", decode_mode="argmax").to_dict()
        for text in (TEXT, ROWS[2])
    ]
    assert got == want
    assert "s3cret" not in done.stdout.decode() + done.stderr.decode()


def test_redact_stdin_lines_and_whole(detector):
    lines = [TEXT, "", ROWS[2], ROWS[3]]
    done = cli("redact", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    want = [detector.redact(line).redacted_text if line else "" for line in lines]
    assert done.stdout.decode().split("\n")[:-1] == want

    whole = cli("redact", "--whole", "--json", stdin="\n".join(lines))
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout) == detector.redact("\n".join(lines)).to_dict()


def test_redact_color_output_highlights_spans(detector):
    done = cli("redact", "--color", "always", TEXT)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "\x1b[" in out  # ANSI styles
    for span in detector.redact(TEXT).detected_spans:
        assert f"[{span.label}]" in out


def test_redact_bad_inputs(tmp_path):
    assert_clean_failure(cli("redact", "-f", str(tmp_path / "missing.txt")), "file not found", "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café Anna".encode("latin-1"))
    assert_clean_failure(cli("redact", "-f", str(latin)), "latin.txt", "not valid utf-8", "--encoding")
    assert_clean_failure(cli("redact", "--policy", '{"operator": "pseudonym", "key": "abc"}', "x"), "--key-env")
    assert_clean_failure(cli("redact", "--policy", '{"operator": "pseudonym"}', "--key-env", "PII_UNSET_VAR_X", "x"),
                         "PII_UNSET_VAR_X")


def test_corrupt_checkpoint_and_debug(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    assert_clean_failure(cli("redact", "--model", str(broken), "x"), "broken")
    debug = cli("--debug", "redact", "--model", str(broken), "x")
    assert debug.returncode != 0 and b"Traceback" in debug.stderr


# ------------------------------------------------------------------- table
def expected_table(detector, rows):
    return [None if r is None else r.redacted_text for r in detector.redact_many(rows)]


def test_table_parquet_in_batches_with_spans_and_summary(tmp_path, detector):
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(len(ROWS) * 3)), "body": ROWS * 3, "note": ROWS[::-1] * 3}), source)
    out = tmp_path / "sub" / "out.parquet"
    done = cli("table", str(source), "--column", "body", "-c", "note", "--out", str(out), "--spans", "--category",
               "--batch-rows", "4")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.column_names == ["id", "body", "body_pii_spans", "body_pii_category", "note", "note_pii_spans",
                                  "note_pii_category"]
    assert table.column("id").to_pylist() == list(range(len(ROWS) * 3))
    assert table.column("body").to_pylist() == expected_table(detector, ROWS) * 3
    assert table.column("note").to_pylist() == expected_table(detector, ROWS[::-1]) * 3
    spans = table.column("body_pii_spans").to_pylist()
    assert spans[:len(ROWS)] == [
        None if r is None else [{"label": s.label, "start": s.start, "end": s.end,
                                 "score": pytest.approx(s.score), "source": s.source} for s in r.detected_spans]
        for r in detector.redact_many(ROWS)
    ]
    summary = done.stderr.decode()
    assert f"{len(ROWS) * 3} rows" in summary and "label" in summary and "any" in summary
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.parquet"]  # no temporary file left behind


def test_table_csv_to_jsonl_and_csv(tmp_path, detector):
    source = tmp_path / "in.csv"
    source.write_text('id,body\n1,"' + TEXT + '"\n2,\n3,"' + ROWS[2] + '"\n4,NA\n', encoding="utf-8")
    jsonl = tmp_path / "out.jsonl"
    done = cli("table", str(source), "-c", "body", "-o", str(jsonl), "--spans")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]  # CSV columns are read as text, unchanged
    # Only an empty cell is null: "NA" is text like any other.
    assert [r["body"] for r in rows] == expected_table(detector, [TEXT, None, ROWS[2], "NA"])
    assert rows[1]["body_pii_spans"] is None

    # JSONL in, CSV out: the nested spans column from the first run is written as JSON text.
    csv_out = tmp_path / "out.csv"
    done = cli("table", str(jsonl), "-c", "body", "-o", str(csv_out), "--category")
    assert done.returncode == 0, done.stderr
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(csv_out)
    assert table.column_names == ["id", "body", "body_pii_category", "body_pii_spans"]
    assert table.column("body").to_pylist()[0] == expected_table(detector, [rows[0]["body"]])[0]
    assert json.loads(table.column("body_pii_spans").to_pylist()[0]) == rows[0]["body_pii_spans"]


def test_table_bad_inputs(tmp_path):
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2], "body": ["a", "b"]}), parquet)
    out = tmp_path / "out.parquet"
    assert_clean_failure(cli("table", str(tmp_path / "nope.parquet"), "-c", "body", "-o", str(out)), "not found")
    assert_clean_failure(cli("table", str(parquet), "-c", "missing", "-o", str(out)), "'missing'", "id, body")
    assert_clean_failure(cli("table", str(parquet), "-c", "id", "-o", str(out)), "'id'", "int64", "not text")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,body\n1,café Anna\n".encode("latin-1"))
    assert_clean_failure(cli("table", str(latin), "-c", "body", "-o", str(out)), "not valid utf-8", "--encoding")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"definitely not parquet")
    assert_clean_failure(cli("table", str(corrupt), "-c", "body", "-o", str(out)), "corrupt.parquet", "Parquet")
    assert_clean_failure(cli("table", str(parquet), "-c", "body", "-o", str(tmp_path / "out.xlsx")),
                         "--out-format", code=2)
    assert not out.exists()


def test_table_failure_midway_keeps_the_previous_output(tmp_path):
    source = tmp_path / "in.jsonl"
    good = [json.dumps({"body": f"row {i}"}) for i in range(5)]
    source.write_text("\n".join(good + ["{broken json"]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("previous run\n", encoding="utf-8")
    assert_clean_failure(cli("table", str(source), "-c", "body", "-o", str(out), "--batch-rows", "2"),
                         "in.jsonl", "JSON")
    assert out.read_text(encoding="utf-8") == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


# ------------------------------------------------------ info, bench, download
def test_info_json(detector):
    done = cli("info", "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["checkpoint"] == str(Path(MODEL).resolve())
    assert facts["device"] == "cpu" and facts["dtype"] == "float32"
    assert facts["labels"] == detector.span_labels and facts["doc_classes"] is None


def test_bench_reports_speed():
    done = cli("bench", "--seconds", "0.3", "--batch-rows", "8", "--words", "20")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "tokens/s" in out and "rows/s" in out


def test_download_offline_is_one_clear_line(tmp_path):
    # An endpoint nobody listens on stands for "no network", wherever the test runs.
    done = cli("download", "openai/privacy-filter", "--dir", str(tmp_path / "ckpt"),
               env={"HF_ENDPOINT": "http://127.0.0.1:9", "HTTPS_PROXY": "", "https_proxy": "", "ALL_PROXY": "",
                    "all_proxy": ""})
    assert_clean_failure(done, "openai/privacy-filter", "not reachable", "--model")
    assert not (tmp_path / "ckpt").exists()


def test_download_with_hub_offline_names_the_variable(tmp_path):
    done = cli("download", "openai/privacy-filter", "--dir", str(tmp_path / "ckpt"), env={"HF_HUB_OFFLINE": "1"})
    assert_clean_failure(done, "openai/privacy-filter", "HF_HUB_OFFLINE", "--model")
    assert not (tmp_path / "ckpt").exists()


def test_training_commands_are_wired_lazily():
    done = cli("eval", "--help")
    try:
        import pii_frames.cli.training  # noqa: F401
    except ImportError:
        assert_clean_failure(done, "pii-frames eval", "unavailable")
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().startswith("usage: pii-frames eval")


def test_interactive_prompt_in_a_terminal(detector):
    import pty
    import select

    controller, terminal = pty.openpty()
    env = {**os.environ, "PII_FRAMES_MODEL": MODEL, "PII_FRAMES_PROGRESS": "0", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "pii_frames.cli", "redact"], stdin=terminal, stdout=terminal,
                               stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    os.write(controller, (TEXT + "\nexit\n").encode())
    output = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closes when the process exits
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        assert process.wait(timeout=60) == 0
    text = output.decode("utf-8", errors="replace")
    assert "text> " in text
    assert detector.redact(TEXT).redacted_text in text
