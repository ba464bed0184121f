"""Find a checkpoint, load it once per process, and hand out Detectors.

Resolution order for ``load(None)``:

1. the ``PII_FRAMES_MODEL`` environment variable (a directory or a known name);
2. a locally available ``openai/privacy-filter`` (Hugging Face cache or
   ``~/.opf/privacy_filter``, where the opf package downloads it);
3. the compact default model embedded in the wheel.

Nothing here touches the network: ``pii-frames download`` is the only command
that does.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from pii_frames.engine.settings import env_str

logger = logging.getLogger("pii_frames")

EMBEDDED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"
EMBEDDED_MODEL_NAMES = {"default", "embedded", "pii-frames/default"}
OPENAI_MODEL_NAME = "openai/privacy-filter"



class ModelNotFoundError(FileNotFoundError):
    """No checkpoint could be found for the requested model."""


@dataclass
class LoadedModel:
    """A model, its tokenizer and label space, shared by every Detector on it."""

    model: object
    tokenizer: object
    label_space: object
    calibration: dict | None
    checkpoint_dir: Path
    model_id: str
    device: torch.device
    weight_dtype: torch.dtype
    lock: threading.RLock


_MODEL_CACHE: dict[tuple[str, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()
_ANNOUNCED_DEFAULT = False


def hf_cache_dirs() -> list[Path]:
    """Hugging Face hub cache folders that may hold downloaded checkpoints."""
    dirs = []
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env_str(var):
            dirs.append(Path(env_str(var)))
    if env_str("HF_HOME"):
        dirs.append(Path(env_str("HF_HOME")) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def _is_checkpoint_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def find_local_hub_checkpoint(repo_id: str) -> Path | None:
    """Return a locally downloaded snapshot of ``repo_id``, preferring its opf ``original/`` files.

    >>> find_local_hub_checkpoint("nobody/surely-not-downloaded") is None
    True
    """
    folder = "models--" + repo_id.replace("/", "--")
    for cache in hf_cache_dirs():
        snapshots = cache / folder / "snapshots"
        if not snapshots.is_dir():
            continue
        for snap in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
            for candidate in (snap / "original", snap):
                if _is_checkpoint_dir(candidate):
                    return candidate
    if repo_id == OPENAI_MODEL_NAME:
        opf_home = Path.home() / ".opf" / "privacy_filter"
        if _is_checkpoint_dir(opf_home):
            return opf_home
    return None


def resolve_checkpoint(model: str | os.PathLike | None) -> tuple[Path, str]:
    """Turn a user's model argument into (checkpoint directory, model id).

    >>> path, model_id = resolve_checkpoint("default")
    >>> model_id
    'pii-frames/default'
    """
    global _ANNOUNCED_DEFAULT
    if model is None:
        from_env = env_str("PII_FRAMES_MODEL")
        if from_env:
            try:
                return resolve_checkpoint(from_env)
            except ModelNotFoundError as error:
                raise ModelNotFoundError(
                    f"PII_FRAMES_MODEL={from_env!r}: {error}; fix or unset the variable"
                ) from None
        local = find_local_hub_checkpoint(OPENAI_MODEL_NAME)
        if local is not None:
            return local, OPENAI_MODEL_NAME
        if not _ANNOUNCED_DEFAULT:
            _ANNOUNCED_DEFAULT = True
            logger.warning(
                "pii_frames: using the compact embedded default model (openai/privacy-filter is not available "
                "locally; run `pii-frames download openai/privacy-filter` or set PII_FRAMES_MODEL for the full model)"
            )
        return resolve_checkpoint("default")
    text = os.fspath(model)
    if text in EMBEDDED_MODEL_NAMES:
        if not _is_checkpoint_dir(EMBEDDED_MODEL_DIR):
            raise ModelNotFoundError(
                f"the embedded default model is missing from {EMBEDDED_MODEL_DIR}; reinstall pii_frames "
                "or pass model=<checkpoint directory>"
            )
        return EMBEDDED_MODEL_DIR, "pii-frames/default"
    path = Path(text).expanduser()
    if path.exists():
        if path.is_file():
            raise ModelNotFoundError(f"model {text!r} is a file; pass the checkpoint directory that contains it")
        return path.resolve(), str(path.resolve())
    if "/" in text and not text.startswith((".", "/", "~")):
        local = find_local_hub_checkpoint(text)
        if local is not None:
            return local, text
        raise ModelNotFoundError(
            f"model {text!r} is not available locally; run `pii-frames download {text}` while online, "
            "or pass the path of a checkpoint directory"
        )
    raise ModelNotFoundError(f"model directory {text!r} does not exist; pass a checkpoint directory or a model name")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    requested = device if device is not None else (env_str("PII_FRAMES_DEVICE") or "auto")
    if isinstance(requested, torch.device):
        return requested
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but CUDA is not available; use device='cpu' or 'auto'")
    return dev


def resolve_weight_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Default: fp32 weights on CPU (bf16 compute is very slow there), bf16 on CUDA.

    >>> resolve_weight_dtype(None, torch.device("cpu"))
    torch.float32
    """
    from pii_frames.model.checkpoint import resolve_weight_dtype as canonical_weight_dtype

    from_env = dtype is None and env_str("PII_FRAMES_DTYPE") is not None
    requested = dtype if dtype is not None else env_str("PII_FRAMES_DTYPE")
    try:
        return getattr(torch, canonical_weight_dtype(requested, device))
    except ValueError as error:
        if from_env:
            raise ValueError(f"PII_FRAMES_DTYPE={requested!r}: {error}") from None
        raise


