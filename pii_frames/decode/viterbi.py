"""Constrained BIOES Viterbi decoding (and per-token argmax) over token log-probs.

The lattice, the six transition biases and the tie rules are those of the
reference decoder: impossible moves cost -1e9 (finite, like the reference),
sums are float32, and every max keeps the first (lowest) label index on ties.
The whole document is decoded at once, never window by window.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .labels import TAG_B, TAG_E, TAG_I, TAG_O, TAG_S, LabelSpace

__all__ = [
    "BIAS_KEYS",
    "CALIBRATION_FILENAME",
    "argmax_decode",
    "load_calibration",
    "write_calibration",
    "viterbi_decode",
    "viterbi_decode_many",
]

BIAS_KEYS = (
    "transition_bias_background_stay",
    "transition_bias_background_to_start",
    "transition_bias_inside_to_continue",
    "transition_bias_inside_to_end",
    "transition_bias_end_to_background",
    "transition_bias_end_to_start",
)
CALIBRATION_FILENAME = "viterbi_calibration.json"
_IMPOSSIBLE = np.float32(-1e9)
# Below this many documents per batch the dense per-document loop is faster (fewer numpy calls per step).
_MIN_BATCH = 8


def load_calibration(path: str | Path) -> dict[str, float]:
    """Read the six transition biases from a ``viterbi_calibration.json`` file.

    The schema is exact at every level, as in the reference:
    ``{"operating_points": {"default": {"biases": {<the six BIAS_KEYS>: number}}}}``.

    Example:
        >>> import json, tempfile, os
        >>> biases = {key: 0.0 for key in BIAS_KEYS}
        >>> path = os.path.join(tempfile.mkdtemp(), "viterbi_calibration.json")
        >>> _ = open(path, "w").write(json.dumps({"operating_points": {"default": {"biases": biases}}}))
        >>> load_calibration(path)["transition_bias_background_stay"]
        0.0
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"Viterbi calibration file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read Viterbi calibration {path}: {exc}") from exc

    def exact(value: object, expected: set[str], where: str) -> Mapping:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: {where} must be a JSON object")
        if set(value) != expected:
            missing, extra = sorted(expected - set(value)), sorted(set(value) - expected)
            raise ValueError(
                f"{path}: {where} must have exactly the keys {sorted(expected)} (missing {missing}, extra {extra})"
            )
        return value

    root = exact(payload, {"operating_points"}, "the top level")
    points = exact(root["operating_points"], {"default"}, "operating_points")
    entry = exact(points["default"], {"biases"}, "operating_points.default")
    raw = exact(entry["biases"], set(BIAS_KEYS), "operating_points.default.biases")
    return {key: _as_bias(raw[key], f"{path}: operating_points.default.biases.{key}") for key in BIAS_KEYS}


def write_calibration(path: str | Path, biases: Mapping[str, float] | None = None) -> Path:
    """Write ``viterbi_calibration.json`` (the schema :func:`load_calibration` reads) atomically.

    Missing keys are 0.0, unknown keys are an error; ``None`` writes the all-zero calibration of a freshly
    trained checkpoint.

    Example:
        >>> import tempfile, os
        >>> path = write_calibration(os.path.join(tempfile.mkdtemp(), CALIBRATION_FILENAME),
        ...                          {"transition_bias_inside_to_continue": 2.5})
        >>> load_calibration(path)["transition_bias_inside_to_continue"]
        2.5
    """
    from pii_frames.io.atomic import atomic_write_json

    values = dict(zip(BIAS_KEYS, resolve_biases(biases)))
    atomic_write_json(str(path), {"operating_points": {"default": {"biases": values}}})
    return Path(path)


