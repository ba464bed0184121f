"""The privacy-filter network in one file: the definition every backend computes.

A pre-norm bidirectional encoder (gpt-oss blocks), token ids -> per-token label logits.
Shapes: B batch, T tokens, H hidden, C labels::

    x = embedding[ids]                                  # [B, T, H] fp32 residual stream
    for block in blocks:
        x = x + attn(norm(x))                           # banded GQA with sinks, YaRN RoPE
        x = x + moe(norm(x))                            # top-k clamped-SwiGLU experts
    h = norm(x); logits = unembedding(h)                # [B, T, C] fp32
    pooled = masked mean of h; doc_logits = doc_head(pooled)

Norms, router, attention softmax and expert accumulation are fp32. Parameter
names follow the opf checkpoint layout. The three heavy operations (dense
projections, attention, the experts) go through ``model.backend``, chosen once
when the model is loaded (:mod:`pii_frames.model.backend`); :class:`ReferenceOps`
below is their plain, differentiable definition, used for training and as
the backend of a model built directly.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

__all__ = ["EncoderOutput", "PrivacyFilterModel", "ReferenceOps", "Routing", "apply_rotary", "clamped_swiglu",
           "sink_attention", "yarn_inv_freq"]


@dataclass
class EncoderOutput:
    """Raw fp32 classifier logits [B, T, C], pooled final hidden state [B, H], doc logits [B, n_doc]."""

    logits: torch.Tensor
    pooled: torch.Tensor | None
    doc_logits: torch.Tensor | None


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * scale, computed and returned in fp32."""

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.scale.float() * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


