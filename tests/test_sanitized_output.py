"""Sanitized output carries no PII: no raw values beside redacted text, no fragments, no re-redaction.

Also the small API promises around it: dict policies everywhere, nulls from pandas, errors that name
what to fix, per-thread row errors, one dtype alias table, the opf-compatible switch.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import warnings
import weakref
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pc
import pyarrow.parquet as pq
import pytest

import pii_frames as pii
import pii_frames.arrow as pa_pii
import pii_frames.duckdb as pii_duckdb
import pii_frames.pandas  # noqa: F401  (registers the accessor)
from pii_frames.decode import CharSpan
from pii_frames.engine.loading import clear_model_cache, shared_detector
from pii_frames.redaction import Policy, build_result
from pii_frames.redaction.edges import protected_regions, sanitize_edges

from shared_paths import OPF_TINY

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample_customers.csv"
SPAN_FIELDS = ["label", "start", "end", "score", "source"]


def cli(*args: str, env: dict | None = None, cwd: Path | None = None):
    full_env = {**os.environ, "PII_FRAMES_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pii_frames.cli", *args], env=full_env, cwd=cwd,
                          capture_output=True, timeout=300)


# ----------------------------------------------------------------------------- no raw values
def test_cli_table_spans_hold_no_raw_values(tmp_path):
    out = tmp_path / "clean.parquet"
    done = cli("table", str(SAMPLE), "--column", "body", "--column", "customer", "--out", str(out), "--spans")
    assert done.returncode == 0, done.stderr.decode()
    table = pq.read_table(out)
    for column in ("body_pii_spans", "customer_pii_spans"):
        assert table.schema.field(column).type.value_type.names == SPAN_FIELDS
    raw = pq.read_table(tmp_path / "clean.parquet").to_pylist()
    assert any(row["body_pii_spans"] for row in raw)

    # What the detector found, asked for by name: none of it is in the sanitized file.
    with_text = tmp_path / "inspect.parquet"
    done = cli("table", str(SAMPLE), "--column", "body", "--column", "customer", "--out", str(with_text),
               "--spans-with-text")
    assert done.returncode == 0, done.stderr.decode()
    inspected = pq.read_table(with_text)
    assert inspected.schema.field("body_pii_spans").type.value_type.names == SPAN_FIELDS + ["text"]
    checked = 0
    for clean_row, inspected_row in zip(raw, inspected.to_pylist()):
        for column in ("body", "customer"):
            # The cell and its span column together: neither holds a value detected in that cell.
            cells = json.dumps([clean_row[column], clean_row[f"{column}_pii_spans"]], default=str)
            for span in inspected_row[f"{column}_pii_spans"] or []:
                assert span["text"] not in cells, (column, span)
                checked += 1
    assert checked > 300


def test_every_adapter_gives_spans_without_text_unless_asked():
    rows = ["Contact: bob@example.com", None]
    assert pa_pii.spans_array(pa.array(rows)).type.value_type.names == SPAN_FIELDS
    assert pa_pii.redact_table(pa.table({"b": rows}), spans=True).schema.field("b_pii_spans").type.value_type.names \
        == SPAN_FIELDS
    polars_spans = pl.DataFrame({"b": rows}).select(pii.spans("b")).to_series()
    assert [f.name for f in polars_spans.dtype.inner.fields] == SPAN_FIELDS
    polars_text = pl.DataFrame({"b": rows}).select(pii.spans("b", with_text=True)).to_series()
    assert polars_text.to_list()[0][0]["text"] == "bob@example.com"
    pandas_spans = pd.Series(rows).pii.spans()
    assert list(pandas_spans[0][0]) == SPAN_FIELDS
    con = pii_duckdb.register(duckdb.connect(), "default")
    got = con.execute("SELECT pii_spans(?)", [rows[0]]).fetchall()[0][0]
    assert list(got[0]) == SPAN_FIELDS
    pii_duckdb.register(con, "default", with_text=True)
    assert con.execute("SELECT pii_spans(?)", [rows[0]]).fetchall()[0][0][0]["text"] == "bob@example.com"


# ----------------------------------------------------------------------------- edges
@pytest.mark.parametrize(
    "text, span, expected",
    [
        # A phone cut inside its digits and a URL cut inside its path are widened to the whole token.
        ("call 001-448-555-0100 today", ("private_phone", 12, 21), "call <PRIVATE_PHONE> today"),
        ("see https://example.org/u/posts now", ("private_url", 4, 26), "see <PRIVATE_URL> now"),
        # Sentence punctuation after an e-mail or a URL stays outside.
        ("Mail bob@example.com.", ("private_email", 5, 16), "Mail <PRIVATE_EMAIL>."),
        ("Read https://example.org/a/b.", ("private_url", 5, 24), "Read <PRIVATE_URL>."),
        ("(Ann Lee), said", ("private_person", 1, 4), "(<PRIVATE_PERSON> Lee), said"),
        # Separators of CSV/JSON/log lines bound a token: the JSON key survives.
        ('{"email":"bob@example.com"}', ("private_email", 10, 20), '{"email":"<PRIVATE_EMAIL>"}'),
    ],
)
def test_edges_snap_to_whole_tokens(text, span, expected):
    result = build_result(text, [CharSpan(span[0], span[1], span[2], 0.9)])
    assert result.redacted_text == expected
    for found in result.detected_spans:
        assert text[found.start : found.end] == found.text
    # The reference's spans stay one switch away.
    reference = build_result(text, [CharSpan(span[0], span[1], span[2], 0.9)], opf_compatible=True)
    assert reference.redacted_text == text[: span[1]] + f"<{span[0].upper()}>" + text[span[2] :]


def test_no_letter_or_digit_is_left_glued_to_a_placeholder():
    rng = np.random.default_rng(7)
    words = ["Ann", "Lee", "001-448-555-0100", "https://x.org/a/posts", "bob@example.com.", "(42)", "x9"]
    for _ in range(300):
        tokens = list(rng.choice(words, size=6))
        text = " ".join(tokens)
        start = int(rng.integers(0, len(text) - 1))
        end = int(rng.integers(start + 1, len(text) + 1))
        result = build_result(text, [CharSpan("secret", start, end, 0.9)])
        for found in result.detected_spans:
            before = text[found.start - 1] if found.start else " "
            after = text[found.end] if found.end < len(text) else " "
            assert not before.isalnum() and not after.isalnum(), (text, start, end, found)
            assert found.start <= start and found.end >= end  # snapping only widens


def test_our_placeholders_tokens_and_masks_are_protected():
    text = "Call <PRIVATE_PERSON> or <PRIVATE_PERSON_3f9a1c2b7d4e5f60> on ******0100 re <SECRET:v1:k1:AbC-_9>"
    regions = protected_regions(text)
    assert [text[a:b] for a, b in regions] == [
        "<PRIVATE_PERSON>", "<PRIVATE_PERSON_3f9a1c2b7d4e5f60>", "******0100", "<SECRET:v1:k1:AbC-_9>"]
    # Spans inside our own output vanish; a real name glued on stays redacted.
    mask = text.index("******0100")
    spans = [CharSpan("private_person", 6, 20, 0.9), CharSpan("private_phone", mask, mask + 10, 0.9),
             CharSpan("private_person", 26, 40, 0.9)]
    assert sanitize_edges(text, spans) == []
    assert build_result(text, spans).redacted_text == text
    glued = "Ask <PRIVATE_PERSON> Lee"
    assert build_result(glued, [CharSpan("private_person", 4, 24, 0.9)]).redacted_text == \
        "Ask <PRIVATE_PERSON> <PRIVATE_PERSON>"


def test_redact_leaves_placeholders_in_the_input_alone():
    detector = pii.load("default")
    for text in ["Call <PRIVATE_PERSON> on <PRIVATE_PHONE> about <PRIVATE_DATE>.",
                 "Mail <PRIVATE_EMAIL> or <PRIVATE_URL>; key <SECRET>"]:
        result = detector.redact(text)
        assert result.redacted_text == text
        assert result.detected_spans == ()
    done = cli("redact", "Call <PRIVATE_PERSON> on <PRIVATE_PHONE>")
    assert done.stdout.decode().strip() == "Call <PRIVATE_PERSON> on <PRIVATE_PHONE>"


def test_a_second_pass_keeps_everything_the_first_pass_wrote(tmp_path):
    """Our placeholders in the input stay exactly as they are on a second pass.

    The second pass may still find what the model missed the first time (a name it only recognises
    once its neighbours are placeholders), so the check is that every placeholder of the first output
    survives, in order, and that nothing else of the first output is touched except newly found spans.
    """
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    columns = ["--column", "body", "--column", "customer"]
    assert cli("table", str(SAMPLE), *columns, "--out", str(first)).returncode == 0
    done = cli("table", str(first), *columns, "--spans-with-text", "--out", str(second))
    assert done.returncode == 0, done.stderr.decode()
    once, twice = pq.read_table(first), pq.read_table(second)
    for column in ("body", "customer"):
        for before, after, spans in zip(once[column].to_pylist(), twice[column].to_pylist(),
                                        twice[f"{column}_pii_spans"].to_pylist()):
            if before is None:
                assert after is None
                continue
            tokens = [before[a:b] for a, b in protected_regions(before)]
            for span in spans:
                # a span of the second pass never covers text the first pass wrote
                assert not any(start < span["end"] and span["start"] < end for start, end in protected_regions(before))
            found = iter(after[a:b] for a, b in protected_regions(after))
            assert all(token in found for token in tokens), (before, after)  # an ordered subsequence


def test_sanitizing_the_sanitized_sample_table_changes_nothing(tmp_path):
    """The README's main job run on its own output writes the same bytes (the Detector rescans its output)."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    columns = ["--column", "body", "--column", "customer"]
    assert cli("table", str(SAMPLE), *columns, "--out", str(first)).returncode == 0
    done = cli("table", str(first), *columns, "--out", str(second))
    assert done.returncode == 0, done.stderr.decode()
    assert second.read_bytes() == first.read_bytes()


