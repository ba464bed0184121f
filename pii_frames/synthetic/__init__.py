"""Synthetic documents with exact PII spans, written in the opf example format.

Every record looks like the examples ``opf eval`` / ``opf train`` read::

    {"text": "...",
     "spans": {"private_person: Ada Lovelace": [[8, 20]], ...},
     "info": {"kind": "email", "locale": "en_GB", "template": "email.04", "seed": 123}}

Documents are rendered from hand-written templates (support tickets, chats, emails, HR notes, medical notes,
invoices, logs with credentials, and PII-free public text as negatives) whose slots are filled with
:mod:`faker` values for several locales. Offsets are computed while the text is assembled, so
``text[start:end]`` is always exactly the surface in the span key. With ``composed=`` a share of the
documents is instead assembled from short clause frames, form fields and fillers; half of those also get
unrelated words of the locale's language and non-personal numbers (quantities, codes, versions, ids) right
around their values, and log documents get some JSON lines, so a model learns where a value ends from the
value itself rather than from the few words the templates use.

A quarter of the templates of every kind are *held out*: ``generate(..., templates="heldout")`` draws only
from them, so an evaluation can measure how a model trained on ``templates="train"`` does on phrasings it has
never seen. Output is deterministic for a given seed and faker version, in every process.

The package has five parts: :mod:`~pii_frames.synthetic.templates` (labels, locales, document kinds,
the hand-written templates and their slot syntax), :mod:`~pii_frames.synthetic.values` (the faker-backed
values of every slot), :mod:`~pii_frames.synthetic.composed` (documents assembled from clause frames),
:mod:`~pii_frames.synthetic.gaps` (pieces aimed at what real text has and templates lack) and
:mod:`~pii_frames.synthetic.generator` (rendering with exact offsets, :func:`generate`, :func:`write_jsonl`).
It depends only on the standard library, faker and the label space of :mod:`pii_frames.model.config`::

    >>> from pii_frames.synthetic import generate
    >>> record = generate(1, seed=7)[0]
    >>> all(record["text"][s:e] == key.split(": ", 1)[1]
    ...     for key, offsets in record["spans"].items() for s, e in offsets)
    True
"""

from __future__ import annotations

from pii_frames.synthetic.generator import generate, write_jsonl
from pii_frames.synthetic.templates import KINDS, LOCALES, SPAN_LABELS, Template, template_catalog

__all__ = [
    "SPAN_LABELS",
    "LOCALES",
    "KINDS",
    "Template",
    "template_catalog",
    "generate",
    "write_jsonl",
]
