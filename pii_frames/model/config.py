"""Model configuration: one frozen dataclass read from either checkpoint layout.

Two layouts exist for the same network (see DESIGN.md "Model facts"):

* opf "original": ``model_type == "privacy_filter"``, band from
  ``bidirectional_left/right_context``, YaRN parameters as ``rope_*`` keys.
* Hugging Face: ``model_type == "openai_privacy_filter"``, ``sliding_window``
  is the half width, YaRN parameters in ``rope_parameters`` and labels in
  ``id2label``.

Both are normalised to :class:`ModelConfig`, which is all the encoder needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "ModelConfig",
    "read_config",
    "DEFAULT_SPAN_CLASS_NAMES",
    "expand_span_classes",
    "OPF_MODEL_TYPE",
    "HF_MODEL_TYPE",
]

OPF_MODEL_TYPE = "privacy_filter"
HF_MODEL_TYPE = "openai_privacy_filter"

# Index order of the v2 label space (opf ``label_space.py``): O, then B/I/E/S per class.
DEFAULT_SPAN_CLASS_NAMES: tuple[str, ...] = (
    "account_number",
    "private_address",
    "private_date",
    "private_email",
    "private_person",
    "private_phone",
    "private_url",
    "secret",
)
_V4_SPAN_CLASS_NAMES: tuple[str, ...] = (
    "private_person",
    "other_person",
    "personal_url",
    "other_url",
    "personal_location",
    "other_location",
    "personal_email",
    "other_email",
    "personal_phone",
    "other_phone",
    "personal_date",
    "other_date",
    "personal_id",
    "secret",
)
_BOUNDARY_TAGS = ("B", "I", "E", "S")
_TIKTOKEN_SPECIAL_EOT = 199999


class CheckpointError(ValueError):
    """A checkpoint directory, config or weight file cannot be used.

    The message names the file or tensor at fault and what to do about it.
    """


def expand_span_classes(class_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Token label names for span classes: ``O`` then ``B-/I-/E-/S-`` per class.

    >>> expand_span_classes(["secret"])
    ('O', 'B-secret', 'I-secret', 'E-secret', 'S-secret')
    """
    classes = [name for name in class_names if name != "O"]
    return ("O",) + tuple(f"{tag}-{name}" for name in classes for tag in _BOUNDARY_TAGS)


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a privacy-filter encoder, independent of the file layout.

    ``left_context``/``right_context`` are the attention band half widths
    (query ``i`` sees keys ``j`` with ``i - left <= j <= i + right``).

    >>> cfg = ModelConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=64,
    ...                   num_experts=8, experts_per_token=4, vocab_size=1000, num_labels=33,
    ...                   head_dim=16, num_attention_heads=4, num_key_value_heads=2,
    ...                   left_context=8, right_context=8)
    >>> cfg.label_names[:2], cfg.pad_token_id
    (('O', 'B-account_number'), 0)
    """

    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_experts: int
    experts_per_token: int
    vocab_size: int
    num_labels: int
    head_dim: int
    num_attention_heads: int
    num_key_value_heads: int
    left_context: int = 128
    right_context: int = 128
    rope_theta: float = 150000.0
    rope_scaling_factor: float = 32.0
    rope_ntk_alpha: float = 1.0
    rope_ntk_beta: float = 32.0
    initial_context_length: int = 4096
    swiglu_limit: float = 7.0
    rms_norm_eps: float = 1e-5
    default_n_ctx: int = 128000
    param_dtype: str = "bfloat16"
    label_names: tuple[str, ...] = ()
    doc_class_names: tuple[str, ...] | None = None
    encoding: str = "o200k_base"
    pad_token_id: int = -1
    layout: str = "opf"
    swiglu_alpha: float = 1.702

    def __post_init__(self) -> None:
        if not self.label_names:
            if self.num_labels == 1 + 4 * len(DEFAULT_SPAN_CLASS_NAMES):
                object.__setattr__(self, "label_names", expand_span_classes(DEFAULT_SPAN_CLASS_NAMES))
            else:
                raise CheckpointError(
                    f"num_labels={self.num_labels} has no built-in label names; pass label_names "
                    "(or add span_class_names to config.json)"
                )
        object.__setattr__(self, "label_names", tuple(self.label_names))
        if len(self.label_names) != self.num_labels:
            raise CheckpointError(
                f"config has num_labels={self.num_labels} but {len(self.label_names)} label names; "
                "make them agree in config.json"
            )
        if self.doc_class_names is not None:
            object.__setattr__(self, "doc_class_names", tuple(self.doc_class_names))
        if not 0 <= self.pad_token_id < self.vocab_size:
            pad = _TIKTOKEN_SPECIAL_EOT if self.vocab_size > _TIKTOKEN_SPECIAL_EOT else 0
            object.__setattr__(self, "pad_token_id", pad)
        if self.num_attention_heads % self.num_key_value_heads:
            raise CheckpointError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}; fix config.json"
            )
        if not 0 < self.experts_per_token <= self.num_experts:
            raise CheckpointError(
                f"experts_per_token={self.experts_per_token} must be in 1..num_experts={self.num_experts}"
            )
        if self.layout not in ("opf", "hf"):
            raise CheckpointError(f"layout must be 'opf' or 'hf', got {self.layout!r}")

    @property
    def kv_group_size(self) -> int:
        """Query heads sharing one key/value head (head ``h`` uses kv head ``h // group``)."""
        return self.num_attention_heads // self.num_key_value_heads

    def to_opf_dict(self) -> dict[str, Any]:
        """The opf ``original/config.json`` form of this config.

        >>> cfg = ModelConfig(2, 64, 64, 8, 4, 1000, 33, 16, 4, 2, 8, 8)
        >>> cfg.to_opf_dict()["sliding_window"]
        17
        """
        out: dict[str, Any] = {
            "model_type": OPF_MODEL_TYPE,
            "encoding": self.encoding,
            "num_hidden_layers": self.num_hidden_layers,
            "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "vocab_size": self.vocab_size,
            "num_labels": self.num_labels,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "head_dim": self.head_dim,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "sliding_window": self.left_context + self.right_context + 1,
            "bidirectional_context": True,
            "bidirectional_left_context": self.left_context,
            "bidirectional_right_context": self.right_context,
            "initial_context_length": self.initial_context_length,
            "default_n_ctx": self.default_n_ctx,
            "rope_theta": self.rope_theta,
            "rope_scaling_factor": self.rope_scaling_factor,
            "rope_ntk_alpha": self.rope_ntk_alpha,
            "rope_ntk_beta": self.rope_ntk_beta,
            "swiglu_limit": self.swiglu_limit,
            "param_dtype": self.param_dtype,
        }
        if self.label_names != expand_span_classes(DEFAULT_SPAN_CLASS_NAMES):
            out["span_class_names"] = ["O"] + _span_classes_of(self.label_names)
            out["ner_class_names"] = list(self.label_names)
        if self.doc_class_names is not None:
            out["doc_class_names"] = list(self.doc_class_names)
        return out


def _span_classes_of(label_names: tuple[str, ...]) -> list[str]:
    classes: list[str] = []
    for name in label_names:
        if name != "O" and name[:2] in ("B-", "I-", "E-", "S-") and name[2:] not in classes:
            classes.append(name[2:])
    return classes


def _is_token_label_list(names: list[str]) -> bool:
    return all(name == "O" or name[:2] in ("B-", "I-", "E-", "S-") for name in names) and len(names) > 1


def _opf_label_names(raw: dict[str, Any], config_path: Path) -> tuple[str, ...]:
    num_labels = int(raw.get("num_labels", 33))
    for key in ("ner_class_names", "span_class_names"):
        names = raw.get(key)
        if not names:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{config_path}: {key} must be a list of strings")
        if "O" not in names:
            raise CheckpointError(f"{config_path}: {key} must contain the background label 'O'")
        if _is_token_label_list(names):
            labels = ("O",) + tuple(n for n in names if n != "O")
        else:
            labels = expand_span_classes(names)
        if len(labels) == num_labels:
            return labels
        raise CheckpointError(
            f"{config_path}: {key} gives {len(labels)} token labels but num_labels={num_labels}; "
            "make them agree"
        )
    version = raw.get("category_version")
    if version == "v4" or (version is None and num_labels == 57):
        return expand_span_classes(_V4_SPAN_CLASS_NAMES)
    if num_labels == 33:
        return expand_span_classes(DEFAULT_SPAN_CLASS_NAMES)
    raise CheckpointError(
        f"{config_path}: num_labels={num_labels} but no label names; add span_class_names "
        '(e.g. ["O", "private_person", ...]) to config.json'
    )


def _hf_label_names(raw: dict[str, Any], config_path: Path) -> tuple[str, ...]:
    id2label = raw.get("id2label")
    if id2label:
        try:
            ordered = sorted(((int(k), v) for k, v in id2label.items()), key=lambda kv: kv[0])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{config_path}: id2label keys must be integers ({exc})") from None
        if [k for k, _ in ordered] != list(range(len(ordered))):
            raise CheckpointError(f"{config_path}: id2label must cover ids 0..n-1 without gaps")
        return tuple(str(v) for _, v in ordered)
    metadata = raw.get("opf_metadata") or {}
    for key in ("ner_class_names", "span_class_names"):
        if metadata.get(key):
            return _opf_label_names({"num_labels": raw.get("num_labels", 33), key: metadata[key]}, config_path)
    return _opf_label_names({"num_labels": raw.get("num_labels", 33)}, config_path)


def _require(raw: dict[str, Any], keys: list[str], config_path: Path) -> None:
    missing = [k for k in keys if k not in raw]
    if missing:
        raise CheckpointError(f"{config_path}: missing required keys {missing}; is this a privacy-filter config?")


_INT_FIELDS = (
    "num_hidden_layers", "hidden_size", "intermediate_size", "num_experts", "experts_per_token", "vocab_size",
    "head_dim", "num_attention_heads", "num_key_value_heads", "bidirectional_left_context",
    "bidirectional_right_context", "sliding_window", "initial_context_length", "default_n_ctx", "pad_token_id",
    "num_labels", "num_local_experts", "num_experts_per_tok", "original_max_position_embeddings",
)
_FLOAT_FIELDS = (
    "rope_theta", "rope_scaling_factor", "rope_ntk_alpha", "rope_ntk_beta", "swiglu_limit", "rms_norm_eps",
    "swiglu_alpha", "factor", "beta_slow", "beta_fast",
)


def _check_field_types(raw: dict[str, Any], config_path: Path) -> None:
    """Name the file and the field of a wrongly typed number (rather than a bare ``invalid literal for int()``)."""
    nested = [(f"{name}.", raw[name]) for name in ("rope_parameters", "rope_scaling") if isinstance(raw.get(name), dict)]
    for prefix, fields in [("", raw), *nested]:
        for key, value in fields.items():
            kind = int if key in _INT_FIELDS else float if key in _FLOAT_FIELDS else None
            if kind is None or value is None:
                continue
            try:
                kind(value)
            except (TypeError, ValueError):
                wanted = "an integer" if kind is int else "a number"
                raise CheckpointError(
                    f"{config_path}: field {prefix}{key!s} must be {wanted}, got {value!r}; fix config.json"
                ) from None


def _doc_class_names(raw: dict[str, Any], checkpoint_dir: Path) -> tuple[str, ...] | None:
    if raw.get("doc_class_names"):
        return tuple(str(n) for n in raw["doc_class_names"])
    multitask_path = checkpoint_dir / "multitask_config.json"
    if multitask_path.is_file():
        try:
            multitask = json.loads(multitask_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{multitask_path}: not valid JSON ({exc})") from None
        names = multitask.get("doc_label_names")
        if not names:
            count = multitask.get("num_doc_classes")
            if not count:
                raise CheckpointError(f"{multitask_path}: needs doc_label_names (the document class names)")
            names = [f"class_{i}" for i in range(int(count))]
        return tuple(str(n) for n in names)
    return None


def _param_dtype(value: Any) -> str:
    text = str(value or "bfloat16").replace("torch.", "")
    return {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16", "half": "float16"}.get(text, text)


def read_config(checkpoint_dir: str | Path) -> ModelConfig:
    """Read ``config.json`` (either layout) from a checkpoint directory.

    Raises :class:`CheckpointError` when the directory or file is missing, the
    JSON is invalid, or ``model_type`` is not a privacy-filter type.

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> cfg = read_config(EMBEDDED_MODEL_DIR)          # the embedded default model
    >>> cfg.layout, cfg.num_labels, cfg.label_names[0]
    ('opf', 33, 'O')
    """
    checkpoint_dir = Path(checkpoint_dir).expanduser()
    if not checkpoint_dir.is_dir():
        raise CheckpointError(
            f"checkpoint directory {checkpoint_dir} does not exist; pass a folder holding config.json "
            "and *.safetensors"
        )
    config_path = checkpoint_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} not found; a checkpoint folder needs config.json and *.safetensors")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object")
    _check_field_types(raw, config_path)
    model_type = raw.get("model_type")
    doc_classes = _doc_class_names(raw, checkpoint_dir)
    if model_type == OPF_MODEL_TYPE:
        return _from_opf(raw, config_path, doc_classes)
    if model_type == HF_MODEL_TYPE:
        return _from_hf(raw, config_path, doc_classes)
    raise CheckpointError(
        f"{config_path}: model_type is {model_type!r}; expected {OPF_MODEL_TYPE!r} (opf original layout) "
        f"or {HF_MODEL_TYPE!r} (Hugging Face layout)"
    )


def _from_opf(raw: dict[str, Any], config_path: Path, doc_classes: tuple[str, ...] | None) -> ModelConfig:
    _require(
        raw,
        ["num_hidden_layers", "num_experts", "experts_per_token", "vocab_size", "hidden_size",
         "intermediate_size", "head_dim", "num_attention_heads", "num_key_value_heads"],
        config_path,
    )
    if raw.get("bidirectional_context") is False:
        raise CheckpointError(f"{config_path}: bidirectional_context is false; only bidirectional models are supported")
    left = raw.get("bidirectional_left_context")
    right = raw.get("bidirectional_right_context")
    window = raw.get("sliding_window")
    if left is None or right is None:
        if window is None:
            raise CheckpointError(f"{config_path}: needs bidirectional_left_context/right_context (or sliding_window)")
        left = right = (int(window) - 1) // 2
    if window is not None and int(window) != int(left) + int(right) + 1:
        raise CheckpointError(
            f"{config_path}: sliding_window={window} must equal bidirectional_left_context + "
            f"bidirectional_right_context + 1 = {int(left) + int(right) + 1}"
        )
    labels = _opf_label_names(raw, config_path)
    return ModelConfig(
        num_hidden_layers=int(raw["num_hidden_layers"]),
        hidden_size=int(raw["hidden_size"]),
        intermediate_size=int(raw["intermediate_size"]),
        num_experts=int(raw["num_experts"]),
        experts_per_token=int(raw["experts_per_token"]),
        vocab_size=int(raw["vocab_size"]),
        num_labels=len(labels),
        head_dim=int(raw["head_dim"]),
        num_attention_heads=int(raw["num_attention_heads"]),
        num_key_value_heads=int(raw["num_key_value_heads"]),
        left_context=int(left),
        right_context=int(right),
        rope_theta=float(raw.get("rope_theta", 150000.0)),
        rope_scaling_factor=float(raw.get("rope_scaling_factor", 32.0)),
        rope_ntk_alpha=float(raw.get("rope_ntk_alpha", 1.0)),
        rope_ntk_beta=float(raw.get("rope_ntk_beta", 32.0)),
        initial_context_length=int(raw.get("initial_context_length", 4096)),
        swiglu_limit=float(raw.get("swiglu_limit", 7.0)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        default_n_ctx=int(raw.get("default_n_ctx", 128000)),
        param_dtype=_param_dtype(raw.get("param_dtype")),
        label_names=labels,
        doc_class_names=doc_classes,
        encoding=str(raw.get("encoding", "o200k_base")),
        pad_token_id=int(raw.get("pad_token_id", -1)),
        layout="opf",
        swiglu_alpha=float(raw.get("swiglu_alpha", 1.702)),
    )


def _from_hf(raw: dict[str, Any], config_path: Path, doc_classes: tuple[str, ...] | None) -> ModelConfig:
    _require(raw, ["num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size"], config_path)
    rope = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    rope_type = rope.get("rope_type", rope.get("type", "yarn"))
    if rope_type not in ("yarn", "default"):
        raise CheckpointError(f"{config_path}: rope_type {rope_type!r} is not supported (expected 'yarn')")
    factor = float(rope.get("factor", 32.0)) if rope_type == "yarn" else 1.0
    labels = _hf_label_names(raw, config_path)
    metadata = raw.get("opf_metadata") or {}
    half_window = int(raw.get("sliding_window", 128))
    num_heads = int(raw.get("num_attention_heads", 14))
    head_dim = raw.get("head_dim") or int(raw["hidden_size"]) // num_heads
    pad = raw.get("pad_token_id")
    return ModelConfig(
        num_hidden_layers=int(raw["num_hidden_layers"]),
        hidden_size=int(raw["hidden_size"]),
        intermediate_size=int(raw["intermediate_size"]),
        num_experts=int(raw.get("num_local_experts", raw.get("num_experts", 128))),
        experts_per_token=int(raw.get("num_experts_per_tok", raw.get("experts_per_token", 4))),
        vocab_size=int(raw["vocab_size"]),
        num_labels=len(labels),
        head_dim=int(head_dim),
        num_attention_heads=num_heads,
        num_key_value_heads=int(raw.get("num_key_value_heads") or num_heads),
        left_context=half_window,
        right_context=half_window,
        rope_theta=float(rope.get("rope_theta", raw.get("rope_theta", 150000.0))),
        rope_scaling_factor=factor,
        rope_ntk_alpha=float(rope.get("beta_slow") or 1.0),
        rope_ntk_beta=float(rope.get("beta_fast") or 32.0),
        initial_context_length=int(
            rope.get("original_max_position_embeddings", raw.get("initial_context_length", 4096))
        ),
        swiglu_limit=float(raw.get("swiglu_limit", 7.0)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        default_n_ctx=int(raw.get("default_n_ctx", 128000)),
        param_dtype=_param_dtype(raw.get("dtype", raw.get("torch_dtype"))),
        label_names=labels,
        doc_class_names=doc_classes,
        encoding=str(metadata.get("encoding", raw.get("encoding", "o200k_base"))),
        pad_token_id=int(pad) if pad is not None else -1,
        layout="hf",
        swiglu_alpha=float(raw.get("swiglu_alpha", 1.702)),
    )
