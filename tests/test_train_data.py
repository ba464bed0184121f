"""opf dataset reader (both span forms, errors naming file and line), label spaces and gold projection."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from pii_frames.training.data import (
    DEFAULT_LABEL_SPACE,
    DatasetError,
    GoldSpan,
    drop_overlapping_spans,
    gold_token_aligned_spans,
    label_space_from_names,
    project_spans_to_tokens,
    read_examples,
    read_label_space_json,
)

from shared_paths import OPF_EXAMPLES  # noqa: E402


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_both_span_forms(tmp_path):
    path = _write_lines(tmp_path / "d.jsonl", [
        json.dumps({"text": "Call Ann now", "spans": {"private_person: Ann": [[5, 8]]}, "info": {"kind": "chat"}}),
        "",
        json.dumps({"text": "key sk-1", "label": [{"category": "secret", "start": 4, "end": 8}]}),
    ])
    first, second = read_examples(path)
    assert first.spans == (GoldSpan("private_person", 5, 8),) and first.kind == "chat"
    assert second.spans == (GoldSpan("secret", 4, 8),) and second.kind is None
    assert first.source.endswith("d.jsonl:1") and second.source.endswith("d.jsonl:3")
    assert first.example_id != second.example_id and len(first.example_id) == 64


@pytest.mark.skipif(not OPF_EXAMPLES.is_dir(), reason="opf example data not available")
def test_reads_the_opf_example_files():
    sample = read_examples(OPF_EXAMPLES / "sample_eval_five_examples.jsonl")
    assert len(sample) == 5 and sum(len(e.spans) for e in sample) == 14
    secret = read_examples(OPF_EXAMPLES / "finetuning_secret_demo" / "train.jsonl")
    assert secret[0].spans[0].label == "secret"


def test_reads_gzip_json_arrays_directories_and_globs(tmp_path):
    records = [{"text": f"row {i}", "spans": {}} for i in range(3)]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in records))
    (tmp_path / "b.json").write_text(json.dumps(records), encoding="utf-8")
    assert len(read_examples(tmp_path / "a.jsonl.gz")) == 3
    assert len(read_examples(tmp_path / "b.json")) == 3
    assert len(read_examples(tmp_path)) == 6
    assert len(read_examples(str(tmp_path / "*.json"))) == 3
    assert len(read_examples(tmp_path, max_examples=4)) == 4


@pytest.mark.parametrize("line, message", [
    ("{not json", r"bad\.jsonl:2: invalid JSON"),
    (json.dumps({"spans": {}}), r"bad\.jsonl:2: 'text' must be a string"),
    (json.dumps({"text": "abc"}), r"bad\.jsonl:2: record has neither 'spans' nor 'label'"),
    (json.dumps({"text": "abc", "spans": {"secret: abcd": [[0, 4]]}}), r"bad\.jsonl:2: .*outside the text"),
    (json.dumps({"text": "abc", "spans": {"secret: a": [[1, 1]]}}), r"bad\.jsonl:2: .*start < end"),
    (json.dumps({"text": "abc", "spans": {"secret: a": [0, 1]}}), r"bad\.jsonl:2: .*\[start, end\] pair"),
    (json.dumps({"text": "abc", "spans": [["secret", 0, 1]]}), r"bad\.jsonl:2: 'spans' must be an object"),
    (json.dumps({"text": "abc", "label": [{"start": 0, "end": 1}]}), r"bad\.jsonl:2: .*'category'"),
    (json.dumps(["text"]), r"bad\.jsonl:2: expected a JSON object"),
])
def test_bad_records_name_file_and_line(tmp_path, line, message):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps({"text": "ok", "spans": {}}), line])
    with pytest.raises(DatasetError, match=message):
        read_examples(path)


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="no .jsonl"):
        read_examples(tmp_path)
    with pytest.raises(DatasetError, match="no records"):
        read_examples(_write_lines(tmp_path / "empty.jsonl", [""]))


def test_label_space_json_forms(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"category_version": "custom_v1", "span_class_names": ["custom_secret", "O"]}))
    spec = read_label_space_json(path)
    assert spec.names == ("O", "B-custom_secret", "I-custom_secret", "E-custom_secret", "S-custom_secret")
    assert spec.category_version == "custom_v1" and spec.span_labels == ("custom_secret",)
    assert spec.to_label_space().names == spec.names

    path.write_text(json.dumps({"ner_class_names": ["O", "S-a", "B-a", "I-a", "E-a"]}))
    assert read_label_space_json(path).names == ("O", "S-a", "B-a", "I-a", "E-a")


@pytest.mark.parametrize("payload, message", [
    ({"span_class_names": ["secret"]}, "'O'"),
    ({"span_class_names": []}, "non-empty list"),
    ({"ner_class_names": ["O", "B-a", "I-a", "E-a"]}, "missing"),
    ({"ner_class_names": ["O", "B-a", "plain"]}, "mixes"),
    (["O", "a"], "JSON object"),
])
def test_bad_label_space_json(tmp_path, payload, message):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DatasetError, match=message):
        read_label_space_json(path)


@pytest.mark.skipif(not OPF_EXAMPLES.is_dir(), reason="opf example data not available")
def test_custom_label_demo_label_space():
    spec = read_label_space_json(OPF_EXAMPLES / "finetuning_custom_label_demo" / "label_space.json")
    assert spec.span_labels == ("custom_secret",)


def _names(ids, space=DEFAULT_LABEL_SPACE):
    return [space.names[i] for i in ids]


def test_projection_single_and_multi_token_spans():
    # "Call| Ann| Lee| now": person covers " Ann Lee" minus the leading space
    starts, ends = np.array([0, 4, 8, 12]), np.array([4, 8, 12, 16])
    assert _names(project_spans_to_tokens([GoldSpan("private_person", 5, 12)], starts, ends)) == [
        "O", "B-private_person", "E-private_person", "O"]
    assert _names(project_spans_to_tokens([GoldSpan("secret", 13, 16)], starts, ends)) == ["O", "O", "O", "S-secret"]
    longer = project_spans_to_tokens([GoldSpan("private_url", 0, 16)], starts, ends)
    assert _names(longer) == ["B-private_url", "I-private_url", "I-private_url", "E-private_url"]


def test_projection_token_goes_to_the_span_with_the_largest_overlap():
    # one token [0, 10) shared by spans [0, 3) and [3, 10): the second overlaps more
    ids = project_spans_to_tokens([GoldSpan("secret", 0, 3), GoldSpan("private_person", 3, 10)],
                                  np.array([0, 10]), np.array([10, 12]))
    assert _names(ids) == ["S-private_person", "O"]
    # equal overlap: the earlier span wins
    ids = project_spans_to_tokens([GoldSpan("secret", 0, 5), GoldSpan("private_person", 5, 10)],
                                  np.array([0]), np.array([10]))
    assert _names(ids) == ["S-secret"]


def test_overlapping_gold_spans_are_removed_longer_first():
    spans = [GoldSpan("private_person", 0, 4), GoldSpan("private_address", 0, 10), GoldSpan("secret", 8, 12)]
    assert drop_overlapping_spans(spans) == [GoldSpan("private_address", 0, 10)]
    ids = project_spans_to_tokens(spans, np.array([0, 5, 10]), np.array([5, 10, 12]))
    assert _names(ids) == ["B-private_address", "E-private_address", "O"]


def test_unknown_label_raises_in_typed_mode_and_maps_to_first_class_untyped():
    spans = [GoldSpan("given_name", 0, 3)]
    with pytest.raises(DatasetError, match="given_name.*--mode untyped"):
        project_spans_to_tokens(spans, np.array([0]), np.array([3]), source="x.jsonl:1")
    ids = project_spans_to_tokens(spans, np.array([0]), np.array([3]), typed=False)
    assert _names(ids) == ["S-account_number"]


def test_projection_with_a_custom_label_space():
    space = label_space_from_names(["O", "custom_secret"])
    ids = project_spans_to_tokens([GoldSpan("custom_secret", 2, 6)], np.array([0, 2, 4]), np.array([2, 4, 6]), space)
    assert _names(ids, space) == ["O", "B-custom_secret", "E-custom_secret"]


def test_gold_spans_snap_to_tokens_and_trim_whitespace():
    text = "Mail: ann@x.io."
    # tokens "Mail", ":", " ann", "@x", ".io."  (the last token carries the final period)
    starts, ends = np.array([0, 4, 5, 9, 11]), np.array([4, 5, 9, 11, 15])
    aligned = gold_token_aligned_spans([GoldSpan("private_email", 6, 14)], starts, ends, text)
    assert aligned == [GoldSpan("private_email", 6, 15)]
