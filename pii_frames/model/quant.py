"""Reduced-precision expert weights for CPU inference (fp32 compute).

At small batches a CPU forward is bound by reading expert weights (4.4 GB of
fp32 for a 64-token document). Storing the experts in bf16 halves that. Each
hit expert's slab is widened to fp32 just before its GEMMs, while it is still
in cache, so routing, activations and accumulation stay fp32 and no fp32 copy
of the experts is ever resident. (bf16 widening is a bit shift and cheap;
fp16 is also accepted but its widening is slower on CPUs without a fast
conversion path. int8 weight-only was measured slower than fp32 on this CPU
class - its int8 -> fp32 widening costs more than the bytes it saves - so it
is not offered.)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QuantizedExperts", "quantize_moe_", "dequantized_expert_weights"]


class QuantizedExperts:
    """Expert weights of one MoE layer in a reduced storage dtype."""

    def __init__(self, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, mode: str):
        if mode not in ("bfloat16", "float16"):
            raise ValueError(f"reduced expert storage must be bfloat16 or float16, got {mode!r}")
        dtype = getattr(torch, mode)
        self.mode = mode
        self.b1 = b1.float().contiguous()
        self.b2 = b2.float().contiguous()
        self.w1 = w1.to(dtype).contiguous()
        self.w2 = w2.to(dtype).contiguous()

    def dequantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """fp32 (w1, b1, w2, b2) for saving or inspection."""
        return self.w1.float(), self.b1, self.w2.float(), self.b2

    def run(self, x_sorted: torch.Tensor, routing, limit: float, alpha: float) -> torch.Tensor:
        from .moe import clamped_swiglu

        x_sorted = x_sorted.float()
        out = torch.empty(x_sorted.shape[0], self.b2.shape[-1], dtype=torch.float32, device=x_sorted.device)
        start = 0
        # One iteration per expert that received tokens (one host sync for the
        # offsets); each widened slab is used while it is hot in cache.
        for expert, end in enumerate(routing.ends.tolist()):
            if end == start:
                continue
            z = torch.addmm(self.b1[expert], x_sorted[start:end], self.w1[expert].float())
            act = clamped_swiglu(z, limit, alpha, inplace=True)
            torch.addmm(self.b2[expert], act, self.w2[expert].float(), out=out[start:end])
            start = end
        return out


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