def test_rescan_redacts_what_reading_the_redacted_text_finds():
    """Names the model only finds once their neighbours are placeholders are redacted in the first pass."""
    rows = [row for row in pc.read_csv(SAMPLE).column("body").to_pylist() if row]
    single, rescanning = pii.load("default", rescan=False), pii.load("default")
    once = [r.redacted_text for r in single.redact_many(rows)]
    fixed = [r.redacted_text for r in rescanning.redact_many(rows)]
    assert fixed != once  # the sample holds such names ("agent Nicole Buchanan" beside two placeholders)
    assert [r.redacted_text for r in single.redact_many(fixed)] == fixed  # nothing left for a second pass
    for before, after in zip(once, fixed):
        tokens = iter(after[a:b] for a, b in protected_regions(after))
        assert all(before[a:b] in tokens for a, b in protected_regions(before))  # only ever more redacted
    # opf_compatible keeps the reference's single pass, whatever rescan says.
    assert [r.redacted_text for r in pii.load("default", opf_compatible=True).redact_many(rows)] == [
        r.redacted_text for r in pii.load("default", opf_compatible=True, rescan=False).redact_many(rows)]


def test_opf_compatible_switch_in_every_adapter():
    text = "call 001-448-555-0100 today"
    plain, reference = pii.load("default"), pii.load("default", opf_compatible=True)
    assert reference.opf_compatible and not plain.opf_compatible
    rows = pa.array([text])
    assert pa_pii.redact_array(rows, model="default", opf_compatible=True).to_pylist() == [
        reference.redact(text).redacted_text]
    assert pl.DataFrame({"b": [text]}).select(pii.redact("b", model="default", opf_compatible=True)).item() == \
        reference.redact(text).redacted_text
    con = pii_duckdb.register(duckdb.connect(), "default", opf_compatible=True)
    assert con.execute("SELECT pii_redact(?)", [text]).fetchall()[0][0] == reference.redact(text).redacted_text
    done = cli("redact", "--opf-compatible", "--json", text)
    assert json.loads(done.stdout)["redacted_text"] == reference.redact(text).redacted_text


