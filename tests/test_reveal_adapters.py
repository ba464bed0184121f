"""Reveal through every adapter: Polars, DuckDB, pandas, the CLI and the Airflow job.

The 10,000-row round trips encrypt without the model (build_result on spans
known by construction); a handful of rows then go through the embedded default
model end to end (redact with the "encrypt" policy, then reveal).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faker import Faker

import pii_frames.duckdb as pii_duckdb
import pii_frames.pandas  # noqa: F401  (registers the .pii accessor)
import pii_frames.polars as pii_pl
from pii_frames import cli
from pii_frames.decode.spans import CharSpan
from pii_frames.redaction import encryption
from pii_frames.redaction.apply import build_result
from pii_frames.redaction.encryption import ENCRYPTED_TOKEN_RE, RevealError, RevealWarning
from pii_frames.redaction.policy import Policy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "pii_frames" / "assets" / "default_model"
needs_default_model = pytest.mark.skipif(
    not (DEFAULT_MODEL / "model.safetensors").is_file(), reason="the embedded default model is not built"
)
KEY = "adapter test key 4c1f9e27b0d35a86e9c2f17b4d08a6e3"
OTHER_KEY = "other adapter key 91d2c7e4a8b05f36d1e9a2c84b7f0e65"
N_ROWS = 10_000
TAMPERED_ROW = 1234


def synthetic_rows(n: int, seed: int = 19) -> tuple[list[str | None], list[list[CharSpan]]]:
    """Ticket texts with a name, an email and a phone at known offsets; values repeat; every 50th row is null."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    people = [(fake.name(), fake.email(), fake.phone_number()) for _ in range(n // 4)]
    texts: list[str | None] = []
    spans: list[list[CharSpan]] = []
    for i in range(n):
        if i % 50 == 0:
            texts.append(None)
            spans.append([])
            continue
        name, email, phone = people[(i * 31) % len(people)]
        parts = [f"Ticket {i % 97}: ", (name, "private_person"), " (", (email, "private_email"),
                 ") asks for a call on ", (phone, "private_phone"), " about order #", str(i % 13), "."]
        text, found = "", []
        for part in parts:
            if isinstance(part, tuple):
                value, label = part
                found.append(CharSpan(label, len(text), len(text) + len(value), 0.99))
                text += value
            else:
                text += part
        texts.append(text)
        spans.append(found)
    return texts, spans


def encrypt_rows(texts, spans, policy: Policy) -> list[str | None]:
    return [None if text is None else build_result(text, found, policy=policy).redacted_text
            for text, found in zip(texts, spans)]


def flip_one_character(token_text: str) -> str:
    """The text with one payload character of its first token changed."""
    match = ENCRYPTED_TOKEN_RE.search(token_text)
    position = match.start("payload") + 3
    new = "A" if token_text[position] != "A" else "B"
    return token_text[:position] + new + token_text[position + 1 :]


@pytest.fixture(scope="module")
def data():
    texts, spans = synthetic_rows(N_ROWS)
    encrypted = encrypt_rows(texts, spans, Policy("encrypt", key=KEY))
    other = encrypt_rows(texts, spans, Policy("encrypt", key=OTHER_KEY))
    return texts, spans, encrypted, other


@pytest.fixture
def no_model(monkeypatch):
    """Revealing must never load or run the model."""
    import pii_frames.arrow
    import pii_frames.engine.loading

    def refuse(*args, **kwargs):
        raise AssertionError("reveal loaded the model")

    monkeypatch.setattr(pii_frames.engine.loading, "load", refuse)
    monkeypatch.setattr(pii_frames.arrow, "resolve_detector", refuse)


