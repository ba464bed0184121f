"""Reduced-precision expert weights for CPU inference (fp32 activations and accumulation).

At small batches a CPU forward is bound by streaming the expert weights (4.4 GB
of fp32 for a 64-token document); the experts are 90% of the parameters.

* ``float16``: each expert is packed for fbgemm's fp16-weight GEMM, which
  widens the weights inside the kernel: half the bytes, fp32 math, and on
  AVX-512 CPUs also faster than the fp32 GEMM at every batch size. fp16 holds
  bf16 checkpoint values exactly (except magnitudes below 6e-5, which keep an
  absolute error under 3e-8), so on the released bf16 weights it is
  near-lossless.
* ``bfloat16``: experts stored bf16 and widened to fp32 one expert at a time
  just before its GEMM. Exact for bf16 checkpoints (the released weights are
  bf16) and half the memory, but not faster than fp32: the widened copy has to
  be written and read again.

int8 is not offered: widening int8 weights before an fp32 GEMM was slower than
fp32, and fbgemm's dynamic int8 GEMM (activations quantized per call) was only
~10% faster than fp16 at 1 x 64 while agreeing with fp32 on 75% of the labels.
"""

from __future__ import annotations

import torch
from torch import nn

from . import expert_groups, kernels

__all__ = ["QuantizedExperts", "quantize_moe_", "dequantized_expert_weights"]


class QuantizedExperts:
    """Expert weights of one MoE layer in reduced storage; ``run`` mirrors the fp32 path."""

    def __init__(self, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, mode: str):
        if mode not in ("bfloat16", "float16"):
            raise ValueError(f"reduced expert storage must be bfloat16 or float16, got {mode!r}")
        self.mode = mode
        self.num_experts = w1.shape[0]
        self.b1 = b1.detach().float().contiguous()
        self.b2 = b2.detach().float().contiguous()
        self.packed: tuple[list, list] | None = None
        if mode == "float16" and kernels.fbgemm_fp16_available():
            try:  # Linear layout [out, in] per expert, fp16 inside the pack.
                self.packed = (
                    [kernels.pack_fp16(w1[e].detach().T, self.b1[e]) for e in range(self.num_experts)],
                    [kernels.pack_fp16(w2[e].detach().T, self.b2[e]) for e in range(self.num_experts)],
                )
            except RuntimeError:
                self.packed = None  # no usable fbgemm: widen per expert like bf16
        if self.packed is not None:
            self.w1 = self.w2 = None
        else:
            dtype = getattr(torch, mode)
            self.w1 = w1.detach().to(dtype).contiguous()  # [E, H, 2I]
            self.w2 = w2.detach().to(dtype).contiguous()  # [E, I, H]

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.mode)

    def dequantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """fp32 (w1 [E, H, 2I], b1, w2 [E, I, H], b2), e.g. for saving."""
        if self.packed is not None:
            w1 = torch.stack([kernels.unpack_fp16(p)[0] for p in self.packed[0]]).transpose(-2, -1)
            w2 = torch.stack([kernels.unpack_fp16(p)[0] for p in self.packed[1]]).transpose(-2, -1)
            return w1, self.b1, w2, self.b2
        return self.w1.float(), self.b1, self.w2.float(), self.b2

    def run(self, x_sorted: torch.Tensor, routing, limit: float, alpha: float) -> torch.Tensor:
        from .moe import run_expert_slabs

        x_sorted = x_sorted.float()
        if self.packed is not None:
            first_packs, second_packs = self.packed
            return run_expert_slabs(
                x_sorted,
                routing.ends,
                lambda e, rows: kernels.linear_fp16(rows, first_packs[e]),
                lambda e, act: kernels.linear_fp16(act, second_packs[e]),
                limit,
                alpha,
                whole_group=expert_groups.group_runner("fbgemm_fp16", first_packs, second_packs, limit=limit, alpha=alpha),
            )
        w1, b1, w2, b2 = self.w1, self.b1, self.w2, self.b2
        return run_expert_slabs(
            x_sorted,
            routing.ends,
            lambda e, rows: kernels.linear(rows, w1[e].float().T, b1[e]),
            lambda e, act: kernels.linear(act, w2[e].float().T, b2[e]),
            limit,
            alpha,
        )


def quantize_moe_(moe: nn.Module, mode: str) -> None:
    """Replace a MoE layer's fp32 expert parameters by reduced storage, in place.

    >>> from pii_frames.model.config import ModelConfig
    >>> from pii_frames.model.moe import MoE
    >>> moe = MoE(ModelConfig(1, 8, 8, 2, 1, 10, 33, 4, 2, 1)).requires_grad_(False)
    >>> _ = [p.normal_() for p in moe.parameters()]
    >>> quantize_moe_(moe, "float16")
    >>> moe.quantized.dtype, moe(torch.randn(3, 8)).shape
    (torch.float16, torch.Size([3, 8]))
    """
    moe.quantized = QuantizedExperts(moe.swiglu_weight, moe.swiglu_bias, moe.out_weight, moe.out_bias, mode)
    # The fp32 originals are dropped so only the reduced copy stays resident.
    for name in ("swiglu_weight", "swiglu_bias", "out_weight", "out_bias"):
        moe._parameters[name] = nn.Parameter(torch.empty(0), requires_grad=False)


def dequantized_expert_weights(moe: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w1, b1, w2, b2) of a MoE layer as stored or widened back to fp32."""
    if moe.quantized is not None:
        return moe.quantized.dequantized()
    return moe.swiglu_weight, moe.swiglu_bias, moe.out_weight, moe.out_bias
