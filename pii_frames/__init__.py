"""pii_frames: find and remove personal data in text columns, locally.

>>> import polars as pl, pii_frames as pii
>>> df = pl.DataFrame({"body": ["Call Ann Lee on +1 415 555 0100", None]})
>>> df.with_columns(pii.redact("body"))            # doctest: +SKIP

The public surface: :func:`load` returns a :class:`Detector`
(``redact``, ``redact_many``, ``detect_arrow``, ``token_logprobs``);
:class:`Policy` chooses what happens to each label; :func:`redact`,
:func:`spans`, :func:`category` and :func:`detect` are Polars expressions.
Heavy modules (torch, polars) are imported on first use, so importing the
package is cheap for Airflow DAG parsing and dbt.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load": ("pii_frames.engine.loading", "load"),
    "Detector": ("pii_frames.engine.detector", "Detector"),
    "RowError": ("pii_frames.engine.detector", "RowError"),
    "RedactionResult": ("pii_frames.redact.result", "RedactionResult"),
    "DetectedSpan": ("pii_frames.redact.result", "DetectedSpan"),
    "Policy": ("pii_frames.redact.policy", "Policy"),
    "redact": ("pii_frames.polars", "redact"),
    "spans": ("pii_frames.polars", "spans"),
    "category": ("pii_frames.polars", "category"),
    "detect": ("pii_frames.polars", "detect"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pii_frames' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__
