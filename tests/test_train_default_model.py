"""The embedded default model: files, size, config, and that it finds obvious personal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

import pii_frames
from pii_frames.model.config import read_config
from pii_frames.synthetic import KINDS

DEFAULT_DIR = Path(pii_frames.__file__).resolve().parent / "assets" / "default_model"
pytestmark = pytest.mark.skipif(not (DEFAULT_DIR / "model.safetensors").is_file(),
                                reason="the embedded default model has not been trained yet")


def test_files_size_and_storage_dtype():
    for name in ("config.json", "model.safetensors", "viterbi_calibration.json", "MODEL_CARD.md"):
        assert (DEFAULT_DIR / name).is_file(), name
    # the wheel's budget for the embedded model (issue 15): 60 MB for everything in the folder
    assert sum(path.stat().st_size for path in DEFAULT_DIR.iterdir() if path.is_file()) <= 60_000_000
    with safe_open(str(DEFAULT_DIR / "model.safetensors"), framework="pt") as weights:
        assert str(weights.get_slice("embedding.weight").get_dtype()) == "F16"
    # the stored operating point is the one the recipe chose and recorded (scripts/train_default_model.py)
    calibration = json.loads((DEFAULT_DIR / "viterbi_calibration.json").read_text())
    figures = json.loads((DEFAULT_DIR / "training_figures.json").read_text())
    assert calibration["operating_points"]["default"]["biases"] == figures["calibration"]["chosen"]["biases"]


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
    from pii_frames.evaluation.evaluate import evaluate

    from shared_paths import OPF_SAMPLE

    if not OPF_SAMPLE.is_file():
        pytest.skip(f"{OPF_SAMPLE} not found")
    report = evaluate(detector, OPF_SAMPLE, progress=False)
    wanted = ("private_person", "private_email", "private_phone", "private_date", "private_url", "secret")
    for label in wanted:
        counts = report.per_label[label]
        assert counts.gold > 0 and counts.recall == 1.0, (label, counts)
    assert report.span.precision == 1.0


def test_generalises_to_held_out_templates(detector):
    # Templates never used in training (the model card's 2,000-document figure is 0.943).
    from pii_frames.evaluation.evaluate import evaluate
    from pii_frames.synthetic import generate

    report = evaluate(detector, generate(400, seed=12, templates="heldout"), progress=False)
    assert report.span.f1 >= 0.85, report.span


@pytest.mark.skipif(not (DEFAULT_DIR / "training_figures.json").is_file(), reason="no recorded training figures")
def test_model_card_is_the_one_the_recorded_figures_give(tmp_path):
    # The card is written by scripts/train_default_model.py from training_figures.json; re-rendering it must give
    # the shipped text (so no figure in it was edited by hand), keeping its measured "What each change bought".
    import shutil

    module = _training_script()
    for name in ("training_figures.json", "MODEL_CARD.md"):
        shutil.copyfile(DEFAULT_DIR / name, tmp_path / name)
    assert module.main(["--card-only", "--out", str(tmp_path)]) == 0
    shipped = (DEFAULT_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8") == shipped
    figures = json.loads((DEFAULT_DIR / "training_figures.json").read_text(encoding="utf-8"))
    assert f"{figures['real_ner_validation']['per_label']['private_person']['f1']:.3f}" in shipped


def test_comparison_table_shows_what_redaction_hides_on_held_out_templates():
    # Typed F1 counts an account number tagged as a phone as a miss; the any-label recall row shows whether the
    # value was hidden all the same, and it must be read from the untyped report, not the typed one.
    from pii_frames.evaluation.evaluate import evaluate
    from pii_frames.synthetic import generate

    module = _training_script()
    detector = pii_frames.load("default", device="cpu")
    documents = generate(30, seed=5, templates="heldout")
    heldout, heldout_untyped = module.score_heldout(detector, documents, progress=False)
    assert heldout_untyped.span.recall == evaluate(detector, documents, progress=False, mode="untyped").span.recall
    figures = {"parameters": 1, "size_bytes": 1, "heldout": heldout.to_dict(),
               "heldout_untyped": heldout_untyped.to_dict()}
    row = next(line for line in module._comparison_table(figures, {"parameters": 1, "size_bytes": 1}).splitlines()
               if "any label" in line)
    recall = f"{figures['heldout_untyped']['summary']['span_recall']:.3f}"
    assert row.endswith(f"| - | {recall} |")


def _training_script():
    """scripts/train_default_model.py as a module (it is a script, not part of the package)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_default_model.py"
    spec = importlib.util.spec_from_file_location("train_default_model", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_card_says_how_the_real_windows_were_used():
    note = _training_script().real_passes_note
    assert note({"real_repeats": 3}) == "each seen 3 times as written"
    assert "2 more times with every person renamed" in note({"real_repeats": 3, "renamed_repeats": 2})
    embedded = note({"real_repeats": 10, "embedded_share": 0.5})
    assert embedded.startswith("each seen 10 times; in every pass 50% of them get one or two structured-PII clauses")
    assert "embed_structured" in embedded and not embedded.endswith(";")


def test_a_polish_stage_on_a_saved_stage_two_model_ends_calibrated(tmp_path):
    # The recipe's last steps in miniature: stage 3 goes on from a saved stage-2 checkpoint (--base-stage 2, whose
    # figures the card reports), then the Viterbi operating point is chosen on the validation split and stored.
    import shutil

    from pii_frames.synthetic import generate, write_jsonl

    module = _training_script()
    base = tmp_path / "stage2"
    shutil.copytree(DEFAULT_DIR, base)
    stage2 = {"steps": 6403, "train_tokens": 24_000_000, "train_seconds": 5747.0, "synthetic_examples": 148_590,
              "final": {"validation_loss": 0.0157, "validation_token_accuracy": 0.9947}, "stage1_base": "/runs/stage1"}
    (base / "training_figures.json").write_text(json.dumps(stage2), encoding="utf-8")
    real = tmp_path / "real-ner"
    real.mkdir()
    write_jsonl(real / "train.jsonl", generate(6, seed=21))
    write_jsonl(real / "validation.jsonl", generate(12, seed=22, templates="heldout"))
    out = tmp_path / "out"
    status = module.main(["--base", str(base), "--base-stage", "2", "--polish-steps", "4", "--polish-real-repeats", "1",
                          "--polish-embedded-share", "0", "--batch-size", "2", "--real-ner", str(real),
                          "--eval-examples", "10", "--validation-examples", "6", "--opf-sample", str(tmp_path / "none"),
                          "--out", str(out), "--threads", "1"])
    assert status == 0
    figures = json.loads((out / "training_figures.json").read_text(encoding="utf-8"))
    assert figures["stage2_base"] == str(base) and figures["stage1_base"] == "/runs/stage1"
    assert figures["steps"] == 6403 and figures["threads"] == 1
    assert figures["polish"]["steps"] == 4 and figures["polish"]["synthetic_examples"] == 4 * 2 - 6
    stored = json.loads((out / "viterbi_calibration.json").read_text(encoding="utf-8"))
    assert stored["operating_points"]["default"]["biases"] == figures["calibration"]["chosen"]["biases"]
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "3. **Stage 3** (polish)" in card and "4. **Calibration**" in card and "**stored**" in card
    assert "(6403 with the windows that long real-ner texts split into); 24,000,000 training tokens; 95.8" in card
    assert f"**Synthetic documents** ({148_590 + 2:,})" in card
    assert "--polish-steps 4" in card and "--calibrate" in card and "--calibrate True" not in card
