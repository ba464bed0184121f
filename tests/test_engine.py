"""The engine path shared by every adapter: Detector.detect_arrow / redact_many."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import pii_frames as pii
from pii_frames.arrow import redact_table
from pii_frames.engine import loading
from pii_frames.engine.schema import DETECT_TYPE

from shared_paths import OPF_TINY as FIXTURE  # noqa: E402


@pytest.fixture(scope="module")
def detector():
    return pii.load(FIXTURE, device="cpu")


def _long_document(rng: random.Random, words: int) -> str:
    vocab = ["Ann", "Lee", "called", "from", "+44 20 7946 0958", "about", "invoice", "ACC-99812", "on", "2024-03-01",
             "and", "wrote", "to", "ann.lee@example.com", "ünïcödé", "日本語", "🙂", "\r\n"]
    return " ".join(rng.choice(vocab) for _ in range(words))


def _mixed_column(n_rows: int, seed: int = 0) -> list[str | None]:
    rng = random.Random(seed)
    pool = [
        "Hello, my name is John Smith and my email is john.smith@example.com",
        "Call Olusegun Adeyemi on +44 20 7946 0958 or write to 221B Baker Street, London.",
        "",
        "   ",
        "naïve café — 東京 🙂 résumé",
        "Line one\r\nLine two\tTabbed",
        "<|endoftext|> special-looking text",
    ]
    rows: list[str | None] = []
    for i in range(n_rows):
        r = rng.random()
        if r < 0.1:
            rows.append(None)
        elif r < 0.4:
            rows.append(rng.choice(pool))
        else:
            rows.append(f"row {i}: " + _long_document(rng, rng.randint(1, 30)))
    for k in range(3):  # a few documents of ~3,000 tokens, longer than the small n_ctx used below
        rows[rng.randrange(n_rows)] = _long_document(rng, 1500 + 100 * k)
    return rows


def test_detect_arrow_equals_per_row_redact(detector):
    rows = _mixed_column(2000)
    small_windows = pii.load(FIXTURE, device="cpu", n_ctx=1024, token_budget=4096)
    out = small_windows.detect_arrow(pa.array(rows, type=pa.large_string()))
    assert out.type == DETECT_TYPE
    assert len(out) == len(rows)
    per_row = pii.load(FIXTURE, device="cpu", n_ctx=1024, cache_size=0)
    checked = 0
    for i, text in enumerate(rows):
        got = out[i].as_py()
        if text is None:
            assert got is None
            continue
        if i % 7 and len(text) < 3000:  # a sample keeps the per-row loop short; long documents always checked
            continue
        expected = per_row.redact(text)
        assert got["redacted_text"] == expected.redacted_text
        assert [(s["label"], s["start"], s["end"]) for s in got["spans"]] == [
            (s.label, s.start, s.end) for s in expected.detected_spans
        ]
        assert got["spans"] == [] or all(0.0 <= s["score"] <= 1.0 for s in got["spans"])
        assert got["labels"] == sorted({s.label for s in expected.detected_spans})
        checked += 1
    assert checked > 250


def test_windows_and_budget_do_not_change_results(detector):
    rows = [_long_document(random.Random(s), 700) for s in range(3)] + ["short one", "Ann Lee"]
    reference = [r.to_dict() for r in pii.load(FIXTURE, device="cpu", n_ctx=4096).redact_many(rows)]
    packed = [r.to_dict() for r in pii.load(FIXTURE, device="cpu", n_ctx=4096, token_budget=512).redact_many(rows)]
    assert packed == reference


def test_input_types_and_order(detector):
    texts = ["b Ann", None, "a Lee", "", "b Ann"]
    expected = detector.redact_many(texts)
    for array in (
        pa.array(texts, type=pa.string()),
        pa.array(texts, type=pa.string_view()),
        pa.chunked_array([texts[:2], texts[2:]], type=pa.large_string()),
    ):
        out = detector.detect_arrow(array)
        assert out.field("redacted_text").to_pylist() == [None if r is None else r.redacted_text for r in expected]
    assert expected[1] is None and expected[3].redacted_text == ""
    assert detector.detect_arrow(pa.array([None, None])).null_count == 2
    assert len(detector.detect_arrow(pa.array([], type=pa.string()))) == 0


def test_non_text_column_error_names_column(detector):
    with pytest.raises(TypeError, match="column 'age' has Arrow type int64"):
        detector.detect_arrow(pa.array([1, 2]), column="age")
    table = pa.table({"id": [1, 2], "body": ["Ann", None]})
    with pytest.raises(KeyError, match="column\\(s\\) \\['nope'\\] not found"):
        redact_table(table, ["nope"], model=detector)
    with pytest.raises(TypeError, match="column 'id' has type int64"):
        redact_table(table, ["id"], model=detector)


def test_detect_table_adds_columns(detector):
    table = pa.table({"id": [1, 2, 3], "body": ["Ann Lee", None, "x"]})
    out = redact_table(table, ["body"], model=detector, spans=True, category=True)
    assert out.column_names == ["id", "body", "body_pii_spans", "body_pii_category"]
    assert out.column("body").to_pylist()[1] is None
    assert out.column("id").to_pylist() == [1, 2, 3]


def test_bad_row_is_reported_and_others_kept(detector, monkeypatch):
    tokenizer = detector.tokenizer
    real = tokenizer.token_offsets

    def flaky(text, ids):
        if "POISON" in text:
            raise ValueError("cannot map offsets")
        return real(text, ids)

    monkeypatch.setattr(tokenizer, "token_offsets", flaky)
    rows = ["fine Ann", "POISON row", None, "fine too"]
    fresh = pii.load(FIXTURE, device="cpu", cache_size=0)
    with pytest.raises(pii.RowError, match="row 1"):
        fresh.detect_arrow(pa.array(rows))
    with pytest.warns(RuntimeWarning, match="rows 1"):
        out = fresh.detect_arrow(pa.array(rows), on_error="null")
    got = out.field("redacted_text").to_pylist()
    assert got[1] is None and got[2] is None
    assert got[0] is not None and got[3] is not None
    assert [e.row for e in fresh.last_errors] == [1]


def test_redact_many_rejects_non_text_rows(detector):
    with pytest.raises(pii.RowError, match="row 1: TypeError"):
        detector.redact_many(["ok", 5])


def test_one_model_per_checkpoint_device_dtype():
    a = pii.load(FIXTURE, device="cpu")
    b = pii.load(str(FIXTURE), device="cpu", output_mode="redacted")
    assert a._shared is b._shared
    c = pii.load(FIXTURE, device="cpu", dtype="bfloat16")
    assert c._shared is not a._shared


def test_thread_safe_shared_model(detector):
    rows = _mixed_column(200, seed=3)
    expected = [None if r is None else r.to_dict() for r in detector.redact_many(rows)]
    results: dict[int, list] = {}

    def work(k):
        d = pii.load(FIXTURE, device="cpu", cache_size=0)
        results[k] = [None if r is None else r.to_dict() for r in d.redact_many(rows)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == expected for k in range(3))


def test_token_logprobs_contract(detector):
    ids, logprobs = detector.token_logprobs("Hello, my name is John Smith")
    assert logprobs.dtype == np.float32 and logprobs.shape == (len(ids), len(detector.labels))
    np.testing.assert_allclose(np.exp(logprobs).sum(axis=1), 1.0, atol=1e-5)
    assert detector.labels[0] == "O" and len(detector.labels) == 33


def test_environment_settings(monkeypatch):
    monkeypatch.setenv("PII_FRAMES_MODEL", str(FIXTURE))
    monkeypatch.setenv("PII_FRAMES_TOKEN_BUDGET", "1234")
    monkeypatch.setenv("PII_FRAMES_DEVICE", "cpu")
    d = pii.load()
    assert d.token_budget == 1234 and d.device.type == "cpu"
    assert Path(d.checkpoint_dir) == FIXTURE.resolve()
    monkeypatch.setenv("PII_FRAMES_TOKEN_BUDGET", "lots")
    with pytest.raises(ValueError, match="PII_FRAMES_TOKEN_BUDGET"):
        pii.load()


def test_model_resolution_errors(tmp_path, monkeypatch):
    with pytest.raises(loading.ModelNotFoundError, match="does not exist"):
        pii.load(tmp_path / "missing")
    with pytest.raises(loading.ModelNotFoundError, match="pii-frames download someone/model"):
        pii.load("someone/model")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snap = tmp_path / "models--someone--model" / "snapshots" / "abc" / "original"
    snap.mkdir(parents=True)
    for f in FIXTURE.iterdir():
        (snap / f.name).symlink_to(f)
    path, model_id = loading.resolve_checkpoint("someone/model")
    assert path == snap and model_id == "someone/model"


def test_cuda_device_auto_and_explicit():
    import torch

    if torch.cuda.is_available():
        assert loading.resolve_device("auto").type == "cuda"
    else:
        assert loading.resolve_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            loading.resolve_device("cuda")


def test_policy_with_unknown_label_is_rejected(detector):
    with pytest.raises(ValueError, match="private_persn"):
        detector.redact("Ann", policy=pii.Policy(labels=["private_persn"]))


def test_package_import_stays_light():
    """DAG parsing and dbt start-up import pii_frames: no torch, polars or model until first use."""
    import subprocess
    import sys

    code = (
        "import sys, pii_frames, pii_frames.redaction.policy, pii_frames.model.config; "
        "heavy = [m for m in ('torch', 'polars', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_FORK_SCRIPT = """
