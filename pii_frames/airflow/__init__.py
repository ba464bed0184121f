"""Airflow integration: sanitize whole tables in resumable, parallel chunks.

``import pii_frames`` never imports Airflow; this subpackage does, and only
when an Airflow name is first used, so the Airflow-free job engine
(:mod:`pii_frames.airflow.jobs`) also works where Airflow is not installed.

>>> from pii_frames.airflow import SanitizeJob          # no Airflow needed
>>> from pii_frames.airflow import PiiSanitizeOperator  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PiiSanitizeOperator": "pii_frames.airflow.operators",
    "pii_sanitize_table": "pii_frames.airflow.operators",
    "plan_chunks": "pii_frames.airflow.operators",
    "sanitize_chunk": "pii_frames.airflow.operators",
    "publish": "pii_frames.airflow.operators",
    "emit_asset_event": "pii_frames.airflow.operators",
    "DEFAULT_ASSET_ALIAS": "pii_frames.airflow.operators",
    "PiiScanOperator": "pii_frames.airflow.scan",
    "SanitizeJob": "pii_frames.airflow.jobs",
    "SanitizeJobError": "pii_frames.airflow.jobs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pii_frames.airflow' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "airflow":
            raise ImportError(
                f"pii_frames.airflow.{name} needs Apache Airflow 3: pip install 'pii_frames[airflow]'"
            ) from error
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