def test_synthetic_tokens_are_deterministic_and_key_specific(data):
    texts, spans, encrypted, other = data
    assert sum(text is None for text in texts) == N_ROWS // 50
    value_of: dict[str, str] = {}
    token_of: dict[tuple[str, str], str] = {}
    for text, found, sealed in zip(texts, spans, encrypted):
        if text is None:
            assert sealed is None
            continue
        tokens = [m.group(0) for m in ENCRYPTED_TOKEN_RE.finditer(sealed)]
        assert len(tokens) == len(found) == 3
        for span, token in zip(found, tokens):
            value = text[span.start : span.end]
            assert value not in sealed
            assert value_of.setdefault(token, value) == value  # one token, one value
            assert token_of.setdefault((span.label, value), token) == token  # equal values, equal tokens
    assert len(token_of) < 3 * (N_ROWS - N_ROWS // 50)  # values do repeat
    assert all(a != b for a, b in zip(encrypted, other) if a is not None)


# ------------------------------------------------------------------ Polars
def test_polars_round_trip_on_10000_rows(data, no_model):
    texts, _, encrypted, _ = data
    frame = pl.DataFrame({"id": range(N_ROWS), "body": encrypted})
    assert frame.select(pii_pl.reveal_expr("body", key=KEY))["body"].to_list() == texts
    assert frame.select(pl.col("body").pii.reveal(key=KEY))["body"].to_list() == texts
    assert frame["body"].pii.reveal(key=KEY).to_list() == texts
    streamed = frame.lazy().select(pii_pl.reveal_expr("body", keys={encryption.key_fingerprint(KEY): KEY})).collect(
        engine="streaming"
    )
    assert streamed["body"].to_list() == texts
    # Joins and group-bys on tokens work as on the values they stand for.
    by_token = frame.group_by("body").len().height
    assert by_token == pl.DataFrame({"body": texts}).group_by("body").len().height


def test_polars_output_dtype_is_declared_without_running(data, monkeypatch):
    _, _, encrypted, _ = data

    def refuse(*args, **kwargs):
        raise AssertionError("the schema must not need a reveal")

    monkeypatch.setattr(encryption, "reveal_many", refuse)
    lazy = pl.LazyFrame({"body": encrypted[:10]}).with_columns(pii_pl.reveal_expr("body", key=KEY).alias("clear"))
    assert lazy.collect_schema()["clear"] == pl.String
    assert KEY not in repr(pii_pl.reveal_expr("body", key=KEY))


def test_polars_tampered_row_and_wrong_key(data):
    texts, _, encrypted, other = data
    tampered = list(encrypted)
    tampered[TAMPERED_ROW] = flip_one_character(tampered[TAMPERED_ROW])
    frame = pl.DataFrame({"body": tampered})
    with pytest.raises(Exception, match=f"column 'body' row {TAMPERED_ROW}: token <PRIVATE_PERSON") as error:
        frame.select(pii_pl.reveal_expr("body", key=KEY))
    assert KEY not in str(error.value)
    with pytest.warns(RevealWarning, match=f"1 row\\(s\\) of column 'body'.*first: {TAMPERED_ROW}"):
        out = frame.select(pii_pl.reveal_expr("body", key=KEY, on_error="null"))["body"].to_list()
    assert out[TAMPERED_ROW] is None
    assert out[:TAMPERED_ROW] == texts[:TAMPERED_ROW] and out[TAMPERED_ROW + 1 :] == texts[TAMPERED_ROW + 1 :]
    with pytest.raises(Exception, match="column 'body' row 1: .*does not decrypt"):
        pl.DataFrame({"body": other[:5]}).select(pii_pl.reveal_expr("body", key=KEY))
    with pytest.raises(TypeError, match="reveal needs text"):
        pl.DataFrame({"n": [1, 2]}).select(pii_pl.reveal_expr("n", key=KEY))


# ------------------------------------------------------------------ DuckDB
def test_duckdb_round_trip_on_10000_rows(data, no_model):
    texts, _, encrypted, _ = data
    con = duckdb.connect()
    pii_duckdb.register(con, reveal_key=KEY)
    con.register("tickets", pa.table({"id": pa.array(range(N_ROWS), pa.int64()), "body": encrypted}))
    rows = con.sql("SELECT pii_reveal(body) FROM tickets ORDER BY id").fetchall()
    assert [row[0] for row in rows] == texts
    assert con.execute("SELECT pii_reveal(NULL), pii_reveal('no tokens')").fetchone() == (None, "no tokens")
    # Group-bys on tokens match group-bys on the revealed values.
    assert con.execute("SELECT count(DISTINCT body) FROM tickets").fetchone() == con.execute(
        "SELECT count(DISTINCT pii_reveal(body)) FROM tickets"
    ).fetchone()


def test_duckdb_pii_reveal_only_with_a_key_and_rotation(data):
    texts, spans, _, _ = data
    con = duckdb.connect()
    pii_duckdb.register(con)
    with pytest.raises(duckdb.CatalogException, match="pii_reveal"):
        con.sql("SELECT pii_reveal('x')").fetchall()
    old = encrypt_rows(texts[:200], spans[:200], Policy("encrypt", key=OTHER_KEY, key_id="2024"))
    new = encrypt_rows(texts[200:400], spans[200:400], Policy("encrypt", key=KEY, key_id="2025"))
    con.register("mixed", pa.table({"id": pa.array(range(400)), "body": old + new}))
    pii_duckdb.register(con, reveal_keys={"2024": OTHER_KEY, "2025": KEY})
    assert [r[0] for r in con.sql("SELECT pii_reveal(body) FROM mixed ORDER BY id").fetchall()] == texts[:400]
    pii_duckdb.register(con)  # registering again without a key removes pii_reveal
    with pytest.raises(duckdb.CatalogException):
        con.sql("SELECT pii_reveal('x')").fetchall()
    pii_duckdb.register(con, reveal_keys={"2025": KEY})
    with pytest.raises(duckdb.Error, match="key id '2024'"):
        con.sql("SELECT pii_reveal(body) FROM mixed").fetchall()
    pii_duckdb.unregister(con)


def test_duckdb_tampered_row(data):
    texts, _, encrypted, _ = data
    tampered = list(encrypted[:3000])
    tampered[TAMPERED_ROW] = flip_one_character(tampered[TAMPERED_ROW])
    head = ENCRYPTED_TOKEN_RE.search(tampered[TAMPERED_ROW])["payload"][:8]
    con = pii_duckdb.register(duckdb.connect(), reveal_key=KEY)
    con.register("t", pa.table({"id": pa.array(range(3000)), "body": tampered}))
    with pytest.raises(duckdb.Error, match="pii_reveal: token <PRIVATE_PERSON:v1:") as error:
        con.sql("SELECT pii_reveal(body) FROM t").fetchall()
    assert head in str(error.value) and KEY not in str(error.value)
    # The token head in the message finds the row.
    assert con.sql(f"SELECT id FROM t WHERE body LIKE '%{head}%'").fetchall() == [(TAMPERED_ROW,)]
    pii_duckdb.register(con, reveal_key=KEY, reveal_on_error="null")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RevealWarning)
        out = [r[0] for r in con.sql("SELECT pii_reveal(body) FROM t ORDER BY id").fetchall()]
    assert out[TAMPERED_ROW] is None and out[:TAMPERED_ROW] == texts[:TAMPERED_ROW]


