"""Built-in recognizers: the generated corpus (recall on valid identifiers, silence on near-misses) and edge cases."""

from __future__ import annotations

import collections
import dataclasses
import doctest
import importlib
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from pii_frames.recognizers import BUILTINS, RecognizerSet
from pii_frames.recognizers.scanner import compile_branches, find_spans

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "recognizers"
CORPUS = CORPUS_DIR / "corpus.jsonl"


def _load_corpus() -> tuple[dict, list[dict]]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0])["meta"], [json.loads(line) for line in lines[1:]]


META, RECORDS = _load_corpus()
CATEGORIES = sorted({r["category"] for r in RECORDS})
DEFAULT = RecognizerSet.default()


def _show(text: str, spans) -> list[tuple[str, str]]:
    return [(s.label, text[s.start:s.end]) for s in spans]


def test_corpus_has_the_required_breadth():
    counts = collections.Counter((r["category"], r["kind"]) for r in RECORDS)
    for category in CATEGORIES:
        assert counts[category, "valid"] == counts[category, "near_miss"] > 0, category
    iban_countries = {r["value"][:2] for r in RECORDS if r["category"] == "iban" and r["kind"] == "valid"}
    assert len(iban_countries) >= 10, iban_countries
    phone_codes = {r["value"].split()[0] for r in RECORDS if r["category"] == "phone" and r["kind"] == "valid" and r["value"].startswith("+") and " " in r["value"]}
    assert len(phone_codes) >= 10, phone_codes
    secrets = [r["value"] for r in RECORDS if r["category"] == "secret" and r["kind"] == "valid"]
    for marker in ("AKIA", "gh[pousr]_", "github_pat_", "glpat-", "xoxb-", "sk_live_", "sk-proj-", "eyJ", "hooks.slack.com",
                   "BEGIN RSA PRIVATE KEY", "BEGIN OPENSSH PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN PRIVATE KEY"):
        assert any(re.search(marker, s) for s in secrets), marker
    assert sum(1 for r in RECORDS if r["category"] == "secret" and "password" in r["text"].lower() and r["kind"] == "valid") >= 4
    order_numbers = [r for r in RECORDS if r["category"] == "phone" and r["kind"] == "near_miss" and "#" in r["text"]]
    assert len(order_numbers) >= 10


@pytest.mark.parametrize("category", CATEGORIES)
def test_recall_on_valid_identifiers(category):
    valid = [r for r in RECORDS if r["category"] == category and r["kind"] == "valid"]
    missed = []
    for r in valid:
        spans = DEFAULT.find(r["text"])
        if not any(s.label == r["label"] and (s.start, s.end) == (r["start"], r["end"]) and s.source == "pattern" for s in spans):
            missed.append((r["text"], _show(r["text"], spans)))
    recall = 1 - len(missed) / len(valid)
    assert recall >= 0.99, f"recall {recall:.3f} on {category}; missed: {missed[:5]}"


@pytest.mark.parametrize("category", CATEGORIES)
def test_no_pattern_span_on_near_misses(category):
    found = [(r["text"], _show(r["text"], DEFAULT.find(r["text"])))
             for r in RECORDS if r["category"] == category and r["kind"] == "near_miss"]
    assert [f for f in found if f[1]] == []


def test_triggers_never_hide_a_match():
    # The cheap per-text triggers must be implied by the regexes: all branches always on gives the same spans.
    compiled = compile_branches(DEFAULT.recognizers)
    everything = dataclasses.replace(compiled, always=(1 << len(compiled.parts)) - 1, triggers=(), patterns={})
    for r in RECORDS:
        assert find_spans(r["text"], compiled, "US") == find_spans(r["text"], everything, "US"), r["text"]


def test_builtins_share_one_alternation():
    compiled = compile_branches(DEFAULT.recognizers)
    assert compiled.separate == ()
    assert len(compiled.branches) == len(BUILTINS)
    assert len(compiled.pattern.groupindex) >= len(BUILTINS)


@pytest.mark.skipif(
    any(version(name) != META[name] for name in ("faker", "phonenumbers", "python-stdnum", "cryptography")),
    reason="corpus made with other library versions; regenerating it would differ",
)
def test_corpus_generator_is_deterministic(tmp_path):
    out = tmp_path / "corpus.jsonl"
    subprocess.run([sys.executable, str(CORPUS_DIR / "make_corpus.py"), str(out)], check=True, capture_output=True, timeout=300)
    assert out.read_text(encoding="utf-8") == CORPUS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Visa 4111 1111 1111 1111 and Amex 3782-822463-10005.",
         [("account_number", "4111 1111 1111 1111"), ("account_number", "3782-822463-10005")]),
        ("17 digits 41111111111111113 are no Visa", []),
        ("IBAN BE68 5390 0754 7034 PAID on time", [("account_number", "BE68 5390 0754 7034")]),
        ("SSN 536-90-4399; 536 90 4399", [("account_number", "536-90-4399"), ("account_number", "536 90 4399")]),
        ("ref 536904399 sent", []),
        ("SSN: 536904399", [("account_number", "536904399")]),
        ("NINO AB123456C, not QQ123456C", [("account_number", "AB123456C")]),
        ("Steuer-ID 36 574 261 809", [("account_number", "36 574 261 809")]),
        ("Kundennummer 36574261809", []),
        ("NIR 2 95 10 99 126 111 93.", [("account_number", "2 95 10 99 126 111 93")]),
        ("Call (415) 555-2671 x204 today", [("private_phone", "(415) 555-2671 x204")]),
        ("Your order #4155552671 has shipped", []),
        ("Order 12 shipped; call 415-555-2671", [("private_phone", "415-555-2671")]),
        ("2024-05-01 12:00:03 INFO started, 05/12/2023 closed", []),
        ("mail josé@exämple.de, see https://example.com/a_(b)).", [("private_email", "josé@exämple.de"), ("private_url", "https://example.com/a_(b)")]),
        ("from 192.168.0.7 and fe80::1%eth0; version 1.2.3.4; at 12:30:45", [("private_url", "192.168.0.7"), ("private_url", "fe80::1%eth0")]),
        ('{"user": "svc", "password": "s3cr3t-Pa55"} token=${TOKEN}', [("secret", "s3cr3t-Pa55")]),
        ("AWS key AKIAIOSFODNN7EXAMPL0 is not base32", []),
    ],
)
def test_builtin_edge_cases(text, expected):
    assert _show(text, DEFAULT.find(text)) == expected


def test_region_reads_national_numbers():
    text = "Rufen Sie 030 901820 an"
    assert _show(text, RecognizerSet.default(region="DE").find(text)) == [("private_phone", "030 901820")]
    assert RecognizerSet.default(region="US").find(text) == []
    assert _show("+49 30 901820", RecognizerSet.default(region="US").find("+49 30 901820")) == [("private_phone", "+49 30 901820")]


def test_find_many_keeps_nulls_and_find_checks_type():
    assert DEFAULT.find_many([None, "", "no pii here"]) == [None, [], []]
    with pytest.raises(TypeError, match="takes a str"):
        DEFAULT.find(b"bytes")


def test_pem_block_is_one_span():
    corpus_pems = [r for r in RECORDS if r["kind"] == "valid" and "PRIVATE KEY-----" in r["value"]]
    r = corpus_pems[0]
    assert _show(r["text"], DEFAULT.find(r["text"])) == [("secret", r["value"])]


@pytest.mark.parametrize("module", ["checksums", "formats", "custom", "builtin", "merge", "sets", "scanner", "__init__"])
def test_docstring_examples(module):
    name = "pii_frames.recognizers" + ("" if module == "__init__" else "." + module)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
