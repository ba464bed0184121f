"""Discovery: which tables and columns hold personal data.

>>> import pii_frames as pii
>>> report = pii.scan("warehouse.duckdb")        # doctest: +SKIP
>>> report                                        # doctest: +SKIP
ScanReport(5 tables, 30 columns: 9 pii, 11 skipped)

:func:`scan` (also ``pii_frames.scan(...)``) returns a :class:`ScanReport`;
inputs are read by :mod:`pii_frames.scan.sources`, the verdict rule is
documented in :mod:`pii_frames.scan.scan`.
"""

from __future__ import annotations

import sys
import types

from pii_frames.scan.report import (
    VERDICT_CLEAN,
    VERDICT_PII,
    VERDICT_SKIPPED,
    ColumnScan,
    LabelStats,
    ScanReport,
)
from pii_frames.scan.scan import DEFAULT_MIN_SCORE, DEFAULT_MIN_SHARE, DEFAULT_SAMPLE_ROWS, scan
from pii_frames.scan.sources import ScanError

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


class _CallableModule(types.ModuleType):
    """Lets ``pii_frames.scan(...)`` work whichever of the function or this package it names.

    Importing this package binds ``pii_frames.scan`` to the package; the
    top-level lazy ``pii_frames.scan`` is the function. Whichever a caller
    reaches first, calling it runs :func:`scan`.
    """

    def __call__(self, *args, **kwargs) -> ScanReport:
        return scan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
