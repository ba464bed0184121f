"""Fetch a checkpoint from the Hugging Face hub: the only code in pii_frames that uses the network.

It runs only when a user asks for it (``pii-frames download NAME``); loading,
detection and every adapter work offline.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from pii_frames.engine.loading import OPENAI_MODEL_NAME
from pii_frames.engine.settings import env_flag

OPF_HOME = Path.home() / ".opf" / "privacy_filter"


class DownloadError(RuntimeError):
    """The checkpoint could not be downloaded; ``usage`` is True for a malformed name."""

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def check_online(name: str) -> None:
    """Fail fast and clearly when the hub cannot be reached (instead of minutes of retries).

    >>> check_online("openai/privacy-filter")      # doctest: +SKIP
    DownloadError: cannot download openai/privacy-filter: the Hugging Face hub is not reachable from this machine...
    """
    offline_hint = (f"cannot download {name}: the Hugging Face hub is not reachable from this machine. "
                    "Download it where there is network access (pii-frames download, or "
                    "huggingface-cli download), copy the folder here, then pass --model DIR or set PII_FRAMES_MODEL")
    try:
        offline = env_flag("HF_HUB_OFFLINE")
    except ValueError:
        offline = True
    if offline:
        raise DownloadError(offline_hint.replace("is not reachable from this machine", "is disabled (HF_HUB_OFFLINE is set)"))
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a proxy decides reachability; let the client try
    endpoint = urlparse(hub_endpoint())
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=5):
            pass
    except OSError:
        raise DownloadError(offline_hint) from None


def download_checkpoint(name: str, *, revision: str | None = None, directory: str | os.PathLike | None = None):
    """Download ``name``'s opf ``original/*`` files (else its Hugging Face layout files).

    ``openai/privacy-filter`` goes to ``~/.opf/privacy_filter`` (where
    :func:`pii_frames.load` looks) unless ``directory`` is given; other names go
    to the Hugging Face cache, where ``load(NAME)`` finds them. Returns
    ``(folder, what to pass as --model)``.

    >>> download_checkpoint("openai/privacy-filter")   # doctest: +SKIP
    (PosixPath('/home/me/.opf/privacy_filter'), '/home/me/.opf/privacy_filter')
    >>> try:
    ...     download_checkpoint("not-a-repository")
    ... except DownloadError as error:
    ...     print(error.usage, error)
    True NAME must be a hub repository like openai/privacy-filter, got 'not-a-repository'
    """
    name = name.strip()
    if name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
        raise DownloadError(f"NAME must be a hub repository like openai/privacy-filter, got {name!r}", usage=True)
    check_online(name)
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise DownloadError("downloading needs the huggingface_hub package: pip install huggingface_hub") from None

    try:
        files = HfApi(endpoint=hub_endpoint()).list_repo_files(name, revision=revision)
    except Exception as error:  # the hub client raises many types (HTTP, auth, not found)
        raise DownloadError(f"cannot list {name} on the hub: {' '.join(str(error).split())}") from None
    has_original = any(f.startswith("original/") for f in files)
    patterns = ["original/*"] if has_original else ["*.json", "*.safetensors"]

    if directory is None and name != OPENAI_MODEL_NAME:
        path = Path(snapshot_download(name, revision=revision, allow_patterns=patterns))
        return (path / "original" if has_original else path), name
    target = Path(directory or OPF_HOME).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target, then move the files in: a failure leaves no half-written checkpoint.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.download-"))
    try:
        snapshot_download(name, revision=revision, allow_patterns=patterns, local_dir=staging)
        source = staging / "original" if has_original else staging
        target.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.name.startswith(".") or item.is_dir():
                continue  # hub bookkeeping (.cache) and nested folders
            os.replace(item, target / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, str(target)
