"""Crash-safe writes: a file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import sys
import uuid
from typing import Any, Callable, Iterator


def temporary_sibling(path: str, tag: str = "tmp") -> str:
    """A unique name next to ``path`` (same folder, so a rename never crosses filesystems).

    >>> temporary_sibling("/data/out/part.parquet").startswith("/data/out/.part.parquet.tmp-")
    True
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{tag}-{uuid.uuid4().hex[:12]}")


def fsync_directory(path: str) -> None:
    """Persist a rename inside ``path`` (no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` then rename the finished file to ``path``.

    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> atomic_write(target, lambda p: open(p, "w").write("done"))
    >>> open(target).read()
    'done'
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_directory(os.path.dirname(path) or ".")


def atomic_write_json(path: str, payload: Any) -> None:
    """Write ``payload`` as pretty JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True)

    atomic_write(path, write)


def _exchange(first: str, second: str) -> bool:
    """Swap two paths in one step with Linux renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second)


def replace_directory(new_dir: str, target: str) -> None:
    """Make ``new_dir`` appear at ``target``, replacing an existing folder there.

    On Linux the two folders are exchanged in one atomic step, so a reader sees
    the old output or the new one, never a mix. Elsewhere the old folder is
    renamed away first, leaving a moment with no folder (never a partial one).
    """
    parent = os.path.dirname(target) or "."
    if not os.path.exists(target):
        os.rename(new_dir, target)
    elif _exchange(new_dir, target):
        shutil.rmtree(new_dir)
    else:
        retired = temporary_sibling(target, "old")
        os.rename(target, retired)
        os.rename(new_dir, target)
        shutil.rmtree(retired, ignore_errors=True)
    fsync_directory(parent)


def link_or_copy(source: str, destination: str) -> None:
    """Hard-link ``source`` to ``destination`` (no extra space), copying across filesystems."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


@contextlib.contextmanager
def scratch_directory(next_to: str, tag: str) -> Iterator[str]:
    """A fresh folder beside ``next_to`` that is removed unless the caller renamed it away."""
    path = temporary_sibling(next_to, tag)
    os.makedirs(path)
    try:
        yield path
    finally:
        if os.path.exists(path):
            shutil.rmtree(path, ignore_errors=True)