@pytest.mark.skipif(not (OPF_TINY / "expected.json").is_file(), reason="opf-tiny fixture not available")
def test_opf_compatible_detector_reproduces_the_reference_outputs():
    detector = pii.load(OPF_TINY, device="cpu", opf_compatible=True)
    for case in json.loads((OPF_TINY / "expected.json").read_text(encoding="utf-8")):
        result = detector.redact(case["text"]).to_dict()
        assert result["redacted_text"] == case["viterbi"]["redacted_text"]
        assert [(s["label"], s["start"], s["end"], s["text"]) for s in result["detected_spans"]] == [
            (s["label"], s["start"], s["end"], s["text"]) for s in case["viterbi"]["detected_spans"]]


def test_to_dict_keeps_span_text_beside_the_original():
    result = pii.load("default").redact("Contact: bob@example.com")
    assert result.to_dict()["detected_spans"][0]["text"] == "bob@example.com"


# ----------------------------------------------------------------------------- API as documented
def test_redact_takes_a_dict_policy():
    detector = pii.load("default")
    assert detector.redact("Contact: bob@example.com", policy={"operator": "mask"}).redacted_text == \
        "Contact: ***************"
    assert detector.redact_many(["Contact: bob@example.com"], policy={"operator": "drop"})[0].redacted_text == \
        "Contact: "


