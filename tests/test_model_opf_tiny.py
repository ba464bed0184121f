"""The opf-tiny fixture: our engine reproduces the opf reference's token ids and log-probs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pii_frames.model import load_model, read_config, run_sequences
from pii_frames.text import load_tokenizer

from shared_paths import OPF_TINY  # noqa: E402

FIXTURE = OPF_TINY
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="opf-tiny fixture not available")


@pytest.fixture(scope="module")
def fixture_data():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    logprobs = np.load(FIXTURE / "expected_logprobs.npz")
    return expected, [logprobs[f"logprobs_{i}"] for i in range(len(expected))]


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURE)


def test_config_is_read_from_opf_layout():
    config = read_config(FIXTURE)
    assert config.layout == "opf"
    assert (config.left_context, config.right_context) == (8, 8)
    assert config.num_labels == 33 and config.label_names[1] == "B-account_number"
    assert config.pad_token_id == 199999 and config.encoding == "o200k_base"


def test_token_ids_match_reference(fixture_data):
    expected, _ = fixture_data
    tokenizer = load_tokenizer()
    for record in expected:
        assert tokenizer.encode(record["text"]) == record["token_ids"], record["text"]


def test_logprobs_match_reference_batched_and_one_by_one(model, fixture_data):
    expected, reference = fixture_data
    sequences = [np.array(record["token_ids"]) for record in expected]
    # One packed run (several texts per padded batch) and one text per forward.
    batched = run_sequences(model, sequences, n_ctx=4096, token_budget=512)
    for index, sequence in enumerate(sequences):
        single = run_sequences(model, [sequence], n_ctx=4096, token_budget=1)[0]
        for output in (batched[index], single):
            assert output.logprobs.shape == reference[index].shape
            diff = np.abs(output.logprobs - reference[index]).max()
            assert diff <= 1e-4, f"text {index}: max |diff| {diff:.3g}"
            assert np.array_equal(output.logprobs.argmax(-1), reference[index].argmax(-1))


def test_forward_on_first_text(model, fixture_data):
    expected, reference = fixture_data
    ids = torch.tensor([expected[0]["token_ids"]])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(ids).logits, dim=-1)[0].numpy()
    assert np.abs(logprobs - reference[0]).max() <= 1e-4
