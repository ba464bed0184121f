"""The privacy-filter encoder: a pre-norm stack of banded attention + MoE blocks.

Tensors only, no text. Shapes: B batch, T tokens, H hidden, C labels.

    x = embedding[ids]                                  # [B, T, H] fp32 residual stream
    for block in blocks:
        x = x + attn(norm(x))                           # banded GQA with sinks, YaRN RoPE
        x = x + moe(norm(x))                            # top-k clamped-SwiGLU experts
    h = norm(x); logits = unembedding(h)                # [B, T, C] fp32
    pooled = masked mean of h; doc_logits = doc_head(pooled)

The residual stream, norms, router, attention softmax and expert accumulation
are fp32 on every device; projection weights may be bf16 on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .attention import banded_attention
from .config import ModelConfig
from .moe import MoE, small_input_threading
from .norm import RMSNorm
from .rope import RotaryEmbedding, apply_rotary

__all__ = ["EncoderOutput", "PrivacyFilterModel"]


@dataclass
class EncoderOutput:
    """Raw fp32 classifier logits [B, T, C], pooled final hidden state [B, H], doc logits [B, n_doc]."""

    logits: torch.Tensor
    pooled: torch.Tensor | None
    doc_logits: torch.Tensor | None


class Attention(nn.Module):
    """Pre-norm banded attention sub-block; ``forward`` returns the residual update (fp32)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.left, self.right = config.left_context, config.right_context
        self.qk_scale = config.head_dim**-0.25  # applied to q and k each; softmax scale 1
        qkv_size = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.qkv = nn.Linear(config.hidden_size, qkv_size)
        self.sinks = nn.Parameter(torch.zeros(self.num_heads))  # natural-log units
        self.out = nn.Linear(self.num_heads * self.head_dim, config.hidden_size)

    def forward(self, x, rotation, key_valid):
        batch, length, _ = x.shape
        h = self.norm(x, self.qkv.weight.dtype)
        qkv = kernels.linear(h, self.qkv.weight, self.qkv.bias)
        q_size = self.num_heads * self.head_dim
        kv_size = self.num_kv_heads * self.head_dim
        q, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        q = apply_rotary(q.view(batch, length, self.num_heads, self.head_dim), rotation, self.qk_scale)
        k = apply_rotary(k.view(batch, length, self.num_kv_heads, self.head_dim), rotation, self.qk_scale)
        v = v.view(batch, length, self.num_kv_heads, self.head_dim)
        a = banded_attention(q, k, v, self.sinks, key_valid, self.left, self.right)
        return kernels.linear(a.to(self.out.weight.dtype), self.out.weight, self.out.bias).float()


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn = Attention(config)
        self.mlp = MoE(config)

    def forward(self, x, rotation, key_valid, valid_rows):
        x = x + self.attn(x, rotation, key_valid)
        flat = x.reshape(-1, x.shape[-1])
        if valid_rows is None:
            flat = flat + self.mlp(flat)
        else:
            # Padding tokens skip the MoE: their states only ever serve as masked keys.
            flat = flat.index_add(0, valid_rows, self.mlp(flat[valid_rows]))
        return flat.view_as(x)


class PrivacyFilterModel(nn.Module):
    """Privacy-filter token classifier (+ optional document head) on token ids.

    Build it with :func:`pii_frames.model.load_model`; constructing it directly
    gives unloaded (arbitrary) weights. Parameter names follow the opf layout.

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> from pii_frames.model import load_model
    >>> model = load_model(EMBEDDED_MODEL_DIR)
    >>> out = model(torch.tensor([[13225, 11, 922]]))
    >>> out.logits.shape
    torch.Size([1, 3, 33])
    """

    def __init__(self, config: ModelConfig, *, head_bias: bool = False):
        super().__init__()
        self.config = config
        # An explicit (uninitialised) weight skips nn.Embedding's normal_ init: on the meta device that
        # init imports torch's Python decompositions, seconds of start-up for weights the checkpoint replaces.
        self.embedding = nn.Embedding(
            config.vocab_size, config.hidden_size, _weight=torch.empty(config.vocab_size, config.hidden_size)
        )
        self.block = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.unembedding = nn.Linear(config.hidden_size, config.num_labels, bias=head_bias)
        self.doc_head: nn.Linear | None = None
        if config.doc_class_names is not None:
            self.doc_head = nn.Linear(config.hidden_size, len(config.doc_class_names))
        self.rotary = RotaryEmbedding(config)
        self.weight_dtype = "float32"

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> EncoderOutput:
        """Right-padded ids [B, T] and mask [B, T] (True = real token) -> :class:`EncoderOutput`."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        batch, length = input_ids.shape
        if input_ids.numel() and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
            bad = int(input_ids.max()) if int(input_ids.max()) >= self.config.vocab_size else int(input_ids.min())
            raise ValueError(
                f"token id {bad} is outside the model vocabulary (0..{self.config.vocab_size - 1}); "
                "use the checkpoint's tokenizer"
            )
        key_valid = valid_rows = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
                )
            key_valid = attention_mask.to(torch.bool)
            if not bool(key_valid.all()):
                valid_rows = torch.nonzero(key_valid.reshape(-1)).squeeze(1)
            else:
                key_valid = None
        if length == 0:
            hidden = self.config.hidden_size
            logits = torch.zeros(batch, 0, self.config.num_labels, device=input_ids.device)
            pooled = torch.zeros(batch, hidden, device=input_ids.device)
            doc_logits = None
            if self.doc_head is not None:
                doc_logits = F.linear(pooled, self.doc_head.weight.float(), self.doc_head.bias.float())
            return EncoderOutput(logits=logits, pooled=pooled, doc_logits=doc_logits)
        # Padded positions count too, so every MoE layer of a small forward takes the small-input schedule.
        with small_input_threading(batch * length * self.config.experts_per_token, input_ids.device):
            return self._encode(input_ids, key_valid, valid_rows)

    def _encode(self, input_ids, key_valid, valid_rows) -> EncoderOutput:
        x = self.embedding(input_ids).float()
        rotation = self.rotary(input_ids.shape[1], input_ids.device)
        for block in self.block:
            x = block(x, rotation, key_valid, valid_rows)
        h = self.norm(x)
        logits = kernels.linear(h.to(self.unembedding.weight.dtype), self.unembedding.weight, self.unembedding.bias).float()
        if key_valid is None:
            pooled = h.mean(dim=1)
        else:
            weights = key_valid.to(h.dtype)[..., None]
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        doc_logits = None
        if self.doc_head is not None:
            doc_logits = F.linear(pooled, self.doc_head.weight.float(), self.doc_head.bias.float())
        return EncoderOutput(logits=logits, pooled=pooled, doc_logits=doc_logits)
