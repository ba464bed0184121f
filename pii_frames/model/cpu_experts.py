"""One MoE layer's experts prepared for the CPU kernels (inference), probed once per process.

At small batches a CPU forward is bound by streaming the expert weights (4.3 GB
of fp32 for a 64-token document on the full model); at 16-256 rows per expert
by the GEMMs themselves. The experts are 90% of the parameters, so each weight
mode stores them once, in the layout its kernel reads (the model's expert
parameters are then empty; :meth:`PreparedExperts.dequantized` gives them back):

* ``float32``: every expert packed once into oneDNN's blocked layout
  (``mkldnn::_reorder_linear_weight``), which ``mkldnn::_linear_pointwise`` reads
  directly: bit for bit the values of the strided oneDNN GEMM (tested), faster
  where a GEMM would otherwise re-block its weights on every call. PyTorch's
  default fp32 GEMM (MKL) does not use AVX-512 on AMD CPUs; oneDNN does.
  Without the packing op, oneDNN reads strided views of the opf layout; without
  oneDNN, ``F.linear`` does.
* ``float16``: fbgemm fp16-weight packs (fp32 activations and accumulation): half
  the bytes, and on AVX-512 also faster compute. fp16 holds bf16 checkpoint
  values exactly (magnitudes below 6e-5 keep an absolute error under 3e-8).
* ``bfloat16``: stored bf16 (exact for the bf16 release), widened to fp32 one
  expert at a time before its GEMM: half the memory, not faster.

Figures for each: benchmarks/README.md ("Expert GEMMs", "What makes it fast").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import expert_groups

__all__ = ["CpuKernels", "PreparedExperts", "prepare_experts", "probe_kernels", "scripted_group"]

_LINEAR_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
_REORDER = getattr(getattr(torch.ops, "mkldnn", None), "_reorder_linear_weight", None)


@dataclass(frozen=True)
class CpuKernels:
    """Which CPU kernels work in this process (see :func:`probe_kernels`)."""

    onednn: bool
    onednn_packed: bool
    fbgemm_fp16: bool
    flash_attention: bool


def _runs(fn) -> bool:
    try:
        fn()
        return True
    except (RuntimeError, NotImplementedError, AttributeError):
        return False


@functools.cache
def probe_kernels() -> CpuKernels:
    """Try each kernel once on a tiny input; the backend picks its paths from the answer.

    >>> isinstance(probe_kernels().onednn, bool)
    True
    """
    x, w = torch.ones(1, 2), torch.ones(3, 2)
    onednn = (_LINEAR_POINTWISE is not None and torch.backends.mkldnn.is_available()
              and _runs(lambda: _LINEAR_POINTWISE(x, w, None, "none", [], "")))
    packed = onednn and _REORDER is not None and _runs(lambda: _LINEAR_POINTWISE(x, _REORDER(w, None), None,
                                                                                 "none", [], ""))
    engines = torch.backends.quantized.supported_engines
    fbgemm = (("fbgemm" in engines or "x86" in engines) and hasattr(torch.ops.quantized, "linear_prepack_fp16")
              and _runs(lambda: torch.ops.quantized.linear_prepack_fp16(w, None)))
    flash = hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    return CpuKernels(onednn, packed, fbgemm, flash)


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` through oneDNN (weight [out, in], strided or pre-packed).

    >>> probe_kernels().onednn is False or onednn_linear(torch.ones(1, 2), torch.ones(3, 2), None).tolist()
    [[2.0, 2.0, 2.0]]
    """
    return _LINEAR_POINTWISE(x, weight, bias, "none", [], "")


