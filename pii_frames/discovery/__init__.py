"""Discovery: which tables and columns hold personal data.

>>> import pii_frames as pii
>>> report = pii.scan("warehouse.duckdb")        # doctest: +SKIP
>>> report                                        # doctest: +SKIP
ScanReport(5 tables, 30 columns: 9 pii, 11 skipped)

:func:`scan` (also ``pii_frames.scan(...)``) returns a :class:`ScanReport`;
inputs are opened by :mod:`pii_frames.discovery.sources` (what a table to scan
is and how it is sampled: :mod:`~pii_frames.discovery.plans`; the readers:
:mod:`~pii_frames.discovery.frames`, :mod:`~pii_frames.discovery.databases`,
:mod:`~pii_frames.discovery.files`), the verdict rule is documented in
:mod:`pii_frames.discovery.scan`.
"""

from __future__ import annotations

from pii_frames.discovery.plans import ScanError
from pii_frames.discovery.report import (
    VERDICT_CLEAN,
    VERDICT_PII,
    VERDICT_SKIPPED,
    ColumnScan,
    LabelStats,
    ScanReport,
)
from pii_frames.discovery.scan import DEFAULT_MIN_SCORE, DEFAULT_MIN_SHARE, DEFAULT_SAMPLE_ROWS, scan

__all__ = [
    "scan",
    "ScanReport",
    "ColumnScan",
    "LabelStats",
    "ScanError",
    "VERDICT_PII",
    "VERDICT_CLEAN",
    "VERDICT_SKIPPED",
    "DEFAULT_SAMPLE_ROWS",
    "DEFAULT_MIN_SHARE",
    "DEFAULT_MIN_SCORE",
]