# ---------------------------------------------------------------- rope
def yarn_inv_freq(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """YaRN ("NTK by parts") inverse frequencies [head_dim // 2] and the cos/sin concentration.

    fp32, in the operation order of the Hugging Face implementation, so angles at
    large positions agree bit for bit with the parity reference.

    >>> inv_freq, concentration = yarn_inv_freq(ModelConfig(1, 640, 640, 128, 4, 1000, 33, 64, 14, 2))
    >>> round(float(inv_freq[1]), 5), round(concentration, 5)
    (0.68904, 1.34657)
    """
    dim, base, factor = config.head_dim, config.rope_theta, config.rope_scaling_factor

    def correction_dim(num_rotations: float) -> float:
        return dim * math.log(config.initial_context_length / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(correction_dim(config.rope_ntk_beta), 0)
    high = min(correction_dim(config.rope_ntk_alpha), dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float32) / dim)
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation_weight = 1 - ramp
    inv_freq = 1.0 / (factor * pos_freqs) * (1 - extrapolation_weight) + 1.0 / pos_freqs * extrapolation_weight
    return inv_freq, (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)


class RotaryEmbedding(nn.Module):
    """``forward(T, device)``: complex64 [T, head_dim // 2] of ``concentration * (cos + i sin)`` per position."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        # A plain attribute, not a buffer: it stays a real CPU tensor when parameters are built on meta.
        with torch.device("cpu"):
            self.inv_freq, self.concentration = yarn_inv_freq(config)
        self._cache: dict[tuple[int, torch.device], torch.Tensor] = {}

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, torch.device(device))
        if key not in self._cache:
            if len(self._cache) > 64:  # windows have few distinct lengths; bound the cache anyway
                self._cache.clear()
            # Ordinary tensors even under inference_mode, so a later training forward can reuse them.
            with torch.inference_mode(False), torch.no_grad():
                angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * self.inv_freq.to(device)
                self._cache[key] = torch.complex(angles.cos() * self.concentration, angles.sin() * self.concentration)
        return self._cache[key]


def apply_rotary(x: torch.Tensor, rotation: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` of x [B, T, heads, D] by ``rotation``, times ``scale``.

    One complex multiplication per pair, in fp32; the result has x's dtype.

    >>> apply_rotary(torch.ones(1, 1, 1, 2), torch.tensor([[1j]])).tolist()
    [[[[-1.0, 1.0]]]]
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    rotated = torch.view_as_real(pairs * rotation[None, :, None, :]).flatten(-2)
    return (rotated * scale).to(x.dtype)


# ----------------------------------------------------------- attention
def band_mask(block: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """[block, 3 * block] bool: query q of a middle block may see key slot j of its three neighbouring blocks."""
    offset = torch.arange(3 * block, device=device)[None, :] - block - torch.arange(block, device=device)[:, None]
    return (offset >= -left) & (offset <= right)


def sink_attention(q, k, v, sinks, key_valid, left: int, right: int) -> torch.Tensor:
    """Banded GQA with one value-less "sink" logit per head: [B, T, heads * D].

    q: [B, T, Hq, D], k and v: [B, T, Hkv, D], pre-scaled and rotated; query head
    h uses kv head ``h // (Hq // Hkv)``. Query i sees keys ``i - left .. i + right``
    that are not padding (``key_valid`` [B, T] bool or None). The sink joins the
    fp32 softmax and only absorbs probability mass, which also keeps fully masked
    (padding) rows finite. Queries go in blocks of ``w = max(left, right)``
    against their own and the two neighbouring key blocks, so the cost is
    O(T * w); sequences inside one band need no blocks.

    >>> q = torch.randn(1, 5, 4, 8); k = torch.randn(1, 5, 2, 8); v = torch.randn(1, 5, 2, 8)
    >>> sink_attention(q, k, v, torch.zeros(4), None, left=2, right=2).shape
    torch.Size([1, 5, 32])
    """
    batch, length, heads, dim = q.shape
    kv = k.shape[2]
    group = heads // kv
    dense = length - 1 <= min(left, right)
    block = length if dense else max(left, right, 1)
    blocks = -(-length // block)
    padded = blocks * block
    if key_valid is None:
        key_valid = torch.ones(batch, length, dtype=torch.bool, device=q.device)
    if dense:  # one block that sees every key: no band
        q_blocks = q.view(batch, length, kv, group, dim).permute(0, 2, 3, 1, 4)[:, :, None]
        k_blocks, v_blocks = k.permute(0, 2, 3, 1)[:, :, None], v.transpose(1, 2)[:, :, None]
        allowed = key_valid[:, None, None, :]  # [B, nb=1, 1, T]
    else:  # queries padded to whole blocks; keys get one empty block on each side
        q = F.pad(q, (0, 0, 0, 0, 0, padded - length))
        k, v = (F.pad(t, (0, 0, 0, 0, block, padded - length + block)) for t in (k, v))
        valid = F.pad(key_valid, (block, padded - length + block), value=False)
        q_blocks = q.view(batch, blocks, block, kv, group, dim).permute(0, 3, 1, 4, 2, 5)
        k_blocks = k.permute(0, 2, 3, 1).unfold(3, 3 * block, block).permute(0, 1, 3, 2, 4)  # [B, kv, nb, D, 3w]
        v_blocks = v.permute(0, 2, 3, 1).unfold(3, 3 * block, block).permute(0, 1, 3, 4, 2)  # [B, kv, nb, 3w, D]
        band = band_mask(block, left, right, q.device).repeat(group, 1)  # [G*w, 3w]
        allowed = band[None, None] & valid.unfold(1, 3 * block, block)[:, :, None, :]
    q_blocks = q_blocks.reshape(batch, kv, blocks, group * block, dim)
    scores = torch.matmul(q_blocks, k_blocks).float().masked_fill(~allowed[:, None], float("-inf"))
    sink = sinks.float().view(1, kv, 1, group, 1, 1).expand(1, kv, 1, group, block, 1)
    logits = torch.cat([scores, sink.reshape(1, kv, 1, group * block, 1).expand(*scores.shape[:-1], 1)], dim=-1)
    probs = torch.softmax(logits, dim=-1)[..., :-1]
    out = torch.matmul(probs.to(v.dtype), v_blocks)  # [B, kv, nb, G*w, D]
    out = out.view(batch, kv, blocks, group, block, dim).permute(0, 2, 4, 1, 3, 5)
    return out.reshape(batch, padded, heads * dim)[:, :length]


# ----------------------------------------------------------------- MoE
def clamped_swiglu(z: torch.Tensor, limit: float, alpha: float) -> torch.Tensor:
    """gate * sigmoid(alpha * gate) * (up + 1), gate clamped above and up both sides at ``limit``.

    ``z`` holds the gate half first and the linear ("up") half second.

    >>> clamped_swiglu(torch.tensor([[0.0, 10.0, 1.0, -10.0]]), 7.0, 1.702).round().tolist()
    [[0.0, -42.0]]
    """
    gate, up = z.chunk(2, dim=-1)
    gate = gate.clamp(max=limit)
    return gate * torch.sigmoid(gate * alpha) * (up.clamp(min=-limit, max=limit) + 1)


class Routing:
    """Top-k routing (fp32; softmax over the k selected logits, divided by k), pairs sorted by expert.

    Every execution path multiplies each expert by one contiguous slab of the
    expert-sorted rows ``x[token_of_pair]``; ``ends[e]`` is where expert e's slab ends.
    """

    def __init__(self, router_logits: torch.Tensor, top_k: int, num_experts: int):
        top_values, top_experts = torch.topk(router_logits, top_k, dim=-1, sorted=True)
        self.weights = torch.softmax(top_values, dim=-1) / top_k  # [N, k]
        flat = top_experts.reshape(-1)
        self.order = torch.argsort(flat, stable=True)  # pair index, grouped by expert
        self.token_of_pair = self.order // top_k
        self.expert_of_pair = flat[self.order]
        self.counts = torch.bincount(flat, minlength=num_experts)
        self.ends = torch.cumsum(self.counts, dim=0)
        self.top_k = top_k
        self.num_tokens = router_logits.shape[0]

    def combine(self, expert_out: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """[N*k, H] outputs in sorted order -> [N, H]: weighted, un-permuted, summed over k in fp32, times k.

        A deterministic sum (no scatter-add). ``inplace`` reuses fp32 ``expert_out`` (no autograd) as scratch.
        """
        pair_weights = self.weights.reshape(-1)[self.order, None]
        if inplace and expert_out.dtype == torch.float32:
            weighted = expert_out.mul_(pair_weights)
        else:
            weighted = expert_out.float() * pair_weights
        unsorted = torch.empty_like(weighted).index_copy_(0, self.order, weighted)
        return unsorted.view(self.num_tokens, self.top_k, -1).sum(dim=1).mul_(self.top_k)


class ReferenceOps:
    """The heavy operations of a forward in plain torch: differentiable, any device.

    A backend provides the same four methods (see :mod:`pii_frames.model.backend`).
    """

    name = "reference"

    def scope(self, rows: int):
        """Context for one forward of ``rows`` token-expert pairs; yields the ops the layers call."""
        return contextlib.nullcontext(self)

    def prepare_moe(self, moe: MoE) -> None:
        """Store a layer's experts the way the kernels read them (the reference reads the parameters)."""

    def release(self, model: PrivacyFilterModel) -> None:
        """Give back parameters a backend holds in a kernel layout (nothing to do here)."""

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x.to(weight.dtype), weight, bias)

    def attention(self, q, k, v, sinks, key_valid, left: int, right: int) -> torch.Tensor:
        return sink_attention(q, k, v, sinks, key_valid, left, right)

    def experts(self, moe: MoE, x_sorted: torch.Tensor, routing: Routing) -> torch.Tensor:
        """[pairs, H] expert outputs: rows scattered into [hit experts, max count, H], two bmm."""
        counts, experts = routing.counts, routing.expert_of_pair
        hit = torch.nonzero(counts).squeeze(1)
        compact = torch.full_like(counts, -1)
        compact[hit] = torch.arange(hit.numel(), device=counts.device)
        slot = torch.arange(experts.numel(), device=experts.device) - (routing.ends - counts)[experts]
        expert_slot = compact[experts]
        w1, w2 = moe.swiglu_weight[hit], moe.out_weight[hit]
        rows = x_sorted.new_zeros(hit.numel(), int(counts.max()), x_sorted.shape[-1], dtype=w1.dtype)
        rows = rows.index_put((expert_slot, slot), x_sorted.to(w1.dtype))
        z = torch.bmm(rows, w1).float() + moe.swiglu_bias[hit].float()[:, None, :]
        act = clamped_swiglu(z, moe.limit, moe.alpha).to(w2.dtype)
        y = torch.bmm(act, w2).float() + moe.out_bias[hit].float()[:, None, :]
        return y[expert_slot, slot]


