"""Fine-tuning privacy-filter models on labelled examples in the opf format.

* :mod:`pii_frames.training.data` - reader for opf-format examples (files or records), label-space JSON,
  gold projection onto tokens; evaluation reads its examples through it too.
* :mod:`pii_frames.training.models` - ``init_compact_model(...)`` (a fresh model of the family) and
  ``remap_head(...)`` (a head for a new label space).
* :mod:`pii_frames.training.finetune` - ``finetune(...)``, compatible with ``opf train``.

Synthetic training data is :mod:`pii_frames.synthetic`, scoring is :mod:`pii_frames.evaluation`, and the
``pii-frames train`` command is :mod:`pii_frames.cli.training`. Submodules are imported on demand, so
``import pii_frames.training`` stays cheap (no torch).

>>> from pii_frames.training.data import examples_from_records
>>> examples_from_records([{"text": "hi", "spans": {}}])[0].text
'hi'
"""
