"""Build small random privacy-filter checkpoints for tests (both layouts, optional doc head).

Stable helpers other test files import:

* :func:`make_hf_checkpoint` - a Hugging Face layout folder written by
  ``transformers.OpenAIPrivacyFilterForTokenClassification(config).save_pretrained``,
  with realistic-scale random weights (unit-scale embeddings, fan-in scaled
  projections, non-trivial router spread) so routing is not collapsed;
* :func:`convert_hf_to_opf` - the same weights in the opf "original" layout
  (fused qkv, sinks in log2 units, opf tensor names and config keys);
* :func:`load_hf_reference` / :func:`hf_reference_outputs` - the transformers
  model (eager, fp32) and its per-token log-probs, pooled state and doc logits,
  the parity reference.

Example::

    hf_dir = make_hf_checkpoint(tmp_path / "hf", seed=1, vocab_size=1000)
    opf_dir = convert_hf_to_opf(hf_dir, tmp_path / "opf")

The converter is written independently of ``pii_frames.model`` on purpose, so
loading its output is a real test of the opf loader.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file

from pii_frames.model.config import DEFAULT_SPAN_CLASS_NAMES as V2_SPAN_CLASSES

__all__ = [
    "V2_SPAN_CLASSES",
    "bioes_label_names",
    "make_hf_checkpoint",
    "convert_hf_to_opf",
    "load_hf_reference",
    "hf_reference_outputs",
]


def bioes_label_names(classes: Sequence[str]) -> list[str]:
    """["O", "B-c", "I-c", "E-c", "S-c", ...] for span classes ``classes``."""
    return ["O"] + [f"{tag}-{name}" for name in classes for tag in ("B", "I", "E", "S")]


def _label_names(num_labels: int | None, label_names: Sequence[str] | None) -> list[str]:
    if label_names is not None:
        return list(label_names)
    num_labels = 33 if num_labels is None else num_labels
    if num_labels == 33:
        return bioes_label_names(V2_SPAN_CLASSES)
    if (num_labels - 1) % 4:
        raise ValueError(f"num_labels={num_labels} is not 1 + 4 * classes; pass label_names instead")
    return bioes_label_names([f"class_{i}" for i in range((num_labels - 1) // 4)])


def _randomise(model: torch.nn.Module, hidden: int, seed: int, score_bias: bool) -> None:
    """Overwrite every parameter with realistic-scale random values (deterministic per seed)."""
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = param.shape
            if name.endswith("embed_tokens.weight"):
                value = normal(shape, 1.0)
            elif name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                value = normal(shape, 0.1, 1.0)
            elif name.endswith("sinks"):
                value = normal(shape, 1.0)
            elif name.endswith("router.weight"):
                value = normal(shape, 2.0 / math.sqrt(shape[-1]))
            elif name.endswith("gate_up_proj") or name.endswith("down_proj"):
                value = normal(shape, 1.0 / math.sqrt(shape[-2]))
            elif name.endswith("score.bias"):
                value = normal(shape, 0.5) if score_bias else torch.zeros(shape)
            elif name.endswith("bias"):
                value = normal(shape, 0.1)
            elif name.endswith("weight"):
                value = normal(shape, 1.0 / math.sqrt(shape[-1]))
            else:
                raise AssertionError(f"no init rule for parameter {name}")
            param.copy_(value)


def make_hf_checkpoint(
    directory: str | Path,
    *,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    intermediate: int | None = None,
    experts: int = 8,
    top_k: int = 4,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int = 16,
    window: int = 8,
    vocab_size: int = 200064,
    num_labels: int | None = 33,
    label_names: Sequence[str] | None = None,
    doc_classes: Sequence[str] | None = None,
    doc_head_form: str = "native",
    score_bias: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a random Hugging Face layout checkpoint to ``directory`` and return it.

    ``window`` is the HF ``sliding_window`` (the band half width). Labels: the
    v2 33-label space by default, ``num_labels`` synthetic BIOES classes, or
    explicit ``label_names``. ``doc_classes`` adds a document head, stored
    ``"native"`` (``doc_head.weight``/``doc_head.bias`` tensors in
    model.safetensors + ``doc_class_names`` in config.json) or ``"binga"``
    (``doc_head.pt`` state dict + ``multitask_config.json``). ``score_bias``
    gives the classifier a non-zero bias. ``dtype`` is the storage dtype.

    >>> make_hf_checkpoint(tmp_path / "hf", vocab_size=1000)  # doctest: +SKIP
    """
    from transformers import OpenAIPrivacyFilterConfig, OpenAIPrivacyFilterForTokenClassification

    directory = Path(directory)
    names = _label_names(num_labels, label_names)
    pad_id = 199999 if vocab_size > 199999 else 0
    config = OpenAIPrivacyFilterConfig(
        num_hidden_layers=layers,
        num_local_experts=experts,
        num_experts_per_tok=top_k,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or hidden,
        head_dim=head_dim,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        sliding_window=window,
        pad_token_id=pad_id,
        eos_token_id=pad_id,
        id2label={i: n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
    )
    torch.manual_seed(seed)
    model = OpenAIPrivacyFilterForTokenClassification(config)
    _randomise(model, hidden, seed, score_bias)
    model = model.to(dtype)
    model.save_pretrained(directory)

    if doc_classes is not None:
        gen = torch.Generator().manual_seed(seed + 1000)
        weight = torch.randn(len(doc_classes), hidden, generator=gen) / math.sqrt(hidden) * 3
        bias = torch.randn(len(doc_classes), generator=gen) * 0.1
        if doc_head_form == "native":
            tensors = load_file(directory / "model.safetensors")
            tensors["doc_head.weight"] = weight.to(dtype)
            tensors["doc_head.bias"] = bias.to(dtype)
            save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
            raw = json.loads((directory / "config.json").read_text())
            raw["doc_class_names"] = list(doc_classes)
            (directory / "config.json").write_text(json.dumps(raw, indent=2))
        elif doc_head_form == "binga":
            torch.save({"weight": weight, "bias": bias}, directory / "doc_head.pt")
            multitask = {
                "num_doc_classes": len(doc_classes),
                "doc_label_names": list(doc_classes),
                "ner_weight": 1.0,
                "doc_weight": 0.5,
            }
            (directory / "multitask_config.json").write_text(json.dumps(multitask, indent=2))
        else:
            raise ValueError(f"doc_head_form must be 'native' or 'binga', got {doc_head_form!r}")
    return directory


def convert_hf_to_opf(hf_dir: str | Path, opf_dir: str | Path) -> Path:
    """Rewrite a Hugging Face layout checkpoint in the opf original layout (same weights).

    Fused ``attn.qkv`` (rows q, k, v), sinks divided by ln 2, experts renamed to
    ``mlp.swiglu.*``/``mlp.out.*``, ``unembedding.weight`` without bias (a
    non-zero ``score.bias`` is kept as ``unembedding.bias``), opf config keys
    (``sliding_window`` = 2 * half + 1, ``bidirectional_*``, ``rope_*``,
    ``span_class_names`` for non-default labels). Document heads are carried
    over in the form they had.
    """
    hf_dir, opf_dir = Path(hf_dir), Path(opf_dir)
    opf_dir.mkdir(parents=True, exist_ok=True)
    raw = json.loads((hf_dir / "config.json").read_text())
    hf = load_file(hf_dir / "model.safetensors")
    out: dict[str, torch.Tensor] = {"embedding.weight": hf.pop("model.embed_tokens.weight")}
    for i in range(raw["num_hidden_layers"]):
        h, p = f"model.layers.{i}", f"block.{i}"
        a = f"{h}.self_attn"
        out[f"{p}.attn.norm.scale"] = hf.pop(f"{h}.input_layernorm.weight")
        for part in ("weight", "bias"):
            out[f"{p}.attn.qkv.{part}"] = torch.cat(
                [hf.pop(f"{a}.q_proj.{part}"), hf.pop(f"{a}.k_proj.{part}"), hf.pop(f"{a}.v_proj.{part}")]
            )
            out[f"{p}.attn.out.{part}"] = hf.pop(f"{a}.o_proj.{part}")
            out[f"{p}.mlp.gate.{part}"] = hf.pop(f"{h}.mlp.router.{part}")
        out[f"{p}.attn.sinks"] = (hf.pop(f"{a}.sinks").double() / math.log(2.0)).float()
        out[f"{p}.mlp.norm.scale"] = hf.pop(f"{h}.post_attention_layernorm.weight")
        e = f"{h}.mlp.experts"
        out[f"{p}.mlp.swiglu.weight"] = hf.pop(f"{e}.gate_up_proj")
        out[f"{p}.mlp.swiglu.bias"] = hf.pop(f"{e}.gate_up_proj_bias")
        out[f"{p}.mlp.out.weight"] = hf.pop(f"{e}.down_proj")
        out[f"{p}.mlp.out.bias"] = hf.pop(f"{e}.down_proj_bias")
    out["norm.scale"] = hf.pop("model.norm.weight")
    out["unembedding.weight"] = hf.pop("score.weight")
    score_bias = hf.pop("score.bias", None)
    if score_bias is not None and bool(torch.any(score_bias != 0)):
        out["unembedding.bias"] = score_bias
    for name in ("doc_head.weight", "doc_head.bias"):
        if name in hf:
            out[name] = hf.pop(name)
    if hf:
        raise ValueError(f"convert_hf_to_opf: unconverted tensors {sorted(hf)}")
    save_file(out, opf_dir / "model.safetensors", metadata={"format": "pt"})

    rope = raw["rope_parameters"]
    half = raw["sliding_window"]
    labels = [raw["id2label"][str(i)] for i in range(len(raw["id2label"]))]
    dtype = str(raw.get("dtype", "float32")).replace("torch.", "")
    config = {
        "model_type": "privacy_filter",
        "encoding": "o200k_base",
        "num_hidden_layers": raw["num_hidden_layers"],
        "num_experts": raw["num_local_experts"],
        "experts_per_token": raw["num_experts_per_tok"],
        "vocab_size": raw["vocab_size"],
        "num_labels": len(labels),
        "hidden_size": raw["hidden_size"],
        "intermediate_size": raw["intermediate_size"],
        "head_dim": raw["head_dim"],
        "num_attention_heads": raw["num_attention_heads"],
        "num_key_value_heads": raw["num_key_value_heads"],
        "sliding_window": 2 * half + 1,
        "bidirectional_context": True,
        "bidirectional_left_context": half,
        "bidirectional_right_context": half,
        "initial_context_length": rope["original_max_position_embeddings"],
        "max_position_embeddings": raw.get("max_position_embeddings", 131072),
        "default_n_ctx": 128000,
        "rope_theta": rope["rope_theta"],
        "rope_scaling_factor": rope["factor"],
        "rope_ntk_alpha": rope["beta_slow"],
        "rope_ntk_beta": rope["beta_fast"],
        "param_dtype": dtype,
    }
    if labels != bioes_label_names(V2_SPAN_CLASSES):
        classes = []
        for label in labels[1:]:
            if label[2:] not in classes:
                classes.append(label[2:])
        config["span_class_names"] = ["O"] + classes
    if "doc_class_names" in raw:
        config["doc_class_names"] = raw["doc_class_names"]
    (opf_dir / "config.json").write_text(json.dumps(config, indent=2))
    for extra in ("doc_head.pt", "multitask_config.json"):
        if (hf_dir / extra).exists():
            shutil.copy(hf_dir / extra, opf_dir / extra)
    return opf_dir


def load_hf_reference(hf_dir: str | Path):
    """The transformers model for ``hf_dir`` in fp32 with eager attention and eager experts."""
    from transformers import OpenAIPrivacyFilterForTokenClassification

    model = OpenAIPrivacyFilterForTokenClassification.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def _doc_head_tensors(hf_dir: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    if (hf_dir / "doc_head.pt").exists():
        state = torch.load(hf_dir / "doc_head.pt", weights_only=True)
        return state["weight"].float(), state["bias"].float()
    tensors = load_file(hf_dir / "model.safetensors")
    if "doc_head.weight" in tensors:
        return tensors["doc_head.weight"].float(), tensors["doc_head.bias"].float()
    return None


def hf_reference_outputs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         hf_dir: str | Path | None = None) -> dict[str, torch.Tensor | None]:
    """Reference per-token log-probs [B, T, C], pooled [B, H] and doc logits from transformers.

    Pooled = attention-mask-weighted mean of the final-normed hidden state; doc
    logits use the checkpoint's document head when ``hf_dir`` has one.
    """
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=False)
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = torch.ones_like(input_ids, dtype=torch.float32) if attention_mask is None else attention_mask.float()
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    doc_logits = None
    if hf_dir is not None:
        head = _doc_head_tensors(Path(hf_dir))
        if head is not None:
            doc_logits = pooled @ head[0].T + head[1]
    return {
        "logprobs": torch.log_softmax(out.logits.float(), dim=-1),
        "pooled": pooled,
        "doc_logits": doc_logits,
    }
