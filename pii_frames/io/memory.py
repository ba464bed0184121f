"""Keep a long run's memory flat: bound native per-shape caches, give freed memory back to the OS.

Streaming a big table allocates and frees the same amount of memory for every
batch. Two things made the resident size of a long run grow far past what one
batch needs (2.9 GB after four minutes on a 300 MB CSV):

- glibc's malloc keeps freed memory in its arenas rather than returning it
  (~1.0 GB with a trim after each batch): :func:`release_memory`;
- torch's oneDNN path caches compiled kernels per input shape, in oneDNN's
  primitive cache and ideep's cache, 1,024 entries each by default. Every
  model batch has other shapes (rows x tokens; rows per expert), so both fill
  up: ~430 MB of live heap on the embedded model, and allocations scattered
  around them fragment the heap, so the peak inside model calls crept up
  batch after batch (0.74 -> 1.31 GB over 8 batches of 1,024 rows, still
  rising). :func:`bound_native_caches` caps them at
  :data:`NATIVE_CACHE_ENTRIES`: the peak stays at ~0.65 GB, with the same
  CPU time per row (benchmarks/bench_memory.py, benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Callable

#: Entries kept by each of oneDNN's and ideep's per-shape caches (see the module docstring). Creating a
#: kernel again when it was evicted costs microseconds to a millisecond; measured, no CPU time per row.
NATIVE_CACHE_ENTRIES = 16
#: The variables the two libraries read when they first create a kernel, i.e. at the first model call.
NATIVE_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_native_caches() -> dict[str, str]:
    """Cap oneDNN's and ideep's per-shape kernel caches at :data:`NATIVE_CACHE_ENTRIES`; returns the settings.

    The libraries read these variables once, when the process first runs a
    oneDNN kernel, so this must run before the model's first oneDNN call
    (:func:`pii_frames.engine.loading.load_shared_model` calls it before
    loading a model). A value the user already set is kept.

    >>> settings = bound_native_caches()
    >>> sorted(settings) == sorted(NATIVE_CACHE_VARIABLES) and all(v.isdigit() for v in settings.values())
    True
    """
    return {name: os.environ.setdefault(name, str(NATIVE_CACHE_ENTRIES)) for name in NATIVE_CACHE_VARIABLES}


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has malloc_trim (musl, e.g. Alpine, does not)
            return None
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> bool:
    """Return freed heap memory to the OS (Arrow's pool, then glibc's ``malloc_trim(0)``).

    Cheap enough to call after every batch (milliseconds); a no-op where the
    allocator has no such call. Returns whether ``malloc_trim`` was available.

    >>> isinstance(release_memory(), bool)
    True
    """
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
