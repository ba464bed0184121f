"""The CUDA backend: grouped expert GEMMs, bf16 (or fp32) projections, fp32 router and accumulation.

:func:`pii_frames.model.backend.select_backend` picks it for CUDA models. At load
time each MoE layer's expert weights are stored column-major (same shapes and
values), so each expert's ``w[e].T`` is the contiguous Linear layout the
grouped GEMM kernels expect, and ``torch._grouped_mm`` is tried once on that
layer's real weights; where it is missing or fails (old torch, odd sizes) the
layer runs the reference's padded batched matmul instead, decided there and
then. Attention and the other ops are the reference's, in the weights' dtype
with an fp32 softmax.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .expert_groups import clamped_swiglu_inplace
from .reference import ReferenceOps, sink_attention

__all__ = ["CudaBackend"]


class CudaBackend:
    """Heavy ops of a CUDA forward (inference). Tested on a GPU only; CI without CUDA skips it."""

    name = "cuda"

    def __init__(self):
        self.grouped: set[int] = set()  # id() of the MoE layers whose grouped GEMM worked when loaded

    def prepare_moe(self, moe) -> None:
        for name in ("swiglu_weight", "out_weight"):
            weight = moe._parameters[name]
            if weight.dim() == 3 and not weight.transpose(-2, -1).is_contiguous():
                relaid = weight.detach().transpose(-2, -1).contiguous().transpose(-2, -1)
                moe._parameters[name] = nn.Parameter(relaid, requires_grad=weight.requires_grad)
        if self._grouped_mm_works(moe):
            self.grouped.add(id(moe))

    def _grouped_mm_works(self, moe) -> bool:
        weight = moe.swiglu_weight
        align = 16 // weight.element_size()  # strides must be multiples of 16 bytes
        if not hasattr(torch, "_grouped_mm") or weight.shape[-1] % align or weight.shape[-2] % align:
            return False
        experts = weight.shape[0]
        x = torch.zeros(experts, weight.shape[1], dtype=weight.dtype, device=weight.device)
        offs = torch.arange(1, experts + 1, dtype=torch.int32, device=weight.device)
        try:
            with torch.inference_mode():
                torch._grouped_mm(x, weight, offs=offs)
            return True
        except (RuntimeError, NotImplementedError):
            return False

    def release(self, model) -> None:
        """The parameters are the weights here: nothing to give back."""

    def scope(self, rows: int):
        return contextlib.nullcontext(self)

    def linear(self, x, weight, bias):
        return F.linear(x.to(weight.dtype), weight, bias)

    def attention(self, q, k, v, sinks, key_valid, left: int, right: int):
        return sink_attention(q, k, v, sinks, key_valid, left, right)

    def experts(self, moe, x_sorted: torch.Tensor, routing) -> torch.Tensor:
        if id(moe) not in self.grouped:
            return ReferenceOps().experts(moe, x_sorted, routing)
        w1, w2 = moe.swiglu_weight, moe.out_weight
        offs = routing.ends.to(torch.int32)
        experts = routing.expert_of_pair
        z = torch._grouped_mm(x_sorted.to(w1.dtype), w1, offs=offs).float()
        act = clamped_swiglu_inplace(z.add_(moe.swiglu_bias.float()[experts]), moe.limit, moe.alpha)
        del z
        y = torch._grouped_mm(act.to(w2.dtype), w2, offs=offs).float()
        return y.add_(moe.out_bias.float()[experts])