class PreparedExperts:
    """The experts of one layer in a kernel's layout.

    ``first(e, rows)`` gives expert ``e``'s [rows, 2I] pre-activations and
    ``second(e, act)`` its [rows, H] output; ``kind`` names the scripted group
    (:mod:`pii_frames.model.expert_groups`) that runs the same kernels on ``weights``.
    """

    dtype = torch.float32
    kind: str | None = None
    weights: tuple = ()

    def first(self, e: int, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def second(self, e: int, act: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dequantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """fp32 (w1 [E, H, 2I], b1 [E, 2I], w2 [E, I, H], b2 [E, H]) in the opf layout."""
        raise NotImplementedError


class Float32Experts(PreparedExperts):
    """fp32 experts: oneDNN packed, oneDNN on strided views, or ``F.linear`` (see the module notes)."""

    def __init__(self, w1, b1, w2, b2, kernels: CpuKernels):
        self.b1, self.b2 = b1.detach().float().contiguous(), b2.detach().float().contiguous()
        self.packed = kernels.onednn_packed
        if self.packed:
            self.w1 = [_REORDER(w1[e].detach().float().T.contiguous(), None) for e in range(w1.shape[0])]
            self.w2 = [_REORDER(w2[e].detach().float().T.contiguous(), None) for e in range(w2.shape[0])]
        else:  # [out, in] views of the opf layout, read in place
            self._opf = (w1.detach().float(), w2.detach().float())
            self.w1 = [w.T for w in self._opf[0]]
            self.w2 = [w.T for w in self._opf[1]]
        self.linear = onednn_linear if kernels.onednn else F.linear
        self.kind = "onednn" if kernels.onednn else None
        self.weights = (self.w1, self.b1, self.w2, self.b2)

    def first(self, e, rows):
        return self.linear(rows, self.w1[e], self.b1[e])

    def second(self, e, act):
        return self.linear(act, self.w2[e], self.b2[e])

    def dequantized(self):
        if not self.packed:
            return self._opf[0], self.b1, self._opf[1], self.b2
        return (torch.stack([w.to_dense() for w in self.w1]).transpose(-2, -1), self.b1,
                torch.stack([w.to_dense() for w in self.w2]).transpose(-2, -1), self.b2)


class Float16Experts(PreparedExperts):
    """fbgemm fp16-weight packs, Linear layout [out, in] per expert, biases inside the packs."""

    dtype = torch.float16
    kind = "fbgemm_fp16"

    def __init__(self, w1, b1, w2, b2):
        self.b1, self.b2 = b1.detach().float().contiguous(), b2.detach().float().contiguous()
        prepack = torch.ops.quantized.linear_prepack_fp16
        self.packs1 = [prepack(w1[e].detach().float().T.contiguous(), self.b1[e]) for e in range(w1.shape[0])]
        self.packs2 = [prepack(w2[e].detach().float().T.contiguous(), self.b2[e]) for e in range(w2.shape[0])]
        self.weights = (self.packs1, self.packs2)

    def first(self, e, rows):
        return torch.ops.quantized.linear_dynamic_fp16(rows, self.packs1[e])

    def second(self, e, act):
        return torch.ops.quantized.linear_dynamic_fp16(act, self.packs2[e])

    def dequantized(self):
        unpack = torch.ops.quantized.linear_unpack_fp16
        w1 = torch.stack([unpack(p)[0].float() for p in self.packs1]).transpose(-2, -1)
        w2 = torch.stack([unpack(p)[0].float() for p in self.packs2]).transpose(-2, -1)
        return w1, self.b1, w2, self.b2


class WidenedExperts(PreparedExperts):
    """Experts stored in ``dtype`` (bf16; fp16 without fbgemm), widened to fp32 per expert before its GEMM."""

    def __init__(self, w1, b1, w2, b2, dtype: torch.dtype, kernels: CpuKernels):
        self.dtype = dtype
        self.b1, self.b2 = b1.detach().float().contiguous(), b2.detach().float().contiguous()
        self.w1, self.w2 = w1.detach().to(dtype).contiguous(), w2.detach().to(dtype).contiguous()
        self.linear = onednn_linear if kernels.onednn else F.linear

    def first(self, e, rows):
        return self.linear(rows, self.w1[e].float().T, self.b1[e])

    def second(self, e, act):
        return self.linear(act, self.w2[e].float().T, self.b2[e])

    def dequantized(self):
        return self.w1.float(), self.b1, self.w2.float(), self.b2


def prepare_experts(w1, b1, w2, b2, mode: str, kernels: CpuKernels | None = None) -> PreparedExperts:
    """The experts (opf layout: w1 [E, H, 2I], b1, w2 [E, I, H], b2) prepared for ``mode``'s kernel.

    >>> w1, b1, w2, b2 = torch.ones(2, 4, 6), torch.zeros(2, 6), torch.ones(2, 3, 4), torch.zeros(2, 4)
    >>> experts = prepare_experts(w1, b1, w2, b2, "float16")
    >>> experts.first(1, torch.ones(5, 4)).shape, experts.dequantized()[0].shape
    (torch.Size([5, 6]), torch.Size([2, 4, 6]))
    """
    kernels = kernels or probe_kernels()
    if mode == "float32":
        return Float32Experts(w1, b1, w2, b2, kernels)
    if mode == "float16" and kernels.fbgemm_fp16:
        return Float16Experts(w1, b1, w2, b2)
    if mode in ("float16", "bfloat16"):
        return WidenedExperts(w1, b1, w2, b2, getattr(torch, mode), kernels)
    raise ValueError(f"CPU expert storage must be float32, float16 or bfloat16, got {mode!r}")


@functools.cache
def scripted_group(kind: str):
    """The scripted group of ``kind`` if it compiles and runs here (tried once on tiny experts), else None.

    >>> scripted_group("onednn") is None or callable(scripted_group("onednn"))
    True
    """
    function = expert_groups.script(kind)
    if function is None:
        return None
    mode = {"onednn": "float32", "fbgemm_fp16": "float16"}[kind]
    tiny = prepare_experts(torch.ones(1, 2, 4), torch.zeros(1, 4), torch.ones(1, 2, 2), torch.zeros(1, 2), mode)
    if tiny.kind != kind:
        return None
    try:
        with torch.inference_mode():
            function(torch.ones(1, 2), [0], [0], [1], False, *tiny.weights, 7.0, 1.702)
    except RuntimeError:
        return None
    return function
