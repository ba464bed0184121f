"""The embedded default model: files, size, config, and that it finds obvious personal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

import pii_frames
from pii_frames.model.config import read_config
from pii_frames.train.synthetic import KINDS

DEFAULT_DIR = Path(pii_frames.__file__).resolve().parent / "assets" / "default_model"
pytestmark = pytest.mark.skipif(not (DEFAULT_DIR / "model.safetensors").is_file(),
                                reason="the embedded default model has not been trained yet")


def test_files_size_and_storage_dtype():
    for name in ("config.json", "model.safetensors", "viterbi_calibration.json", "MODEL_CARD.md"):
        assert (DEFAULT_DIR / name).is_file(), name
    assert (DEFAULT_DIR / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    with safe_open(str(DEFAULT_DIR / "model.safetensors"), framework="pt") as weights:
        assert str(weights.get_slice("embedding.weight").get_dtype()) == "F16"
    calibration = json.loads((DEFAULT_DIR / "viterbi_calibration.json").read_text())
    assert set(calibration["operating_points"]["default"]["biases"].values()) == {0.0}


def test_config_is_the_compact_family_member_with_a_document_head():
    config = read_config(DEFAULT_DIR)
    assert config.layout == "opf" and config.num_labels == 33
    assert config.vocab_size <= 32768
    assert config.doc_class_names == KINDS
    assert config.param_dtype == "float16"


@pytest.fixture(scope="module")
def detector():
    return pii_frames.load("default", device="cpu")


def test_finds_obvious_personal_data(detector):
    text = "Contact Edgar Alanpoe at e.alanpoe@openai.com or +1 415 555 0102 about the invoice."
    result = detector.redact(text)
    found = {(span.label, span.text) for span in result.detected_spans}
    assert ("private_email", "e.alanpoe@openai.com") in found
    assert ("private_phone", "+1 415 555 0102") in found
    assert result.category in KINDS


def test_leaves_plain_text_alone(detector):
    result = detector.redact("The library opens at nine and closes at five on weekdays.")
    assert result.detected_spans == () or list(result.detected_spans) == []


def test_finds_the_people_emails_phones_dates_urls_and_secrets_of_the_opf_sample(detector):
    from shared_paths import OPF_SAMPLE
    from pii_frames.train.evaluate import evaluate

    if not OPF_SAMPLE.is_file():
        pytest.skip(f"{OPF_SAMPLE} not found")
    report = evaluate(detector, OPF_SAMPLE, progress=False)
    wanted = ("private_person", "private_email", "private_phone", "private_date", "private_url", "secret")
    for label in wanted:
        counts = report.per_label[label]
        assert counts.gold > 0 and counts.recall == 1.0, (label, counts)
    assert report.span.precision == 1.0


def test_generalises_to_held_out_templates(detector):
    # Templates never used in training (the model card's 2,000-document figure is 0.914).
    from pii_frames.train.evaluate import evaluate
    from pii_frames.train.synthetic import generate

    report = evaluate(detector, generate(400, seed=12, templates="heldout"), progress=False)
    assert report.span.f1 >= 0.85, report.span
