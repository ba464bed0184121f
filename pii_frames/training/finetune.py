"""Fine-tune a privacy-filter model on opf-format examples (compatible with ``opf train``).

    >>> from pii_frames.training.finetune import finetune
    >>> result = finetune("train.jsonl", "my-model", base="/path/to/checkpoint",      # doctest: +SKIP
    ...                   validation_path="validation.jsonl", epochs=3, lr=2e-4)
    >>> import pii_frames as pii
    >>> pii.load("my-model").redact("Record includes marker QK-TST-000-BDX5YNAL")      # doctest: +SKIP

What it does, as opf does it: the model is trained in fp32 with AdamW on a masked token cross-entropy over
non-overlapping windows of ``n_ctx`` tokens (gold spans projected onto tokens, pad label ``O``); all
parameters are trained; the epoch with the lowest validation loss (training loss without validation data) is
restored before saving. A custom label space rebuilds the classifier head: rows with the same name are copied,
missing rows are copied from the same boundary tag of ``secret`` (``B-secret`` -> ``B-new``), else from the first
class with that tag, else drawn from N(0, 0.02). Optionally the document head is trained jointly on
``info.kind`` (the document class of each record).

The output folder holds an opf-layout checkpoint (``config.json`` + ``model.safetensors``) that
:func:`pii_frames.load` reads, ``viterbi_calibration.json`` (zero biases), ``finetune_summary.json`` and
``USAGE.txt``.

Without a base checkpoint, :func:`~pii_frames.training.models.init_compact_model` creates a small randomly initialised model of the same
architecture family (this is how the embedded default model is trained).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pii_frames.training.data import (
    DatasetError,
    Example,
    LabelSpaceSpec,
    label_space_from_names,
    load_examples,
    project_spans_to_tokens,
    read_label_space_json,
)
from pii_frames.training.models import init_compact_model, remap_head, set_doc_head

__all__ = ["FinetuneResult", "finetune", "SUMMARY_SCHEMA_VERSION"]

SUMMARY_SCHEMA_VERSION = 1
_OUTPUT_FILES = ("config.json", "model.safetensors", "viterbi_calibration.json", "finetune_summary.json",
                 "USAGE.txt")


# --------------------------------------------------------------------------------------------------------------
# Data -> windows
# --------------------------------------------------------------------------------------------------------------

@dataclass
class _Window:
    ids: np.ndarray
    labels: np.ndarray
    doc_class: int  # -1: no document label


def _windows(examples: Sequence[Example], tokenizer, label_space: LabelSpaceSpec, n_ctx: int,
             doc_classes: Sequence[str] | None) -> list[_Window]:
    doc_index = {name: i for i, name in enumerate(doc_classes or ())}
    windows = []
    id_lists = tokenizer.encode_batch([ex.text for ex in examples])
    for example, ids in zip(examples, id_lists):
        if not ids:
            continue
        offsets = tokenizer.token_offsets(example.text, ids)
        if offsets.mismatch:
            raise DatasetError(f"{example.source}: the text does not survive the tokenizer round trip (e.g. lone "
                               "surrogates); fix or drop this record")
        labels = project_spans_to_tokens(example.spans, offsets.starts, offsets.ends, label_space,
                                         source=example.source)
        ids_array = np.asarray(ids, dtype=np.int64)
        doc_class = doc_index.get(example.kind, -1) if example.kind is not None else -1
        for start in range(0, ids_array.size, n_ctx):
            windows.append(_Window(ids_array[start:start + n_ctx], labels[start:start + n_ctx], doc_class))
    return windows


def _batches(windows: list[_Window], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Index batches; with an rng, shuffled but length-bucketed so little compute goes to padding."""
    order = list(range(len(windows)))
    if rng is None:
        order.sort(key=lambda i: windows[i].ids.size)
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    bucket = batch_size * 50
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start:start + bucket], key=lambda i: windows[i].ids.size)
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(windows: list[_Window], batch: list[int], pad_id: int, device: torch.device):
    longest = max(windows[i].ids.size for i in batch)
    ids = np.full((len(batch), longest), pad_id, dtype=np.int64)
    labels = np.zeros((len(batch), longest), dtype=np.int64)  # pad label O, masked out of the loss
    mask = np.zeros((len(batch), longest), dtype=bool)
    for row, index in enumerate(batch):
        size = windows[index].ids.size
        ids[row, :size] = windows[index].ids
        labels[row, :size] = windows[index].labels
        mask[row, :size] = True
    doc = np.array([windows[i].doc_class for i in batch], dtype=np.int64)
    return (torch.from_numpy(ids).to(device), torch.from_numpy(labels).to(device),
            torch.from_numpy(mask).to(device), torch.from_numpy(doc).to(device))


