"""Rendering templates with exact span offsets, and the public API: :func:`generate` and :func:`write_jsonl`."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Iterable

from faker import Faker

from pii_frames.synthetic.composed import (
    _FILLERS,
    _FORM_NEUTRAL_FIELDS,
    _FORM_PII_FIELDS,
    _FRAMES,
    _LOG_FILLERS,
    _LOG_FRAMES,
    _OPENERS,
    _compose_text,
    _with_person,
)
from pii_frames.synthetic.gaps import _GAP_PIECES, _compose_gap
from pii_frames.synthetic.templates import (
    _CATALOG,
    _CHOICE_PATTERN,
    _SLOT_PATTERN,
    KINDS,
    LOCALES,
    Template,
    _span_dict,
    template_catalog,
)
from pii_frames.synthetic.values import _SLOTS, _hash_independent, _RenderContext

__all__ = ["generate", "write_jsonl"]


def _check_catalog() -> None:
    # Fail at import time, not in the middle of a long generation run, if a template names an unknown slot.
    texts = [(t.template_id, t.text) for t in _CATALOG]
    pieces = [*_LOG_FRAMES, *_LOG_FILLERS, *_FORM_PII_FIELDS, *_FORM_NEUTRAL_FIELDS,
              *(f for fs in _FRAMES.values() for f in fs),
              *(f for fs in _FILLERS.values() for f in fs), *(o for os_ in _OPENERS.values() for o in os_),
              *_GAP_PIECES]
    texts += [("composition piece", _with_person(piece, random.Random(0))) for piece in pieces]
    for where, text in texts:
        for name, _ in _SLOT_PATTERN.findall(text):
            if name not in _SLOTS:
                raise RuntimeError(f"{where} {text!r} uses unknown slot {{{name}}}")


_check_catalog()


def _render(template_text: str, ctx: _RenderContext) -> tuple[str, dict[str, list[list[int]]]]:
    text = _CHOICE_PATTERN.sub(lambda m: ctx.rng.choice(m.group(1).split("|")), template_text)
    pieces: list[str] = []
    found: list[list] = []  # [label, start, end]
    filled: dict[tuple[str, int], tuple[str, str | None]] = {}
    cursor = 0
    length = 0
    for match in _SLOT_PATTERN.finditer(text):
        literal = text[cursor:match.start()]
        pieces.append(literal)
        length += len(literal)
        name, index = match.group(1), int(match.group(2) or 1)
        if (name, index) not in filled:
            surface, label = _SLOTS[name](ctx, index)
            filled[(name, index)] = (surface.strip(), label)
        surface, label = filled[(name, index)]
        if label is not None and surface:
            # "{first1} {last1}" is one person, as annotators would mark it: merge spans split by one space.
            if found and found[-1][0] == label and found[-1][2] + 1 == length and pieces[-1].endswith(" "):
                found[-1][2] = length + len(surface)
            else:
                found.append([label, length, length + len(surface)])
        pieces.append(surface)
        length += len(surface)
        cursor = match.end()
    pieces.append(text[cursor:])
    rendered = "".join(pieces)
    return rendered, _span_dict(rendered, [(start, end, label) for label, start, end in found])


def generate(
    n: int,
    *,
    seed: int = 0,
    locales: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    templates: str = "train",
    composed: float = 0.0,
    gaps: float = 0.0,
) -> list[dict]:
    """Generate ``n`` synthetic records in the opf example format.

    Args:
        n: number of records.
        seed: makes the output reproducible; the same arguments always give the same records.
        locales: faker locales to draw from (default: :data:`LOCALES`).
        kinds: document kinds to draw from (default: :data:`KINDS`, including PII-free ``public_text``).
        templates: ``"train"`` (templates used for training), ``"heldout"`` (templates reserved for
            evaluation) or ``"all"``.
        composed: share of documents assembled from clause frames, fillers and openers of the same split
            instead of a whole hand-written template (more varied contexts; ``info.template`` is
            ``"composed.<kind>"``). 0 gives template documents only.
        gaps: share of documents aimed at what real text has and templates lack (``info.template`` is
            ``"gap.<kind>"``): e-mail headers and signatures with "Last, First" names, legal and technical
            references that are not PII (section signs, article and case numbers such as 12345/67, versions,
            amounts), lower- and upper-case names, names next to quotes and punctuation, names from 24 more
            faker locales, cells holding only a name, and capitalised words that are not names. Drawn before
            ``composed``; 0 (the default) leaves the output of every seed as it was.

    Returns:
        A list of dicts ``{"text", "spans", "info": {"id", "kind", "locale", "template", "seed"}}``.

    >>> from pii_frames.synthetic import generate
    >>> records = generate(3, seed=1, kinds=["log"], templates="heldout")
    >>> [r["info"]["kind"] for r in records]
    ['log', 'log', 'log']
    >>> generate(3, seed=1) == generate(3, seed=1)
    True
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    locales = tuple(locales) if locales is not None else LOCALES
    kinds = tuple(kinds) if kinds is not None else KINDS
    unknown_locales = [loc for loc in locales if loc not in LOCALES]
    if unknown_locales or not locales:
        raise ValueError(f"unknown or empty locales {unknown_locales or locales!r}; choose from {LOCALES}")
    unknown_kinds = [kind for kind in kinds if kind not in KINDS]
    if unknown_kinds or not kinds:
        raise ValueError(f"unknown or empty kinds {unknown_kinds or kinds!r}; choose from {KINDS}")
    pool = template_catalog(split=templates)
    if not 0.0 <= composed <= 1.0:
        raise ValueError(f"composed must be a share between 0 and 1, got {composed!r}")
    if not 0.0 <= gaps <= 1.0:
        raise ValueError(f"gaps must be a share between 0 and 1, got {gaps!r}")

    # Candidate templates per (kind, locale): English ones everywhere plus those written in the locale's language.
    candidates: dict[tuple[str, str], list[Template]] = {}
    for kind in kinds:
        for locale in locales:
            language = locale.split("_")[0]
            candidates[(kind, locale)] = [t for t in pool if t.kind == kind and t.language in (None, language)]
    fakers = {locale: _hash_independent(Faker(locale)) for locale in locales}
    rng = random.Random(seed)
    records = []
    for position in range(n):
        kind, locale = rng.choice(kinds), rng.choice(locales)
        record_seed = rng.getrandbits(32)
        record_rng = random.Random(record_seed)
        if gaps and rng.random() < gaps:
            template_id, language = f"gap.{kind}", None
            template_text = _compose_gap(kind, record_rng, templates, locale)
        elif composed and rng.random() < composed:
            template_id, language = f"composed.{kind}", None
            template_text = _compose_text(kind, record_rng, templates, locale)
        else:
            options = candidates[(kind, locale)] or [t for t in pool if t.kind == kind]
            if not options:
                raise ValueError(f"no {templates!r} templates for kind {kind!r}")
            template = rng.choice(options)
            template_id, language, template_text = template.template_id, template.language, template.text
        fake = fakers[locale]
        fake.seed_instance(record_seed)
        text, spans = _render(template_text, _RenderContext(fake, record_rng, locale, language))
        records.append({
            "text": text,
            "spans": spans,
            "info": {"id": f"synthetic-{seed}-{position}", "kind": kind, "locale": locale,
                     "template": template_id, "seed": record_seed},
        })
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Write records as JSON lines, atomically (a reader never sees a half-written file).

    >>> import tempfile, pathlib
    >>> from pii_frames.synthetic import generate, write_jsonl
    >>> out = write_jsonl(pathlib.Path(tempfile.mkdtemp()) / "synth.jsonl", generate(2, seed=3))
    >>> len(out.read_text(encoding="utf-8").splitlines())
    2
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False))
                out.write("\n")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
