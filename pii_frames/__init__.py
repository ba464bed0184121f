"""pii_frames: find and remove personal data in text columns, locally.

>>> import polars as pl, pii_frames as pii
>>> df = pl.DataFrame({"body": ["Contact: ann@example.com", None]})
>>> df.with_columns(pii.redact("body"))["body"].to_list()
['Contact: <PRIVATE_EMAIL>', None]

The public surface: :func:`load` returns a :class:`Detector`
(``redact``, ``redact_many``, ``detect_arrow``, ``token_logprobs``);
:class:`Policy` chooses what happens to each label; :func:`redact`,
:func:`spans`, :func:`category` and :func:`detect` are Polars expressions;
:func:`reveal` turns ``Policy("encrypt")`` tokens back into values (no model).
Heavy modules (torch, polars) are imported on first use, so importing the
package is cheap for Airflow DAG parsing and dbt.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load": ("pii_frames.engine.loading", "load"),
    "Detector": ("pii_frames.engine.detector", "Detector"),
    "RowError": ("pii_frames.engine.detector", "RowError"),
    "RedactionResult": ("pii_frames.redaction.result", "RedactionResult"),
    "DetectedSpan": ("pii_frames.redaction.result", "DetectedSpan"),
    "Policy": ("pii_frames.redaction.policy", "Policy"),
    "reveal": ("pii_frames.redaction.encryption", "reveal"),
    "RevealError": ("pii_frames.redaction.encryption", "RevealError"),
    "show": ("pii_frames._html", "show"),
    "DetectionTable": ("pii_frames._html", "DetectionTable"),
    "scan": ("pii_frames.discovery", "scan"),
}

__all__ = sorted(_LAZY) + ["__version__", "redact", "spans", "category", "detect"]



def _polars_expression(name: str, summary: str):
    def expression(column, **options):
        from pii_frames import polars as polars_adapter

        return getattr(polars_adapter, name)(column, **options)

    expression.__name__ = expression.__qualname__ = name
    expression.__doc__ = (
        f"Polars expression: {summary} (options as in :func:`pii_frames.polars.{name}`).\n\n"
        ">>> import polars as pl, pii_frames as pii\n"
        f'>>> pl.DataFrame({{"body": ["Contact: ann@example.com"]}}).with_columns(pii.{name}("body")).width\n'
        f"{1 if name in ('redact', 'detect') else 2}\n"
    )
    return expression


redact = _polars_expression("redact", "the column with personal data replaced")
spans = _polars_expression("spans", "the detected spans of each row")
category = _polars_expression("category", "the document category of each row")
detect = _polars_expression("detect", "a struct of redacted text, spans, category and labels")


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
