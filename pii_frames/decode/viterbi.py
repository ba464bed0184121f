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
from typing import Mapping

import numpy as np

from .labels import TAG_B, TAG_E, TAG_I, TAG_O, TAG_S, LabelSpace

__all__ = ["BIAS_KEYS", "CALIBRATION_FILENAME", "argmax_decode", "load_calibration", "viterbi_decode"]

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