import multiprocessing, sys
import torch
import pii_frames as pii
from pii_frames.model import threads
from pii_frames.model.cpu import run_expert_slabs
from pii_frames.model.cpu_experts import prepare_experts

def child_flag(_):
    return threads.forked_after_multithreaded_work()

detector = pii.load(sys.argv[1], device="cpu", threads=2)
with multiprocessing.get_context("fork").Pool(1) as pool:  # forked before any work: keeps its threads
    assert pool.map(child_flag, [0]) == [False]
texts = ["Call Anna Berg at +1 415 555 0102.", "Mail john@example.com now", "Paul Smith, 12 Oak Road"]
in_parent = [detector.redact(text).redacted_text for text in texts]  # forwards on 2 OpenMP threads
detector = pii.load(sys.argv[1], device="cpu", threads=2, cache_size=0)  # children must run the model

def child(text):
    return detector.redact(text).redacted_text

experts = prepare_experts(torch.randn(4, 8, 16), torch.zeros(4, 16), torch.randn(4, 8, 8), torch.zeros(4, 8),
                          "float32")

def experts_side_by_side(_):  # two expert groups: the second runs on the expert thread pool
    torch.set_num_threads(2)
    return run_expert_slabs(torch.ones(8, 8), torch.tensor([2, 4, 6, 8]), experts, 7.0, 1.702, workers=2)

in_parent.append(experts_side_by_side(0).sum().item())

with multiprocessing.get_context("fork").Pool(2) as pool:
    in_children = pool.map_async(child, texts).get(timeout=60)
    in_children.append(pool.map_async(experts_side_by_side, [0]).get(timeout=60)[0].sum().item())
    assert pool.map(child_flag, [0]) == [True]
print(in_children == in_parent)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_children_do_not_hang(tmp_path):
    # multiprocessing forks on Linux; GNU OpenMP's team does not survive the fork, so a child forked after
    # multi-threaded work runs one thread, and the expert thread pools are rebuilt in it.
    script = tmp_path / "fork_children.py"
    script.write_text(_FORK_SCRIPT)
    done = subprocess.run([sys.executable, str(script), "default"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