# ------------------------------------------------------------------ pandas
def test_pandas_round_trip_on_10000_rows(data, no_model):
    texts, _, encrypted, _ = data
    index = pd.RangeIndex(100, 100 + N_ROWS)
    series = pd.Series(encrypted, index=index, name="body", dtype=object)
    out = series.pii.reveal(key=KEY)
    assert out.tolist() == texts and out.index.equals(index) and out.name == "body"
    typed = pd.Series(encrypted, dtype="string").pii.reveal(keys={encryption.key_fingerprint(KEY): KEY})
    assert typed.dtype == pd.StringDtype() and typed.isna().sum() == N_ROWS // 50
    assert typed.dropna().tolist() == [t for t in texts if t is not None]


def test_pandas_tampered_row_names_row_and_index_label(data):
    _, _, encrypted, _ = data
    tampered = list(encrypted[:2000])
    tampered[TAMPERED_ROW] = flip_one_character(tampered[TAMPERED_ROW])
    series = pd.Series(tampered, index=[f"t{i}" for i in range(2000)], name="body", dtype=object)
    with pytest.raises(RevealError, match=f"column 'body' row {TAMPERED_ROW}: .*index label 't{TAMPERED_ROW}'"):
        series.pii.reveal(key=KEY)
    with pytest.warns(RevealWarning):
        assert series.pii.reveal(key=KEY, on_error="null").isna().sum() == 1 + 2000 // 50


