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


# --------------------------------------------------------------- keys in pickles
KEY = "correct horse battery staple"


def test_a_policy_with_a_literal_key_is_pickled_only_on_purpose_and_then_says_so():
    import copy
    import pickle

    from pii_frames import Policy
    from pii_frames.redaction.policy import KeyInPickleError, policy_from_dict

    literal = Policy("pseudonym", key=KEY, labels=["private_person"])
    with pytest.raises(pickle.PicklingError, match="key_env") as refused:
        pickle.dumps(literal)
    assert isinstance(refused.value, (KeyInPickleError, ValueError)) and KEY not in str(refused.value)
    assert copy.copy(literal) is literal and copy.deepcopy(literal) is literal  # immutable: no pickling needed

    for allowed in (literal.allowing_key_in_pickle(), Policy("pseudonym", key=KEY, labels=["private_person"],
                                                             allow_key_in_pickle=True),
                    policy_from_dict({"operator": "pseudonym", "key": KEY, "labels": ["private_person"],
                                      "allow_key_in_pickle": True})):
        data = pickle.dumps(allowed)
        assert KEY.encode() in data and b"this pickle holds a secret" in data
        clone = pickle.loads(data)
        assert clone == literal and clone.allow_key_in_pickle
        assert clone.replacement("private_person", "Ann") == literal.replacement("private_person", "Ann")
        assert "allow_key_in_pickle=True" in repr(clone) and KEY not in repr(clone)
    assert literal.description() == literal.allowing_key_in_pickle().description()  # no output changes


def test_a_key_reference_travels_as_the_reference_and_is_read_on_the_worker(monkeypatch):
    import pickle

    from pii_frames import Policy

    by_reference = Policy("pseudonym", key_env="PII_TEST_MORE_KEY")
    monkeypatch.setenv("PII_TEST_MORE_KEY", KEY)
    by_reference.replacement("private_person", "Ann")  # resolved here: the resolved key must not travel
    data = pickle.dumps(by_reference)
    assert KEY.encode() not in data and b"PII_TEST_MORE_KEY" in data
    code = ("import pickle, sys\n"
            "print(pickle.loads(sys.stdin.buffer.read()).replacement('private_person', 'Ann'))\n")
    worker = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120,
                            env={**os.environ, "PII_TEST_MORE_KEY": KEY})
    assert worker.returncode == 0, worker.stderr.decode()
    assert worker.stdout.decode().strip() == Policy("pseudonym", key=KEY).replacement("private_person", "Ann")
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(Policy("pseudonym", key=KEY))


def test_polars_expressions_hold_a_policy_so_its_key_follows_the_pickle_rule(monkeypatch):
    # What Polars pickles with an expression (through cloudpickle) is its batch function.
    import pickle

    pytest.importorskip("polars")
    import pii_frames.polars as pii_polars

    literal = pii_polars._DetectBatch("redacted_text", None, pii_polars._options(
        {"operator": "pseudonym", "key": KEY}, None, None, None, None, {}))
    assert KEY not in repr(literal)
    with pytest.raises(pickle.PicklingError, match="key_env"):
        pickle.dumps(literal)
    by_reference = pii_polars._DetectBatch("redacted_text", None, pii_polars._options(
        {"operator": "pseudonym", "key_env": "PII_TEST_MORE_KEY"}, None, None, None, None, {}))
    data = pickle.dumps(by_reference)
    assert KEY.encode() not in data
    assert pickle.loads(data).options["policy"].key_source == "env:PII_TEST_MORE_KEY"


def test_ray_and_spark_follow_the_same_rule_before_any_work_is_scheduled():
    from pii_frames import Policy
    from pii_frames._workers import worker_options
    from pii_frames.redaction.policy import KeyInPickleError

    with pytest.raises(KeyInPickleError, match="literal key"):
        worker_options(None, Policy("encrypt", key=KEY), {}, where="pii_frames.ray.redact")
    shipped = worker_options(None, Policy("encrypt", key=KEY, allow_key_in_pickle=True), {}, where="pii_frames.ray.redact")
    assert shipped["policy"].allow_key_in_pickle  # told to carry the key: it may go
    assert worker_options(None, {"operator": "encrypt", "key_env": "PII_KEY"}, {}, where="x")["policy"].key_source


# --------------------------------------------------------------- bounded memory
@pytest.mark.skipif(not OPF_TINY.is_dir(), reason=f"shared fixture model {OPF_TINY} is absent")
def test_loading_a_detector_bounds_the_native_kernel_caches_before_any_model_call():
    # oneDNN's and ideep's per-shape caches (1,024 entries each by default) held ~430 MB and fragmented the
    # heap over a long table run; the libraries read these variables at their first kernel.
    from pii_frames.io.memory import NATIVE_CACHE_ENTRIES, NATIVE_CACHE_VARIABLES

    code = ("import os, sys, pii_frames\n"
            "pii_frames.load(sys.argv[1])\n"
            "print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'), os.environ.get('LRU_CACHE_CAPACITY'))\n")
    env = {k: v for k, v in os.environ.items() if k not in NATIVE_CACHE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code, str(OPF_TINY)], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [str(NATIVE_CACHE_ENTRIES)] * 2
    kept = subprocess.run([sys.executable, "-c", code, str(OPF_TINY)], env={**env, "LRU_CACHE_CAPACITY": "512"},
                          capture_output=True, timeout=120)
    assert kept.stdout.decode().split() == [str(NATIVE_CACHE_ENTRIES), "512"]  # the user's setting wins
