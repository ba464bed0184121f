"""The CPU backend (inference): oneDNN projections, flash attention, and the expert schedule.

:func:`pii_frames.model.backend.select_backend` picks it for CPU models when they
are loaded; it prepares every MoE layer's experts for its kernels once
(:mod:`pii_frames.model.cpu_experts`) and then runs each forward's heavy ops.

The expert schedule (:func:`run_expert_slabs`). Token-expert pairs arrive sorted
by expert, so each expert multiplies one contiguous slab of rows:

* Large inputs run the clamped SwiGLU in place on each slab while it is still
  in cache, and let each GEMM use the torch threads.
* Small inputs (e.g. 1 x 64 tokens: ~880 experts of ~3 rows per forward) run the
  activation once over a group of experts' pre-activations, because seven
  small activation ops per expert cost more than reading the slab in cache saves.
* With several threads, small inputs and those up to ``group_max_rows_per_expert``
  rows per expert also split the experts into contiguous groups run side by
  side (the caller's thread runs the first, a small thread pool the others),
  each GEMM single-threaded: an OpenMP team per GEMM of three rows spends more
  time in its barrier than in the GEMM, while whole experts in parallel stream
  twice the weight bytes. A forward of up to ``one_thread_max_rows`` pairs also
  runs its dense ops on one OpenMP thread: between parallel regions the idle
  team member spins on its core, and the expert group sharing that core then
  runs much slower.

Each group is one TorchScript call where it compiles (:mod:`pii_frames.model.expert_groups`).
Every schedule gives identical values: the activation is elementwise and each
GEMM is the same call. The limits' measurements: benchmarks/README.md ("Expert schedule").
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import expert_groups
from .cpu_attention import flash_sink_attention
from .cpu_experts import CpuKernels, PreparedExperts, onednn_linear, prepare_experts, probe_kernels, scripted_group
from .expert_groups import clamped_swiglu_inplace
from .reference import sink_attention
from .threads import torch_threads

__all__ = ["CpuBackend", "CpuSchedule", "run_expert_slabs"]

_EXPERT_PARAMETERS = ("swiglu_weight", "swiglu_bias", "out_weight", "out_bias")


@dataclass(frozen=True)
class CpuSchedule:
    """Where each expert schedule applies (see the module notes); ``scripted=False`` runs every group in Python."""

    small_input_max_rows: int = 2048
    group_max_rows_per_expert: int = 128
    max_workers: int = 8
    one_thread_max_rows: int = 1024
    scripted: bool = True


class CpuBackend:
    """Heavy ops of a CPU forward; experts stored in ``weight_dtype`` ("float32", "float16", "bfloat16").

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> from pii_frames.model import load_model
    >>> load_model(EMBEDDED_MODEL_DIR).backend.name
    'cpu'
    """

    name = "cpu"

    def __init__(self, weight_dtype: str = "float32", *, schedule: CpuSchedule = CpuSchedule(),
                 kernels: CpuKernels | None = None):
        self.weight_dtype = weight_dtype
        self.schedule = schedule
        self.kernels = kernels or probe_kernels()
        self.groups = {kind: scripted_group(kind) for kind in expert_groups.KINDS} if schedule.scripted else {}

    def prepare_moe(self, moe) -> None:
        """Store a layer's experts in the kernel layout and drop the parameters (one copy stays resident)."""
        if moe.prepared is not None:
            if moe.prepared.dtype == getattr(torch, self.weight_dtype):
                return  # prepared by another CPU backend: the layout is the same
            self._restore(moe, moe.gate.weight.device)
        # One thread: thousands of small reorders spend longer in OpenMP barriers than in work (twice as
        # long on two threads beside a busy process).
        with torch_threads(1):
            moe.prepared = prepare_experts(moe.swiglu_weight, moe.swiglu_bias, moe.out_weight, moe.out_bias,
                                           self.weight_dtype, self.kernels)
        for name in _EXPERT_PARAMETERS:
            moe._parameters[name] = nn.Parameter(torch.empty(0), requires_grad=False)

    def release(self, model) -> None:
        """Put every layer's experts back into its parameters (fp32, opf layout), e.g. for training."""
        for block in model.block:
            self._restore(block.mlp, model.device)

    @staticmethod
    def _restore(moe, device: torch.device) -> None:
        if moe.prepared is not None:
            for name, tensor in zip(_EXPERT_PARAMETERS, moe.prepared.dequantized()):
                moe._parameters[name] = nn.Parameter(tensor.to(device, torch.float32).contiguous(),
                                                     requires_grad=False)
            moe.prepared = None

    @contextmanager
    def scope(self, rows: int):
        """One forward of ``rows`` token-expert pairs: small ones run dense ops on one OpenMP thread."""
        threads = torch.get_num_threads()
        if threads >= 2 and rows <= self.schedule.one_thread_max_rows and not torch.is_grad_enabled():
            with torch_threads(1):
                yield _CpuCall(self, threads)
        else:
            yield _CpuCall(self, threads)

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.kernels.onednn and x.dtype == torch.float32 and weight.dtype == torch.float32:
            return onednn_linear(x, weight, bias)
        return F.linear(x.to(weight.dtype), weight, bias)

    def attention(self, q, k, v, sinks, key_valid, left: int, right: int) -> torch.Tensor:
        if self.kernels.flash_attention and q.dtype == torch.float32:
            return flash_sink_attention(q, k, v, sinks, key_valid, left, right)
        return sink_attention(q, k, v, sinks, key_valid, left, right)

    def experts(self, moe, x_sorted: torch.Tensor, routing, workers: int) -> torch.Tensor:
        if moe.prepared is None:
            raise RuntimeError("this MoE layer's experts are not prepared for the CPU backend; "
                               "load the model with load_model or call backend.use_backend(model, CpuBackend())")
        prepared = moe.prepared
        return run_expert_slabs(x_sorted.float(), routing.ends, prepared, moe.limit, moe.alpha, workers=workers,
                                schedule=self.schedule, group=self.groups.get(prepared.kind))