def _losses(model, ids, labels, mask, doc, doc_loss_weight: float):
    output = model(ids, mask if not bool(mask.all()) else None)
    token_loss_sum = F.cross_entropy(output.logits[mask], labels[mask], reduction="sum")
    n_tokens = int(mask.sum())
    correct = int((output.logits[mask].argmax(-1) == labels[mask]).sum())
    doc_loss = None
    doc_correct = doc_count = 0
    if output.doc_logits is not None and doc_loss_weight > 0:
        has_doc = doc >= 0
        doc_count = int(has_doc.sum())
        if doc_count:
            doc_loss = F.cross_entropy(output.doc_logits[has_doc], doc[has_doc])
            doc_correct = int((output.doc_logits[has_doc].argmax(-1) == doc[has_doc]).sum())
    return token_loss_sum, n_tokens, correct, doc_loss, doc_correct, doc_count


@torch.no_grad()
def _evaluate_windows(model, windows, batch_size, pad_id, device, doc_loss_weight) -> dict[str, float]:
    model.eval()
    loss_sum = 0.0
    tokens = correct = doc_correct = doc_count = 0
    doc_loss_sum = 0.0
    for batch in _batches(windows, batch_size, None):
        ids, labels, mask, doc = _collate(windows, batch, pad_id, device)
        token_loss_sum, n, c, doc_loss, dc, dn = _losses(model, ids, labels, mask, doc, doc_loss_weight)
        loss_sum += float(token_loss_sum)
        tokens += n
        correct += c
        if doc_loss is not None:
            doc_loss_sum += float(doc_loss) * dn
            doc_correct += dc
            doc_count += dn
    metrics = {"loss": loss_sum / max(tokens, 1), "token_accuracy": correct / max(tokens, 1), "tokens": tokens}
    if doc_count:
        metrics["doc_loss"] = doc_loss_sum / doc_count
        metrics["doc_accuracy"] = doc_correct / doc_count
    return metrics


# --------------------------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    """Where the checkpoint went and how training went (the content of ``finetune_summary.json``)."""

    output_dir: Path
    best_epoch: int
    best_metric: float
    epochs: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _resolve_base(base, device: torch.device):
    """(model, checkpoint dir or None, description) for ``base``."""
    from pii_frames.model.checkpoint import load_model
    from pii_frames.model.reference import PrivacyFilterModel

    if base is None:
        return init_compact_model(), None, "fresh compact model (init_compact_model defaults)"
    if isinstance(base, PrivacyFilterModel):
        return base, None, "in-memory model"
    path = Path(os.fspath(base)).expanduser()
    if not path.is_dir():
        from pii_frames.engine.loading import resolve_checkpoint

        path, _ = resolve_checkpoint(os.fspath(base))
    return load_model(path, device=device, weight_dtype="float32"), Path(path), str(base)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available; use device='cpu'")
    return device


def _prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory; choose another --output-dir")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{output_dir} is not empty; pass overwrite=True (CLI: --overwrite-output) to "
                                  "replace its checkpoint, or choose an empty --output-dir")
        # Stale weight shards would be indexed together with the new ones by the loader.
        for stale in list(output_dir.glob("*.safetensors")) + [output_dir / n for n in _OUTPUT_FILES]:
            if stale.is_file():
                stale.unlink()


