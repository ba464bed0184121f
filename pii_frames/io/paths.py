"""Is this the same file, or inside that folder? Answered the way the filesystem and the database see it.

A string comparison of paths misses ``..``, symbolic links, hard links and bind
mounts; a comparison of table names misses the database's identifier rules
(``main.RAW_TICKETS`` *is* ``main.raw_tickets`` in DuckDB). Every check that
guards a source from being overwritten goes through here.
"""

from __future__ import annotations

import os


def resolved(path: str | os.PathLike) -> str:
    """Absolute path with ``~``, ``..`` and symbolic links resolved (also for paths that do not exist yet).

    >>> resolved("/tmp/a/../b") == os.path.realpath("/tmp/b")
    True
    """
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def same_location(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name the same file or folder (through ``..``, symlinks and hard links).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> data = os.path.join(folder, "in.parquet")
    >>> open(data, "w").close()
    >>> os.symlink(data, os.path.join(folder, "link.parquet"))
    >>> same_location(data, os.path.join(folder, "sub", "..", "link.parquet"))
    True
    >>> same_location(data, os.path.join(folder, "out.parquet"))
    False
    """
    a, b = resolved(first), resolved(second)
    if a == b:
        return True
    try:
        # Hard links, bind mounts and case-insensitive filesystems: same inode under two names.
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` lies strictly below ``folder`` (through ``..``, symlinks and bind mounts).

    >>> inside("/data/raw/x/../clean.parquet", "/data/raw")
    True
    >>> inside("/data/raw_clean.parquet", "/data/raw")
    False
    >>> inside("/data/raw", "/data/raw")
    False
    """
    target, root = resolved(path), resolved(folder)
    if target.startswith(root.rstrip(os.sep) + os.sep):
        return True
    if not os.path.isdir(root):
        return False
    # The same folder may be reachable under another name (bind mount, case-insensitive
    # filesystem): compare each existing ancestor of the path by inode.
    parent = os.path.dirname(target)
    while True:
        if os.path.exists(parent) and same_location(parent, root):
            return True
        upper = os.path.dirname(parent)
        if upper == parent:
            return False
        parent = upper


def overlaps(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether writing one path could touch the other: the same path, or one inside the other.

    >>> overlaps("/data/raw", "/data/raw/clean"), overlaps("/data/raw", "/data/clean")
    (True, False)
    """
    return same_location(first, second) or inside(first, second) or inside(second, first)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_duckdb_identifier(name: str) -> str:
    """The form DuckDB compares identifiers in: ASCII letters case-folded, quoted or not.

    DuckDB keeps the case an identifier was created with but matches names
    case-insensitively (``"RAW_TICKETS"`` finds ``raw_tickets``); only ASCII
    letters fold (``"Ét"`` and ``"ét"`` are two tables).

    >>> fold_duckdb_identifier("Main.RAW_Tickets")
    'main.raw_tickets'
    >>> fold_duckdb_identifier("Ét") == fold_duckdb_identifier("ét")
    False
    """
    return name.translate(_ASCII_LOWER)