# --------------------------------------------------------------------- CLI
def run_cli(argv, capsys, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip_on_10000_rows(data, tmp_path, capsys, monkeypatch, no_model):
    texts, _, encrypted, _ = data
    monkeypatch.setenv("PII_CLI_KEY", KEY)
    lines = "".join(("" if t is None else t) + "\n" for t in encrypted)
    expected = "".join(("" if t is None else t) + "\n" for t in texts)
    path = tmp_path / "clean.txt"
    path.write_text(lines, encoding="utf-8")
    assert run_cli(["reveal", "-f", str(path), "--key-env", "PII_CLI_KEY"], capsys) == (0, expected, "")
    assert run_cli(["reveal", "--key-env", "PII_CLI_KEY"], capsys, lines.encode(), monkeypatch) == (0, expected, "")
    code, out, _ = run_cli(["reveal", encrypted[1], "--key-env", "PII_CLI_KEY"], capsys)
    assert (code, out) == (0, texts[1] + "\n")

    table = pa.table({"id": pa.array(range(N_ROWS), pa.int64()), "body": encrypted, "note": ["n"] * N_ROWS})
    pq.write_table(table, tmp_path / "clean.parquet")
    out_path = tmp_path / "restored.parquet"
    code, _, err = run_cli(["reveal", str(tmp_path / "clean.parquet"), "-c", "body", "-o", str(out_path),
                            "--key-env", "PII_CLI_KEY", "--batch-rows", "3000"], capsys)
    assert code == 0, err
    restored = pq.read_table(out_path)
    assert restored.column("body").to_pylist() == texts
    assert restored.column_names == ["id", "body", "note"] and restored.column("id").to_pylist() == list(range(N_ROWS))


def test_cli_reveal_errors(data, tmp_path, capsys, monkeypatch):
    texts, _, encrypted, _ = data
    monkeypatch.setenv("PII_CLI_KEY", KEY)
    monkeypatch.setenv("PII_CLI_WRONG", OTHER_KEY)
    monkeypatch.delenv("PII_CLI_UNSET", raising=False)
    tampered = list(encrypted)
    tampered[TAMPERED_ROW] = flip_one_character(tampered[TAMPERED_ROW])
    pq.write_table(pa.table({"body": tampered}), tmp_path / "t.parquet")
    out_path = tmp_path / "o.parquet"
    argv = ["reveal", str(tmp_path / "t.parquet"), "-c", "body", "-o", str(out_path), "--key-env", "PII_CLI_KEY",
            "--batch-rows", "1000"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and f"column 'body' row {TAMPERED_ROW}:" in err and KEY not in err
    assert not out_path.exists() and not list(tmp_path.glob(".o.parquet.*"))  # nothing half-written
    with pytest.warns(RevealWarning, match=f"first: {TAMPERED_ROW}"):
        code, _, err = run_cli(argv + ["--on-error", "null"], capsys)
    assert code == 0
    out = pq.read_table(out_path).column("body").to_pylist()
    assert out[TAMPERED_ROW] is None and out[TAMPERED_ROW + 1 :] == texts[TAMPERED_ROW + 1 :]

    code, _, err = run_cli(["reveal", encrypted[1], "--key-env", "PII_CLI_WRONG"], capsys)
    assert code == 1 and "does not decrypt" in err and OTHER_KEY not in err
    code, _, err = run_cli(["reveal", encrypted[1], "--key-env", "PII_CLI_UNSET"], capsys)
    assert code == 1 and "PII_CLI_UNSET is not set" in err
    code, out, err = run_cli(["reveal", "--key-env", "PII_CLI_KEY"], capsys,
                             (encrypted[1] + "\n" + tampered[TAMPERED_ROW] + "\n").encode(), monkeypatch)
    assert code == 1 and "stdin line 2" in err
    # Rotation from the command line: KEYID=VAR.
    mixed = (Policy("encrypt", key=OTHER_KEY, key_id="old").replacement("private_person", "Ada") + " / "
             + Policy("encrypt", key=KEY, key_id="new").replacement("private_person", "Bob"))
    code, out, err = run_cli(["reveal", mixed, "--key-env", "old=PII_CLI_WRONG", "--key-env", "new=PII_CLI_KEY"], capsys)
    assert (code, out) == (0, "Ada / Bob\n"), err


def test_cli_reveal_empty_table_and_usage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PII_CLI_KEY", KEY)
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "body": pa.array([], pa.large_string())}),
                   tmp_path / "empty.parquet")
    code, _, err = run_cli(["reveal", str(tmp_path / "empty.parquet"), "-c", "body", "-o", str(tmp_path / "o.jsonl"),
                            "--key-env", "PII_CLI_KEY"], capsys)
    assert code == 0, err
    assert (tmp_path / "o.jsonl").read_text() == ""
    code, _, err = run_cli(["reveal", str(tmp_path / "empty.parquet"), "-c", "body", "-o", str(tmp_path / "o.parquet"),
                            "--key-env", "PII_CLI_KEY"], capsys)
    assert code == 0 and pq.read_schema(tmp_path / "o.parquet").field("body").type == pa.string()
    code, _, err = run_cli(["reveal", str(tmp_path / "empty.parquet"), "-c", "nope", "-o", str(tmp_path / "x.parquet"),
                            "--key-env", "PII_CLI_KEY"], capsys)
    assert code == 1 and "'nope'" in err
    code, _, err = run_cli(["reveal", "text", "-o", str(tmp_path / "x.parquet"), "--key-env", "PII_CLI_KEY"], capsys)
    assert code == 2 and "--column" in err


