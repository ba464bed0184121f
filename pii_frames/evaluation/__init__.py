"""Scoring a Detector on labelled examples with opf's span and token metrics.

* :mod:`pii_frames.evaluation.metrics` - span matching, span and token counts, precision/recall/F1.
* :mod:`pii_frames.evaluation.evaluate` - ``evaluate(detector, records) -> EvalReport`` (tables, JSON,
  HTML and PNG reports).

Examples are read by :mod:`pii_frames.training.data`; the ``pii-frames eval`` command is
:mod:`pii_frames.cli.training`.

>>> from pii_frames.evaluation.metrics import Span, match_spans
>>> match_spans([Span("private_person", 0, 3)], [Span("private_person", 0, 3)])
([True], [True])
"""
