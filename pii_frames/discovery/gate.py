"""Turn a scan into a pass/fail decision and a small report, for pipelines (CLI, Airflow).

``fail_on`` names the labels that fail a check: a list of labels, a
comma-separated string, ``"any"`` for every label, or None / ``""`` / ``[]``
to only record the report.

>>> parse_fail_on("private_email, private_phone"), parse_fail_on("any"), parse_fail_on([])
(['private_email', 'private_phone'], ['any'], None)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pii_frames.discovery.report import ColumnScan, ScanReport

__all__ = ["ANY_LABEL", "parse_fail_on", "offending_columns", "describe_hits", "check_labels", "compact_report",
           "DEFAULT_MAX_BYTES"]

ANY_LABEL = "any"
#: Default size limit of :func:`compact_report` (JSON bytes): comfortably inside an Airflow XCom row.
DEFAULT_MAX_BYTES = 48_000


def parse_fail_on(fail_on: Any) -> list[str] | None:
    """Labels that fail the check (``["any"]`` for every label), or None to only record.

    Accepts a list, a comma-separated string, a JSON list (how Airflow renders
    a list param without native rendering) or None.
    """
    if fail_on is None:
        return None
    if isinstance(fail_on, str):
        text = fail_on.strip()
        if text.startswith("["):
            try:
                fail_on = json.loads(text)
            except ValueError:
                raise ValueError(f"fail_on {fail_on!r} is neither a JSON list nor comma-separated labels") from None
        elif text.lower() in ("", "none", "null"):
            return None
        else:
            fail_on = text.split(",")
    if not isinstance(fail_on, Iterable):
        raise TypeError(f"fail_on must be labels (a list or comma-separated text), 'any' or None, got {fail_on!r}")
    labels = []
    for label in fail_on:
        if not isinstance(label, str):
            raise TypeError(f"fail_on labels must be strings, got {label!r}")
        if label.strip():
            labels.append(label.strip())
    return list(dict.fromkeys(labels)) or None


def check_labels(labels: list[str] | None, known: Iterable[str]) -> None:
    """Raise ValueError when ``labels`` names a label the model does not have ("any" is always known).

    >>> check_labels(["private_emial"], ["private_email"])
    Traceback (most recent call last):
    ...
    ValueError: fail_on names unknown label(s) ['private_emial']; the model's labels: private_email (or 'any')
    """
    known = list(known)
    if not labels or not known or ANY_LABEL in labels:
        return
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise ValueError(f"fail_on names unknown label(s) {unknown}; the model's labels: {', '.join(known)} (or 'any')")


def offending_columns(report: ScanReport, labels: list[str] | None) -> list[ColumnScan]:
    """Columns where a ``labels`` label was found (every ``pii`` column for ``["any"]``; none for None)."""
    if not labels:
        return []
    return report.found(None if ANY_LABEL in labels else labels)


def describe_hits(hits: list[ColumnScan], labels: list[str] | None) -> str:
    """One line naming each offending column and its labels.

    >>> from pii_frames.discovery.report import LabelStats, VERDICT_PII
    >>> hit = ColumnScan("t", "c", "string", VERDICT_PII, labels=[LabelStats("private_email", 9, 0.9, 9, 0.9, True)])
    >>> describe_hits([hit], ["any"])
    'PII found in 1 column: t.c (private_email)'
    """
    wanted = None if not labels or ANY_LABEL in labels else set(labels)
    listed = ", ".join(
        f"{c.name} ({', '.join(label for label in c.found_labels if wanted is None or label in wanted)})" for c in hits
    )
    return f"PII found in {len(hits)} column{'s' if len(hits) != 1 else ''}: {listed}"


def compact_report(report: ScanReport, *, examples: bool = True, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """:meth:`ScanReport.to_dict`, trimmed until its JSON fits ``max_bytes``.

    Steps, as far as needed: drop the example snippets; keep per column only
    table, column, verdict, reason, found labels and share; keep only the
    ``pii`` columns (``"truncated": true`` says something was dropped).
    """
    data = report.to_dict(examples=examples)
    if _size(data) <= max_bytes:
        return data
    data = report.to_dict(examples=False)
    data["truncated"] = True
    if _size(data) <= max_bytes:
        return data
    keep = ("table", "column", "verdict", "reason", "found_labels", "pii_share")
    for table in data["tables"]:
        table["columns"] = [{key: column[key] for key in keep} for column in table["columns"]]
    if _size(data) <= max_bytes:
        return data
    for table in data["tables"]:
        table["columns"] = [column for column in table["columns"] if column["verdict"] == "pii"]
    return data


def _size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, ensure_ascii=False).encode("utf-8"))
