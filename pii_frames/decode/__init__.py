"""Decoding: BIOES label spaces, constrained Viterbi / argmax, character spans."""

from .labels import DEFAULT_LABEL_NAMES, DEFAULT_SPAN_LABELS, LabelSpace
from .spans import CharSpan, decode_spans, decode_spans_many, select_non_overlapping
from .viterbi import BIAS_KEYS, argmax_decode, load_calibration, viterbi_decode, viterbi_decode_many

__all__ = [
    "BIAS_KEYS",
    "DEFAULT_LABEL_NAMES",
    "DEFAULT_SPAN_LABELS",
    "CharSpan",
    "LabelSpace",
    "argmax_decode",
    "decode_spans",
    "decode_spans_many",
    "load_calibration",
    "select_non_overlapping",
    "viterbi_decode",
    "viterbi_decode_many",
]