def _as_bias(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{where} must be finite, got {value!r}")
    return float(value)


def resolve_biases(biases: Mapping[str, float] | None) -> tuple[float, ...]:
    """The six biases in BIAS_KEYS order; missing keys are 0.0, unknown keys are an error."""
    if biases is None:
        return (0.0,) * len(BIAS_KEYS)
    if not isinstance(biases, Mapping):
        raise TypeError(f"biases must be a mapping of {list(BIAS_KEYS)} to numbers, got {type(biases).__name__}")
    unknown = sorted(set(biases) - set(BIAS_KEYS))
    if unknown:
        raise ValueError(f"unknown Viterbi bias name(s) {unknown}; valid names: {list(BIAS_KEYS)}")
    return tuple(_as_bias(biases.get(key, 0.0), f"bias {key}") for key in BIAS_KEYS)


@lru_cache(maxsize=64)
def _lattice(space: LabelSpace, biases: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start scores [C], end scores [C] and transition scores [C_from, C_to], float32."""
    stay, to_start, inside_continue, inside_end, end_to_background, end_to_start = biases
    tags, classes = space.tags, space.classes
    n = len(space)
    starts_span = (tags == TAG_B) | (tags == TAG_S)
    start = np.where((tags == TAG_O) | starts_span, 0.0, _IMPOSSIBLE).astype(np.float32)
    end = np.where((tags == TAG_O) | (tags == TAG_E) | (tags == TAG_S), 0.0, _IMPOSSIBLE).astype(np.float32)

    trans = np.full((n, n), _IMPOSSIBLE, dtype=np.float32)
    is_o, is_start = tags == TAG_O, starts_span
    from_o, from_end = tags == TAG_O, (tags == TAG_E) | (tags == TAG_S)
    inside_from = (tags == TAG_B) | (tags == TAG_I)
    same_class = classes[:, None] == classes[None, :]
    trans[np.ix_(from_o, is_o)] = stay
    trans[np.ix_(from_o, is_start)] = to_start
    trans[np.ix_(from_end, is_o)] = end_to_background
    trans[np.ix_(from_end, is_start)] = end_to_start
    continue_mask = inside_from[:, None] & (tags == TAG_I)[None, :] & same_class
    end_mask = inside_from[:, None] & (tags == TAG_E)[None, :] & same_class
    trans[continue_mask] = inside_continue
    trans[end_mask] = inside_end
    for array in (start, end, trans):
        array.setflags(write=False)
    return start, end, trans


def _checked_logprobs(logprobs: np.ndarray, n_labels: int | None) -> np.ndarray:
    array = np.asarray(logprobs, dtype=np.float32)
    if array.ndim != 2 or (n_labels is not None and array.shape[1] != n_labels):
        expected = f"[tokens, {n_labels}]" if n_labels is not None else "[tokens, labels]"
        raise ValueError(f"logprobs must have shape {expected}, got {list(array.shape)}")
    if np.isnan(array).any():
        token = int(np.flatnonzero(np.isnan(array).any(axis=1))[0])
        raise ValueError(f"logprobs contain NaN at token {token}; check the model output")
    return array


def argmax_decode(logprobs: np.ndarray) -> np.ndarray:
    """Best label of every token on its own (first index on ties).

    Example:
        >>> argmax_decode(np.log([[0.5, 0.5], [0.1, 0.9]])).tolist()
        [0, 1]
    """
    return _checked_logprobs(logprobs, None).argmax(axis=1).astype(np.int64)


def viterbi_decode(
    logprobs: np.ndarray,
    label_space: LabelSpace,
    biases: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Most likely valid BIOES label sequence for a whole document.

    ``logprobs`` is ``[tokens, len(label_space)]`` (per-token log-softmax).
    ``biases`` maps some of :data:`BIAS_KEYS` to additive transition scores
    (missing ones are 0.0): raising ``transition_bias_background_to_start``
    finds more spans (recall), raising ``transition_bias_background_stay``
    finds fewer (precision).

    Example:
        >>> space = LabelSpace.from_names(["O", "B-x", "I-x", "E-x", "S-x"])
        >>> lp = np.log(np.array([[.9, .02, .02, .04, .02],
        ...                       [.05, .1, .5, .2, .15],   # I-x alone is not allowed here
        ...                       [.9, .02, .02, .04, .02]]))
        >>> viterbi_decode(lp, space).tolist()
        [0, 4, 0]
    """
    lp = _checked_logprobs(logprobs, len(label_space))
    start, end, trans = _lattice(label_space, resolve_biases(biases))
    n_tokens, n_labels = lp.shape
    if n_tokens == 0:
        return np.zeros(0, dtype=np.int64)

    backpointers = np.empty((max(n_tokens - 1, 0), n_labels), dtype=np.int16 if n_labels < 32768 else np.int32)
    columns = np.arange(n_labels)
    candidates = np.empty((n_labels, n_labels), dtype=np.float32)
    score = lp[0] + start
    for t in range(1, n_tokens):
        # candidates[i, j]: best path ending in label i at t-1, then moving to label j.
        np.add(score[:, None], trans, out=candidates)
        best_previous = candidates.argmax(axis=0)
        backpointers[t - 1] = best_previous
        score = candidates[best_previous, columns] + lp[t]

    if not np.isfinite(score).any():
        return lp.argmax(axis=1).astype(np.int64)
    path = np.empty(n_tokens, dtype=np.int64)
    path[-1] = int((score + end).argmax())
    for t in range(n_tokens - 2, -1, -1):
        path[t] = backpointers[t, path[t + 1]]
    return path


@lru_cache(maxsize=64)
def _sparse_lattice(space: LabelSpace, biases: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Index arrays of the BIOES lattice's few allowed moves (see viterbi_decode_many)."""
    stay, to_start, inside_continue, inside_end, end_to_background, end_to_start = biases
    tags = space.tags
    # Labels that may precede O or a span start: O itself and every E-/S- label, in label order.
    boundary = np.flatnonzero((tags == TAG_O) | (tags == TAG_E) | (tags == TAG_S))
    from_o = tags[boundary] == TAG_O
    b_idx = np.array([space.index[("B", name)] for name in space.span_labels], dtype=np.intp)
    i_idx = np.array([space.index[("I", name)] for name in space.span_labels], dtype=np.intp)
    e_idx = np.array([space.index[("E", name)] for name in space.span_labels], dtype=np.intp)
    s_idx = np.array([space.index[("S", name)] for name in space.span_labels], dtype=np.intp)
    return {
        "boundary": boundary,
        "to_o_bias": np.where(from_o, stay, end_to_background).astype(np.float32),
        "to_start_bias": np.where(from_o, to_start, end_to_start).astype(np.float32),
        "starts": np.concatenate([b_idx, s_idx]),
        "b": b_idx,
        "i": i_idx,
        "e": e_idx,
        "b_first": b_idx < i_idx,
        "continue": np.float32(inside_continue),
        "end": np.float32(inside_end),
    }


def viterbi_decode_many(
    logprobs_list: Sequence[np.ndarray],
    label_space: LabelSpace,
    biases: Mapping[str, float] | None = None,
    *,
    token_budget: int = 65536,
) -> list[np.ndarray]:
    """:func:`viterbi_decode` for many documents at once; same paths, much faster for many rows.

    Documents are sorted by length and decoded in batches of about
    ``token_budget`` tokens, one time step for the whole batch at a time. Each
    step visits only the lattice's allowed moves (O and span starts are entered
    from O/E/S labels, I/E from the same class's B/I), which is O(labels)
    instead of O(labels^2). Impossible moves cost -1e9 in the reference, so
    they can never win while scores stay far from -1e9; documents whose
    log-prob range could break that fall back to the dense decoder, which
    keeps the result identical to :func:`viterbi_decode` in every case.

    Example:
        >>> space = LabelSpace.from_names(["O", "B-x", "I-x", "E-x", "S-x"])
        >>> docs = [np.log(np.full((n, 5), 0.2, dtype=np.float32)) for n in (3, 0, 1)]
        >>> [p.tolist() for p in viterbi_decode_many(docs, space)]
        [[0, 0, 0], [], [0]]
    """
    bias_values = resolve_biases(biases)
    docs = [_checked_logprobs(lp, len(label_space)) for lp in logprobs_list]
    paths: list[np.ndarray | None] = [None] * len(docs)
    bias_range = max(bias_values) - min(bias_values)
    fast: list[int] = []
    for position, lp in enumerate(docs):
        n_tokens = lp.shape[0]
        if n_tokens <= 1:
            paths[position] = viterbi_decode(lp, label_space, biases)
            continue
        spread = float(lp.max() - lp.min()) if np.isfinite(lp).all() else math.inf
        # Score spread after t steps is at most t * (spread + bias range); keep it far below 1e9.
        if n_tokens * (spread + bias_range + 1.0) < 1e8:
            fast.append(position)
        else:
            paths[position] = viterbi_decode(lp, label_space, biases)

    fast.sort(key=lambda position: -docs[position].shape[0])
    batches: list[list[int]] = [[]]
    for position in fast:
        if batches[-1] and (len(batches[-1]) + 1) * docs[batches[-1][0]].shape[0] > token_budget:
            batches.append([])
        batches[-1].append(position)
    for batch in batches:
        if len(batch) >= _MIN_BATCH:
            _decode_batch(docs, batch, paths, label_space, bias_values)
        else:
            for position in batch:
                paths[position] = viterbi_decode(docs[position], label_space, biases)
    return paths  # type: ignore[return-value]


def _decode_batch(
    docs: list[np.ndarray],
    batch: list[int],
    paths: list,
    space: LabelSpace,
    bias_values: tuple[float, ...],
) -> None:
    """Decode documents sorted by decreasing length, stepping all of them together."""
    start_scores, end_scores, _ = _lattice(space, bias_values)
    lattice = _sparse_lattice(space, bias_values)
    boundary, to_o_bias, to_start_bias = lattice["boundary"], lattice["to_o_bias"], lattice["to_start_bias"]
    starts, b_idx, i_idx, e_idx = lattice["starts"], lattice["b"], lattice["i"], lattice["e"]
    b_first, continue_bias, end_bias = lattice["b_first"], lattice["continue"], lattice["end"]
    background, n_starts = space.background, starts.shape[0]

    lengths = np.array([docs[p].shape[0] for p in batch])
    n_docs, n_steps, n_labels = len(batch), int(lengths[0]), len(space)
    emissions = np.zeros((n_docs, n_steps, n_labels), dtype=np.float32)
    for row, position in enumerate(batch):
        emissions[row, : lengths[row]] = docs[position]
    # active[t]: documents still running at step t; a prefix, since lengths decrease.
    active = (lengths[None, :] > np.arange(n_steps)[:, None]).sum(axis=1)

    score = emissions[:, 0, :] + start_scores
    backpointers = np.zeros((n_steps - 1, n_docs, n_labels), dtype=np.int16)
    for t in range(1, n_steps):
        n = int(active[t])
        rows = np.arange(n)
        current = score[:n]
        # Into O and into B-/S-: best of O and the E-/S- labels, first label index on ties.
        entry = current[:, boundary]
        into_o = entry + to_o_bias
        from_o = into_o.argmax(axis=1)
        into_start = entry + to_start_bias
        from_start = into_start.argmax(axis=1)
        # Into I-x and E-x: best of B-x and I-x (the lower label index wins ties).
        prev_b, prev_i = current[:, b_idx], current[:, i_idx]
        cont_b, cont_i = prev_b + continue_bias, prev_i + continue_bias
        take_i_cont = np.where(b_first, cont_i > cont_b, cont_i >= cont_b)
        end_b, end_i = prev_b + end_bias, prev_i + end_bias
        take_i_end = np.where(b_first, end_i > end_b, end_i >= end_b)

        best = np.empty((n, n_labels), dtype=np.float32)
        best[:, background] = into_o[rows, from_o]
        best[:, starts] = np.broadcast_to(into_start[rows, from_start][:, None], (n, n_starts))
        best[:, i_idx] = np.where(take_i_cont, cont_i, cont_b)
        best[:, e_idx] = np.where(take_i_end, end_i, end_b)
        pointer = backpointers[t - 1, :n]
        pointer[:, background] = boundary[from_o]
        pointer[:, starts] = np.broadcast_to(boundary[from_start][:, None], (n, n_starts))
        pointer[:, i_idx] = np.where(take_i_cont, i_idx, b_idx)
        pointer[:, e_idx] = np.where(take_i_end, i_idx, b_idx)
        # Finished documents keep their final scores: only the active prefix moves on.
        score[:n] = best + emissions[:n, t]
    last = (score + end_scores).argmax(axis=1)

    decoded = np.zeros((n_docs, n_steps), dtype=np.int64)
    cursor = last.copy()
    for t in range(n_steps - 1, -1, -1):
        n = int(active[t])
        if t < n_steps - 1:
            stepped = backpointers[t, np.arange(n), cursor[:n]]
            cursor[:n] = np.where(lengths[:n] > t + 1, stepped, last[:n])
        decoded[:n, t] = cursor[:n]
    for row, position in enumerate(batch):
        paths[position] = decoded[row, : lengths[row]].copy()
