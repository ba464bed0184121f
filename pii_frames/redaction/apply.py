"""Apply a Policy to decoded spans and build the RedactionResult."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..decode.spans import CharSpan, select_non_overlapping
from .edges import merge_touching, sanitize_edges
from .policy import REDACTED_LABEL, Policy, as_policy
from .result import DetectedSpan, RedactionResult

__all__ = ["MISMATCH_WARNING", "OUTPUT_MODES", "build_result", "deny_list_spans"]

OUTPUT_MODES = ("typed", "redacted")
MISMATCH_WARNING = (
    "Input text did not exactly match tokenizer round-trip decode; spans are based on decoded token text."
)
_DEFAULT_POLICY = Policy()
DENY_LIST_SOURCE = "deny_list"


def deny_list_spans(text: str, deny: dict[str, str]) -> list[CharSpan]:
    """Every occurrence (overlapping ones included) of every deny-list value, score 1.0.

    Example:
        >>> deny_list_spans("ab ab", {"ab": "deny_list"})
        [CharSpan(label='deny_list', start=0, end=2, score=1.0, source='deny_list'), CharSpan(label='deny_list', start=3, end=5, score=1.0, source='deny_list')]
    """
    found: list[CharSpan] = []
    for value, label in deny.items():
        position = text.find(value)
        while position != -1:
            found.append(CharSpan(label, position, position + len(value), 1.0, DENY_LIST_SOURCE))
            position = text.find(value, position + 1)
    return found


def _merge_overlaps(model_spans: Sequence[CharSpan], rule_spans: Sequence[CharSpan]) -> list[CharSpan]:
    """Union overlapping spans so no deny-list character or model character escapes redaction.

    A merged span takes the label of its leftmost, then longest member (a
    deny-list member first on ties, then the label name) and its best score.
    """
    return merge_touching([*rule_spans, *model_spans], prefer=lambda span: span.source != DENY_LIST_SOURCE)


def build_result(
    text: str,
    spans: Iterable[CharSpan],
    *,
    policy: Policy | None = None,
    output_mode: str = "typed",
    category: str | None = None,
    category_score: float | None = None,
    decoded_mismatch: bool = False,
    warning: str | None = None,
    opf_compatible: bool = False,
) -> RedactionResult:
    """Redact ``text`` at ``spans`` under ``policy`` and package the result.

    ``text`` is the text the spans index (``TokenOffsets.decoded_text``, which
    differs from the input only when ``decoded_mismatch``). Steps: drop spans
    outside the text, keep the labels / scores / values the policy selects,
    take a non-overlapping subset (the reference's greedy rule), add deny-list
    matches (merging any overlap), keep our own placeholders, tokens and masks
    out of every span and snap span edges to whole tokens
    (:mod:`pii_frames.redaction.edges`), then replace each span left to right.
    ``opf_compatible=True`` skips the edge rules, so spans and text are the
    reference's. ``output_mode="redacted"`` reports every span as
    ``"redacted"`` and placeholders as ``<REDACTED>``. ``policy`` may be a
    :class:`Policy` or a mapping of its arguments.

    Example:
        >>> spans = [CharSpan("private_person", 0, 3, 0.9), CharSpan("private_phone", 10, 18, 0.8)]
        >>> build_result("Ada, call 555-0100", spans, policy=Policy("mask")).redacted_text
        '***, call ********'
        >>> build_result("Ada, call 555-0100", spans, output_mode="redacted").redacted_text
        '<REDACTED>, call <REDACTED>'
    """
    if not isinstance(text, str):
        raise TypeError(f"build_result expects the text as str, got {type(text).__name__}")
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
    policy = _DEFAULT_POLICY if policy is None else as_policy(policy)

    selected = [
        span
        for span in spans
        if 0 <= span.start < span.end <= len(text)
        and policy.acts_on(span.label)
        and span.score >= policy.min_score
        and text[span.start : span.end] not in policy.allow
    ]
    selected = select_non_overlapping(selected)
    if policy.deny:
        selected = _merge_overlaps(selected, deny_list_spans(text, policy.deny))
    if not opf_compatible and selected:
        selected = [
            span
            for span in sanitize_edges(text, selected, mask_char=policy.mask_char, keep_last=policy.keep_last)
            if text[span.start : span.end] not in policy.allow
        ]

    pieces: list[str] = []
    detected: list[DetectedSpan] = []
    cursor = 0
    for span in selected:
        value = text[span.start : span.end]
        label = span.label if output_mode == "typed" else REDACTED_LABEL
        # The operator follows the model's label; the replacement shows the reported label.
        replacement = policy.replacement(label, value, operator=policy.operator_for(span.label))
        pieces.append(text[cursor : span.start])
        pieces.append(replacement)
        cursor = span.end
        detected.append(DetectedSpan(label, span.start, span.end, value, replacement, float(span.score), span.source))
    pieces.append(text[cursor:])

    by_label: dict[str, int] = {}
    for span in detected:
        by_label[span.label] = by_label.get(span.label, 0) + 1
    summary = {
        "output_mode": output_mode,
        "span_count": len(detected),
        "by_label": dict(sorted(by_label.items())),
        "decoded_mismatch": bool(decoded_mismatch),
    }
    if decoded_mismatch and warning is None:
        warning = MISMATCH_WARNING
    return RedactionResult(
        text=text,
        redacted_text="".join(pieces),
        detected_spans=tuple(detected),
        summary=summary,
        category=category,
        category_score=None if category_score is None else float(category_score),
        warning=warning,
    )
