"""Decoding parity with the reference on the opf-tiny fixture: ids, spans, placeholders, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pii_frames.decode import LabelSpace, decode_spans
from pii_frames.redaction import build_result
from pii_frames.text import load_tokenizer

from shared_paths import OPF_TINY  # noqa: E402

FIXTURE = OPF_TINY
if not (FIXTURE / "expected.json").is_file():
    pytest.skip("opf-tiny fixture not available", allow_module_level=True)

EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
LOGPROBS = np.load(FIXTURE / "expected_logprobs.npz")
ADDED_TOP_LEVEL_KEYS = {"category", "category_score"}
ADDED_SPAN_KEYS = {"score", "source"}


def without_added_keys(result: dict) -> dict:
    stripped = {key: value for key, value in result.items() if key not in ADDED_TOP_LEVEL_KEYS}
    stripped["detected_spans"] = [
        {key: value for key, value in span.items() if key not in ADDED_SPAN_KEYS} for span in result["detected_spans"]
    ]
    return stripped


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(FIXTURE)


@pytest.mark.parametrize("index", range(len(EXPECTED)), ids=lambda i: f"text{i}")
@pytest.mark.parametrize("mode", ["viterbi", "argmax"])
def test_matches_reference_result(tokenizer, index, mode):
    case = EXPECTED[index]
    text = case["text"]
    ids = tokenizer.encode(text)
    assert ids == case["token_ids"]

    logprobs = LOGPROBS[f"logprobs_{index}"]
    assert logprobs.shape == (len(ids), 33)
    offsets = tokenizer.token_offsets(text, ids)
    spans = decode_spans(logprobs, offsets, LabelSpace.default(), mode=mode)
    result = build_result(offsets.decoded_text, spans, decoded_mismatch=offsets.mismatch, opf_compatible=True).to_dict()

    expected = case[mode]
    got = without_added_keys(result)
    assert list(got) == list(expected)  # same keys, same order
    assert list(got["summary"]) == list(expected["summary"])
    assert got == expected
    # Added keys only, with the types we document.
    assert set(result) - set(expected) == ADDED_TOP_LEVEL_KEYS
    assert result["category"] is None and result["category_score"] is None
    for span in result["detected_spans"]:
        assert list(span)[:5] == ["label", "start", "end", "text", "placeholder"]
        assert isinstance(span["score"], float) and 0.0 < span["score"] <= 1.0


def test_json_round_trip_keeps_non_ascii(tokenizer):
    case = next(c for c in EXPECTED if not c["text"].isascii())
    index = EXPECTED.index(case)
    offsets = tokenizer.token_offsets(case["text"], case["token_ids"])
    spans = decode_spans(LOGPROBS[f"logprobs_{index}"], offsets, LabelSpace.default())
    result = build_result(offsets.decoded_text, spans, opf_compatible=True)
    text = result.to_json()
    assert case["text"] in text
    assert without_added_keys(json.loads(text)) == case["viterbi"]
