"""Synthetic data, evaluation and fine-tuning for privacy-filter models.

* :mod:`pii_frames.train.synthetic` - documents with exact PII spans in the opf format (faker, several locales
  and document kinds, held-out templates); depends only on faker.
* :mod:`pii_frames.train.data` - reader for opf-format examples, label-space JSON, gold projection onto tokens.
* :mod:`pii_frames.train.metrics` / :mod:`pii_frames.train.evaluate` - opf's span and token metrics and
  ``evaluate(detector, records) -> EvalReport``.
* :mod:`pii_frames.train.finetune` - ``finetune(...)`` (compatible with ``opf train``) and
  ``init_compact_model(...)``.
* :mod:`pii_frames.train.commands` - ``pii-frames eval | train | synth``.

Submodules are imported on demand, so ``import pii_frames.train`` stays cheap.

>>> from pii_frames.train.synthetic import generate
>>> len(generate(2, seed=0))
2
"""
