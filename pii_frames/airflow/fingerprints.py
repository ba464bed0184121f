"""What identifies a chunk's output: canonical hashes of payloads and tables, the model revision (its id and a
cheap checkpoint hash) and the package version, plus the time stamps the audit records.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from typing import Any

import pyarrow as pa

__all__ = ["checkpoint_fingerprint", "model_revision", "package_version", "stable_hash",
           "table_content_hash", "utc_now"]

def stable_hash(payload: Any) -> str:
    """SHA-256 of canonical JSON.

    >>> stable_hash({"b": 1, "a": [2]}) == stable_hash({"a": [2], "b": 1})
    True
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def table_content_hash(table: pa.Table) -> str:
    """SHA-256 of a table's rows and schema (Arrow IPC stream of the contiguous table)."""
    sink = pa.BufferOutputStream()
    table = table.replace_schema_metadata(None).combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def package_version() -> str:
    """The installed pii_frames version (``"unknown"`` when run from a tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pii_frames")
    except PackageNotFoundError:
        return "unknown"


def checkpoint_fingerprint(checkpoint_dir: str | os.PathLike) -> str:
    """A cheap content hash of a checkpoint folder, so retrained weights in the same folder count as a new model.

    Small files (config, calibration, tokenizer) are hashed whole; large weight
    files by their size and 16 evenly spaced 64 KiB blocks, which any retraining
    changes, without reading gigabytes.
    """
    digest = hashlib.sha256()
    folder = os.fspath(checkpoint_dir)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        digest.update(f"{name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= 8 << 20:
                digest.update(handle.read())
                continue
            block = 64 << 10
            for i in range(16):
                handle.seek((size - block) * i // 15)
                digest.update(handle.read(block))
    return digest.hexdigest()


def model_revision(model: str | None) -> str:
    """``<model id>@<checkpoint hash prefix>`` for the model ``pii_frames.load(model)`` would use, without loading it.

    >>> model_revision("default")                # doctest: +ELLIPSIS
    'pii-frames/default@...'
    """
    from pii_frames.engine.loading import resolve_checkpoint

    checkpoint_dir, model_id = resolve_checkpoint(model)
    return f"{model_id}@{checkpoint_fingerprint(checkpoint_dir)[:12]}"


def utc_now() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
