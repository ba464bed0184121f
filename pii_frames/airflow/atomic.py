"""Moved to :mod:`pii_frames.io.atomic` (one I/O module for the CLI and the job); re-exported here.

>>> from pii_frames.airflow.atomic import atomic_write
>>> atomic_write.__module__
'pii_frames.io.atomic'
"""

from pii_frames.io.atomic import (  # noqa: F401
    atomic_write,
    atomic_write_json,
    fsync_directory,
    link_or_copy,
    replace_directory,
    replace_symlink,
    scratch_directory,
    sweep_stale_temporaries,
    temporary_sibling,
)
