"""Checkpoint errors, save/load round trips, reduced-precision loading and the batched runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pii_frames.model import CheckpointError, load_model, read_config, run_sequences, save_opf_checkpoint
from pii_frames.model.runner import plan_batches

from checkpoint_factory import convert_hf_to_opf, make_hf_checkpoint

VOCAB = 1000


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    hf_dir = make_hf_checkpoint(root / "hf", seed=11, vocab_size=VOCAB, doc_classes=["a", "b", "c", "d"])
    return hf_dir, convert_hf_to_opf(hf_dir, root / "opf")


@pytest.fixture(scope="module")
def model(dirs):
    return load_model(dirs[1])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(directory: Path, **changes) -> None:
    raw = json.loads((directory / "config.json").read_text())
    raw.update(changes)
    (directory / "config.json").write_text(json.dumps(raw))


# ---------------------------------------------------------------- errors


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_missing_config(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json not found"):
        load_model(ckpt)


def test_invalid_config_json(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(ckpt)


def test_missing_safetensors(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors"):
        load_model(ckpt)


def test_corrupt_safetensors(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(ckpt)


@pytest.mark.parametrize("model_type", ["gpt_oss", None])
def test_wrong_model_type(dirs, tmp_path, model_type):
    ckpt = _copy(dirs[1], tmp_path / "c")
    _edit_config(ckpt, model_type=model_type)
    with pytest.raises(CheckpointError, match="model_type"):
        load_model(ckpt)


def test_shape_mismatch_names_tensor(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    _edit_config(ckpt, num_experts=16)
    with pytest.raises(CheckpointError, match=r"shape mismatch for block\.0\.mlp\.gate\.weight.*model\.safetensors"):
        load_model(ckpt)


def test_duplicate_tensor_across_files(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    tensors = load_file(ckpt / "model.safetensors")
    save_file({"norm.scale": tensors["norm.scale"]}, ckpt / "extra.safetensors")
    with pytest.raises(CheckpointError, match=r"'norm\.scale' appears in both extra\.safetensors and model\.safetensors"):
        load_model(ckpt)


def test_weights_split_across_files_load(dirs, tmp_path, model):
    ckpt = _copy(dirs[1], tmp_path / "c")
    tensors = load_file(ckpt / "model.safetensors")
    first = {k: v for k, v in tensors.items() if k.startswith("block.0")}
    save_file(first, ckpt / "model-00001.safetensors")
    save_file({k: v for k, v in tensors.items() if k not in first}, ckpt / "model.safetensors")
    split = load_model(ckpt)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        assert torch.equal(split(ids).logits, model(ids).logits)


def test_missing_tensor(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["block.1.mlp.swiglu.weight"]
    save_file(tensors, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing 1 tensor.*block\.1\.mlp\.swiglu\.weight"):
        load_model(ckpt)


def test_unexpected_tensor(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    tensors = load_file(ckpt / "model.safetensors")
    tensors["lm_head.weight"] = torch.zeros(2, 2)
    save_file(tensors, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"does not use.*lm_head\.weight"):
        load_model(ckpt)


def test_hf_checkpoint_loaded_with_opf_model_type(dirs, tmp_path):
    ckpt = _copy(dirs[0], tmp_path / "c")
    raw = json.loads((ckpt / "config.json").read_text())
    raw.update(model_type="privacy_filter", num_experts=8, experts_per_token=4, bidirectional_left_context=8,
               bidirectional_right_context=8, sliding_window=17)
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="does not use"):
        load_model(ckpt)


def test_inconsistent_sliding_window(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    _edit_config(ckpt, sliding_window=9)
    with pytest.raises(CheckpointError, match="sliding_window=9 must equal"):
        read_config(ckpt)


def test_label_names_disagree_with_num_labels(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    _edit_config(ckpt, span_class_names=["O", "secret"])
    with pytest.raises(CheckpointError, match="num_labels=33"):
        read_config(ckpt)


def test_unknown_label_count_without_names(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    _edit_config(ckpt, num_labels=13)
    with pytest.raises(CheckpointError, match="add span_class_names"):
        read_config(ckpt)


def test_doc_head_without_class_names(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    raw = json.loads((ckpt / "config.json").read_text())
    del raw["doc_class_names"]
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="no class names"):
        load_model(ckpt)


def test_doc_class_names_without_head(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["doc_head.weight"], tensors["doc_head.bias"]
    save_file(tensors, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match="no document head"):
        load_model(ckpt)


def test_binga_doc_head_wrong_shape(tmp_path):
    ckpt = make_hf_checkpoint(tmp_path / "b", seed=1, vocab_size=VOCAB, layers=1, doc_classes=["x", "y"],
                              doc_head_form="binga")
    torch.save({"weight": torch.zeros(2, 10), "bias": torch.zeros(2)}, ckpt / "doc_head.pt")
    with pytest.raises(CheckpointError, match=r"doc_head\.pt.*expected \(2, 64\)"):
        load_model(ckpt)


def test_bad_weight_dtype(dirs):
    with pytest.raises(ValueError, match="dtype 'int8' is not supported; use one of bf16, bfloat16"):
        load_model(dirs[1], weight_dtype="int8")


def test_both_doc_head_forms_is_an_error(dirs, tmp_path):
    ckpt = _copy(dirs[1], tmp_path / "c")
    torch.save({"weight": torch.zeros(4, 64), "bias": torch.zeros(4)}, ckpt / "doc_head.pt")
    with pytest.raises(CheckpointError, match="keep only one document head"):
        load_model(ckpt)


def test_empty_input_gives_empty_logits(model):
    out = model(torch.zeros(2, 0, dtype=torch.long))
    assert out.logits.shape == (2, 0, 33) and out.doc_logits.shape == (2, 4)


def test_out_of_vocabulary_id(model):
    with pytest.raises(ValueError, match="outside the model vocabulary"):
        model(torch.tensor([[5, VOCAB]]))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_save_opf_checkpoint_round_trip(model, tmp_path, param_dtype):
    out = save_opf_checkpoint(model, tmp_path / "saved", param_dtype=param_dtype, extra_config={"note": "x"})
    raw = json.loads((out / "config.json").read_text())
    assert raw["model_type"] == "privacy_filter" and raw["param_dtype"] == param_dtype
    assert raw["doc_class_names"] == ["a", "b", "c", "d"] and raw["note"] == "x"
    stored = load_file(out / "model.safetensors")
    assert stored["block.0.attn.sinks"].dtype == torch.float32
    reloaded = load_model(out)
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]])
    with torch.inference_mode():
        a, b = model(ids), reloaded(ids)
    if param_dtype == "float32":
        assert torch.equal(a.logits, b.logits) and torch.equal(a.doc_logits, b.doc_logits)
    else:
        assert (a.logits.argmax(-1) == b.logits.argmax(-1)).float().mean() >= 0.9


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_reduced_precision_modes_agree_with_fp32(dirs, model, mode, tmp_path):
    reduced = load_model(dirs[1], weight_dtype=mode)
    assert reduced.weight_dtype == {"bf16": "bfloat16", "fp16": "float16"}[mode]
    assert reduced.block[0].mlp.quantized.dtype == getattr(torch, reduced.weight_dtype)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (4, 64), generator=gen)
    with torch.inference_mode():
        full, low = model(ids), reduced(ids)
    agreement = (full.logits.argmax(-1) == low.logits.argmax(-1)).float().mean().item()
    # fp16 keeps 11 mantissa bits: labels must not move. bf16 rounding of these fp32
    # random weights (real checkpoints are bf16 already) may flip a rare near-tie.
    assert agreement >= (0.999 if mode == "fp16" else 0.98), agreement
    diff = (torch.log_softmax(full.logits, -1) - torch.log_softmax(low.logits, -1)).abs()
    assert float(diff.median()) < 0.05  # a few routing flips may move single tokens more
    # Saving a reduced model writes its (widened) weights; reloading reproduces it.
    saved = load_model(save_opf_checkpoint(reduced, tmp_path / "saved"), weight_dtype=mode)
    with torch.inference_mode():
        assert torch.allclose(saved(ids).logits, low.logits, atol=1e-5)


# ---------------------------------------------------------------- runner


def test_plan_batches_respects_budget():
    lengths = [7, 1, 30, 4, 4, 12, 0, 9]
    batches = plan_batches(lengths, token_budget=24)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 24
        assert lengths[batch[0]] == longest


def test_runner_windows_restart_positions(model):
    gen = torch.Generator().manual_seed(3)
    sequence = torch.randint(0, VOCAB, (35,), generator=gen)
    outputs = run_sequences(model, [sequence.numpy()], n_ctx=10, token_budget=64)
    pieces = []
    with torch.inference_mode():
        for start in range(0, 35, 10):
            pieces.append(torch.log_softmax(model(sequence[None, start:start + 10]).logits[0], -1))
    expected = torch.cat(pieces).numpy()
    assert outputs[0].logprobs.shape == (35, 33)
    assert np.abs(outputs[0].logprobs - expected).max() <= 1e-5


def test_runner_batched_equals_unbatched(model):
    gen = torch.Generator().manual_seed(4)
    lengths = [5, 0, 40, 17, 1, 90, 33, 8]
    sequences = [torch.randint(0, VOCAB, (n,), generator=gen).numpy() for n in lengths]
    done: list[int] = []
    threads_before = torch.get_num_threads()
    batched = run_sequences(model, sequences, n_ctx=64, token_budget=256, progress=done.append)
    assert torch.get_num_threads() == threads_before
    assert sum(done) == sum(lengths)
    for index, sequence in enumerate(sequences):
        alone = run_sequences(model, [sequence], n_ctx=64, token_budget=1, num_threads=None)[0]
        assert batched[index].logprobs.shape == (lengths[index], 33)
        if lengths[index]:
            assert np.abs(batched[index].logprobs - alone.logprobs).max() <= 1e-5
            assert np.allclose(batched[index].doc_probs, alone.doc_probs, atol=1e-6)
            assert abs(batched[index].doc_probs.sum() - 1) < 1e-5
        else:
            assert batched[index].doc_probs is None


def test_runner_doc_probs_weight_windows_by_token_count(model):
    sequence = np.arange(1, 26)
    output = run_sequences(model, [sequence], n_ctx=20, token_budget=64)[0]
    with torch.inference_mode():
        first = model(torch.tensor(sequence[None, :20])).pooled[0]
        second = model(torch.tensor(sequence[None, 20:])).pooled[0]
        pooled = (20 * first + 5 * second) / 25
        expected = torch.softmax(model.doc_head(pooled), -1).numpy()
    assert np.allclose(output.doc_probs, expected, atol=1e-6)


def test_runner_rejects_bad_input(model):
    with pytest.raises(ValueError, match="sequence 1: expected a 1-D"):
        run_sequences(model, [np.array([1]), np.array([[1, 2]])], n_ctx=8, token_budget=8)
    with pytest.raises(ValueError, match="sequence 0: token ids must be integers"):
        run_sequences(model, [np.array([1.5])], n_ctx=8, token_budget=8)
    with pytest.raises(ValueError, match="n_ctx"):
        run_sequences(model, [np.array([1])], n_ctx=0, token_budget=8)