class _CpuCall:
    """The ops of one forward: the backend's, with the number of workers its expert groups may use."""

    def __init__(self, backend: CpuBackend, workers: int):
        self.backend, self.workers = backend, workers
        self.linear, self.attention = backend.linear, backend.attention

    def experts(self, moe, x_sorted, routing):
        return self.backend.experts(moe, x_sorted, routing, self.workers)


def run_expert_slabs(x_sorted: torch.Tensor, ends: torch.Tensor, experts: PreparedExperts, limit: float,
                     alpha: float, *, workers: int = 1, schedule: CpuSchedule = CpuSchedule(),
                     group=None) -> torch.Tensor:
    """[rows, H] outputs of each expert applied to its slab of the expert-sorted rows (one host sync).

    ``ends[e]`` is where expert e's slab ends; ``group`` is the scripted group of
    ``experts.kind`` or None (Python loop). See the module notes for the schedules.

    >>> from pii_frames.model.cpu_experts import prepare_experts
    >>> experts = prepare_experts(torch.ones(2, 4, 6), torch.zeros(2, 6), torch.ones(2, 3, 4), torch.zeros(2, 4),
    ...                           "float32")
    >>> run_expert_slabs(torch.ones(5, 4), torch.tensor([2, 5]), experts, 7.0, 1.702).shape
    torch.Size([5, 4])
    """
    bounds = []
    start = 0
    for expert, end in enumerate(ends.tolist()):
        if end > start:
            bounds.append((expert, start, end))
        start = end
    if not bounds:
        return x_sorted.new_zeros(0, x_sorted.shape[1])
    workers = min(workers, len(bounds), schedule.max_workers)
    rows = x_sorted.shape[0]
    side_by_side_pays = workers >= 2 and rows <= schedule.group_max_rows_per_expert * ends.numel()
    if rows > schedule.small_input_max_rows and not side_by_side_pays:
        return _run_group(x_sorted, bounds, experts, group, limit, alpha, per_slab=True)
    if workers < 2:
        return _run_group(x_sorted, bounds, experts, group, limit, alpha, per_slab=False)
    parts = _split_by_rows(bounds, workers)
    grad_enabled, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run_in_worker(part):
        # Grad and inference mode are thread-local: carry the caller's into the worker.
        with torch.inference_mode(inference), torch.set_grad_enabled(grad_enabled):
            return _run_group(x_sorted, part, experts, group, limit, alpha, per_slab=False)

    with torch_threads(1):  # workers start their OpenMP state from this value, and keep it
        pending = [_expert_pool(len(parts) - 1).submit(run_in_worker, part) for part in parts[1:]]
        outputs = [_run_group(x_sorted, parts[0], experts, group, limit, alpha, per_slab=False)]
        outputs.extend(future.result() for future in pending)
    return torch.cat(outputs)


def _run_group(x_sorted, bounds, experts: PreparedExperts, group, limit, alpha, per_slab: bool) -> torch.Tensor:
    if group is not None:
        ids, starts, ends = (list(column) for column in zip(*bounds))
        return group(x_sorted, ids, starts, ends, per_slab, *experts.weights, limit, alpha)
    if per_slab:
        return torch.cat([experts.second(e, clamped_swiglu_inplace(experts.first(e, x_sorted[lo:hi]), limit, alpha))
                          for e, lo, hi in bounds])
    pre = torch.cat([experts.first(e, x_sorted[lo:hi]) for e, lo, hi in bounds])
    act = clamped_swiglu_inplace(pre, limit, alpha)
    offset = bounds[0][1]
    return torch.cat([experts.second(e, act[lo - offset:hi - offset]) for e, lo, hi in bounds])


def _split_by_rows(bounds: list[tuple[int, int, int]], parts: int) -> list[list[tuple[int, int, int]]]:
    """Contiguous groups of (expert, start, end) with about the same number of rows each."""
    total = bounds[-1][2] - bounds[0][1]
    groups: list[list[tuple[int, int, int]]] = [[]]
    for bound in bounds:
        filled = bound[1] - bounds[0][1]
        if groups[-1] and len(groups) < parts and filled >= total * len(groups) / parts:
            groups.append([])
        groups[-1].append(bound)
    return groups


_EXPERT_POOLS: dict[int, ThreadPoolExecutor] = {}
_EXPERT_POOLS_LOCK = threading.Lock()


def _forget_pools_in_child() -> None:
    # A forked child (multiprocessing, Airflow's task runner) inherits the executors but not their
    # threads: work submitted there would never run. The child builds its own pools on first use.
    global _EXPERT_POOLS_LOCK
    _EXPERT_POOLS.clear()
    _EXPERT_POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _expert_pool(workers: int) -> ThreadPoolExecutor:
    with _EXPERT_POOLS_LOCK:
        if workers not in _EXPERT_POOLS:
            _EXPERT_POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="pii-frames-experts")
        return _EXPERT_POOLS[workers]