def _lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def finetune(
    train_path,
    output_dir: str | os.PathLike,
    *,
    base=None,
    validation_path=None,
    label_space: str | os.PathLike | Sequence[str] | LabelSpaceSpec | None = None,
    epochs: int = 1,
    batch_size: int = 4,
    lr: float = 1e-5,
    n_ctx: int | None = None,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    grad_accum_steps: int = 1,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    validation_split: float = 0.1,
    max_train_examples: int | None = None,
    max_validation_examples: int | None = None,
    doc_classes: Sequence[str] | None = None,
    doc_loss_weight: float = 0.5,
    output_param_dtype: str = "inherit",
    on_epoch_end: Callable[[dict], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``base`` on opf-format examples and write a checkpoint to ``output_dir``.

    Args:
        train_path: dataset path (file, directory, glob) or a list of opf record dicts.
        output_dir: where the checkpoint goes; must be empty unless ``overwrite``.
        base: checkpoint folder or known model name, an in-memory ``PrivacyFilterModel``, or None for a fresh
            :func:`init_compact_model`.
        validation_path: validation data; without it ``validation_split`` of the training examples (at least
            1, at most n-1) is held out after a seeded shuffle, unless there is only one example.
        label_space: a label-space JSON path (``--label-space-json``), a list of names, or None for the base's.
        epochs, batch_size (windows per micro-batch), lr, weight_decay, max_grad_norm (<= 0 disables clipping),
            grad_accum_steps, lr_schedule (``constant``, ``linear`` or ``cosine``), warmup_steps: optimisation.
        n_ctx: window length in tokens (default: 4096 on CPU, the config's default_n_ctx elsewhere, as opf).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: makes shuffling, splits and new head rows reproducible.
        max_steps: stop after this many optimizer steps (the partial epoch is still evaluated).
        doc_classes: document class names; records' ``info.kind`` trains a document head over them (a base
            head with other classes is replaced). None keeps the base's document head, if any.
        doc_loss_weight: weight of the document loss next to the token loss.
        output_param_dtype: ``inherit`` (the base's), ``float32``, ``bfloat16`` or ``float16``.
        on_epoch_end: called with each epoch's metrics dict (for logging).

    Returns:
        A :class:`FinetuneResult`.

    >>> finetune("train.jsonl", "out", base="ckpt", epochs=40, batch_size=1, lr=2e-4, n_ctx=128)   # doctest: +SKIP
    FinetuneResult(output_dir=PosixPath('out'), best_epoch=..., ...)
    """
    from pii_frames.decode.viterbi import CALIBRATION_FILENAME, write_calibration
    from pii_frames.model.checkpoint import save_opf_checkpoint
    from pii_frames.text.tokenizer import load_tokenizer

    started = time.perf_counter()
    if epochs < 1 or batch_size < 1 or grad_accum_steps < 1:
        raise ValueError("epochs, batch_size and grad_accum_steps must be >= 1")
    if lr_schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"lr_schedule must be constant, linear or cosine, got {lr_schedule!r}")
    output_dir = Path(output_dir)
    _prepare_output_dir(output_dir, overwrite)
    device = _resolve_device(device)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

    train_examples = load_examples(train_path, max_examples=max_train_examples)
    if validation_path is not None:
        validation_examples = load_examples(validation_path, max_examples=max_validation_examples)
    elif len(train_examples) >= 2 and validation_split > 0:
        shuffled = list(train_examples)
        random.Random(seed).shuffle(shuffled)
        n_validation = min(max(int(len(shuffled) * validation_split), 1), len(shuffled) - 1)
        validation_examples, train_examples = shuffled[:n_validation], shuffled[n_validation:]
        if max_validation_examples is not None:
            validation_examples = validation_examples[:max_validation_examples]
    else:
        validation_examples = []

    model, base_dir, base_description = _resolve_base(base, device)
    base_param_dtype = model.config.param_dtype
    model = model.to(device=device, dtype=torch.float32)
    for module in model.modules():  # the engine may have installed a reduced-precision expert copy
        if getattr(module, "quantized", None) is not None:
            raise ValueError("the base model holds quantized experts; load it with weight_dtype='float32'")

    if label_space is None:
        spec = LabelSpaceSpec(tuple(model.config.label_names), "base")
    elif isinstance(label_space, LabelSpaceSpec):
        spec = label_space
    elif isinstance(label_space, (str, os.PathLike)):
        spec = read_label_space_json(label_space)
    else:
        spec = label_space_from_names(list(label_space))
    head_stats = remap_head(model, spec.names, seed=seed)
    if doc_classes:
        set_doc_head(model, doc_classes, seed=seed)
    active_doc_classes = tuple(model.config.doc_class_names or ()) if model.doc_head is not None else ()

    tokenizer = load_tokenizer(base_dir, encoding=model.config.encoding, vocab_size=model.config.vocab_size)
    if n_ctx is None:
        n_ctx = 4096 if device.type == "cpu" else int(model.config.default_n_ctx)
    train_windows = _windows(train_examples, tokenizer, spec, n_ctx, active_doc_classes)
    validation_windows = _windows(validation_examples, tokenizer, spec, n_ctx, active_doc_classes)
    if not train_windows:
        raise DatasetError("the training data has no tokens; check the dataset path")

    model.requires_grad_(True)
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.dim() < 2 or name.endswith(("bias", "sinks", "scale")) else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        # The fused kernel is several times faster on CPU, where the optimizer step is a large share of a step.
        optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = math.ceil(math.ceil(len(train_windows) / batch_size) / grad_accum_steps)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    pad_id = model.config.pad_token_id
    rng = random.Random(seed)

    epoch_metrics: list[dict] = []
    best_state, best_epoch, best_metric = None, 0, float("inf")
    step = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, unit="step", desc="finetune", dynamic_ncols=True)
    try:
        for epoch in range(1, epochs + 1):
            if step >= total_steps:
                break
            model.train()
            batches = _batches(train_windows, batch_size, rng)
            loss_sum = 0.0
            tokens = correct = 0
            optimizer.zero_grad(set_to_none=True)
            for batch_number, batch in enumerate(batches):
                ids, labels, mask, doc = _collate(train_windows, batch, pad_id, device)
                token_loss_sum, n, c, doc_loss, _, _ = _losses(model, ids, labels, mask, doc, doc_loss_weight)
                loss = token_loss_sum / max(n, 1)
                if doc_loss is not None:
                    loss = loss + doc_loss_weight * doc_loss
                (loss / grad_accum_steps).backward()
                loss_sum += float(token_loss_sum.detach())
                tokens += n
                correct += c
                last_of_epoch = batch_number == len(batches) - 1
                if (batch_number + 1) % grad_accum_steps and not last_of_epoch:
                    continue
                for group in optimizer.param_groups:
                    group["lr"] = lr * _lr_factor(step, total_steps, warmup_steps, lr_schedule)
                if max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss_sum / max(tokens, 1):.4f}")
                if step >= total_steps:
                    break
            record = {"epoch": epoch, "steps": step, "train_loss": loss_sum / max(tokens, 1),
                      "train_token_accuracy": correct / max(tokens, 1)}
            if validation_windows:
                validation = _evaluate_windows(model, validation_windows, batch_size, pad_id, device,
                                               doc_loss_weight)
                record.update({f"validation_{k}": v for k, v in validation.items() if k != "tokens"})
                metric = validation["loss"]
            else:
                metric = record["train_loss"]
            record["elapsed_s"] = round(time.perf_counter() - started, 2)
            epoch_metrics.append(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
            if metric < best_metric:
                best_metric, best_epoch = metric, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        if bar is not None:
            bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.requires_grad_(False)

    if output_param_dtype == "inherit":
        output_param_dtype = base_param_dtype if base_dir is not None else "float32"
    category_version = spec.category_version if label_space is not None else _base_category_version(base_dir)
    extra_config = {
        "category_version": category_version,
        "span_class_names": ["O"] + list(spec.span_labels),
        "ner_class_names": list(spec.names),
        "num_labels": len(spec.names),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    save_opf_checkpoint(model, output_dir, param_dtype=output_param_dtype, extra_config=extra_config)
    write_calibration(output_dir / CALIBRATION_FILENAME)

    summary = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "base_checkpoint": base_description,
        "output_dir": str(output_dir),
        "label_space": {"category_version": category_version, "span_class_names": list(spec.span_labels),
                        "ner_class_names": list(spec.names)},
        "head_remap": {k: v for k, v in head_stats.items()},
        "doc_class_names": list(active_doc_classes) or None,
        "dataset": {"train_examples": len(train_examples), "validation_examples": len(validation_examples),
                    "train_windows": len(train_windows), "validation_windows": len(validation_windows),
                    "train_tokens": int(sum(w.ids.size for w in train_windows)),
                    "validation_tokens": int(sum(w.ids.size for w in validation_windows))},
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "grad_accum_steps": grad_accum_steps,
                            "learning_rate": lr, "weight_decay": weight_decay, "max_grad_norm": max_grad_norm,
                            "lr_schedule": lr_schedule, "warmup_steps": warmup_steps, "n_ctx": n_ctx,
                            "max_steps": max_steps, "seed": seed, "doc_loss_weight": doc_loss_weight,
                            "device": str(device), "output_param_dtype": output_param_dtype},
        "steps": step,
        "best_epoch": best_epoch,
        "best_metric": {"name": "validation_loss" if validation_windows else "train_loss", "value": best_metric},
        "epochs": epoch_metrics,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "torch_version": torch.__version__,
    }
    (output_dir / "finetune_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output_dir / "USAGE.txt").write_text(_usage_text(output_dir, summary), encoding="utf-8")
    return FinetuneResult(output_dir=output_dir, best_epoch=best_epoch, best_metric=best_metric,
                          epochs=epoch_metrics, summary=summary)


def _base_category_version(base_dir: Path | None) -> str:
    if base_dir is not None:
        try:
            return str(json.loads((base_dir / "config.json").read_text(encoding="utf-8")).get("category_version",
                                                                                              "v2"))
        except (OSError, json.JSONDecodeError):
            pass
    return "v2"


def _usage_text(output_dir: Path, summary: dict) -> str:
    labels = ", ".join(summary["label_space"]["span_class_names"][1:])
    return f"""Fine-tuned privacy-filter checkpoint (opf original layout), written by pii_frames.

Base: {summary['base_checkpoint']}
Span labels: {labels}
Best epoch: {summary['best_epoch']} ({summary['best_metric']['name']} = {summary['best_metric']['value']:.4f})

Use it from Python:
    import pii_frames as pii
    detector = pii.load("{output_dir}")
    print(detector.redact("text to check").redacted_text)

From the command line:
    pii-frames redact --model {output_dir} "text to check"
    pii-frames eval test.jsonl --model {output_dir}

With the opf reference package (same layout):
    opf redact --checkpoint {output_dir} "text to check"
"""
