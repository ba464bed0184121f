"""A group of expert GEMMs run in one TorchScript call (CPU inference).

A 64-token forward makes ~1,800 expert GEMMs of one to six rows each. Called one
at a time from Python, every call pays 8-12 us of ``torch.ops`` argument
parsing on top of 30-50 us of work, and when expert groups run side by side on
two threads every call also takes the GIL back, so the threads queue on it. A
scripted function runs a whole group's loop in the TorchScript interpreter:
the same kernels in the same order, dispatched from C++ with the GIL released
for the whole group. Measured at 1 x 64 tokens, one MoE layer (~110 experts
hit), 2 threads: fp16 weights 7.2 -> 4.2 ms, fp32 11.7 -> 10.1 ms; 1 thread:
fp16 11.0 -> 7.8 ms, fp32 21.4 -> 16.3 ms.

``torch.jit.script`` is deprecated in recent torch but still compiles in 2.13.
Where it is missing, fails to compile (e.g. no fbgemm for the fp16 group) or
fails at run time, :func:`group_runner` returns None or the call returns None,
and :func:`pii_frames.model.moe.run_expert_slabs` runs its Python loop, which
calls the same kernels in the same order: the values are identical either way.
"""

import threading
import warnings
from typing import Callable

import torch

__all__ = ["group_runner", "clamped_swiglu_inplace"]

# ``Scalar?[]`` of mkldnn::_linear_pointwise is ``List[Optional[number]]`` in TorchScript.
_NoScalars = list[int | float | complex | None]


def clamped_swiglu_inplace(z: torch.Tensor, limit: float, alpha: float) -> torch.Tensor:
    """``moe.clamped_swiglu(z, limit, alpha, inplace=True)``, written here so the scripted groups compile it.

    >>> clamped_swiglu_inplace(torch.tensor([[0.0, 10.0, 1.0, -10.0]]), 7.0, 1.702).round().tolist()
    [[0.0, -42.0]]
    """
    gate, up = z.chunk(2, dim=-1)
    gate = gate.clamp_(max=limit)
    up = up.clamp_(min=-limit, max=limit).add_(1)
    return torch.mul(gate, alpha).sigmoid_().mul_(gate).mul_(up)


def _onednn_fp32_group(x: torch.Tensor, experts: list[int], starts: list[int], ends: list[int],
                       per_slab: bool, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                       limit: float, alpha: float) -> torch.Tensor:
    no_scalars: _NoScalars = []
    out = []
    if per_slab:
        for i in range(len(experts)):
            e = experts[i]
            pre = torch.ops.mkldnn._linear_pointwise(x[starts[i]:ends[i]], w1[e].t(), b1[e], "none", no_scalars, "")
            act = clamped_swiglu_inplace(pre, limit, alpha)
            out.append(torch.ops.mkldnn._linear_pointwise(act, w2[e].t(), b2[e], "none", no_scalars, ""))
        return torch.cat(out)
    pres = []
    for i in range(len(experts)):
        e = experts[i]
        pres.append(torch.ops.mkldnn._linear_pointwise(x[starts[i]:ends[i]], w1[e].t(), b1[e], "none", no_scalars, ""))
    acts = clamped_swiglu_inplace(torch.cat(pres), limit, alpha)
    offset = starts[0]
    for i in range(len(experts)):
        e = experts[i]
        act = acts[starts[i] - offset:ends[i] - offset]
        out.append(torch.ops.mkldnn._linear_pointwise(act, w2[e].t(), b2[e], "none", no_scalars, ""))
    return torch.cat(out)


def _fbgemm_fp16_group(x: torch.Tensor, experts: list[int], starts: list[int], ends: list[int], per_slab: bool,
                       packs1: list[torch.classes.quantized.LinearPackedParamsBase],
                       packs2: list[torch.classes.quantized.LinearPackedParamsBase],
                       limit: float, alpha: float) -> torch.Tensor:
    out = []
    if per_slab:
        for i in range(len(experts)):
            pre = torch.ops.quantized.linear_dynamic_fp16(x[starts[i]:ends[i]], packs1[experts[i]])
            act = clamped_swiglu_inplace(pre, limit, alpha)
            out.append(torch.ops.quantized.linear_dynamic_fp16(act, packs2[experts[i]]))
        return torch.cat(out)
    pres = []
    for i in range(len(experts)):
        pres.append(torch.ops.quantized.linear_dynamic_fp16(x[starts[i]:ends[i]], packs1[experts[i]]))
    acts = clamped_swiglu_inplace(torch.cat(pres), limit, alpha)
    offset = starts[0]
    for i in range(len(experts)):
        act = acts[starts[i] - offset:ends[i] - offset]
        out.append(torch.ops.quantized.linear_dynamic_fp16(act, packs2[experts[i]]))
    return torch.cat(out)


_SOURCES = {"onednn_fp32": _onednn_fp32_group, "fbgemm_fp16": _fbgemm_fp16_group}
_compiled: dict = {}
_compile_lock = threading.Lock()
# Flipped by tests to check that the Python loop gives the same values.
enabled = True


def _scripted(kind: str):
    with _compile_lock:
        if kind not in _compiled:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the deprecation notice of torch.jit.script
                    _compiled[kind] = torch.jit.script(_SOURCES[kind])
            except Exception:  # any compile failure means: use the Python loop
                _compiled[kind] = None
        return _compiled[kind]


def group_runner(kind: str, *weights, limit: float, alpha: float) -> Callable | None:
    """``run(x_sorted, experts, starts, ends, per_slab)`` for run_expert_slabs, or None.

    ``kind`` is ``"onednn_fp32"`` (weights: w1 [E, H, 2I], b1, w2 [E, I, H], b2)
    or ``"fbgemm_fp16"`` (weights: the two lists of fbgemm fp16 packs). ``run``
    returns the [rows, H] outputs of experts ``experts`` applied to rows
    ``starts[i]:ends[i]`` of ``x_sorted``, with the activation once over all
    pre-activations or (``per_slab``) on each slab while it is in cache, or None
    when the scripted call failed (the caller then runs its Python loop).

    >>> import torch
    >>> w1, b1 = torch.ones(1, 2, 4), torch.zeros(1, 4)
    >>> w2, b2 = torch.ones(1, 2, 2), torch.zeros(1, 2)
    >>> run = group_runner("onednn_fp32", w1, b1, w2, b2, limit=7.0, alpha=1.702)
    >>> run is None or run(torch.ones(1, 2), [0], [0], [1], per_slab=False).shape == (1, 2)
    True
    """
    if not enabled:
        return None
    function = _scripted(kind)
    if function is None:
        return None

    def run(x_sorted: torch.Tensor, experts: list, starts: list, ends: list, per_slab: bool) -> torch.Tensor | None:
        try:
            return function(x_sorted, experts, starts, ends, per_slab, *weights, limit, alpha)
        except RuntimeError:
            with _compile_lock:
                _compiled[kind] = None  # broken here: the Python loop from now on
            return None

    return run
