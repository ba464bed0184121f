"""Redaction results in the reference's JSON schema (version 1), plus added keys only."""

from __future__ import annotations

import html
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "DetectedSpan", "RedactionResult"]

SCHEMA_VERSION = 1

# Background colours of the HTML view: fixed for the built-in labels, hashed for others.
_LABEL_COLOURS = {
    "account_number": "#ffd8a8",
    "private_address": "#b2f2bb",
    "private_date": "#a5d8ff",
    "private_email": "#d0bfff",
    "private_person": "#ffc9c9",
    "private_phone": "#99e9f2",
    "private_url": "#ffec99",
    "secret": "#fcc2d7",
    "redacted": "#dee2e6",
    "deny_list": "#ced4da",
}
_EXTRA_COLOURS = ("#c0eb75", "#eebefa", "#96f2d7", "#ffe066", "#74c0fc", "#ffa8a8", "#e599f7", "#8ce99a")


def label_colour(label: str) -> str:
    """Stable HTML colour of a label (the same in every result and session)."""
    return _LABEL_COLOURS.get(label) or _EXTRA_COLOURS[zlib.crc32(label.encode("utf-8")) % len(_EXTRA_COLOURS)]


@dataclass(frozen=True)
class DetectedSpan:
    """One redacted span: ``text == source[start:end]`` was replaced by ``placeholder``.

    ``placeholder`` is the replacement actually written (``<PRIVATE_PERSON>``,
    a mask, a pseudonym, or ``""`` for dropped text); ``score`` is the model's
    mean token probability for the span (1.0 for deny-list matches);
    ``source`` is what found it (``"model"``, ``"pattern"``, ``"deny_list"``).
    """

    label: str
    start: int
    end: int
    text: str
    placeholder: str
    score: float
    source: str = "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "placeholder": self.placeholder,
            "score": self.score,
            "source": self.source,
        }


@dataclass(frozen=True, repr=False)
class RedactionResult:
    """Redacted text, the spans replaced, a summary and (multitask models) a document category.

    ``to_dict()`` follows the reference RedactionResult schema v1 key for key
    (``schema_version``, ``summary``, ``text``, ``detected_spans``,
    ``redacted_text`` and ``warning`` only on a tokenizer round-trip mismatch)
    and adds ``score`` per span and top-level ``category`` / ``category_score``
    (None without a document head).

    Example:
        >>> from pii_frames.redaction import build_result
        >>> from pii_frames.decode import CharSpan
        >>> result = build_result("Call Ada now", [CharSpan("private_person", 5, 8, 0.97)])
        >>> result.redacted_text
        'Call <PRIVATE_PERSON> now'
        >>> list(result.to_dict())
        ['schema_version', 'summary', 'text', 'detected_spans', 'redacted_text', 'category', 'category_score']
        >>> result.summary["by_label"]
        {'private_person': 1}
    """

    text: str
    redacted_text: str
    detected_spans: tuple[DetectedSpan, ...]
    summary: dict[str, Any]
    category: str | None = None
    category_score: float | None = None
    warning: str | None = None
    schema_version: int = field(default=SCHEMA_VERSION, init=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict: reference schema v1 keys in order, then the added keys."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "summary": {
                "output_mode": self.summary["output_mode"],
                "span_count": self.summary["span_count"],
                "by_label": dict(self.summary["by_label"]),
                "decoded_mismatch": self.summary["decoded_mismatch"],
            },
            "text": self.text,
            "detected_spans": [span.to_dict() for span in self.detected_spans],
            "redacted_text": self.redacted_text,
        }
        if self.warning is not None:
            out["warning"] = self.warning
        out["category"] = self.category
        out["category_score"] = self.category_score
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (non-ASCII characters kept as they are)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def __repr__(self) -> str:
        category = f", category={self.category!r}" if self.category is not None else ""
        return (
            f"RedactionResult(redacted_text={_shorten(self.redacted_text)!r}, "
            f"spans={len(self.detected_spans)}{category})"
        )

    def _repr_html_(self) -> str:
        """Notebook view: the source text with each span highlighted and labelled."""
        parts = ['<div style="font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.9">']
        cursor = 0
        for span in self.detected_spans:
            parts.append(html.escape(self.text[cursor : span.start]))
            tooltip = f"{span.label} (score {span.score:.2f}) \u2192 {span.placeholder or '(dropped)'}"
            parts.append(
                f'<mark style="background: {label_colour(span.label)}; padding: 0 2px; border-radius: 3px" '
                f'title="{html.escape(tooltip, quote=True)}">{html.escape(span.text)}'
                f'<sub style="font-size: 0.65em; opacity: 0.75; margin-left: 2px">'
                f"{html.escape(span.label)}</sub></mark>"
            )
            cursor = span.end
        parts.append(html.escape(self.text[cursor:]))
        parts.append("</div>")
        footer = f"{len(self.detected_spans)} span(s)"
        if self.category is not None:
            score = f" ({self.category_score:.2f})" if self.category_score is not None else ""
            footer += f" \u00b7 category: {html.escape(self.category)}{score}"
        if self.warning:
            footer += f" \u00b7 warning: {html.escape(self.warning)}"
        parts.append(f'<div style="font-size: 0.8em; color: #868e96">{footer}</div>')
        return "".join(parts)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
