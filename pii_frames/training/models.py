"""The models fine-tuning starts from: a fresh compact model of the privacy-filter family
(:func:`init_compact_model`, how the embedded default model is made), and a classifier head remapped to a
new label space (:func:`remap_head`, opf's rules) or a new document head.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch

from pii_frames.training.data import DEFAULT_LABEL_SPACE

__all__ = ["init_compact_model", "remap_head", "set_doc_head"]


# --------------------------------------------------------------------------------------------------------------
# A fresh compact model
# --------------------------------------------------------------------------------------------------------------

def init_compact_model(
    *,
    hidden_size: int = 160,
    num_hidden_layers: int = 3,
    num_experts: int = 8,
    experts_per_token: int = 2,
    intermediate_size: int | None = None,
    head_dim: int = 32,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    context: int = 48,
    vocab_size: int = 32768,
    label_names: Sequence[str] | None = None,
    doc_class_names: Sequence[str] | None = None,
    default_n_ctx: int = 4096,
    seed: int = 0,
):
    """A randomly initialised privacy-filter model of the same family, sized for CPU training.

    Same blocks as openai/privacy-filter (banded bidirectional GQA attention with sinks and YaRN RoPE, top-k
    clamped-SwiGLU experts, BIOES head, optional document head), smaller everywhere. ``context`` is the band
    half width; ``vocab_size`` below 199998 means the tokenizer keeps the first ``vocab_size`` o200k ranks.

    Initialisation: unit-variance embeddings (the pre-norm makes their scale irrelevant to the first block),
    fan-in scaled input projections, output projections further scaled by 1/sqrt(2 * layers) so the residual
    stream grows slowly, small router weights (near-uniform routing at the start), zero biases and sinks,
    and N(0, 0.02) heads.

    >>> model = init_compact_model(hidden_size=32, num_hidden_layers=1, num_experts=4, head_dim=8,
    ...                            vocab_size=1000, context=4)
    >>> model.config.num_labels, model.config.pad_token_id
    (33, 0)
    """
    from pii_frames.model.config import ModelConfig
    from pii_frames.model.reference import PrivacyFilterModel

    names = tuple(label_names) if label_names is not None else DEFAULT_LABEL_SPACE.names
    config = ModelConfig(
        num_hidden_layers=num_hidden_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size,
        num_experts=num_experts,
        experts_per_token=experts_per_token,
        vocab_size=vocab_size,
        num_labels=len(names),
        head_dim=head_dim,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        left_context=context,
        right_context=context,
        default_n_ctx=default_n_ctx,
        param_dtype="float32",
        label_names=names,
        doc_class_names=tuple(doc_class_names) if doc_class_names else None,
    )
    generator = torch.Generator().manual_seed(seed)
    model = PrivacyFilterModel(config)
    residual_scale = 1.0 / math.sqrt(2 * num_hidden_layers)

    def normal_(tensor: torch.Tensor, std: float) -> None:
        with torch.no_grad():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)

    with torch.no_grad():
        normal_(model.embedding.weight, 1.0)
        for block in model.block:
            attn, mlp = block.attn, block.mlp
            attn.norm.scale.fill_(1.0)
            normal_(attn.qkv.weight, hidden_size ** -0.5)
            attn.qkv.bias.zero_()
            attn.sinks.zero_()
            normal_(attn.out.weight, (num_attention_heads * head_dim) ** -0.5 * residual_scale)
            attn.out.bias.zero_()
            mlp.norm.scale.fill_(1.0)
            normal_(mlp.gate.weight, 0.1 * hidden_size ** -0.5)
            mlp.gate.bias.zero_()
            normal_(mlp.swiglu_weight, hidden_size ** -0.5)
            mlp.swiglu_bias.zero_()
            normal_(mlp.out_weight, config.intermediate_size ** -0.5 * residual_scale)
            mlp.out_bias.zero_()
        model.norm.scale.fill_(1.0)
        normal_(model.unembedding.weight, 0.02)
        if model.doc_head is not None:
            normal_(model.doc_head.weight, 0.02)
            model.doc_head.bias.zero_()
    return model


# --------------------------------------------------------------------------------------------------------------
# Head surgery
# --------------------------------------------------------------------------------------------------------------

def remap_head(model, label_names: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """Rebuild the classifier head for new label names (opf's rules); returns remap statistics.

    Rows whose name exists are copied; a missing ``T-x`` row is copied from ``T-secret`` when the old space
    has it, else from the first old class with tag ``T``; anything else is drawn from N(0, 0.02). The model
    config is updated to the new names. No-op (``{"changed": False}``) when the names are unchanged.

    >>> model = init_compact_model(hidden_size=32, num_hidden_layers=1, num_experts=4, head_dim=8, vocab_size=1000)
    >>> remap_head(model, ["O", "B-custom", "I-custom", "E-custom", "S-custom"])["copied_from_secret"]
    4
    """
    old_names = tuple(model.config.label_names)
    new_names = tuple(label_names)
    if new_names == old_names:
        return {"changed": False, "num_labels": len(new_names)}
    old_index = {name: i for i, name in enumerate(old_names)}
    old_head = model.unembedding
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn((len(new_names), old_head.in_features), generator=generator) * 0.02
    bias = torch.zeros(len(new_names)) if old_head.bias is not None else None
    stats = {"changed": True, "num_labels": len(new_names), "copied_exact": 0, "copied_from_secret": 0,
             "copied_from_same_tag": 0, "random_init": 0, "rows": {}}
    old_weight = old_head.weight.detach().float().cpu()
    old_bias = old_head.bias.detach().float().cpu() if old_head.bias is not None else None
    for row, name in enumerate(new_names):
        source = None
        if name in old_index:
            source, kind = old_index[name], "copied_exact"
        elif name[:2] in ("B-", "I-", "E-", "S-"):
            tag = name[:2]
            if f"{tag}secret" in old_index:
                source, kind = old_index[f"{tag}secret"], "copied_from_secret"
            else:
                same_tag = [i for i, old in enumerate(old_names) if old.startswith(tag)]
                if same_tag:
                    source, kind = same_tag[0], "copied_from_same_tag"
        if source is None:
            kind = "random_init"
        else:
            weight[row] = old_weight[source]
            if bias is not None:
                bias[row] = old_bias[source]
        stats[kind] += 1
        stats["rows"][name] = old_names[source] if source is not None else None
    head = torch.nn.Linear(old_head.in_features, len(new_names), bias=bias is not None)
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
    model.unembedding = head.to(device=old_head.weight.device, dtype=torch.float32)
    model.config = dataclasses.replace(model.config, num_labels=len(new_names), label_names=new_names)
    return stats


def set_doc_head(model, doc_class_names: Sequence[str], *, seed: int) -> bool:
    """Give the model a document head over ``doc_class_names`` (kept when it already matches)."""
    names = tuple(doc_class_names)
    if model.doc_head is not None and tuple(model.config.doc_class_names or ()) == names:
        return False
    generator = torch.Generator().manual_seed(seed + 1)
    head = torch.nn.Linear(model.config.hidden_size, len(names))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.02)
        head.bias.zero_()
    model.doc_head = head.to(model.embedding.weight.device)
    model.config = dataclasses.replace(model.config, doc_class_names=names)
    return True