# -------------------------------------------------------------- layers
class Attention(nn.Module):
    """Pre-norm banded attention sub-block; ``forward`` returns the residual update (fp32)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            config.num_attention_heads, config.num_key_value_heads, config.head_dim)
        self.left, self.right = config.left_context, config.right_context
        self.qk_scale = config.head_dim**-0.25  # on q and k each: softmax scale 1
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.qkv = nn.Linear(config.hidden_size, (self.num_heads + 2 * self.num_kv_heads) * self.head_dim)
        self.sinks = nn.Parameter(torch.zeros(self.num_heads))  # natural-log units
        self.out = nn.Linear(self.num_heads * self.head_dim, config.hidden_size)

    def forward(self, x, rotation, key_valid, ops):
        batch, length, _ = x.shape
        qkv = ops.linear(self.norm(x), self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.split([self.num_heads * self.head_dim, *[self.num_kv_heads * self.head_dim] * 2], dim=-1)
        q = apply_rotary(q.view(batch, length, self.num_heads, self.head_dim), rotation, self.qk_scale)
        k = apply_rotary(k.view(batch, length, self.num_kv_heads, self.head_dim), rotation, self.qk_scale)
        v = v.view(batch, length, self.num_kv_heads, self.head_dim)
        a = ops.attention(q, k, v, self.sinks, key_valid, self.left, self.right)
        return ops.linear(a, self.out.weight, self.out.bias).float()


class MoE(nn.Module):
    """Pre-norm + fp32 router + ``num_experts`` clamped-SwiGLU experts; [N, H] -> update [N, H] (fp32).

    Parameters follow the opf layout: ``swiglu_weight`` [E, H, 2I] (gate columns
    first), ``swiglu_bias`` [E, 2I], ``out_weight`` [E, I, H], ``out_bias`` [E, H].
    A CPU backend may hold them in a kernel layout instead (``prepared``).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden, inter, experts = config.hidden_size, config.intermediate_size, config.num_experts
        self.top_k, self.num_experts = config.experts_per_token, experts
        self.limit, self.alpha = config.swiglu_limit, config.swiglu_alpha
        self.norm = RMSNorm(hidden, config.rms_norm_eps)
        self.gate = nn.Linear(hidden, experts)
        self.swiglu_weight = nn.Parameter(torch.empty(experts, hidden, 2 * inter))
        self.swiglu_bias = nn.Parameter(torch.empty(experts, 2 * inter))
        self.out_weight = nn.Parameter(torch.empty(experts, inter, hidden))
        self.out_bias = nn.Parameter(torch.empty(experts, hidden))
        self.prepared = None  # the experts in a CPU kernel's layout (pii_frames.model.cpu_experts)

    @property
    def quantized(self):
        """The prepared experts when they are stored in reduced precision, else None."""
        return self.prepared if self.prepared is not None and self.prepared.dtype != torch.float32 else None

    def expert_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(w1, b1, w2, b2) in the opf layout, from the parameters or widened back from ``prepared``."""
        if self.prepared is not None:
            return self.prepared.dequantized()
        return self.swiglu_weight, self.swiglu_bias, self.out_weight, self.out_bias

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        h = self.norm(x)
        routing = Routing(F.linear(h, self.gate.weight.float(), self.gate.bias.float()), self.top_k, self.num_experts)
        expert_out = ops.experts(self, h[routing.token_of_pair], routing)
        return routing.combine(expert_out, inplace=not torch.is_grad_enabled())


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn = Attention(config)
        self.mlp = MoE(config)

    def forward(self, x, rotation, key_valid, valid_rows, ops):
        x = x + self.attn(x, rotation, key_valid, ops)
        flat = x.reshape(-1, x.shape[-1])
        if valid_rows is None:
            return (flat + self.mlp(flat, ops)).view_as(x)
        # Padding tokens skip the MoE: their states only ever serve as masked keys.
        return flat.index_add(0, valid_rows, self.mlp(flat[valid_rows], ops)).view_as(x)


class PrivacyFilterModel(nn.Module):
    """Privacy-filter token classifier (+ optional document head) on token ids.

    Build it with :func:`pii_frames.model.load_model`, which also picks its
    ``backend``; constructed directly it has arbitrary weights and the reference ops.

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> from pii_frames.model import load_model
    >>> load_model(EMBEDDED_MODEL_DIR)(torch.tensor([[13225, 11, 922]])).logits.shape
    torch.Size([1, 3, 33])
    """

    def __init__(self, config: ModelConfig, *, head_bias: bool = False):
        super().__init__()
        self.config = config
        # An explicit (uninitialised) weight skips nn.Embedding's normal_ init, which on the meta device
        # imports torch's Python decompositions: seconds of start-up for weights the checkpoint replaces.
        self.embedding = nn.Embedding(config.vocab_size, config.hidden_size,
                                      _weight=torch.empty(config.vocab_size, config.hidden_size))
        self.block = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.unembedding = nn.Linear(config.hidden_size, config.num_labels, bias=head_bias)
        self.doc_head = (None if config.doc_class_names is None
                         else nn.Linear(config.hidden_size, len(config.doc_class_names)))
        self.rotary = RotaryEmbedding(config)
        self.weight_dtype = "float32"
        self.backend = ReferenceOps()

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def requires_grad_(self, requires_grad: bool = True) -> PrivacyFilterModel:
        """Gradients need the parameters themselves: a backend holding them in a kernel layout gives them
        back, and the model runs the reference ops from then on (load the saved checkpoint for speed)."""
        if requires_grad and not isinstance(self.backend, ReferenceOps):
            self.backend.release(self)
            self.backend = ReferenceOps()
        return super().requires_grad_(requires_grad)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> EncoderOutput:
        """Right-padded ids [B, T] and mask [B, T] (True = real token) -> :class:`EncoderOutput`."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        batch, length = input_ids.shape
        if input_ids.numel() and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
            bad = int(input_ids.max()) if int(input_ids.max()) >= self.config.vocab_size else int(input_ids.min())
            raise ValueError(f"token id {bad} is outside the model vocabulary (0..{self.config.vocab_size - 1}); "
                             "use the checkpoint's tokenizer")
        key_valid = valid_rows = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape "
                                 f"{tuple(input_ids.shape)}")
            if not bool(attention_mask.all()):
                key_valid = attention_mask.to(torch.bool)
                valid_rows = torch.nonzero(key_valid.reshape(-1)).squeeze(1)
        # Padded positions count too: every MoE layer of a forward gets the same schedule.
        with self.backend.scope(batch * length * self.config.experts_per_token) as ops:
            x = self.embedding(input_ids).float()
            if length:
                rotation = self.rotary(length, input_ids.device)
                for block in self.block:
                    x = block(x, rotation, key_valid, valid_rows, ops)
            return self._head(self.norm(x), key_valid, ops)

    def _head(self, h, key_valid, ops) -> EncoderOutput:
        logits = ops.linear(h, self.unembedding.weight, self.unembedding.bias).float()
        if key_valid is None:
            pooled = h.mean(dim=1) if h.shape[1] else h.new_zeros(h.shape[0], h.shape[2])
        else:
            weights = key_valid.to(h.dtype)[..., None]
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        doc_logits = None
        if self.doc_head is not None:
            doc_logits = F.linear(pooled, self.doc_head.weight.float(), self.doc_head.bias.float())
        return EncoderOutput(logits=logits, pooled=pooled, doc_logits=doc_logits)
