"""Every option of a detection, typed and validated once: :class:`DetectOptions`.

Adapters (Polars, DuckDB, pandas, the CLI, dbt, Airflow, Ray, Spark) take keyword arguments; they all end
up here. :func:`split_options` sorts them into what loads a model (``device``, ``dtype``) and builds the
shared Detector, and what varies per call (:data:`PER_CALL`); an unknown name is one clear error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

__all__ = ["CACHE_MAX_BYTES", "CACHE_MAX_ENTRIES", "LOAD_OPTIONS", "PER_CALL", "DetectOptions", "option_names", "split_options"]

DecodeMode = Literal["viterbi", "argmax"]
OutputMode = Literal["typed", "redacted"]
OnError = Literal["raise", "null"]

# The result cache is bounded in entries and in bytes (texts are kept as keys: long documents add up).
# Small enough to fill within a table run's first minute (~15,000 rows on the embedded CPU model), so a
# long run's memory is flat from then on; values that repeat across batches stay (least recently used out).
CACHE_MAX_ENTRIES = 20_000
CACHE_MAX_BYTES = 64 * 2**20
# Options of pii_frames.load that pick the weights rather than configure the Detector.
LOAD_OPTIONS = ("device", "dtype")


@dataclass(frozen=True)
class DetectOptions:
    """How a Detector finds and redacts: decoding, output, policy, batching, errors, extras.

    Attributes:
        decode_mode: ``"viterbi"`` (the reference's constrained BIOES decoder) or ``"argmax"``.
        output_mode: ``"typed"`` (``<PRIVATE_EMAIL>``) or ``"redacted"`` (``<REDACTED>`` for all).
        policy: a :class:`~pii_frames.Policy` (a dict of its arguments is converted) or None.
        biases: Viterbi transition biases over the checkpoint's calibration (stored sorted).
        trim_whitespace / discard_overlapping: the reference's span post-processing switches.
        n_ctx, token_budget, threads: window length, tokens per forward batch, torch threads
            (None: ``PII_FRAMES_*`` variables, then the device's defaults).
        progress: progress bars (None: on long inputs in a terminal).
        on_error: ``"raise"`` names the bad row and stops; ``"null"`` nulls it and warns.
        cache_size, cache_bytes: bounds of the result cache (0 entries turns it off).
        opf_compatible: the reference's exact spans: no edge snapping, placeholder protection or
            recognizers.
        recognizers: ``"builtin"``, a RecognizerSet, its config, a policy file path, or None.
        with_text: span structs carry the raw matched ``text`` (raw PII: inspection only).
        rescan: read each redacted text again as its redacted form reads, and redact what that
            finds too, until nothing new (:mod:`pii_frames.engine.rescan`); off with
            ``opf_compatible``.

    Example:
        >>> options = DetectOptions(output_mode="redacted", policy={"operator": "mask"})
        >>> options.policy.operator, options.replace(on_error="null").on_error
        ('mask', 'null')
        >>> DetectOptions(decode_mode="beam")
        Traceback (most recent call last):
        ...
        ValueError: decode_mode='beam' is not valid; use one of viterbi, argmax
    """

    decode_mode: DecodeMode = "viterbi"
    output_mode: OutputMode = "typed"
    policy: Any = None
    biases: Any = ()
    trim_whitespace: bool = True
    discard_overlapping: bool = False
    n_ctx: int | None = None
    token_budget: int | None = None
    threads: int | None = None
    progress: bool | None = None
    on_error: OnError = "raise"
    cache_size: int = CACHE_MAX_ENTRIES
    cache_bytes: int = CACHE_MAX_BYTES
    opf_compatible: bool = False
    recognizers: Any = "builtin"
    with_text: bool = False
    rescan: bool = True

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "decode_mode": get_args(DecodeMode),
        "output_mode": get_args(OutputMode),
        "on_error": get_args(OnError),
    }

    def __post_init__(self) -> None:
        from pii_frames.redaction.policy import as_policy

        set_ = object.__setattr__
        for name, choices in self.CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name}={value!r} is not valid; use one of {', '.join(choices)}")
        set_(self, "policy", as_policy(self.policy))
        biases = self.biases or ()
        if isinstance(biases, Mapping):
            biases = biases.items()
        try:
            set_(self, "biases", tuple(sorted((str(k), float(v)) for k, v in biases)))
        except (TypeError, ValueError):
            raise ValueError(f"biases must map transition names to numbers, got {self.biases!r}") from None
        for name in ("n_ctx", "token_budget", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        for name in ("cache_size", "cache_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("trim_whitespace", "discard_overlapping", "opf_compatible", "with_text", "rescan"):
            set_(self, name, bool(getattr(self, name)))
        set_(self, "recognizers", resolve_recognizers(self.recognizers))

    def replace(self, **changes: Any) -> DetectOptions:
        """A copy with ``changes`` applied (None leaves a field as it is), validated again.

        >>> DetectOptions().replace(output_mode=None, on_error="null").on_error
        'null'
        """
        changes = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **changes) if changes else self


def resolve_recognizers(value):
    """The ``recognizers`` option as a RecognizerSet, or None when turned off.

    >>> resolve_recognizers(None) is None, len(resolve_recognizers("builtin").names) > 10
    (True, True)
    """
    if value is None or value is False:
        return None
    from pii_frames.recognizers import RecognizerSet

    if isinstance(value, RecognizerSet):
        return value
    if value is True or value == "builtin":
        return RecognizerSet.default()
    if isinstance(value, (dict, list, tuple)):
        return RecognizerSet.from_config(value)
    if isinstance(value, (str, os.PathLike)):
        return RecognizerSet.from_file(value)
    raise TypeError(
        f"recognizers must be 'builtin', None, a RecognizerSet, its config or a policy file path, "
        f"got {type(value).__name__}"
    )


# Options whose None is a choice (turn it off) rather than "not given".
NONE_MEANS_OFF = frozenset({"recognizers"})
# Options that may change from call to call; the others configure the (shared) Detector.
PER_CALL = ("policy", "output_mode", "decode_mode", "biases", "on_error", "progress", "with_text")


def option_names() -> set[str]:
    """Every keyword an adapter accepts besides ``model``: DetectOptions fields plus ``device``/``dtype``.

    >>> {"policy", "device", "token_budget", "opf_compatible"} <= option_names()
    True
    """
    return {field.name for field in dataclasses.fields(DetectOptions)} | set(LOAD_OPTIONS)


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Adapter keywords as (Detector options, per-call options); None means "not given" (except recognizers).

    The first part loads and configures the shared Detector (``device``, ``dtype``, ``n_ctx``,
    ``opf_compatible``, ...), the second varies per call (:data:`PER_CALL`; a policy dict
    becomes a Policy here, so a malformed one fails before any data moves).

    >>> split_options({"device": "cpu", "output_mode": "redacted", "threads": None})
    ({'device': 'cpu'}, {'output_mode': 'redacted'})
    >>> split_options({"outptu_mode": "redacted"})
    Traceback (most recent call last):
    ...
    TypeError: unknown option(s) ['outptu_mode']; known options: ...
    """
    unknown = sorted(set(options) - option_names())
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; known options: {', '.join(sorted(option_names()))}")
    detector_options: dict[str, Any] = {}
    per_call: dict[str, Any] = {}
    for key, value in options.items():
        if value is None and key not in NONE_MEANS_OFF:
            continue
        (per_call if key in PER_CALL else detector_options)[key] = value
    if "policy" in per_call:
        from pii_frames.redaction.policy import as_policy

        per_call["policy"] = as_policy(per_call["policy"])
    return detector_options, per_call
