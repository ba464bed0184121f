"""Fine-tuning: opf demos on a tiny base, custom label spaces, head remapping, doc head, output folder rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import pii_frames
from pii_frames.cli import training as commands
from pii_frames.engine.loading import clear_model_cache
from pii_frames.model.checkpoint import load_model, save_opf_checkpoint
from pii_frames.synthetic import generate
from pii_frames.training.finetune import finetune
from pii_frames.training.models import init_compact_model, remap_head

from shared_paths import OPF_EXAMPLES  # noqa: E402

DEMOS = OPF_EXAMPLES
SECRET_DEMO = DEMOS / "finetuning_secret_demo"
CUSTOM_DEMO = DEMOS / "finetuning_custom_label_demo"
needs_demos = pytest.mark.skipif(not DEMOS.is_dir(), reason="opf example data not available")
TINY = dict(hidden_size=32, num_hidden_layers=1, num_experts=4, experts_per_token=2, head_dim=8,
            num_attention_heads=4, num_key_value_heads=2, context=8, vocab_size=4096)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny opf-layout checkpoint on disk (a 4096-rank vocabulary keeps it small)."""
    folder = tmp_path_factory.mktemp("tiny_base")
    save_opf_checkpoint(init_compact_model(**TINY, seed=3), folder, param_dtype="bfloat16")
    return folder


@needs_demos
def test_secret_demo_gives_a_loadable_checkpoint(tiny_base, tmp_path):
    out = tmp_path / "secret"
    result = finetune(SECRET_DEMO / "train.jsonl", out, base=tiny_base,
                      validation_path=SECRET_DEMO / "validation.jsonl", epochs=8, batch_size=1, lr=3e-3,
                      n_ctx=128, progress=False, output_param_dtype="float32")
    assert sorted(p.name for p in out.iterdir()) == ["USAGE.txt", "config.json", "finetune_summary.json",
                                                     "model.safetensors", "viterbi_calibration.json"]
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["head_remap"] == {"changed": False, "num_labels": 33}
    assert summary["dataset"]["train_examples"] == 1 and summary["dataset"]["validation_examples"] == 1
    assert len(summary["epochs"]) == 8 and summary["best_epoch"] == result.best_epoch
    losses = [e["train_loss"] for e in summary["epochs"]]
    assert losses[-1] < losses[0]  # it learns the one example
    best = min(summary["epochs"], key=lambda e: e["validation_loss"])
    assert best["epoch"] == result.best_epoch
    calibration = json.loads((out / "viterbi_calibration.json").read_text())
    assert set(calibration["operating_points"]["default"]["biases"].values()) == {0.0}
    config = json.loads((out / "config.json").read_text())
    assert config["category_version"] == "v2" and config["num_labels"] == 33

    model = load_model(out)
    assert model.config.num_labels == 33
    # The restored best epoch is what was saved: its validation loss is reproduced from the file.
    clear_model_cache()
    report_loss = _validation_loss(out, SECRET_DEMO / "validation.jsonl")
    assert report_loss == pytest.approx(best["validation_loss"], rel=1e-4)


def _validation_loss(checkpoint: Path, data: Path) -> float:
    from pii_frames.evaluation.evaluate import evaluate

    return evaluate(pii_frames.load(str(checkpoint), device="cpu"), data, decode_mode="argmax", progress=False).loss


