"""Parity of pii_frames.model against transformers' OpenAIPrivacyFilterForTokenClassification (eager, fp32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pii_frames.model import load_model, run_sequences

from checkpoint_factory import (
    convert_hf_to_opf,
    hf_reference_outputs,
    load_hf_reference,
    make_hf_checkpoint,
)

pytest.importorskip("transformers")

TOLERANCE = 1e-4


# Lengths around the band (half width 8 -> 17 keys) and block edges, up to 1,000 tokens.
LENGTHS = [1, 2, 8, 9, 16, 17, 18, 25, 64, 129, 257, 1000]


def _padded_batch(lengths, vocab_size, seed):
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.zeros(len(lengths), longest, dtype=torch.long)
    mask = torch.zeros(len(lengths), longest, dtype=torch.bool)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(0, vocab_size, (length,), generator=gen)
        mask[row, :length] = True
    return ids, mask


def _assert_matches(ours_logprobs, ref_logprobs, mask):
    diff = (ours_logprobs - ref_logprobs).abs()[mask]
    assert float(diff.max()) <= TOLERANCE, f"max |log-prob diff| {float(diff.max()):.3g}"
    assert torch.equal(ours_logprobs.argmax(-1)[mask], ref_logprobs.argmax(-1)[mask])


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda s: f"seed{s}")
def checkpoint(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"parity{request.param}")
    hf_dir = make_hf_checkpoint(root / "hf", seed=request.param, vocab_size=1000)
    return hf_dir, convert_hf_to_opf(hf_dir, root / "opf"), load_hf_reference(hf_dir)


def test_padded_batch_matches_transformers_in_both_layouts(checkpoint):
    hf_dir, opf_dir, reference = checkpoint
    ids, mask = _padded_batch(LENGTHS, 1000, seed=7)
    expected = hf_reference_outputs(reference, ids, mask.long())
    for directory in (hf_dir, opf_dir):
        model = load_model(directory)
        with torch.inference_mode():
            out = model(ids, mask)
        _assert_matches(torch.log_softmax(out.logits, -1), expected["logprobs"], mask)
        assert torch.allclose(out.pooled, expected["pooled"], atol=1e-5)
    # The random weights must exercise decoding: several labels predicted, experts spread.
    assert expected["logprobs"].argmax(-1)[mask].unique().numel() >= 5


def test_unpadded_sequences_match_transformers(checkpoint):
    hf_dir, _, reference = checkpoint
    model = load_model(hf_dir)
    for length in (1, 17, 300):
        ids, mask = _padded_batch([length], 1000, seed=length)
        expected = hf_reference_outputs(reference, ids)
        with torch.inference_mode():
            out = model(ids)
        _assert_matches(torch.log_softmax(out.logits, -1), expected["logprobs"], mask)


@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
def test_expert_activation_schedules_agree(checkpoint, weight_dtype):
    # Small inputs run the SwiGLU once per group of experts (groups side by side with several threads),
    # each group in one TorchScript call or as a Python loop; large ones per expert slab: the same values
    # in every schedule.
    from pii_frames.model.backend import use_backend
    from pii_frames.model.cpu import CpuBackend, CpuSchedule

    hf_dir, _, reference = checkpoint
    model = load_model(hf_dir, weight_dtype=weight_dtype)
    for lengths in ([5, 90, 260], [40]):  # the second also runs the whole forward on one OpenMP thread
        ids, mask = _padded_batch(lengths, 1000, seed=5)
        outputs = {}
        big, none = 10**9, 0  # (rows limit, rows-per-expert limit): (none, none) is the per-slab schedule
        for limit, per_expert, threads, scripted in (
                (none, none, 1, False), (big, none, 1, False), (big, none, 2, False), (big, none, 3, False),
                (none, none, 1, True), (none, none, 2, True), (big, none, 1, True), (big, none, 2, True),
                (big, none, 3, True), (none, big, 1, True), (none, big, 2, True)):
            schedule = CpuSchedule(small_input_max_rows=limit, group_max_rows_per_expert=per_expert,
                                   scripted=scripted)
            use_backend(model, CpuBackend(model.weight_dtype, schedule=schedule))
            torch.set_num_threads(threads)
            try:
                with torch.inference_mode():
                    outputs[limit, per_expert, threads, scripted] = model(ids, mask).logits
                assert torch.get_num_threads() == threads  # the caller's setting is restored
            finally:
                torch.set_num_threads(1)
        first = outputs[none, none, 1, False]
        for key, logits in outputs.items():
            assert torch.equal(logits, first), (lengths, key)
        if weight_dtype == "float32":
            expected = hf_reference_outputs(reference, ids, mask.long())
            _assert_matches(torch.log_softmax(first, -1), expected["logprobs"], mask)


def test_runner_matches_transformers(checkpoint):
    hf_dir, _, reference = checkpoint
    model = load_model(hf_dir)
    ids, mask = _padded_batch([3, 40, 700], 1000, seed=11)
    sequences = [ids[row, : int(mask[row].sum())].numpy() for row in range(ids.shape[0])]
    expected = hf_reference_outputs(reference, ids, mask.long())["logprobs"]
    outputs = run_sequences(model, sequences, n_ctx=4096, token_budget=1024)
    for row, output in enumerate(outputs):
        length = sequences[row].size
        assert output.logprobs.dtype == np.float32 and output.logprobs.shape == (length, 33)
        assert np.abs(output.logprobs - expected[row, :length].numpy()).max() <= TOLERANCE


def test_full_vocabulary_and_bf16_storage(tmp_path):
    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=3, vocab_size=200064, dtype=torch.bfloat16)
    reference = load_hf_reference(hf_dir)  # widens the bf16 file to fp32, as we do
    model = load_model(hf_dir)
    assert model.embedding.weight.dtype == torch.float32
    ids, mask = _padded_batch([30, 12], 200064, seed=5)
    ids[0, 3] = 199999  # <|endoftext|> is a valid id inside the padded vocabulary
    expected = hf_reference_outputs(reference, ids, mask.long())
    with torch.inference_mode():
        out = model(ids, mask)
    _assert_matches(torch.log_softmax(out.logits, -1), expected["logprobs"], mask)


@pytest.mark.parametrize("form", ["native", "binga"])
def test_doc_head_matches_reference_pooling(tmp_path, form):
    classes = ["Sports", "Health", "Business & Finance"]
    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=4, vocab_size=1000, doc_classes=classes, doc_head_form=form)
    opf_dir = convert_hf_to_opf(hf_dir, tmp_path / "opf")
    reference = load_hf_reference(hf_dir)
    ids, mask = _padded_batch([20, 5], 1000, seed=2)
    expected = hf_reference_outputs(reference, ids, mask.long(), hf_dir=hf_dir)
    for directory in (hf_dir, opf_dir):
        model = load_model(directory)
        assert model.config.doc_class_names == tuple(classes)
        assert model.doc_head is not None and model.doc_head.out_features == 3
        with torch.inference_mode():
            out = model(ids, mask)
        assert torch.allclose(out.doc_logits, expected["doc_logits"], atol=1e-4)
        _assert_matches(torch.log_softmax(out.logits, -1), expected["logprobs"], mask)
        # Runner: one window per sequence -> softmax of the same doc logits.
        outputs = run_sequences(model, [ids[0, :20].numpy()], n_ctx=4096, token_budget=512)
        probs = torch.softmax(expected["doc_logits"][0], -1).numpy()
        assert np.allclose(outputs[0].doc_probs, probs, atol=1e-5)


def test_custom_label_space_with_classifier_bias(tmp_path):
    names = ["O"] + [f"{tag}-{cls}" for cls in ("ssn", "iban", "badge") for tag in "BIES"]
    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=5, vocab_size=1000, label_names=names, score_bias=True,
                                heads=6, kv_heads=3, window=4)
    opf_dir = convert_hf_to_opf(hf_dir, tmp_path / "opf")
    reference = load_hf_reference(hf_dir)
    ids, mask = _padded_batch([50, 9, 3], 1000, seed=3)
    expected = hf_reference_outputs(reference, ids, mask.long())
    for directory in (hf_dir, opf_dir):
        model = load_model(directory)
        assert model.config.label_names == tuple(names)
        assert model.config.left_context == 4
        assert model.unembedding.bias is not None
        with torch.inference_mode():
            out = model(ids, mask)
        assert out.logits.shape == (3, 50, 13)
        _assert_matches(torch.log_softmax(out.logits, -1), expected["logprobs"], mask)


def test_training_path_gradients_match_transformers(tmp_path):
    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=6, vocab_size=1000)
    reference = load_hf_reference(hf_dir)
    model = load_model(hf_dir).requires_grad_(True)
    ids, mask = _padded_batch([40, 25], 1000, seed=9)
    labels = torch.randint(0, 33, ids.shape, generator=torch.Generator().manual_seed(1))

    def loss_of(logits):
        logprobs = torch.log_softmax(logits.float(), -1)
        picked = logprobs.gather(-1, labels[..., None])[..., 0]
        return -(picked * mask).sum() / mask.sum()

    ours = loss_of(model(ids, mask).logits)
    ours.backward()
    theirs = loss_of(reference(input_ids=ids, attention_mask=mask.long()).logits)
    theirs.backward()
    assert abs(ours.item() - theirs.item()) < 1e-5
    pairs = [
        (model.unembedding.weight, reference.score.weight),
        (model.block[0].mlp.swiglu_weight, reference.model.layers[0].mlp.experts.gate_up_proj),
        (model.block[0].mlp.gate.weight, reference.model.layers[0].mlp.router.weight),
        (model.block[1].attn.sinks, reference.model.layers[1].self_attn.sinks),
    ]
    for ours_param, ref_param in pairs:
        assert ours_param.grad is not None
        scale = float(ref_param.grad.abs().max()) + 1e-12
        assert float((ours_param.grad - ref_param.grad).abs().max()) <= 1e-4 * max(scale, 1.0)
    embedding_grad = model.embedding.weight.grad
    assert torch.isfinite(embedding_grad).all() and float(embedding_grad[ids[mask]].abs().sum()) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_and_fp32_agree_with_cpu(tmp_path):
    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=8, vocab_size=1000, hidden=128, head_dim=32)
    cpu = load_model(hf_dir)
    ids, mask = _padded_batch([300, 40, 7], 1000, seed=4)
    with torch.inference_mode():
        expected = torch.log_softmax(cpu(ids, mask).logits, -1)
        fp32 = load_model(hf_dir, device="cuda", weight_dtype="fp32")
        got32 = torch.log_softmax(fp32(ids.cuda(), mask.cuda()).logits, -1).cpu()
        bf16 = load_model(hf_dir, device="cuda")
        assert bf16.block[0].mlp.swiglu_weight.dtype == torch.bfloat16
        assert bf16.block[0].mlp.gate.weight.dtype == torch.float32  # router stays fp32
        got16 = torch.log_softmax(bf16(ids.cuda(), mask.cuda()).logits, -1).cpu()
    assert float((got32 - expected).abs()[mask].max()) <= 1e-3
    agreement = (got16.argmax(-1) == expected.argmax(-1))[mask].float().mean().item()
    assert agreement >= 0.97
    outputs = run_sequences(bf16, [ids[0, :300].numpy()], n_ctx=128, token_budget=512)
    assert outputs[0].logprobs.shape == (300, 33)


def _random_experts(count=6, hidden=8, inter=5, gen=None):
    gen = gen or torch.Generator().manual_seed(0)
    return (torch.randn(count, hidden, 2 * inter, generator=gen), torch.randn(count, 2 * inter, generator=gen),
            torch.randn(count, inter, hidden, generator=gen), torch.randn(count, hidden, generator=gen))


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_scripted_expert_groups_compile_and_match_the_python_loop(mode):
    # Where TorchScript and the kernels exist (the torch this project pins), the scripted group must be used:
    # a silent fall back to the Python loop would cost ~40% of small-input speed.
    from pii_frames.model.cpu import run_expert_slabs
    from pii_frames.model.cpu_experts import prepare_experts, probe_kernels, scripted_group

    if mode == "float32" and not probe_kernels().onednn:
        pytest.skip("no oneDNN on this CPU")
    if mode == "float16" and not probe_kernels().fbgemm_fp16:
        pytest.skip("no fbgemm on this CPU")
    gen = torch.Generator().manual_seed(0)
    experts = prepare_experts(*_random_experts(gen=gen), mode)
    group = scripted_group(experts.kind)
    assert group is not None, "torch.jit.script failed to compile the expert group"
    ends = torch.tensor([2, 2, 5, 6, 6, 9])  # experts 1 and 4 get no rows
    x_sorted = torch.randn(9, 8, generator=gen)
    with torch.inference_mode():
        python_loop = run_expert_slabs(x_sorted, ends, experts, 7.0, 1.702)
        for per_slab in (False, True):
            scripted = group(x_sorted, [0, 2, 3, 5], [0, 2, 5, 6], [2, 5, 6, 9], per_slab, *experts.weights,
                             7.0, 1.702)
            assert scripted.shape == (9, 8)
            assert torch.equal(scripted, python_loop), per_slab


def test_packed_fp32_experts_equal_the_strided_gemm_bit_for_bit():
    # Pre-packing the experts for oneDNN changes where the weights live, not one bit of the result.
    import dataclasses

    from pii_frames.model.cpu import run_expert_slabs
    from pii_frames.model.cpu_experts import prepare_experts, probe_kernels

    kernels = probe_kernels()
    if not kernels.onednn_packed:
        pytest.skip("no oneDNN weight packing on this CPU")
    weights = _random_experts(count=4, hidden=64, inter=48)
    packed = prepare_experts(*weights, "float32", kernels)
    strided = prepare_experts(*weights, "float32", dataclasses.replace(kernels, onednn_packed=False))
    assert packed.packed and not strided.packed
    for rows in (1, 3, 17, 64, 300):
        x_sorted = torch.randn(rows * 4, 64, generator=torch.Generator().manual_seed(rows))
        ends = torch.arange(1, 5) * rows
        with torch.inference_mode():
            assert torch.equal(run_expert_slabs(x_sorted, ends, packed, 7.0, 1.702),
                               run_expert_slabs(x_sorted, ends, strided, 7.0, 1.702)), rows
    for ours, original in zip(packed.dequantized(), weights):
        assert torch.equal(ours, original)


def test_scripted_expert_group_that_fails_here_leaves_the_python_loop(monkeypatch):
    from pii_frames.model import cpu_experts, expert_groups
    from pii_frames.model.cpu import CpuBackend, run_expert_slabs

    def broken(*args):
        raise RuntimeError("no kernel for this CPU")

    monkeypatch.setattr(expert_groups, "script", lambda kind: broken)
    cpu_experts.scripted_group.cache_clear()
    try:
        backend = CpuBackend()
        assert backend.groups == {"onednn": None, "fbgemm_fp16": None}  # tried once, when the backend is built
        experts = cpu_experts.prepare_experts(*_random_experts(), "float32")
        with torch.inference_mode():
            out = run_expert_slabs(torch.ones(9, 8), torch.tensor([2, 2, 5, 6, 6, 9]), experts, 7.0, 1.702,
                                   group=backend.groups.get(experts.kind))
        assert out.shape == (9, 8) and bool(torch.isfinite(out).all())
    finally:
        cpu_experts.scripted_group.cache_clear()


def test_cuda_backend_grouped_experts_match_the_reference_on_cpu_tensors(tmp_path):
    # The CUDA backend's grouped-GEMM experts and its weight relayout, run where a GPU is missing: torch's
    # _grouped_mm also takes CPU tensors, so the path's logic is checked here and its kernels on a GPU.
    from pii_frames.model.backend import use_backend
    from pii_frames.model.cuda import CudaBackend
    from pii_frames.model.reference import ReferenceOps

    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=8, vocab_size=1000, hidden=128, head_dim=32)
    model = load_model(hf_dir)
    ids, mask = _padded_batch([60, 33, 5], 1000, seed=4)
    with torch.inference_mode():
        expected = use_backend(model, ReferenceOps())(ids, mask).logits
        backend = CudaBackend()
        got = use_backend(model, backend)(ids, mask).logits
    if not backend.grouped:
        pytest.skip("torch._grouped_mm does not run on CPU tensors in this torch")
    assert len(backend.grouped) == model.config.num_hidden_layers
    assert model.block[0].mlp.swiglu_weight.transpose(-2, -1).is_contiguous()  # the Linear layout
    assert torch.allclose(got, expected, atol=1e-4)
