"""A group of expert GEMMs run in one TorchScript call (CPU inference).

A 64-token forward makes ~1,800 expert GEMMs of one to six rows each. Called one
at a time from Python, every call pays ``torch.ops`` argument parsing on the
order of its own work, and when expert groups run side by side on two threads
every call also takes the GIL back, so the threads queue on it. A
scripted function runs a whole group's loop in the TorchScript interpreter:
the same kernels in the same order, dispatched from C++ with the GIL released
for the whole group (measurements: benchmarks/README.md, "Sorted MoE").

Each kind takes the per-expert weights the way :mod:`pii_frames.model.cpu_experts`
prepares them. ``torch.jit.script`` is deprecated in recent torch but still
compiles in 2.13; :func:`script` returns None where it does not, and the
backend then runs the same kernels from Python in the same order (identical
values).
"""

import functools
import warnings

import torch

__all__ = ["KINDS", "clamped_swiglu_inplace", "script"]

# ``Scalar?[]`` of mkldnn::_linear_pointwise is ``List[Optional[number]]`` in TorchScript.
_NoScalars = list[int | float | complex | None]


def clamped_swiglu_inplace(z: torch.Tensor, limit: float, alpha: float) -> torch.Tensor:
    """:func:`pii_frames.model.reference.clamped_swiglu` overwriting ``z`` (bit-identical), scriptable.

    >>> clamped_swiglu_inplace(torch.tensor([[0.0, 10.0, 1.0, -10.0]]), 7.0, 1.702).round().tolist()
    [[0.0, -42.0]]
    """
    gate, up = z.chunk(2, dim=-1)
    gate = gate.clamp_(max=limit)
    up = up.clamp_(min=-limit, max=limit).add_(1)
    return torch.mul(gate, alpha).sigmoid_().mul_(gate).mul_(up)


def _onednn_group(x: torch.Tensor, experts: list[int], starts: list[int], ends: list[int], per_slab: bool,
                  w1: list[torch.Tensor], b1: torch.Tensor, w2: list[torch.Tensor], b2: torch.Tensor,
                  limit: float, alpha: float) -> torch.Tensor:
    no_scalars: _NoScalars = []
    out = []
    if per_slab:
        for i in range(len(experts)):
            e = experts[i]
            pre = torch.ops.mkldnn._linear_pointwise(x[starts[i]:ends[i]], w1[e], b1[e], "none", no_scalars, "")
            act = clamped_swiglu_inplace(pre, limit, alpha)
            out.append(torch.ops.mkldnn._linear_pointwise(act, w2[e], b2[e], "none", no_scalars, ""))
        return torch.cat(out)
    pres = []
    for i in range(len(experts)):
        e = experts[i]
        pres.append(torch.ops.mkldnn._linear_pointwise(x[starts[i]:ends[i]], w1[e], b1[e], "none", no_scalars, ""))
    acts = clamped_swiglu_inplace(torch.cat(pres), limit, alpha)
    offset = starts[0]
    for i in range(len(experts)):
        e = experts[i]
        act = acts[starts[i] - offset:ends[i] - offset]
        out.append(torch.ops.mkldnn._linear_pointwise(act, w2[e], b2[e], "none", no_scalars, ""))
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


KINDS = {"onednn": _onednn_group, "fbgemm_fp16": _fbgemm_fp16_group}


@functools.cache
def script(kind: str):
    """The scripted group function of ``kind`` (see :data:`KINDS`), or None where it does not compile.

    Called as ``fn(x_sorted, experts, starts, ends, per_slab, *weights, limit, alpha)``: the
    [rows, H] outputs of experts ``experts`` applied to rows ``starts[i]:ends[i]``, the
    activation once over all pre-activations or (``per_slab``) on each slab while it is in cache.

    >>> script("onednn") is None or callable(script("onednn"))
    True
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice of torch.jit.script
            return torch.jit.script(KINDS[kind])
    except Exception:  # any compile failure means: the Python loop
        return None