@needs_demos
def test_custom_label_demo_rebuilds_the_head(tiny_base, tmp_path):
    out = tmp_path / "custom"
    finetune(CUSTOM_DEMO / "train.jsonl", out, base=tiny_base, validation_path=CUSTOM_DEMO / "validation.jsonl",
             label_space=CUSTOM_DEMO / "label_space.json", epochs=3, batch_size=1, lr=1e-3, n_ctx=128,
             progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["span_class_names"] == ["O", "custom_secret"] and config["category_version"] == "custom_v1"
    assert config["param_dtype"] == "bfloat16"  # inherited from the base
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["head_remap"]["copied_from_secret"] == 4 and summary["head_remap"]["copied_exact"] == 1
    model = load_model(out)
    assert model.config.label_names == ("O", "B-custom_secret", "I-custom_secret", "E-custom_secret",
                                        "S-custom_secret")
    clear_model_cache()
    detector = pii_frames.load(str(out), device="cpu")
    assert detector.labels == list(model.config.label_names)
    result = detector.redact("Record test_000 includes marker CS-TST-000-BDX5YNAL and must be archived.")
    assert all(span.label == "custom_secret" for span in result.detected_spans)


def test_remap_head_rules():
    model = init_compact_model(**TINY)
    old = model.unembedding.weight.detach().clone()
    names = list(model.config.label_names)
    new_names = ["O", "B-private_email", "I-private_email", "E-private_email", "S-private_email",
                 "B-token", "I-token", "E-token", "S-token"]
    stats = remap_head(model, new_names, seed=1)
    assert (stats["copied_exact"], stats["copied_from_secret"], stats["random_init"]) == (5, 4, 0)
    weight = model.unembedding.weight.detach()
    assert torch.equal(weight[1], old[names.index("B-private_email")])
    assert torch.equal(weight[8], old[names.index("S-secret")])
    assert model.config.label_names == tuple(new_names) and model.config.num_labels == 9

    # Without a secret class the first class with the tag is used; plain names get random rows.
    stats = remap_head(model, ["O", "B-x", "I-x", "E-x", "S-x", "weird"], seed=1)
    assert stats["copied_from_same_tag"] == 4 and stats["random_init"] == 1
    assert torch.equal(model.unembedding.weight[1].detach(), weight[1])
    assert remap_head(model, model.config.label_names) == {"changed": False, "num_labels": 6}


def test_document_head_is_trained_on_record_kinds(tmp_path):
    kinds = ["chat", "log"]
    records = generate(24, seed=1, kinds=kinds)
    out = tmp_path / "doc"
    result = finetune(records, out, base=init_compact_model(**TINY), doc_classes=kinds, epochs=2, batch_size=8,
                      lr=3e-3, n_ctx=64, progress=False, output_param_dtype="float16")
    assert "validation_doc_accuracy" in result.epochs[-1]
    assert result.summary["dataset"]["validation_examples"] == 2  # 10% split, no validation file
    model = load_model(out)
    assert model.config.doc_class_names == tuple(kinds)
    clear_model_cache()
    detector = pii_frames.load(str(out), device="cpu")
    assert detector.redact("sms sent to +1 415 555 0100").category in kinds


def test_refuses_a_non_empty_output_dir_without_overwrite(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "old.safetensors").write_bytes(b"stale")
    records = generate(4, seed=0)
    with pytest.raises(FileExistsError, match="--overwrite-output"):
        finetune(records, out, base=init_compact_model(**TINY), max_steps=1, progress=False)
    finetune(records, out, base=init_compact_model(**TINY), max_steps=1, overwrite=True, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "old.safetensors").exists()  # stale shards would be loaded with the new weights
    assert json.loads((out / "finetune_summary.json").read_text())["steps"] == 1


def test_bad_training_data_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "abc", "spans": {"nickname: abc": [[0, 3]]}}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: gold label 'nickname'"):
        finetune(bad, tmp_path / "out", base=init_compact_model(**TINY), progress=False)


def test_cli_commands_synth_train_eval(tmp_path, tiny_base, capsys):
    def run(name: str, argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog=f"pii-frames {name}")
        getattr(commands, f"add_{name}_arguments")(parser)
        return getattr(commands, f"run_{name}")(parser.parse_args(argv))

    data = tmp_path / "synth.jsonl"
    assert run("synth", ["--n", "12", "--out", str(data), "--seed", "2", "--kinds", "email,chat"]) == 0
    assert len(data.read_text().splitlines()) == 12
    out = tmp_path / "model"
    assert run("train", [str(data), "--output-dir", str(out), "--base", str(tiny_base), "--max-steps", "2",
                         "--batch-size", "4", "--learning-rate", "1e-3", "--n-ctx", "64", "--device", "cpu",
                         "--no-progress"]) == 0
    assert "checkpoint written to" in capsys.readouterr().out
    clear_model_cache()
    report_html = tmp_path / "report.html"
    assert run("eval", [str(data), "--model", str(out), "--device", "cpu", "--json", "--report", str(report_html),
                        "--predictions-out", str(tmp_path / "pred.jsonl"), "--no-progress"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["examples"] == 12 and payload["config"]["dataset"] == str(data)
    assert report_html.read_text().startswith("<!doctype html>")
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 12
    with pytest.raises(ValueError, match="html or .png"):
        run("eval", [str(data), "--model", str(out), "--report", str(tmp_path / "r.txt")])
