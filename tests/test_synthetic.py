"""Synthetic data generator: exact spans, determinism, template splits, atomic JSONL output."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from pii_frames.synthetic import (
    KINDS,
    LOCALES,
    SPAN_LABELS,
    generate,
    template_catalog,
    write_jsonl,
)
from pii_frames.training.data import read_examples


@pytest.fixture(scope="module")
def records():
    return generate(600, seed=11, templates="all", composed=0.5)


def test_every_span_is_exactly_its_surface(records):
    checked = 0
    for record in records:
        text = record["text"]
        for key, offsets in record["spans"].items():
            label, surface = key.split(": ", 1)
            assert label in SPAN_LABELS
            assert offsets, key
            for start, end in offsets:
                assert 0 <= start < end <= len(text)
                assert text[start:end] == surface
                assert surface == surface.strip()
                checked += 1
    assert checked > 1000


def test_spans_never_overlap(records):
    for record in records:
        offsets = sorted(tuple(o) for offs in record["spans"].values() for o in offs)
        for (_, first_end), (second_start, _) in zip(offsets, offsets[1:]):
            assert first_end <= second_start, record


def test_deterministic_for_a_seed_and_different_across_seeds():
    assert generate(40, seed=5) == generate(40, seed=5)
    assert generate(40, seed=5) != generate(40, seed=6)


def test_all_labels_kinds_and_locales_occur(records):
    labels = Counter(key.split(": ", 1)[0] for r in records for key in r["spans"])
    assert set(labels) == set(SPAN_LABELS)
    assert {r["info"]["kind"] for r in records} == set(KINDS)
    assert {r["info"]["locale"] for r in records} == set(LOCALES)


def test_negative_examples_exist(records):
    negatives = [r for r in records if not r["spans"]]
    assert len(negatives) > 30
    assert all(not r["spans"] for r in records if r["info"]["kind"] == "public_text")
    assert any(r["info"]["kind"] != "public_text" for r in negatives)  # PII-free templates of other kinds too


def test_heldout_templates_never_used_for_training():
    train_ids = {t.template_id for t in template_catalog(split="train")}
    heldout_ids = {t.template_id for t in template_catalog(split="heldout")}
    assert train_ids and heldout_ids and not train_ids & heldout_ids
    assert train_ids | heldout_ids == {t.template_id for t in template_catalog(split="all")}
    for kind in KINDS:
        assert any(t.kind == kind for t in template_catalog(split="heldout")), kind
    used = {r["info"]["template"] for r in generate(300, seed=3, templates="heldout")}
    assert used <= heldout_ids
    used = {r["info"]["template"] for r in generate(300, seed=3, templates="train")}
    assert used <= train_ids


def test_filters_restrict_kinds_and_locales():
    records = generate(50, seed=2, locales=["de_DE"], kinds=["chat", "log"])
    assert {r["info"]["locale"] for r in records} == {"de_DE"}
    assert {r["info"]["kind"] for r in records} <= {"chat", "log"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(locales=["xx_XX"]), "locales"),
    (dict(kinds=["poetry"]), "kinds"),
    (dict(templates="test"), "templates"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(3, seed=0, **kwargs)


def test_write_jsonl_round_trips_through_the_reader(tmp_path):
    records = generate(25, seed=4)
    path = write_jsonl(tmp_path / "sub" / "synth.jsonl", records)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == records
    assert not [p for p in path.parent.iterdir() if p.name != "synth.jsonl"]  # no temporary file left behind
    examples = read_examples(path)
    assert len(examples) == 25
    assert examples[0].kind == records[0]["info"]["kind"]


def test_write_jsonl_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "data.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def broken():
        yield {"text": "fine", "spans": {}}
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_jsonl(target, broken())
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_composed_documents():
    records = generate(120, seed=9, composed=1.0, templates="heldout")
    assert {r["info"]["template"] for r in records} == {f"composed.{kind}" for kind in KINDS}
    assert all(not r["spans"] for r in records if r["info"]["kind"] == "public_text")
    assert sum(bool(r["spans"]) for r in records) > 80
    with pytest.raises(ValueError, match="composed"):
        generate(2, seed=0, composed=1.5)


def test_first_and_last_name_slots_form_one_person_span():
    # medical_note.15: "Patient {first1} {last1} uploaded a photo ..."
    records = [r for r in generate(400, seed=1, kinds=["medical_note"], templates="all")
               if r["info"]["template"] == "medical_note.15"]
    assert records
    for record in records:
        people = [key for key in record["spans"] if key.startswith("private_person: ")]
        assert len(people) == 1 and " " in people[0].split(": ", 1)[1]


def test_context_words_and_json_log_lines():
    import json as json_module

    records = generate(400, seed=4, composed=1.0, kinds=["log", "support_ticket", "chat"])
    json_lines = broken = 0
    for record in records:
        text = record["text"]
        surfaces = [key.split(": ", 1)[1] for key in record["spans"]]
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            json_lines += 1
            try:
                json_module.loads(line)
            except ValueError:
                # Only a value with a quote or backslash of its own (a password) may break the JSON syntax.
                broken += 1
                assert any(('"' in s or "\\" in s) and s in line for s in surfaces), line
    assert json_lines > 50 and broken < json_lines / 4
    # Unrelated lower-case words right after a span (the model must learn where a value ends).
    followed_by_word = 0
    for record in records:
        text = record["text"]
        for offsets in record["spans"].values():
            for _, end in offsets:
                rest = text[end:end + 12]
                followed_by_word += rest.startswith(" ") and rest[1:2].isalpha() and rest[1:2].islower()
    assert followed_by_word > 100


def test_same_records_in_every_process():
    # Faker builds some word lists from sets (it_IT cities), whose order follows PYTHONHASHSEED.
    import os
    import subprocess
    import sys

    code = ("import hashlib, json; from pii_frames.synthetic import generate; "
            "print(hashlib.sha256(json.dumps(generate(300, seed=3, locales=['it_IT', 'de_DE'], composed=0.5))"
            ".encode()).hexdigest())")
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(hash_seed)}).stdout
        for hash_seed in (1, 2)
    }
    assert len(digests) == 1


@pytest.fixture(scope="module")
def gap_records():
    return generate(1500, seed=21, templates="train", composed=0.5, gaps=1.0)


def test_gap_documents_have_exact_spans_and_are_marked(gap_records):
    assert {r["info"]["template"].split(".")[0] for r in gap_records} == {"gap"}
    for record in gap_records:
        for key, offsets in record["spans"].items():
            label, surface = key.split(": ", 1)
            assert label in SPAN_LABELS
            assert all(record["text"][s:e] == surface for s, e in offsets), record


def test_gaps_default_leaves_every_seed_unchanged():
    # gaps=0 draws nothing extra, so the held-out documents older models were scored on stay the same
    assert generate(40, seed=5, composed=0.5) == generate(40, seed=5, composed=0.5, gaps=0.0)
    mixed = generate(400, seed=5, composed=0.5, gaps=0.3)
    share = sum(r["info"]["template"].startswith("gap.") for r in mixed) / len(mixed)
    assert 0.2 < share < 0.4
    with pytest.raises(ValueError, match="gaps"):
        generate(3, gaps=1.5)


def test_gap_documents_cover_what_real_text_showed_missing(gap_records):
    people = [surface for r in gap_records for key in r["spans"]
              for label, surface in [key.split(": ", 1)] if label == "private_person"]
    texts = [r["text"] for r in gap_records]
    assert any(re.fullmatch(r"[^\s,]+(?: [^\s,]+)*, [^\s,]+(?: [^\s,]+)*", p) for p in people)  # "Last, First"
    assert any(p.isupper() and len(p) > 4 for p in people) and any(p.islower() and " " in p for p in people)
    assert any(not p.isascii() for p in people)  # names from the extra faker locales
    assert any(t.startswith(("From: ", "Von: ", "De: ", "Van: ", "Sender: ")) for t in texts)
    assert any(re.search(r"\b\d{5}/\d{2}\b", t) for t in texts) and any("§" in t for t in texts)
    assert any(t == surface for r in gap_records for key in r["spans"]
               for t, surface in [(r["text"], key.split(": ", 1)[1])])  # a cell holding only the value
    # references, case numbers and look-alike capitalised words are never labelled
    for record in gap_records:
        for key in record["spans"]:
            surface = key.split(": ", 1)[1]
            assert "§" not in surface and not re.fullmatch(r"\d{5}/\d{2}", surface), key
    # titles stay outside the person span, as in real annotations
    assert not any(p.startswith(("Mrs. ", "Dr. ", "Prof. ")) for p in people)


def test_gap_public_text_stays_pii_free_and_heldout_pieces_are_separate():
    public = generate(200, seed=4, kinds=["public_text"], gaps=1.0)
    assert all(r["spans"] == {} for r in public)
    for kind in KINDS:  # every kind can be drawn from the held-out pieces alone
        assert len(generate(40, seed=4, kinds=[kind], templates="heldout", gaps=1.0)) == 40
    from pii_frames.synthetic import gaps as synthetic

    for pieces in (synthetic._HEADER_FROM, synthetic._REFERENCE_PERSON, synthetic._SOCIAL, synthetic._BARE_CELLS):
        train, heldout = synthetic._split_items(pieces, "train"), synthetic._split_items(pieces, "heldout")
        assert train and heldout and not set(train) & set(heldout)


# -- real text with other names (synthetic.renamed) -------------------------------------------------------------

def _real_like(text: str, *labelled: tuple[str, str]) -> dict:
    """An opf record whose spans are the first occurrences of the given surfaces (from the left)."""
    spans, cursor = {}, 0
    for label, surface in labelled:
        start = text.index(surface, cursor)
        spans.setdefault(f"{label}: {surface}", []).append([start, start + len(surface)])
        cursor = start + len(surface)
    return {"text": text, "spans": spans}


REAL_LIKE = [
    {**_real_like("Charles J. Fillmore (August 9, 1929) taught at Berkeley. Fillmore's frames were read by "
                  "Ludwig van Beethoven and JANE DOE; @fan said isabelle liked it.",
                  ("private_person", "Charles J. Fillmore"), ("private_date", "August 9, 1929"),
                  ("private_person", "Fillmore"), ("private_person", "Ludwig van Beethoven"),
                  ("private_person", "JANE DOE"), ("private_person", "isabelle")),
     "info": {"source": "gum/bio", "doc": "x"}},
    {"text": "Nothing personal here.", "spans": {}, "info": {"source": "btc"}},
]


def test_renamed_people_keep_shape_case_context_and_exact_offsets():
    from pii_frames.synthetic.renamed import rename_people

    first, empty = rename_people(REAL_LIKE, seed=5)
    assert empty["text"] == "Nothing personal here." and empty["spans"] == {}
    assert first["info"] == {"source": "gum/bio", "doc": "x", "renamed": 5}
    people = []
    for key, offsets in first["spans"].items():
        label, surface = key.split(": ", 1)
        for start, end in offsets:
            assert first["text"][start:end] == surface
            people += [surface] if label == "private_person" else []
    assert "private_date: August 9, 1929" in first["spans"]
    assert " taught at Berkeley. " in first["text"] and "; @fan said " in first["text"]
    assert "Fillmore" not in first["text"] and "Beethoven" not in first["text"]
    full, family, composer, shouted, lower = people
    assert re.fullmatch(r"\S+ [A-Z]\. \S+", full)            # the initial stays an initial
    assert full.split()[-1] == family                         # one new family name for both mentions
    assert " van " in composer                                # particles stay
    assert shouted.isupper() and lower.islower()              # so does the letter case
    assert rename_people(REAL_LIKE, seed=5) == rename_people(REAL_LIKE, seed=5)
    assert rename_people(REAL_LIKE, seed=5) != rename_people(REAL_LIKE, seed=6)


def test_renamed_people_read_back_as_training_examples(tmp_path):
    from pii_frames.synthetic.renamed import rename_people

    path = write_jsonl(tmp_path / "renamed.jsonl", rename_people(REAL_LIKE * 20, seed=1))
    examples = read_examples(path)
    assert len(examples) == 40
    assert sum(len(ex.spans) for ex in examples) == 20 * 6
    assert len({ex.text for ex in examples}) > 10             # every copy gets its own names


def _spans_of(record):
    return sorted((start, end, key.split(": ", 1)[0], key.split(": ", 1)[1])
                  for key, offsets in record["spans"].items() for start, end in offsets)


def test_embedded_clauses_put_structured_kinds_inside_real_sentences_with_exact_offsets():
    from pii_frames.synthetic.embedded import embed_structured

    records = REAL_LIKE * 50
    embedded = embed_structured(records, seed=3, share=1.0, clauses=2)
    labels = set()
    for original, new in zip(records, embedded):
        assert new["info"] == {**original["info"], "embedded": 3}
        spans = _spans_of(new)
        for start, end, _, surface in spans:
            assert new["text"][start:end] == surface
        # The real spans are all still there, in order, and no new span overlaps one of them.
        old = [(label, surface) for _, _, label, surface in _spans_of(original)]
        kept = [(label, surface) for _, _, label, surface in spans if (label, surface) in old]
        assert kept == old
        assert all(a_end <= b_start for (_, a_end, *_), (b_start, *_) in zip(spans, spans[1:]))
        added = [label for *_, label, surface in spans if (label, surface) not in old]
        assert 1 <= len(added) and "private_person" not in added
        labels.update(added)
        # The original words survive, in order, around the inserted clauses.
        words = iter(new["text"].split())
        assert all(any(word.strip(".,;") in candidate for candidate in words)
                   for word in original["text"].split()[:6])
    assert {"private_email", "private_phone", "private_address", "account_number"} <= labels
    assert embed_structured(records, seed=3, share=1.0) == embedded
    assert embed_structured(records, seed=4, share=1.0) != embedded
    half = embed_structured(records, seed=3, share=0.5)
    untouched = sum(new is old for new, old in zip(half, records))
    assert 20 < untouched < 80
    with pytest.raises(ValueError, match="share"):
        embed_structured(records, share=1.5)
