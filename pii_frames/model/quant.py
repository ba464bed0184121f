"""Reduced-precision expert weights for CPU inference (fp32 compute).

At small batches a CPU forward is bound by reading expert weights (4.4 GB of
fp32 for a 64-token document). Storing the experts in bf16/fp16 halves that,
int8 (symmetric, one scale per output channel) quarters it. Each expert's
slab is widened to fp32 just before its GEMM, so routing, activations and
accumulation stay fp32.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QuantizedExperts", "quantize_moe_", "dequantized_expert_weights"]


class QuantizedExperts:
    """Expert weights of one MoE layer in a reduced storage dtype."""

    def __init__(self, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, mode: str):
        self.mode = mode
        self.b1 = b1.float().contiguous()
        self.b2 = b2.float().contiguous()
        if mode == "int8":
            self.w1, self.s1 = _quantize_int8(w1)
            self.w2, self.s2 = _quantize_int8(w2)
        else:
            dtype = getattr(torch, mode)
            self.w1, self.s1 = w1.to(dtype).contiguous(), None
            self.w2, self.s2 = w2.to(dtype).contiguous(), None

    def expert_weights(self, expert: int) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 (w1 [H, 2I], w2 [I, H]) of one expert."""
        w1 = self.w1[expert].float()
        w2 = self.w2[expert].float()
        if self.s1 is not None:
            w1 = w1 * self.s1[expert]
            w2 = w2 * self.s2[expert]
        return w1, w2

    def dequantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        w1 = self.w1.float()
        w2 = self.w2.float()
        if self.s1 is not None:
            w1 = w1 * self.s1[:, None, :]
            w2 = w2 * self.s2[:, None, :]
        return w1, self.b1, w2, self.b2

    def run(self, x_sorted: torch.Tensor, routing, limit: float, alpha: float) -> torch.Tensor:
        from .moe import clamped_swiglu

        out = torch.empty(x_sorted.shape[0], self.b2.shape[-1], dtype=torch.float32, device=x_sorted.device)
        ends = routing.ends.tolist()
        start = 0
        for expert, end in enumerate(ends):
            if end == start:
                continue
            w1, w2 = self.expert_weights(expert)
            rows = x_sorted[start:end].float()
            z = torch.addmm(self.b1[expert], rows, w1)
            act = clamped_swiglu(z, limit, alpha)
            torch.addmm(self.b2[expert], act, w2, out=out[start:end])
            start = end
        return out


def _quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[E, K, N] float -> int8 [E, K, N] and fp32 scales [E, N] (per expert, per output column)."""
    weight = weight.float()
    scale = weight.abs().amax(dim=-2).clamp(min=1e-12) / 127.0
    quantized = torch.round(weight / scale[:, None, :]).clamp(-127, 127).to(torch.int8)
    return quantized.contiguous(), scale.contiguous()


def quantize_moe_(moe: nn.Module, mode: str) -> None:
    """Replace a MoE layer's fp32 expert parameters by reduced storage, in place."""
    moe.quantized = QuantizedExperts(moe.swiglu_weight, moe.swiglu_bias, moe.out_weight, moe.out_bias, mode)
    # The fp32 originals are dropped so only the reduced copy stays resident.
    for name in ("swiglu_weight", "swiglu_bias", "out_weight", "out_bias"):
        moe._parameters[name] = nn.Parameter(torch.empty(0), requires_grad=False)


def dequantized_expert_weights(moe: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w1, b1, w2, b2) of a MoE layer as stored or widened back to fp32."""
    if moe.quantized is not None:
        return moe.quantized.dequantized()
    return moe.swiglu_weight, moe.swiglu_bias, moe.out_weight, moe.out_bias