def test_cli_reveal_as_a_process(data):
    texts, _, encrypted, _ = data
    env = dict(os.environ, PII_PROC_KEY=KEY)
    done = subprocess.run(
        [sys.executable, "-m", "pii_frames.cli", "reveal", "--key-env", "PII_PROC_KEY"],
        input="\n".join(encrypted[1:6]) + "\n", capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n".join(texts[1:6]) + "\n"
    assert "torch" not in done.stderr


# ------------------------------------------------------- through the model
FEW_ROWS = [
    "Hello, my name is John Smith and my email is john.smith@example.com",
    None,
    "Call +1 (415) 555-0100 before 2024-03-01, ask for Maria Garcia",
    "héllo wörld 🎉 — Ms. Zoë Łukasiewicz, 12 Rue de Rivoli, Paris",
    "Hello, my name is John Smith and my email is john.smith@example.com",
    "nothing personal here",
]


def _has_tokens(values) -> bool:
    return any(v is not None and ENCRYPTED_TOKEN_RE.search(v) for v in values)


@needs_default_model
def test_model_end_to_end_in_polars_duckdb_and_pandas():
    policy = Policy("encrypt", key=KEY)
    model = str(DEFAULT_MODEL)
    frame = pl.DataFrame({"body": FEW_ROWS})
    sealed = frame.select(pii_pl.redact("body", model=model, policy=policy))
    assert _has_tokens(sealed["body"]) and "john.smith@example.com" not in str(sealed["body"].to_list())
    assert sealed["body"][0] == sealed["body"][4]  # equal rows, equal tokens
    assert sealed.select(pii_pl.reveal_expr("body", key=KEY))["body"].to_list() == FEW_ROWS

    con = pii_duckdb.register(duckdb.connect(), model=model, policy=policy, reveal_key=KEY)
    con.register("t", pa.table({"id": range(len(FEW_ROWS)), "body": FEW_ROWS}))
    rows = con.sql("SELECT pii_redact(body), pii_reveal(pii_redact(body)) FROM t ORDER BY id").fetchall()
    assert _has_tokens([r[0] for r in rows]) and [r[1] for r in rows] == FEW_ROWS

    series = pd.Series(FEW_ROWS, dtype=object, name="body")
    redacted = series.pii.redact(model=model, policy=policy)
    assert _has_tokens(redacted.tolist()) and redacted.pii.reveal(key=KEY).tolist() == FEW_ROWS


@needs_default_model
def test_model_end_to_end_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PII_CLI_KEY", KEY)
    texts = [t for t in FEW_ROWS if t]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, sealed, err = run_cli(["redact", "--model", str(DEFAULT_MODEL), "--policy", '{"operator": "encrypt"}',
                                 "--key-env", "PII_CLI_KEY", "--color", "never"], capsys,
                                source.read_bytes(), monkeypatch)
    assert code == 0, err
    assert _has_tokens(sealed.splitlines()) and "john.smith@example.com" not in sealed and KEY not in sealed + err
    code, out, err = run_cli(["reveal", "--key-env", "PII_CLI_KEY"], capsys, sealed.encode(), monkeypatch)
    assert (code, out) == (0, "\n".join(texts) + "\n"), err


# ------------------------------------------------------------------ Airflow
def _key_spellings(key: str) -> list[bytes]:
    raw = key.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"="),
            json.dumps(key).encode()]


