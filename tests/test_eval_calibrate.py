"""calibrate(): each candidate scores as evaluate() would at those biases, the choice is stored where load() reads it,
and `pii-frames calibrate` writes only where it is allowed to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import pii_frames
from pii_frames.decode.viterbi import BIAS_KEYS
from pii_frames.engine.loading import EMBEDDED_MODEL_DIR, clear_model_cache
from pii_frames.evaluation.calibrate import bias_grid, calibrate
from pii_frames.evaluation.evaluate import evaluate
from pii_frames.synthetic import generate

pytestmark = pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model.safetensors").is_file(),
                                reason="the embedded default model has not been trained yet")
GRID = bias_grid(inside_to_continue=[0.0, 3.0], background_stay=[0.0, -1.0])


@pytest.fixture(scope="module")
def detector():
    return pii_frames.load("default", device="cpu")


@pytest.fixture(scope="module")
def documents():
    return generate(60, seed=4, templates="heldout")


@pytest.fixture(scope="module")
def result(detector, documents):
    return calibrate(detector, documents, candidates=GRID, progress=False)


def _counts(counts) -> tuple:
    return counts.predicted, counts.correct, counts.gold, counts.found


def test_every_candidate_scores_as_evaluate_does_at_its_biases(detector, documents, result):
    assert [candidate.biases for candidate in result.candidates] == GRID
    for candidate in result.candidates:
        report = evaluate(detector, documents, biases=candidate.biases, progress=False)
        assert _counts(candidate.counts) == _counts(report.span), candidate.describe()
    # the grid moves the counts at all (otherwise the comparison above would prove little)
    assert len({_counts(candidate.counts) for candidate in result.candidates}) > 1


def test_one_label_is_scored_like_evaluate_scores_that_label(detector, documents):
    person = calibrate(detector, documents, label="private_person", candidates=GRID[:2], progress=False)
    for candidate in person.candidates:
        report = evaluate(detector, documents, biases=candidate.biases, progress=False)
        assert _counts(candidate.counts) == _counts(report.per_label["private_person"])


def test_the_choice_is_the_highest_recall_within_one_standard_error_of_the_best_f1(result):
    assert result.best.f1 == max(candidate.f1 for candidate in result.candidates)
    assert result.f1_standard_error > 0
    eligible = [c for c in result.candidates if c.f1 >= result.best.f1 - result.f1_standard_error]
    assert result.chosen in eligible
    assert result.chosen.recall == max(c.recall for c in eligible)
    table = result.table()
    assert "**chosen**" in table and "best F1" in table and len(table.splitlines()) == 2 + len(GRID)


def test_without_resampling_the_best_f1_is_chosen(detector, documents):
    exact = calibrate(detector, documents, candidates=GRID, bootstrap=0, progress=False)
    assert exact.f1_standard_error == 0.0
    assert exact.chosen.f1 == exact.best.f1


def test_the_stored_choice_is_what_load_decodes_with(tmp_path, result, documents):
    model_dir = tmp_path / "model"
    shutil.copytree(EMBEDDED_MODEL_DIR, model_dir)
    result.write(model_dir)
    clear_model_cache()
    reloaded = pii_frames.load(str(model_dir), device="cpu")
    assert reloaded.calibration == result.biases
    assert set(reloaded.calibration) == set(BIAS_KEYS)
    report = evaluate(reloaded, documents, progress=False)
    assert _counts(report.span) == _counts(result.chosen.counts)


def test_bad_arguments_are_named(detector, documents):
    with pytest.raises(ValueError, match="unknown Viterbi bias 'inside_to_stay'"):
        bias_grid(inside_to_stay=[1.0])
    with pytest.raises(ValueError, match="label 'private_pet' is not in the model's labels"):
        calibrate(detector, documents, label="private_pet", progress=False)
    with pytest.raises(ValueError, match="unknown Viterbi bias name"):
        calibrate(detector, documents, candidates=[{"inside": 1.0}], progress=False)
    with pytest.raises(ValueError, match="candidates is empty"):
        calibrate(detector, documents, candidates=[], progress=False)


def _cli(*args: str):
    env = {**os.environ, "PII_FRAMES_PROGRESS": "0"}
    env.pop("PII_FRAMES_MODEL", None)
    return subprocess.run([sys.executable, "-m", "pii_frames.cli", "calibrate", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_the_choice_into_a_checkpoint_copy_and_never_into_the_installed_model(tmp_path, documents):
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(document) + "\n" for document in documents[:30]), encoding="utf-8")
    refused = _cli(str(data), "--write")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "--write would change the model installed with pii_frames" in refused.stderr

    model_dir = tmp_path / "model"
    shutil.copytree(EMBEDDED_MODEL_DIR, model_dir)
    done = _cli(str(data), "--model", str(model_dir), "--inside-to-continue", "0,2", "--background-stay", "0",
                "--json", "--write")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert len(printed["candidates"]) == 2
    stored = json.loads((model_dir / "viterbi_calibration.json").read_text(encoding="utf-8"))
    assert stored["operating_points"]["default"]["biases"] == printed["chosen"]["biases"]

    bad = _cli(str(data), "--model", str(model_dir), "--inside-to-continue", "two")
    assert bad.returncode == 2 and "expected comma-separated numbers" in bad.stderr
