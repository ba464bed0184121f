"""CPU thread counts: the default rule, scoped changes, and children forked after multi-threaded work."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["default_num_threads", "forked_after_multithreaded_work", "note_multithreaded_cpu_work",
           "torch_threads"]


def default_num_threads(device: torch.device) -> int | None:
    """Thread count for CPU batches; None leaves torch's setting alone (e.g. on CUDA).

    On machines with two or fewer cores one thread: two OpenMP threads were over
    20x slower than one whenever another process kept a core busy, and only
    1.3-1.5x faster on an idle machine (benchmarks/README.md, "Threads").

    >>> default_num_threads(torch.device("cuda")) is None
    True
    """
    if device.type != "cpu":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 2 else None


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