@needs_default_model
@pytest.mark.parametrize("how", ["key_env", "literal key"])
def test_airflow_job_never_writes_the_key(tmp_path, monkeypatch, caplog, capfd, how):
    from pii_frames.airflow.jobs import SanitizeJob

    rows = [t for t in FEW_ROWS if t] * 2 + [None]
    source = tmp_path / "raw"
    source.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(len(rows)), pa.int64()), "body": rows}), source / "part.parquet")
    if how == "key_env":
        monkeypatch.setenv("PII_JOB_KEY", KEY)
        policy = {"operator": "encrypt", "key_env": "PII_JOB_KEY", "key_id": "job-2025"}
    else:
        policy = {"operator": "encrypt", "key": KEY, "key_id": "job-2025"}
    caplog.set_level(logging.DEBUG)
    job = SanitizeJob(source=str(source), columns=["body"], destination=str(tmp_path / "clean"),
                      model=str(DEFAULT_MODEL), policy=policy, include_spans=True, rows_per_chunk=4)
    summary = job.run(run_id="test-run")
    assert KEY not in repr(job) and KEY not in json.dumps(summary, default=str)

    written = [p for p in tmp_path.rglob("*") if p.is_file() and source not in p.parents]
    assert any(p.suffix == ".parquet" for p in written) and any(p.name.endswith(".json") for p in written)
    for path in written:
        content = path.read_bytes()
        for spelling in _key_spellings(KEY):
            assert spelling not in content, f"{path.relative_to(tmp_path)} holds the key"
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert KEY not in text

    published = pq.read_table(tmp_path / "clean").sort_by("id")
    sealed = published.column("body").to_pylist()
    assert _has_tokens(sealed) and all(":v1:job-2025:" in m.group(0) for v in sealed if v
                                       for m in ENCRYPTED_TOKEN_RE.finditer(v))
    assert encryption.reveal_many(sealed, keys={"job-2025": KEY}) == rows
