"""Crash-safe writes: a file or folder appears complete under its final name, or not at all.

Every temporary this package creates is named ``.<target name>.pii-<tag>-<host>-<pid>-<random>``
beside its target, so that a later run can tell its own leftovers (from a
``kill -9``, an OOM kill, a power cut) from anybody else's files, and whether
the process that made them is still alive: :func:`sweep_stale_temporaries`
removes only names of that form whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

#: Temporaries made on another machine (shared filesystems) are swept only after this many seconds,
#: since their process cannot be checked from here.
FOREIGN_HOST_MAX_AGE_S = 24 * 3600

_TEMP_NAME = re.compile(
    r"^\.(?P<name>.+)\.pii-(?P<tag>[a-z]+)-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}$"
)
# Names pii_frames 0.1 used (no process id): ours beyond reasonable doubt, but whether their writer
# still runs is unknown, so they are only swept once they are a day old.
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<tag>tmp|publish|old)-[0-9a-f]{12}$")


def _host_tag() -> str:
    # platform.node() is the host name gethostname() gives, read from the system without the socket module.
    return hashlib.sha256(platform.node().encode("utf-8", "replace")).hexdigest()[:8]


def temporary_sibling(path: str, tag: str = "tmp") -> str:
    """A unique name next to ``path`` (same folder, so a rename never crosses filesystems).

    The name records this host and process, for :func:`sweep_stale_temporaries`.

    >>> name = temporary_sibling("/data/out/part.parquet")
    >>> name.startswith("/data/out/.part.parquet.pii-tmp-") and is_temporary_of(name, "/data/out/part.parquet")
    True
    """
    if not re.fullmatch(r"[a-z]+", tag):
        raise ValueError(f"temporary tag must be lowercase letters, got {tag!r}")
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.pii-{tag}-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temporary_of(candidate: str, target: str) -> bool:
    """Whether ``candidate`` is named like one of this package's temporaries for ``target``.

    >>> is_temporary_of("/d/.x.csv.pii-tmp-0123abcd-42-89abcdef", "/d/x.csv")
    True
    >>> is_temporary_of("/d/.x.csv.swp", "/d/x.csv")
    False
    """
    match = _TEMP_NAME.match(os.path.basename(candidate))
    return bool(match and match["name"] == os.path.basename(target)
                and os.path.dirname(candidate) == os.path.dirname(target))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or a pid we cannot check): leave it alone
    return True


def _is_stale(path: str, name: str, now: float) -> bool:
    """Whether ``path`` is a temporary for target ``name`` whose writer is gone."""
    match = _TEMP_NAME.match(os.path.basename(path))
    if match and match["name"] == name:
        if match["host"] == _host_tag():
            return not _pid_alive(int(match["pid"]))
    else:
        match = _LEGACY_TEMP_NAME.match(os.path.basename(path))
        if not (match and match["name"] == name):
            return False
    try:
        age = now - os.lstat(path).st_mtime
    except OSError:
        return False
    return age > FOREIGN_HOST_MAX_AGE_S


def is_stale_temporary(path: str) -> bool:
    """Whether ``path`` is one of this package's temporaries whose writer is gone (see the module docs).

    >>> is_stale_temporary(f"/d/.x.csv.pii-tmp-{_host_tag()}-{os.getpid()}-0123abcd")  # our own process
    False
    """
    match = _TEMP_NAME.match(os.path.basename(path))
    return bool(match) and _is_stale(path, match["name"], time.time())


def sweep_stale_temporaries(target: str) -> list[str]:
    """Remove leftovers of earlier, dead runs that wrote ``target``; returns the removed paths.

    Only names made by :func:`temporary_sibling` for this very target are
    considered: from this host when their process no longer exists, from
    another host (shared filesystems) or pii_frames 0.1 when older than a day.
    Any other file, including another program's temporaries, is never touched.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "out.csv")
    >>> dead = os.path.join(folder, f".out.csv.pii-tmp-{_host_tag()}-999999999-0123abcd")
    >>> for path in (dead, os.path.join(folder, ".out.csv.swp")):
    ...     open(path, "w").close()
    >>> [os.path.basename(p) for p in sweep_stale_temporaries(target)] == [os.path.basename(dead)]
    True
    >>> sorted(os.listdir(folder))
    ['.out.csv.swp']
    """
    folder, name = os.path.split(os.path.abspath(target))
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("." + name + ".") or not _is_stale(entry.path, name, now):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        except FileNotFoundError:
            continue  # another sweeper got there first
        except OSError as error:
            log.warning("could not remove stale temporary %s: %s", entry.path, error)
            continue
        log.info("removed stale temporary %s left by an earlier run", entry.path)
        removed.append(entry.path)
    return removed


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
    """Write ``payload`` as pretty JSON, atomically.

    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> atomic_write_json(target, {"rows": 3})
    >>> json.load(open(target))
    {'rows': 3}
    """

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
    ``target`` must not be a symbolic link (see :func:`replace_symlink`).
    """
    if os.path.islink(target):
        raise OSError(errno.EINVAL, "replace_directory does not replace symbolic links; use replace_symlink", target)
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


def replace_symlink(link: str, new_target: str) -> None:
    """Point the symbolic link ``link`` at ``new_target`` in one atomic step (blue/green publishing).

    A new link is made under a temporary name and renamed over the old one, so a
    reader resolves the old target or the new one, never nothing. A relative link
    stays relative.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("v1", "v2"):
    ...     os.mkdir(os.path.join(folder, name))
    >>> os.symlink("v1", os.path.join(folder, "current"))
    >>> replace_symlink(os.path.join(folder, "current"), os.path.join(folder, "v2"))
    >>> os.readlink(os.path.join(folder, "current"))
    'v2'
    """
    parent = os.path.dirname(os.path.abspath(link))
    relative = not os.path.isabs(os.readlink(link)) if os.path.islink(link) else False
    value = os.path.relpath(new_target, parent) if relative else os.path.abspath(new_target)
    tmp = temporary_sibling(os.path.abspath(link), "link")
    os.symlink(value, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
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
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)


class Terminated(BaseException):
    """Raised in the main thread when the process gets SIGTERM or SIGHUP inside :func:`terminate_on_signals`.

    A BaseException, like KeyboardInterrupt, so ``except Exception`` handlers do
    not swallow it while ``finally`` blocks (which remove temporaries) still run.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


@contextlib.contextmanager
def terminate_on_signals(signals: tuple[int, ...] | None = None) -> Iterator[None]:
    """Within the block, turn SIGTERM/SIGHUP into :class:`Terminated` so cleanups run before exiting.

    Only signals whose handler is the default one are taken over (an embedding
    application's own handlers are left alone), only in the main thread, and
    only for the first signal: a second one kills the process as usual (its
    temporaries are then swept by the next run).

    Here on SIGUSR1, set to its default first: the example must not depend on
    what the running process (a test runner, a notebook) did to SIGTERM.

    >>> previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    >>> try:
    ...     with terminate_on_signals((signal.SIGUSR1,)):
    ...         os.kill(os.getpid(), signal.SIGUSR1)
    ... except Terminated as stop:
    ...     print(stop)
    terminated by SIGUSR1
    >>> _ = signal.signal(signal.SIGUSR1, previous if previous is not None else signal.SIG_DFL)
    """
    if signals is None:
        signals = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        signal.signal(signum, signal.SIG_DFL)
        raise Terminated(signum)

    previous = {}
    for signum in signals:
        if signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
