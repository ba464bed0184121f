"""Sparse mixture-of-experts feed-forward block (top-k routing, clamped SwiGLU).

Routing is always fp32: router logits, top-k (sorted), softmax over the k
selected logits, divided by k. Token-expert pairs are sorted by expert so that
each expert multiplies one contiguous slab of rows:

* CPU inference (fp32): one oneDNN GEMM per expert that received tokens over
  its contiguous slab (see :mod:`pii_frames.model.kernels`; oneDNN uses
  AVX-512 where MKL's grouped fallback does not), the loop over experts run
  as one TorchScript call (:mod:`pii_frames.model.expert_groups`);
* other inference (CUDA): two grouped GEMMs (``torch._grouped_mm``) over the
  sorted rows, one call per layer for all experts; where it is unavailable
  (odd sizes, old torch) a padded batched matmul over the experts that were hit;
* training (grad enabled): the padded batched matmul, which autograd
  differentiates (``_grouped_mm`` has no CPU backward);
* reduced-precision CPU weights: see :mod:`pii_frames.model.quant`.

The k expert outputs of a token are combined deterministically: un-permute
into [N, k, H] and sum over k in fp32 (no scatter-add), then multiply by k.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import expert_groups, kernels
from .config import ModelConfig
from .norm import RMSNorm

__all__ = ["MoE", "clamped_swiglu", "run_expert_slabs", "small_input_threading"]


def clamped_swiglu(z: torch.Tensor, limit: float, alpha: float, inplace: bool = False) -> torch.Tensor:
    """gate * sigmoid(alpha * gate) * (up + 1) with gate clamped above and up both sides.

    ``z`` holds the gate half first and the linear ("up") half second.
    ``inplace`` overwrites ``z`` (inference only) to save memory passes; the
    result is bit-identical.

    >>> z = torch.tensor([[0.0, 10.0, 1.0, -10.0]])  # gates (0, 10), ups (1, -10)
    >>> clamped_swiglu(z, 7.0, 1.702).round().tolist()  # 7 * sigmoid(11.9) * (-7 + 1)
    [[0.0, -42.0]]
    """
    if inplace:  # one definition, shared with the scripted expert groups
        return expert_groups.clamped_swiglu_inplace(z, limit, alpha)
    gate, up = z.chunk(2, dim=-1)
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return gate * torch.sigmoid(gate * alpha) * (up + 1)


class _Routing:
    """Token-expert pairs sorted by expert (shared by every execution path)."""

    def __init__(self, router_logits: torch.Tensor, top_k: int, num_experts: int):
        top_values, top_experts = torch.topk(router_logits, top_k, dim=-1, sorted=True)
        self.weights = torch.softmax(top_values, dim=-1) / top_k  # [N, k] fp32
        flat = top_experts.reshape(-1)
        self.order = torch.argsort(flat, stable=True)  # pair index, grouped by expert
        self.token_of_pair = self.order // top_k
        self.expert_of_pair = flat[self.order]
        self.counts = torch.bincount(flat, minlength=num_experts)
        self.ends = torch.cumsum(self.counts, dim=0)
        self.top_k = top_k
        self.num_tokens = router_logits.shape[0]

    def combine(self, expert_out: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """[N*k, H] outputs in sorted order -> [N, H]: weighted, summed over k, times k.

        ``inplace`` reuses ``expert_out`` (fp32, not needed for autograd) as scratch.
        """
        pair_weights = self.weights.reshape(-1)[self.order, None]
        if inplace and expert_out.dtype == torch.float32:
            weighted = expert_out.mul_(pair_weights)
        else:
            weighted = expert_out.float() * pair_weights
        unsorted = torch.empty_like(weighted).index_copy_(0, self.order, weighted)
        return unsorted.view(self.num_tokens, self.top_k, -1).sum(dim=1).mul_(self.top_k)


def run_expert_slabs(x_sorted, ends, first, second, limit: float, alpha: float, whole_group=None) -> torch.Tensor:
    """Apply each expert to its contiguous slab of expert-sorted rows.

    ``first(e, rows)`` gives [rows, 2I] pre-activations and ``second(e, act)``
    the [rows, H] output of expert ``e``; a single host sync for ``ends``.
    ``whole_group(x_sorted, experts, starts, ends, per_slab)`` (see
    :mod:`pii_frames.model.expert_groups`), when given, runs the same loop over
    a group of experts in one call without the GIL; None from it means "use
    the Python loop over ``first`` and ``second``".

    Small inputs (see ``_SMALL_INPUT_MAX_ROWS``; e.g. 1 x 64 tokens: ~880
    experts of ~3 rows per forward) run the clamped SwiGLU once over a group of
    experts' pre-activations, because seven small activation ops per expert
    cost more than reading the slab in cache saves. With more than one torch thread the
    experts are also split into contiguous groups run side by side (the
    caller's thread runs the first, a small thread pool the others), each GEMM
    single-threaded: an OpenMP team per GEMM of three rows spends more time in
    its barrier than in the GEMM, while whole experts in parallel stream twice
    the weight bytes.
    Large inputs run the activation in place on each slab while it is still in
    cache and let each GEMM use the torch threads. All schedules give identical
    values (the activation is elementwise, each GEMM is the same call).
    """
    bounds = []
    start = 0
    for expert, end in enumerate(ends.tolist()):
        if end > start:
            bounds.append((expert, start, end))
        start = end
    workers = min(getattr(_SIDE_BY_SIDE, "workers", None) or torch.get_num_threads(), len(bounds),
                  _MAX_EXPERT_WORKERS)
    if x_sorted.device.type != "cpu":
        workers = 1
    rows = x_sorted.shape[0]
    side_by_side_pays = workers >= 2 and rows <= _GROUP_MAX_ROWS_PER_EXPERT * ends.numel()
    if rows > _SMALL_INPUT_MAX_ROWS and not side_by_side_pays:
        out = _run_whole_group(whole_group, x_sorted, bounds, per_slab=True)
        if out is not None:
            return out
        return torch.cat([second(expert, clamped_swiglu(first(expert, x_sorted[lo:hi]), limit, alpha, inplace=True))
                          for expert, lo, hi in bounds])

    def run_group(group):
        out = _run_whole_group(whole_group, x_sorted, group, per_slab=False)
        if out is not None:
            return out
        pre = torch.cat([first(expert, x_sorted[lo:hi]) for expert, lo, hi in group])
        act = clamped_swiglu(pre, limit, alpha, inplace=True)
        offset = group[0][1]
        return torch.cat([second(expert, act[lo - offset:hi - offset]) for expert, lo, hi in group])

    if workers < 2:
        return run_group(bounds)
    groups = _split_by_rows(bounds, workers)
    grad_enabled, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run_in_worker(group):
        # Grad and inference mode are thread-local: carry the caller's into the worker.
        with torch.inference_mode(inference), torch.set_grad_enabled(grad_enabled):
            return run_group(group)

    with kernels.torch_threads(1):  # workers start their OpenMP state from this value, and keep it
        pending = [_expert_pool(len(groups) - 1).submit(run_in_worker, group) for group in groups[1:]]
        outputs = [run_group(groups[0])]
        outputs.extend(future.result() for future in pending)
    return torch.cat(outputs)


def _run_whole_group(whole_group, x_sorted, group, per_slab: bool):
    if whole_group is None or not group:
        return None
    experts, starts, ends = (list(column) for column in zip(*group))
    return whole_group(x_sorted, experts, starts, ends, per_slab)


# The group schedule of run_expert_slabs is used up to _SMALL_INPUT_MAX_ROWS rows (token-expert pairs) and,
# with two or more threads, up to _GROUP_MAX_ROWS_PER_EXPERT rows per expert on average: with each group one
# TorchScript call, groups side by side beat per-expert multi-threaded GEMMs there, while with few large
# experts per-expert GEMMs on all threads win, and on one thread the activation per slab (in cache) wins
# above _SMALL_INPUT_MAX_ROWS. The measurements behind each limit: benchmarks/README.md ("Expert schedule").
_SMALL_INPUT_MAX_ROWS = 2048
_GROUP_MAX_ROWS_PER_EXPERT = 128
_MAX_EXPERT_WORKERS = 8
# Rows up to which a whole forward runs on one OpenMP thread (small_input_threading). Above it, attention
# on several threads gains more than the idle OpenMP thread's spinning costs (benchmarks/README.md).
_ONE_OPENMP_THREAD_MAX_ROWS = 1024
_SIDE_BY_SIDE = threading.local()


@contextmanager
def small_input_threading(rows: int, device: torch.device) -> Iterator[None]:
    """Run one small CPU forward on one OpenMP thread, its experts side by side on the torch thread count.

    ``rows`` is the number of token-expert pairs. With several torch threads, a
    small forward's attention and projections each open an OpenMP team; between
    regions the idle team member spins on its core for a while, and the expert
    groups of run_expert_slabs then share that core with it (measured: one group
    1.7x slower than the other, 1 x 64 fp16 97 ms instead of 70 ms). One thread
    for the dense ops and the thread pool for the experts avoids the spinning.
    Inference only; a no-op on other devices, at one thread, or above
    ``_ONE_OPENMP_THREAD_MAX_ROWS`` rows.
    """
    threads = torch.get_num_threads()
    if (device.type != "cpu" or threads < 2 or rows > _ONE_OPENMP_THREAD_MAX_ROWS or torch.is_grad_enabled()
            or getattr(_SIDE_BY_SIDE, "workers", None)):
        yield
        return
    _SIDE_BY_SIDE.workers = threads
    try:
        with kernels.torch_threads(1):
            yield
    finally:
        _SIDE_BY_SIDE.workers = None


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


_GROUPED_MM_BROKEN: set[tuple[str, torch.dtype]] = set()


def _grouped_mm_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    if not hasattr(torch, "_grouped_mm") or (x.device.type, weight.dtype) in _GROUPED_MM_BROKEN:
        return False
    if x.device.type not in ("cpu", "cuda"):
        return False
    align = 16 // weight.element_size()  # strides must be multiples of 16 bytes
    return weight.shape[-1] % align == 0 and weight.shape[-2] % align == 0


class MoE(nn.Module):
    """Pre-norm + router + ``num_experts`` clamped-SwiGLU experts.

    ``forward`` maps the residual stream [N, H] to the block's update [N, H] (fp32).

    Parameters follow the opf layout: ``swiglu_weight`` [E, H, 2I] (gate columns
    first), ``swiglu_bias`` [E, 2I], ``out_weight`` [E, I, H], ``out_bias`` [E, H].
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden, inter, experts = config.hidden_size, config.intermediate_size, config.num_experts
        self.top_k = config.experts_per_token
        self.num_experts = experts
        self.limit = config.swiglu_limit
        self.alpha = config.swiglu_alpha
        self.norm = RMSNorm(hidden, config.rms_norm_eps)
        self.gate = nn.Linear(hidden, experts)
        self.swiglu_weight = nn.Parameter(torch.empty(experts, hidden, 2 * inter))
        self.swiglu_bias = nn.Parameter(torch.empty(experts, 2 * inter))
        self.out_weight = nn.Parameter(torch.empty(experts, inter, hidden))
        self.out_bias = nn.Parameter(torch.empty(experts, hidden))
        # Set by pii_frames.model.quant for reduced-precision CPU weights.
        self.quantized = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x, self.swiglu_weight.dtype if self.quantized is None else torch.float32)
        router_logits = F.linear(h.float(), self.gate.weight.float(), self.gate.bias.float())
        routing = _Routing(router_logits, self.top_k, self.num_experts)
        x_sorted = h[routing.token_of_pair]
        if self.quantized is not None:
            expert_out = self.quantized.run(x_sorted, routing, self.limit, self.alpha)
        elif torch.is_grad_enabled() and (h.requires_grad or self.swiglu_weight.requires_grad):
            expert_out = self._padded_bmm(x_sorted, routing)
        elif x_sorted.device.type == "cpu" and x_sorted.dtype == torch.float32 and kernels.onednn_available():
            expert_out = self._per_expert_onednn(x_sorted, routing)
        elif _grouped_mm_usable(x_sorted, self.swiglu_weight):
            try:
                expert_out = self._grouped(x_sorted, routing)
            except (RuntimeError, NotImplementedError):
                _GROUPED_MM_BROKEN.add((x_sorted.device.type, self.swiglu_weight.dtype))
                expert_out = self._padded_bmm(x_sorted, routing)
        else:
            expert_out = self._padded_bmm(x_sorted, routing)
        return routing.combine(expert_out, inplace=not torch.is_grad_enabled())

    def _per_expert_onednn(self, x_sorted: torch.Tensor, routing: _Routing) -> torch.Tensor:
        # w[e].T is a strided [out, in] view of the row-major opf layout; oneDNN reads
        # it in place, which measured faster than a contiguous Linear-layout copy at
        # every batch size on CPU (benchmarks/README.md).
        w1, b1, w2, b2 = self.swiglu_weight, self.swiglu_bias, self.out_weight, self.out_bias
        return run_expert_slabs(
            x_sorted.float(),
            routing.ends,
            lambda e, rows: kernels.linear(rows, w1[e].T, b1[e]),
            lambda e, act: kernels.linear(act, w2[e].T, b2[e]),
            self.limit,
            self.alpha,
            whole_group=expert_groups.group_runner("onednn_fp32", w1, b1, w2, b2, limit=self.limit, alpha=self.alpha),
        )

    def use_linear_layout_(self) -> MoE:
        """Store expert weights column-major (same shapes and values) so that each
        expert's ``w[e].T`` is a contiguous Linear-layout matrix, the layout the
        CUDA grouped GEMM kernels expect. (On CPU the row-major layout is faster.)"""
        for name in ("swiglu_weight", "out_weight"):
            weight = self._parameters[name]
            if weight.dim() == 3 and not weight.transpose(-2, -1).is_contiguous():
                relaid = weight.detach().transpose(-2, -1).contiguous().transpose(-2, -1)
                self._parameters[name] = nn.Parameter(relaid, requires_grad=weight.requires_grad)
        return self

    def _grouped(self, x_sorted: torch.Tensor, routing: _Routing) -> torch.Tensor:
        """Inference: two grouped GEMMs over the expert-sorted rows, fp32 elementwise in place."""
        w1, w2 = self.swiglu_weight, self.out_weight
        offs = routing.ends.to(torch.int32)
        experts = routing.expert_of_pair
        z = torch._grouped_mm(x_sorted.to(w1.dtype), w1, offs=offs).float()
        z.add_(self.swiglu_bias.float()[experts])
        act = clamped_swiglu(z, self.limit, self.alpha, inplace=True)
        del z
        y = torch._grouped_mm(act.to(w2.dtype), w2, offs=offs).float()
        return y.add_(self.out_bias.float()[experts])

    def _padded_bmm(self, x_sorted: torch.Tensor, routing: _Routing) -> torch.Tensor:
        """Differentiable path: rows scattered into [hit experts, max count, H], two bmm."""
        counts = routing.counts
        hit = torch.nonzero(counts).squeeze(1)
        compact = torch.full_like(counts, -1)
        compact[hit] = torch.arange(hit.numel(), device=counts.device)
        starts = routing.ends - counts
        experts = routing.expert_of_pair
        slot = torch.arange(experts.numel(), device=experts.device) - starts[experts]
        expert_slot = compact[experts]
        capacity = int(counts.max())
        w1, w2 = self.swiglu_weight[hit], self.out_weight[hit]
        rows = x_sorted.new_zeros(hit.numel(), capacity, x_sorted.shape[-1], dtype=w1.dtype)
        rows = rows.index_put((expert_slot, slot), x_sorted.to(w1.dtype))
        z = torch.bmm(rows, w1).float() + self.swiglu_bias[hit].float()[:, None, :]
        act = clamped_swiglu(z, self.limit, self.alpha).to(w2.dtype)
        y = torch.bmm(act, w2).float() + self.out_bias[hit].float()[:, None, :]
        return y[expert_slot, slot]
