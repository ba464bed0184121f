"""CPU GEMM back-ends picked at run time (inference only; autograd uses plain torch ops).

On x86 CPUs PyTorch's default fp32 GEMM is MKL, which on AMD processors does
not use AVX-512; oneDNN does, and runs the expert and projection GEMMs of this
model about 1.5-2x faster at 16+ rows (measured: 160-230 vs 87-105 GFLOP/s on
one Zen 5 core). fbgemm's fp16-weight GEMM (fp32 activations and
accumulation) halves the bytes streamed at small batches. Both are reached
through ops PyTorch registers itself; every call has a plain-torch fallback
when the op is missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F

__all__ = ["onednn_available", "fbgemm_fp16_available", "linear", "pack_fp16", "linear_fp16", "unpack_fp16",
           "torch_threads", "forked_after_multithreaded_work", "note_multithreaded_cpu_work"]

_LINEAR_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
_broken: set[str] = set()


def onednn_available() -> bool:
    """True when oneDNN fp32 linear can be used on this CPU."""
    return (
        "onednn" not in _broken
        and _LINEAR_POINTWISE is not None
        and torch.backends.mkldnn.is_available()
    )


def fbgemm_fp16_available() -> bool:
    """True when fbgemm's fp16-weight linear (x86) is available."""
    engines = torch.backends.quantized.supported_engines
    return ("fbgemm" in engines or "x86" in engines) and hasattr(
        torch.ops.quantized, "linear_prepack_fp16"
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` (weight in Linear layout [out, in]); oneDNN on CPU fp32 inference.

    >>> linear(torch.ones(1, 2), torch.ones(3, 2)).tolist()
    [[2.0, 2.0, 2.0]]
    """
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and onednn_available()
    ):
        try:
            return _LINEAR_POINTWISE(x, weight, bias, "none", [], "")
        except RuntimeError:
            _broken.add("onednn")
    return F.linear(x, weight, bias)


def pack_fp16(weight: torch.Tensor, bias: torch.Tensor | None):
    """Pack a Linear-layout fp32 weight [out, in] (+ bias) as fbgemm fp16.

    >>> packed = pack_fp16(torch.ones(3, 2), None)
    >>> linear_fp16(torch.ones(1, 2), packed).tolist()
    [[2.0, 2.0, 2.0]]
    """
    return torch.ops.quantized.linear_prepack_fp16(weight.float().contiguous(), None if bias is None else bias.float())


def linear_fp16(x: torch.Tensor, packed) -> torch.Tensor:
    """fp32 ``x @ W.T + b`` with W stored fp16 (fbgemm): fp32 activations and accumulation (see pack_fp16)."""
    return torch.ops.quantized.linear_dynamic_fp16(x, packed)


def unpack_fp16(packed) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [out, in] fp32, bias) of an fbgemm fp16 pack.

    >>> unpack_fp16(pack_fp16(torch.full((1, 2), 0.5), None))[0].tolist()
    [[0.5, 0.5]]
    """
    weight, bias = torch.ops.quantized.linear_unpack_fp16(packed)
    return weight.float(), bias


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Set torch's CPU thread count for a block and restore it after (None or the current count: no change).

    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if num_threads is None or num_threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_ran_on_several_threads = False  # by this process, or by the one it was forked from
_forked_after_several_threads = False


def note_multithreaded_cpu_work() -> None:
    """Record that this process ran CPU work on several OpenMP threads.

    Children forked after this run one thread (:func:`forked_after_multithreaded_work`).
    """
    global _ran_on_several_threads
    _ran_on_several_threads = True


def _after_fork_in_child() -> None:
    global _forked_after_several_threads
    _forked_after_several_threads = _ran_on_several_threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_after_multithreaded_work() -> bool:
    """True in a process forked (multiprocessing's default on Linux) after CPU work on several threads.

    GNU OpenMP's thread team does not survive a fork: once the parent has run a
    parallel region on two or more threads, the child's first one hangs
    (plain torch too: ``x @ x`` on 2 threads, fork, ``log_softmax`` in the
    child never returns). The runner records its own multi-threaded work with
    :func:`note_multithreaded_cpu_work` and uses one thread in such
    children. Children forked from processes that did not (Airflow's task
    supervisor, a Celery prefork parent) keep their threads.

    >>> forked_after_multithreaded_work()
    False
    """
    return _forked_after_several_threads
