"""Load and save privacy-filter checkpoints (opf original and Hugging Face layouts).

Loading streams one tensor at a time out of the ``*.safetensors`` files
(memory-mapped by safetensors), converts it to its target dtype/device and
installs it straight into a model built on the meta device, so no second full
copy of the weights ever exists: the full-size fp32 model loads in well under
7 GB of resident memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .backend import select_backend
from .config import CheckpointError, ModelConfig, read_config
from .reference import PrivacyFilterModel

__all__ = ["CheckpointError", "load_model", "model_from_tensors", "save_opf_checkpoint", "resolve_weight_dtype"]

_LN2 = math.log(2.0)

# The one table of weight dtype names: pii.load(dtype=), load_model(weight_dtype=) and PII_FRAMES_DTYPE.
_DTYPE_ALIASES = {
    "fp32": "float32", "f32": "float32", "float32": "float32", "float": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "f16": "float16", "float16": "float16", "half": "float16",
}


def resolve_weight_dtype(weight_dtype: str | torch.dtype | None, device: torch.device) -> str:
    """Canonical weight mode name: "float32", "bfloat16" or "float16".

    ``None`` means float32 on CPU (the parity tier) and bfloat16 on CUDA.

    >>> resolve_weight_dtype(None, torch.device("cpu")), resolve_weight_dtype("bf16", torch.device("cpu"))
    ('float32', 'bfloat16')
    """
    if weight_dtype is None:
        return "bfloat16" if device.type == "cuda" else "float32"
    key = str(weight_dtype).replace("torch.", "").lower()
    if key not in _DTYPE_ALIASES:
        raise ValueError(
            f"dtype {weight_dtype!r} is not supported; use one of {', '.join(sorted(_DTYPE_ALIASES))} (or None)"
        )
    return _DTYPE_ALIASES[key]


class _TensorSource:
    """Index of every tensor in a checkpoint's ``*.safetensors`` files.

    safetensors hands out tensors that view one memory map of the whole file.
    Each tensor is read through a fresh handle and copied out by the loader, so
    the model owns its memory (the file can be rewritten while it is loaded)
    and every mapping is released as soon as its tensor is converted: resident
    memory stays at the model size plus one tensor.
    """

    borrowed = True  # tensors from load() are views of a file mapping

    def __init__(self, checkpoint_dir: Path):
        files = sorted(checkpoint_dir.glob("*.safetensors"))
        if not files:
            raise CheckpointError(
                f"no *.safetensors file in {checkpoint_dir}; a checkpoint folder needs config.json and "
                "model.safetensors"
            )
        self.file_of: dict[str, Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for path in files:
            try:
                with safe_open(str(path), framework="pt", device="cpu") as handle:
                    names = list(handle.keys())
                    shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in names}
            except Exception as exc:  # safetensors raises its own error types
                raise CheckpointError(f"{path}: cannot read safetensors file ({exc}); re-download it") from None
            for name in names:
                if name in self.file_of:
                    raise CheckpointError(
                        f"tensor {name!r} appears in both {self.file_of[name].name} and {path.name} in "
                        f"{checkpoint_dir}; remove the stale or duplicate .safetensors file"
                    )
                self.file_of[name] = path
            self._shapes.update(shapes)

    def __contains__(self, name: str) -> bool:
        return name in self.file_of

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def load(self, name: str) -> torch.Tensor:
        path = self.file_of[name]
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                return handle.get_tensor(name)
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({exc}); re-download the file") from None

    def where(self, name: str) -> str:
        return f"{self.file_of[name].name}:{name}"

    def close(self) -> None:
        pass


class _DictSource:
    """In-memory tensors (e.g. a transformers ``state_dict()``) with the same interface."""

    borrowed = False  # sharing the caller's tensors is the point

    def __init__(self, tensors: dict[str, torch.Tensor], label: str):
        self.tensors = tensors
        self.file_of = {name: Path(label) for name in tensors}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def load(self, name: str) -> torch.Tensor:
        return self.tensors[name].detach()

    def where(self, name: str) -> str:
        return f"{self.file_of[name]}:{name}"

    def close(self) -> None:
        pass


# A target parameter is filled from one or more source tensors plus a transform.
_Recipe = tuple[list[str], Callable[[list[torch.Tensor]], torch.Tensor]]


def _one(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0]


def _concat_rows(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors, dim=0)


def _opf_sinks(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0].float() * _LN2  # stored in log2 units


def _recipes(config: ModelConfig, source: _TensorSource) -> dict[str, _Recipe]:
    """Target parameter name -> (source tensor names, transform)."""
    recipes: dict[str, _Recipe] = {}
    if config.layout == "opf":
        recipes["embedding.weight"] = (["embedding.weight"], _one)
        for i in range(config.num_hidden_layers):
            p = f"block.{i}"
            for name in ("attn.norm.scale", "attn.qkv.weight", "attn.qkv.bias", "attn.out.weight",
                         "attn.out.bias", "mlp.norm.scale", "mlp.gate.weight", "mlp.gate.bias"):
                recipes[f"{p}.{name}"] = ([f"{p}.{name}"], _one)
            recipes[f"{p}.attn.sinks"] = ([f"{p}.attn.sinks"], _opf_sinks)
            recipes[f"{p}.mlp.swiglu_weight"] = ([f"{p}.mlp.swiglu.weight"], _one)
            recipes[f"{p}.mlp.swiglu_bias"] = ([f"{p}.mlp.swiglu.bias"], _one)
            recipes[f"{p}.mlp.out_weight"] = ([f"{p}.mlp.out.weight"], _one)
            recipes[f"{p}.mlp.out_bias"] = ([f"{p}.mlp.out.bias"], _one)
        recipes["norm.scale"] = (["norm.scale"], _one)
        recipes["unembedding.weight"] = (["unembedding.weight"], _one)
        if "unembedding.bias" in source:
            recipes["unembedding.bias"] = (["unembedding.bias"], _one)
    else:
        recipes["embedding.weight"] = (["model.embed_tokens.weight"], _one)
        for i in range(config.num_hidden_layers):
            p, h = f"block.{i}", f"model.layers.{i}"
            a = f"{h}.self_attn"
            recipes[f"{p}.attn.norm.scale"] = ([f"{h}.input_layernorm.weight"], _one)
            for part in ("weight", "bias"):
                recipes[f"{p}.attn.qkv.{part}"] = (
                    [f"{a}.q_proj.{part}", f"{a}.k_proj.{part}", f"{a}.v_proj.{part}"], _concat_rows)
                recipes[f"{p}.attn.out.{part}"] = ([f"{a}.o_proj.{part}"], _one)
                recipes[f"{p}.mlp.gate.{part}"] = ([f"{h}.mlp.router.{part}"], _one)
            recipes[f"{p}.attn.sinks"] = ([f"{a}.sinks"], _one)
            recipes[f"{p}.mlp.norm.scale"] = ([f"{h}.post_attention_layernorm.weight"], _one)
            e = f"{h}.mlp.experts"
            recipes[f"{p}.mlp.swiglu_weight"] = ([f"{e}.gate_up_proj"], _one)
            recipes[f"{p}.mlp.swiglu_bias"] = ([f"{e}.gate_up_proj_bias"], _one)
            recipes[f"{p}.mlp.out_weight"] = ([f"{e}.down_proj"], _one)
            recipes[f"{p}.mlp.out_bias"] = ([f"{e}.down_proj_bias"], _one)
        recipes["norm.scale"] = (["model.norm.weight"], _one)
        recipes["unembedding.weight"] = (["score.weight"], _one)
        if "score.bias" in source:
            recipes["unembedding.bias"] = (["score.bias"], _one)
    if "doc_head.weight" in source:
        recipes["doc_head.weight"] = (["doc_head.weight"], _one)
        recipes["doc_head.bias"] = (["doc_head.bias"], _one)
    return recipes


def _target_dtype(name: str, mode: str, device: torch.device) -> torch.dtype:
    # fp32 islands at every precision: norms, sinks, router, document head.
    if name.endswith(("norm.scale", ".sinks")) or ".mlp.gate." in name or name.startswith("doc_head"):
        return torch.float32
    if mode == "float32":
        return torch.float32
    if device.type == "cpu":
        # Reduced CPU modes store only the bulk in low precision: the experts (converted
        # by the CPU backend as each layer loads) and the embedding table, which is only
        # gathered. Dense projections stay fp32 because CPU bf16 matmuls are slow.
        if name == "embedding.weight":
            return getattr(torch, mode)
        return torch.float32
    return getattr(torch, mode)


def _expected_shape(model: nn.Module, name: str) -> tuple[int, ...]:
    module_name, _, param_name = name.rpartition(".")
    return tuple(model.get_submodule(module_name)._parameters[param_name].shape)


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _install(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, param_name = name.rpartition(".")
    module = model.get_submodule(module_name)
    module._parameters[param_name] = nn.Parameter(tensor, requires_grad=False)


def _load_binga_doc_head(checkpoint_dir: Path, config: ModelConfig) -> dict[str, torch.Tensor] | None:
    path = checkpoint_dir / "doc_head.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the document head ({exc}); re-download it") from None
    if isinstance(state, nn.Module):  # pragma: no cover - weights_only forbids modules
        state = state.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict of Linear(hidden -> n_classes)")
    matrices = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() == 2]
    vectors = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() == 1]
    if len(matrices) != 1 or len(vectors) > 1:
        raise CheckpointError(
            f"{path}: expected one weight [n_classes, {config.hidden_size}] and one bias [n_classes], "
            f"found keys {sorted(state)}"
        )
    weight = matrices[0]
    bias = vectors[0] if vectors else torch.zeros(weight.shape[0])
    return {"doc_head.weight": weight, "doc_head.bias": bias}


def load_model(
    checkpoint_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    weight_dtype: str | torch.dtype | None = None,
) -> PrivacyFilterModel:
    """Load a checkpoint folder (opf original or Hugging Face layout, auto-detected).

    ``weight_dtype``: ``None`` (fp32 on CPU, bf16 on CUDA), ``"fp32"``, ``"bf16"``
    or ``"fp16"``. On CPU the reduced modes store the experts and the embedding
    table in that dtype and keep fp32 compute (see :mod:`pii_frames.model.cpu_experts`);
    on CUDA they are the weight dtype of every projection, with fp32 norms,
    router, softmax and accumulation. A multitask document head is loaded
    from ``doc_head.pt`` + ``multitask_config.json`` or from ``doc_head.*``
    tensors + ``doc_class_names`` in config.json. The model's ``backend`` (its
    CPU or CUDA kernels, :mod:`pii_frames.model.backend`) is chosen here, once.
    Parameters are frozen (``requires_grad=False``); ``model.requires_grad_(True)``
    makes them trainable (and switches to the reference ops).

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> model = load_model(EMBEDDED_MODEL_DIR)
    >>> model.config.num_labels, model.weight_dtype
    (33, 'float32')
    """
    checkpoint_dir = Path(checkpoint_dir).expanduser()
    config = read_config(checkpoint_dir)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available; use device='cpu'")
    mode = resolve_weight_dtype(weight_dtype, device)
    source = _TensorSource(checkpoint_dir)
    try:
        return _build(checkpoint_dir, config, source, device, mode)
    finally:
        source.close()


def model_from_tensors(
    config: ModelConfig,
    tensors: dict[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    weight_dtype: str | torch.dtype | None = None,
) -> PrivacyFilterModel:
    """Build a model from in-memory tensors named as in ``config.layout`` (opf or HF).

    fp32 tensors already on ``device`` are used without a copy, so a model built
    from a transformers ``state_dict()`` shares its memory (benchmarks do this).

    >>> model = model_from_tensors(read_config(hf_dir), hf_model.state_dict())  # doctest: +SKIP
    """
    device = torch.device(device)
    mode = resolve_weight_dtype(weight_dtype, device)
    return _build(None, config, _DictSource(tensors, f"<{config.layout} tensors>"), device, mode)


def _build(checkpoint_dir: Path | None, config: ModelConfig, source, device: torch.device,
           mode: str) -> PrivacyFilterModel:
    binga_head = _load_binga_doc_head(checkpoint_dir, config) if checkpoint_dir is not None else None
    checkpoint_dir = checkpoint_dir or Path(f"<{config.layout} tensors>")
    has_native_head = "doc_head.weight" in source
    if (binga_head is not None or has_native_head) and config.doc_class_names is None:
        where = "doc_head.pt" if binga_head is not None else "doc_head.weight"
        raise CheckpointError(
            f"{checkpoint_dir} has a document head ({where}) but no class names; add doc_label_names to "
            "multitask_config.json or doc_class_names to config.json"
        )
    if binga_head is not None and has_native_head:
        raise CheckpointError(
            f"{checkpoint_dir} has both doc_head.pt and doc_head.* tensors; keep only one document head"
        )
    recipes = _recipes(config, source)
    has_head_bias = "unembedding.bias" in recipes
    with torch.device("meta"):
        model = PrivacyFilterModel(config, head_bias=has_head_bias)

    known_sources = {name for names, _ in recipes.values() for name in names}
    unexpected = sorted(set(source.file_of) - known_sources)
    if unexpected:
        raise CheckpointError(
            f"{checkpoint_dir} ({config.layout} layout) has tensors this model does not use: "
            f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}; is config.json's model_type right?"
        )
    missing = [src for names, _ in recipes.values() for src in names if src not in source]
    if missing:
        raise CheckpointError(
            f"{checkpoint_dir} is missing {len(missing)} tensor(s), e.g. {missing[:5]}; the checkpoint is "
            "incomplete or its config.json does not match the weights"
        )

    backend = select_backend(device, mode)
    for target, (names, transform) in recipes.items():
        expected = _expected_shape(model, target)
        tensors = [source.load(n) for n in names]
        tensor = transform(tensors)
        if tuple(tensor.shape) != expected:
            found = {source.where(n): source.shape(n) for n in names}
            raise CheckpointError(
                f"shape mismatch for {target}: expected {expected} from config.json, found {found}; "
                "config.json does not match the weights"
            )
        tensor = tensor.to(device=device, dtype=_target_dtype(target, mode, device)).contiguous()
        if source.borrowed and any(_same_storage(tensor, t) for t in tensors):
            tensor = tensor.clone()  # own the memory; drops the file mapping below
        del tensors
        _install(model, target, tensor)
        del tensor
        if target.endswith("mlp.out_bias"):  # the layer's last expert tensor: prepare it before the next loads
            backend.prepare_moe(model.block[int(target.split(".")[1])].mlp)

    if binga_head is not None:
        for target, tensor in binga_head.items():
            expected = _expected_shape(model, target)
            if tuple(tensor.shape) != expected:
                raise CheckpointError(
                    f"{checkpoint_dir / 'doc_head.pt'}: {target.split('.')[-1]} has shape {tuple(tensor.shape)}, "
                    f"expected {expected} (hidden {config.hidden_size}, {len(config.doc_class_names)} classes)"
                )
            _install(model, target, tensor.to(device=device, dtype=torch.float32).contiguous())
    elif config.doc_class_names is not None and not has_native_head:
        raise CheckpointError(
            f"{checkpoint_dir}: config names document classes but there is no document head "
            "(doc_head.pt or doc_head.weight/doc_head.bias tensors)"
        )

    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover:
        raise CheckpointError(f"{checkpoint_dir}: no weights for {leftover[:5]}; the checkpoint is incomplete")
    model.weight_dtype = mode
    model.backend = backend
    model.eval()
    return model


def save_opf_checkpoint(
    model: PrivacyFilterModel,
    out_dir: str | Path,
    *,
    param_dtype: str = "float32",
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` in the opf original layout.

    Norm scales and sinks are stored fp32 (sinks in log2 units, as opf expects);
    everything else in ``param_dtype``. A document head is stored natively as
    ``doc_head.weight``/``doc_head.bias`` with ``doc_class_names`` in config.json.
    A non-zero classifier bias (from a Hugging Face checkpoint) is kept as
    ``unembedding.bias``. Returns the output folder.

    >>> save_opf_checkpoint(model, "/tmp/my-opf-checkpoint")  # doctest: +SKIP
    PosixPath('/tmp/my-opf-checkpoint')
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype_name = _DTYPE_ALIASES.get(str(param_dtype).replace("torch.", "").lower())
    if dtype_name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"param_dtype must be float32, bfloat16 or float16, got {param_dtype!r}")
    store_dtype = getattr(torch, dtype_name)
    config = model.config

    tensors: dict[str, torch.Tensor] = {}

    def put(name: str, tensor: torch.Tensor, dtype: torch.dtype = store_dtype) -> None:
        tensors[name] = tensor.detach().to(device="cpu", dtype=dtype).contiguous()

    put("embedding.weight", model.embedding.weight)
    for i, block in enumerate(model.block):
        p = f"block.{i}"
        put(f"{p}.attn.norm.scale", block.attn.norm.scale, torch.float32)
        put(f"{p}.attn.qkv.weight", block.attn.qkv.weight)
        put(f"{p}.attn.qkv.bias", block.attn.qkv.bias)
        put(f"{p}.attn.sinks", block.attn.sinks.float() / _LN2, torch.float32)
        put(f"{p}.attn.out.weight", block.attn.out.weight)
        put(f"{p}.attn.out.bias", block.attn.out.bias)
        put(f"{p}.mlp.norm.scale", block.mlp.norm.scale, torch.float32)
        put(f"{p}.mlp.gate.weight", block.mlp.gate.weight)
        put(f"{p}.mlp.gate.bias", block.mlp.gate.bias)
        w1, b1, w2, b2 = block.mlp.expert_weights()
        put(f"{p}.mlp.swiglu.weight", w1)
        put(f"{p}.mlp.swiglu.bias", b1)
        put(f"{p}.mlp.out.weight", w2)
        put(f"{p}.mlp.out.bias", b2)
    put("norm.scale", model.norm.scale, torch.float32)
    put("unembedding.weight", model.unembedding.weight)
    bias = model.unembedding.bias
    if bias is not None and bool(torch.any(bias != 0)):
        put("unembedding.bias", bias)
    if model.doc_head is not None:
        put("doc_head.weight", model.doc_head.weight, torch.float32)
        put("doc_head.bias", model.doc_head.bias, torch.float32)

    config_dict = config.to_opf_dict()
    config_dict["param_dtype"] = dtype_name
    config_dict.update(extra_config or {})
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
    return out_dir
