"""CPU thread counts: the default rule, scoped changes, and children forked after multi-threaded work."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["forked_after_multithreaded_work", "note_multithreaded_cpu_work", "threads_for_call", "torch_threads"]


def threads_for_call(device: torch.device, requested: int | None | str = "auto") -> int | None:
    """The torch thread count for one run of model calls; None leaves torch's setting alone.

    ``"auto"`` (the engine's default) is torch's own setting: every core unless
    the caller changed it, at every case size: on two cores two threads beat one on
    the user path at every size measured, also beside a busy process on the other
    core (benchmarks/README.md, "Threads"). In a child forked after multi-threaded
    work the answer is 1 (see :func:`forked_after_multithreaded_work`).

    >>> threads_for_call(torch.device("cpu"), 3), threads_for_call(torch.device("cuda"))
    (3, None)
    """
    threads = None if requested == "auto" else requested
    if device.type == "cpu":
        if forked_after_multithreaded_work():
            return 1  # the OpenMP team inherited through fork would hang
        if (threads or torch.get_num_threads()) > 1:
            note_multithreaded_cpu_work()
    return threads


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