def test_keep_last_keeps_tails_of_numbers_only():
    text = "Call Ann Lee on 415 555 0100"
    spans = [CharSpan("private_person", 5, 12, 0.9), CharSpan("private_phone", 16, 28, 0.9)]
    assert build_result(text, spans, policy=Policy("keep_last")).redacted_text == \
        "Call <PRIVATE_PERSON> on ********0100"


def test_show_treats_pandas_missing_values_as_nulls():
    table = pii.show(pd.Series(["Contact: bob@example.com", np.nan, None, pd.NA], dtype=object), max_rows=10)
    assert [row.text for row in table.rows] == ["Contact: bob@example.com", None, None, None]


def test_model_variable_that_points_nowhere_names_the_variable(monkeypatch):
    monkeypatch.setenv("PII_FRAMES_MODEL", "/nope")
    with pytest.raises(FileNotFoundError, match=r"PII_FRAMES_MODEL='/nope'.*unset the variable"):
        pii.load()
    done = cli("redact", "hello", env={"PII_FRAMES_MODEL": "/nope"})
    assert done.returncode == 1 and "PII_FRAMES_MODEL" in done.stderr.decode()


def test_version_flag():
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.decode().strip() == f"pii-frames {pii.__version__}"


def test_clear_model_cache_frees_adapter_held_models():
    detector = shared_detector("default")
    assert pa_pii.resolve_detector("default") is detector
    model_ref = weakref.ref(detector.model)
    del detector
    clear_model_cache()
    gc.collect()
    assert model_ref() is None
    assert pa_pii.resolve_detector("default").model is not None


def test_row_errors_are_kept_per_thread(monkeypatch):
    detector = pii.load("default", on_error="null")
    barrier = threading.Barrier(2)
    seen: dict[str, list[int]] = {}

    def run(name: str, rows: list):
        barrier.wait()
        detector.redact_many(rows)
        seen[name] = [error.row for error in detector.last_errors]

    threads = [threading.Thread(target=run, args=("a", ["ok", 1, "ok"])),
               threading.Thread(target=run, args=("b", [2.0, "ok", "ok", None, 3]))]
    # catch_warnings is process-wide state, so it wraps both threads here rather than living in each.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == {"a": [1], "b": [0, 4]}


def test_one_dtype_alias_table():
    import torch

    from pii_frames.engine.loading import resolve_weight_dtype
    from pii_frames.model.checkpoint import load_model
    from pii_frames.model.checkpoint import resolve_weight_dtype as canonical

    for alias, expected in [("f16", torch.float16), ("float", torch.float32), ("half", torch.float16),
                            ("bf16", torch.bfloat16), ("f32", torch.float32)]:
        assert resolve_weight_dtype(alias, torch.device("cpu")) == expected
        assert canonical(alias, torch.device("cpu")) == str(expected).replace("torch.", "")
    assert load_model(pii.load("default").checkpoint_dir, weight_dtype="f16").weight_dtype == "float16"
    assert pii.load("default", dtype="float").dtype == torch.float32


def test_import_is_light():
    code = "import sys, pii_frames; import pii_frames.cli; print('torch' in sys.modules, 'polars' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.stdout.decode().split() == ["False", "False"]


def test_table_summary_json(tmp_path):
    out, summary = tmp_path / "clean.parquet", tmp_path / "summary.json"
    done = cli("table", str(SAMPLE), "--column", "body", "--out", str(out), "--summary-json", str(summary))
    assert done.returncode == 0, done.stderr.decode()
    data = json.loads(summary.read_text())
    assert data["rows"] == 200 and data["output"] == str(out)
    body = data["columns"]["body"]
    assert body["spans"] == sum(entry["spans"] for entry in body["labels"].values()) > 0
    assert 0 < body["rows_with_pii"] <= 200
    raw = pq.read_table(out)
    assert "@" not in json.dumps(data)  # counts only, no detected value
    assert raw.num_rows == 200


def test_duckdb_functions_registered_with_a_dict_policy_hide_the_key():
    secret = "k3y-never-shown"
    con = pii_duckdb.register(duckdb.connect(), "default", policy={"operator": "pseudonym", "key": secret})
    shown = " ".join(repr(function) for function in pii_duckdb._LIVE_FUNCTIONS[id(con)].values())
    assert secret not in shown and "<hidden>" in shown