def load_shared_model(checkpoint_dir: Path, model_id: str, device: torch.device, weight_dtype: torch.dtype) -> LoadedModel:
    """Load (or fetch from the process cache) one model per (checkpoint, device, dtype)."""
    from pii_frames.decode.labels import LabelSpace
    from pii_frames.decode.viterbi import load_calibration
    from pii_frames.io.memory import bound_native_caches
    from pii_frames.model.checkpoint import load_model
    from pii_frames.text.tokenizer import load_tokenizer

    key = (str(checkpoint_dir), str(device), str(weight_dtype))
    with _CACHE_LOCK:
        cached = _MODEL_CACHE.get(key)
        if cached is not None:
            return cached
        # Before the model's first oneDNN kernel (it probes its kernels while loading), or the caps come too late.
        bound_native_caches()
        model = load_model(checkpoint_dir, device=device, weight_dtype=weight_dtype)
        config = model.config
        tokenizer = load_tokenizer(checkpoint_dir, encoding=config.encoding, vocab_size=config.vocab_size)
        label_space = LabelSpace.from_names(config.label_names)
        calibration_path = checkpoint_dir / "viterbi_calibration.json"
        calibration = load_calibration(calibration_path) if calibration_path.is_file() else None
        loaded = LoadedModel(
            model=model,
            tokenizer=tokenizer,
            label_space=label_space,
            calibration=calibration,
            checkpoint_dir=checkpoint_dir,
            model_id=model_id,
            device=device,
            weight_dtype=weight_dtype,
            lock=threading.RLock(),
        )
        _MODEL_CACHE[key] = loaded
        return loaded


def load(model: str | os.PathLike | None = None, *, device: str | torch.device = "auto", dtype=None, **opts):
    """Load a privacy-filter checkpoint and return a :class:`~pii_frames.Detector`.

    ``model`` is a checkpoint directory (opf original or Hugging Face layout,
    detected automatically), a known name (``"openai/privacy-filter"`` found in
    the local Hugging Face cache or ``~/.opf/privacy_filter``, ``"default"`` for
    the embedded compact model), or None for the default resolution order.
    The heavy model is loaded once per (checkpoint, device, dtype) per process;
    each call returns a light Detector with its own options (``decode_mode``,
    ``output_mode``, ``policy``, ``biases``, ``trim_whitespace``, ``n_ctx``,
    ``token_budget``, ``threads``, ``progress``, ``on_error``).

    >>> import pii_frames as pii
    >>> detector = pii.load("default")             # or pii.load() for the default resolution
    >>> detector.redact("Contact: ann@example.com").redacted_text
    'Contact: <PRIVATE_EMAIL>'
    """
    from pii_frames.engine.detector import Detector

    if device == "auto" and env_str("PII_FRAMES_DEVICE"):
        device = None  # let the environment decide
    checkpoint_dir, model_id = resolve_checkpoint(model)
    torch_device = resolve_device(device)
    weight_dtype = resolve_weight_dtype(dtype, torch_device)
    shared = load_shared_model(checkpoint_dir, model_id, torch_device, weight_dtype)
    return Detector(shared, **opts)


_DETECTORS: dict[tuple, object] = {}


def shared_detector(model: str | os.PathLike | None = None, **options):
    """The process's Detector for ``model`` and ``options``: loaded on first use, then looked up.

    Adapters (Polars batches, DuckDB vectors, pandas, dbt, Ray and Spark
    workers) call this for every batch. The lookup comes before resolving the
    model name, so batches never rescan the model caches, and the Detector's
    result cache serves sibling expressions on the same column. The key
    includes every ``PII_FRAMES_*`` variable, since those change what loads.
    :func:`clear_model_cache` forgets these Detectors too.

    >>> shared_detector("default") is shared_detector("default")
    True
    >>> shared_detector("default") is shared_detector("default", output_mode="redacted")
    False
    """
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PII_FRAMES_")))
    key = (os.fspath(model) if model is not None else None, _options_key(options), environment)
    with _CACHE_LOCK:
        detector = _DETECTORS.get(key)
    if detector is not None:
        return detector
    detector = load(model, **options)
    with _CACHE_LOCK:
        return _DETECTORS.setdefault(key, detector)


def _options_key(options: dict) -> tuple:
    return tuple(sorted((name, repr(value)) for name, value in options.items()))


def clear_model_cache() -> None:
    """Forget every loaded model and every shared Detector, so their memory can be freed.

    Detectors you hold yourself keep their model alive until you drop them.

    >>> clear_model_cache()
    """
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()
        _DETECTORS.clear()
