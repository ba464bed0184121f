"""Run many token sequences through the encoder in length-sorted, token-budgeted batches.

Each sequence is cut into non-overlapping windows of ``n_ctx`` tokens
(positions restart at 0 in every window, like the reference). Windows from all
sequences are sorted by length and packed into right-padded batches whose
padded size (batch x longest window) stays within ``token_budget``; outputs are
reassembled per sequence in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .reference import PrivacyFilterModel
from .threads import threads_for_call, torch_threads

__all__ = ["SequenceOutput", "run_sequences", "plan_batches"]


@dataclass
class SequenceOutput:
    """Per-token log-softmax [T, C] (float32) and document class probabilities [n_doc] or None.

    ``doc_probs`` is None without a document head and for empty sequences.
    """

    logprobs: np.ndarray
    doc_probs: np.ndarray | None


@dataclass(frozen=True)
class _Window:
    sequence: int
    start: int
    ids: np.ndarray


def plan_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Group item indices into batches, longest first, with len(batch) * longest <= token_budget.

    An item longer than the budget forms a batch of its own.

    >>> plan_batches([5, 1, 3, 4], token_budget=8)
    [[0], [3, 2], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > token_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _as_ids(sequence: object, index: int) -> np.ndarray:
    array = np.asarray(sequence)
    if array.ndim != 1:
        raise ValueError(f"sequence {index}: expected a 1-D array of token ids, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"sequence {index}: token ids must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def run_sequences(
    model: PrivacyFilterModel,
    sequences: Sequence[np.ndarray],
    *,
    n_ctx: int,
    token_budget: int,
    progress: Callable[[int], object] | None = None,
    num_threads: int | None | str = "auto",
) -> list[SequenceOutput]:
    """Per-token log-probs (and document probabilities) for many token-id sequences.

    ``progress`` is called after each batch with the number of real tokens it
    processed (tqdm's ``update`` fits). ``num_threads``: torch CPU threads for
    the call ("auto": see :func:`pii_frames.model.threads.threads_for_call`; None keeps the current
    setting); the global setting is restored afterwards. Document probabilities are
    ``softmax(doc_head(mean of the windows' pooled states weighted by their
    token counts))``.

    >>> outs = run_sequences(model, [np.array([13225, 11]), np.array([], int)],
    ...                      n_ctx=4096, token_budget=8192)  # doctest: +SKIP
    >>> outs[0].logprobs.shape, outs[1].logprobs.shape  # doctest: +SKIP
    ((2, 33), (0, 33))
    """
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    arrays = [_as_ids(sequence, i) for i, sequence in enumerate(sequences)]
    windows = [
        _Window(i, start, ids[start:start + n_ctx]) for i, ids in enumerate(arrays) for start in range(0, ids.size, n_ctx)
    ]
    num_labels = model.config.num_labels
    window_logprobs: list[np.ndarray | None] = [None] * len(windows)
    window_pooled: list[torch.Tensor | None] = [None] * len(windows)
    device = model.device
    pad_id = model.config.pad_token_id

    threads = threads_for_call(device, num_threads)
    for batch in plan_batches([w.ids.size for w in windows], token_budget):
        longest = windows[batch[0]].ids.size
        ids = np.full((len(batch), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=bool)
        for row, index in enumerate(batch):
            length = windows[index].ids.size
            ids[row, :length] = windows[index].ids
            mask[row, :length] = True
        with torch_threads(threads), torch.inference_mode():
            output = model(
                torch.from_numpy(ids).to(device),
                torch.from_numpy(mask).to(device) if not mask.all() else None,
            )
            logprobs = torch.log_softmax(output.logits.float(), dim=-1).cpu().numpy()
            pooled = output.pooled.float().cpu() if output.pooled is not None else None
        for row, index in enumerate(batch):
            window_logprobs[index] = logprobs[row, : windows[index].ids.size]
            if pooled is not None:
                window_pooled[index] = pooled[row]
        if progress is not None:
            progress(int(mask.sum()))

    per_sequence: list[list[int]] = [[] for _ in arrays]
    for index, window in enumerate(windows):
        per_sequence[window.sequence].append(index)  # windows were created in start order
    results: list[SequenceOutput] = []
    for indices in per_sequence:
        if not indices:
            results.append(SequenceOutput(np.zeros((0, num_labels), dtype=np.float32), None))
            continue
        logprobs = np.concatenate([window_logprobs[j] for j in indices], axis=0).astype(np.float32, copy=False)
        doc_probs = None
        if model.doc_head is not None:
            doc_probs = _doc_probs(model, [window_pooled[j] for j in indices], [windows[j].ids.size for j in indices])
        results.append(SequenceOutput(np.ascontiguousarray(logprobs), doc_probs))
    return results


def _doc_probs(model: PrivacyFilterModel, pooled: list[torch.Tensor], counts: list[int]) -> np.ndarray:
    weights = torch.tensor(counts, dtype=torch.float32)[:, None]
    mean = (torch.stack(pooled) * weights).sum(dim=0) / weights.sum()
    head = model.doc_head
    with torch.inference_mode():
        logits = torch.nn.functional.linear(mean, head.weight.float().cpu(), head.bias.float().cpu())
        return torch.softmax(logits, dim=-1).numpy().astype(np.float32)
