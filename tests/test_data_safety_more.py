"""Issue 16, the rest: bad bytes in JSON Lines, keys in Policy pickles, memory between batches.

Before: an invalid UTF-8 byte inside one JSON Lines value failed the whole
file, naming a byte offset in the line but no column and ignoring
``on_error``; ``pickle.dumps(Policy(..., key=K))`` held K in the clear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from pii_frames.io.files import FileSource, TableIOError

from shared_paths import OPF_TINY  # noqa: E402


# --------------------------------------------------------------- JSON Lines bad bytes
def _bad_jsonl(path) -> None:
    path.write_bytes(
        b'{"id": 1, "body": "mail ann@example.com", "note": "a"}\n'
        b"\n"
        b'{"id": 2, "body": "caf\xe9 bob@example.com", "note": "b"}\n'
        b'{"id": 3, "body": "fine", "note": "c"}\n'
        b'{"id": 4, "body": "\xff\xfe", "note": "d"}\n'
    )


def test_a_bad_byte_in_a_jsonl_value_names_file_line_and_column(tmp_path):
    source = tmp_path / "in.jsonl"
    _bad_jsonl(source)
    with pytest.raises(TableIOError) as info:
        list(FileSource(str(source), "jsonl", ["body"], batch_rows=2))
    message = str(info.value)
    assert message.startswith(f"column 'body' line 3 of {source} is not valid utf-8 (byte 0xe9 at offset 3)")
    assert "--on-error null" in message and "--encoding" in message


def test_on_error_null_nulls_only_the_bad_jsonl_values_and_warns_with_their_lines(tmp_path):
    source = tmp_path / "in.jsonl"
    _bad_jsonl(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(FileSource(str(source), "jsonl", ["body"], batch_rows=2, on_error="null"))
    rows = [row for batch in batches for row in batch.to_pylist()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert [r["note"] for r in rows] == ["a", "b", "c", "d"]  # the rest of each bad line is kept
    assert [r["body"] for r in rows] == ["mail ann@example.com", None, "fine", None]
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"pii_frames: cells that are not valid utf-8 were set to null (column 'body': line 3 of {source})",
        f"pii_frames: cells that are not valid utf-8 were set to null (column 'body': line 5 of {source})",
    ]


@pytest.mark.parametrize("on_error", ["raise", "null"])
@pytest.mark.parametrize("line, fragment", [
    (b'{"id": 1, "body": "ok", "note": "\xff"}\n', "the value of 'note' on {path} line 1 is not valid utf-8"),
    (b'{"id": 1, "bo\xffdy": "ok"}\n', "a key on {path} line 1 is not valid utf-8"),
])
def test_bad_bytes_outside_the_redacted_values_stop_naming_the_line(tmp_path, line, fragment, on_error):
    # Only a redacted column's value can be nulled; anything else would reach the output unreadable.
    source = tmp_path / "in.jsonl"
    source.write_bytes(line)
    with pytest.raises(TableIOError) as info:
        list(FileSource(str(source), "jsonl", ["body"], batch_rows=2, on_error=on_error))
    assert fragment.format(path=source) in str(info.value) and "--encoding" in str(info.value)


@pytest.mark.skipif(not OPF_TINY.is_dir(), reason=f"shared fixture model {OPF_TINY} is absent")
def test_cli_table_on_jsonl_with_a_bad_value_follows_on_error(tmp_path):
    source = tmp_path / "in.jsonl"
    _bad_jsonl(source)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PII_FRAMES_MODEL": str(OPF_TINY), "PII_FRAMES_PROGRESS": "0"}
    command = [sys.executable, "-m", "pii_frames.cli", "table", str(source), "-c", "body", "-o", str(out)]
    failed = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert failed.returncode == 1 and not out.exists()
    assert "column 'body' line 3 of" in failed.stderr.decode() and "Traceback" not in failed.stderr.decode()

    done = subprocess.run([*command, "--on-error", "null"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert "warning" in done.stderr.decode() and "line 5 of" in done.stderr.decode()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["body"] is None and rows[3]["body"] is None
    assert rows[0]["body"] is not None and "ann@example.com" not in rows[0]["body"]
