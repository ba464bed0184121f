"""Constrained Viterbi, argmax and span post-processing (pii_frames.decode)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pii_frames.decode import (
    BIAS_KEYS,
    DEFAULT_LABEL_NAMES,
    CharSpan,
    LabelSpace,
    argmax_decode,
    decode_spans,
    decode_spans_many,
    load_calibration,
    viterbi_decode,
    viterbi_decode_many,
)
from pii_frames.decode.spans import (
    discard_overlapping_by_label,
    labels_to_token_spans,
    select_non_overlapping,
    trim_whitespace_spans,
)
from pii_frames.text import TokenOffsets

ONE_CLASS = LabelSpace.from_names(["O", "B-x", "I-x", "E-x", "S-x"])
TWO_CLASSES = LabelSpace.from_names(["O", "B-x", "I-x", "E-x", "S-x", "B-y", "I-y", "E-y", "S-y"])
DEFAULT = LabelSpace.default()
O, BX, IX, EX, SX, BY, IY, EY, SY = range(9)


def log(rows):
    return np.log(np.asarray(rows, dtype=np.float64)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Independent oracle: the reference recurrence written out with torch, label by label.


def reference_viterbi(logprobs: np.ndarray, space: LabelSpace, biases: dict | None = None) -> list[int]:
    biases = {key: 0.0 for key in BIAS_KEYS} | (biases or {})
    names = space.names
    tag = {i: (None if n == "O" else n.split("-", 1)[0]) for i, n in enumerate(names)}
    cls = {i: (None if n == "O" else n.split("-", 1)[1]) for i, n in enumerate(names)}
    n = len(names)
    start = torch.full((n,), -1e9)
    end = torch.full((n,), -1e9)
    trans = torch.full((n, n), -1e9)
    for i in range(n):
        if tag[i] in (None, "B", "S"):
            start[i] = 0.0
        if tag[i] in (None, "E", "S"):
            end[i] = 0.0
        for j in range(n):
            if tag[i] in (None, "E", "S"):
                if tag[j] is None:
                    trans[i, j] = biases[
                        "transition_bias_background_stay" if tag[i] is None else "transition_bias_end_to_background"
                    ]
                elif tag[j] in ("B", "S"):
                    trans[i, j] = biases[
                        "transition_bias_background_to_start" if tag[i] is None else "transition_bias_end_to_start"
                    ]
            elif tag[i] in ("B", "I") and cls[i] == cls[j] and tag[j] in ("I", "E"):
                trans[i, j] = biases[
                    "transition_bias_inside_to_continue" if tag[j] == "I" else "transition_bias_inside_to_end"
                ]
    lp = torch.from_numpy(np.asarray(logprobs, dtype=np.float32))
    scores = lp[0] + start
    back = []
    for t in range(1, lp.shape[0]):
        best, arg = (scores.unsqueeze(1) + trans).max(dim=0)
        scores = best + lp[t]
        back.append(arg)
    if not torch.isfinite(scores).any():
        return lp.argmax(dim=1).tolist()
    last = int((scores + end).argmax())
    path = [last]
    for arg in reversed(back):
        last = int(arg[last])
        path.append(last)
    return path[::-1]


def is_valid_bioes(path, space: LabelSpace) -> bool:
    tags = [space.names[i].split("-", 1)[0] for i in path]
    classes = [space.names[i].split("-", 1)[-1] for i in path]
    if not path:
        return True
    if tags[0] in ("I", "E") or tags[-1] in ("B", "I"):
        return False
    for (t0, c0), (t1, c1) in zip(zip(tags, classes), zip(tags[1:], classes[1:])):
        if t0 in ("B", "I"):
            if t1 not in ("I", "E") or c0 != c1:
                return False
        elif t1 in ("I", "E"):
            return False
    return True


# --------------------------------------------------------------------------------------------
# Label spaces


def test_default_label_space_matches_the_model_order():
    assert len(DEFAULT_LABEL_NAMES) == 33 and DEFAULT.names[0] == "O"
    assert DEFAULT.names[1:5] == ("B-account_number", "I-account_number", "E-account_number", "S-account_number")
    assert DEFAULT.names[17] == "B-private_person" and DEFAULT.names[32] == "S-secret"
    assert DEFAULT.span_labels[4] == "private_person" and len(DEFAULT.span_labels) == 8
    assert DEFAULT.index[("E", "private_email")] == 15
    assert LabelSpace.from_names(DEFAULT_LABEL_NAMES) == DEFAULT


@pytest.mark.parametrize(
    "names, message",
    [
        (["B-x", "I-x", "E-x", "S-x"], "exactly one 'O'"),
        (["O", "O", "B-x", "I-x", "E-x", "S-x"], "exactly one 'O'"),
        (["O", "B-x", "I-x", "E-x"], "lacks the S"),
        (["O", "Q-x", "I-x", "E-x", "S-x"], "'Q-x' \\(index 1\\)"),
        (["O", "B-x", "B-x", "I-x", "E-x", "S-x"], "duplicate"),
    ],
)
def test_label_space_errors_name_the_problem(names, message):
    with pytest.raises(ValueError, match=message):
        LabelSpace.from_names(names)


def test_o_need_not_be_first():
    space = LabelSpace.from_names(["B-x", "I-x", "E-x", "S-x", "O"])
    lp = np.full((3, 5), -5.0, dtype=np.float32)
    lp[:, 4] = -0.1
    assert space.background == 4
    assert viterbi_decode(lp, space).tolist() == [4, 4, 4]


# --------------------------------------------------------------------------------------------
# Viterbi on hand-made matrices


def test_known_best_paths():
    # A clear B I E run, then O, then a single token.
    lp = log(
        [
            [0.10, 0.70, 0.10, 0.05, 0.05],
            [0.10, 0.10, 0.60, 0.10, 0.10],
            [0.10, 0.05, 0.10, 0.70, 0.05],
            [0.90, 0.02, 0.03, 0.03, 0.02],
            [0.20, 0.10, 0.05, 0.05, 0.60],
        ]
    )
    assert viterbi_decode(lp, ONE_CLASS).tolist() == [BX, IX, EX, O, SX]
    assert argmax_decode(lp).tolist() == [BX, IX, EX, O, SX]


def test_invalid_argmax_sequence_is_repaired():
    # Per-token argmax says I, I, B: impossible at the start and at the end.
    lp = log(
        [
            [0.30, 0.25, 0.35, 0.05, 0.05],
            [0.10, 0.10, 0.60, 0.10, 0.10],
            [0.10, 0.50, 0.10, 0.20, 0.10],
        ]
    )
    assert argmax_decode(lp).tolist() == [IX, IX, BX]
    path = viterbi_decode(lp, ONE_CLASS).tolist()
    assert path == [BX, IX, EX]
    assert path == reference_viterbi(lp, ONE_CLASS)


def test_classes_cannot_mix_inside_a_span():
    lp = np.full((3, 9), np.log(0.01), dtype=np.float32)
    lp[0, BX], lp[1, IY], lp[2, EY] = np.log(0.9), np.log(0.9), np.log(0.9)
    path = viterbi_decode(lp, TWO_CLASSES).tolist()
    assert is_valid_bioes(path, TWO_CLASSES)
    assert path == reference_viterbi(lp, TWO_CLASSES)


def test_ties_keep_the_first_label_index():
    uniform = np.zeros((6, 9), dtype=np.float32)
    assert viterbi_decode(uniform, TWO_CLASSES).tolist() == [O] * 6
    assert argmax_decode(uniform).tolist() == [O] * 6
    # S-x and S-y tie exactly: the lower index (x) wins, as torch.max does.
    lp = np.full((1, 9), -3.0, dtype=np.float32)
    lp[0, SX] = lp[0, SY] = -0.5
    assert viterbi_decode(lp, TWO_CLASSES).tolist() == [SX]


def test_empty_and_single_token_documents():
    assert viterbi_decode(np.zeros((0, 5), dtype=np.float32), ONE_CLASS).tolist() == []
    lp = log([[0.1, 0.1, 0.7, 0.05, 0.05]])  # I-x alone is impossible
    assert viterbi_decode(lp, ONE_CLASS).tolist() == [O]


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match=r"shape \[tokens, 5\]"):
        viterbi_decode(np.zeros((3, 4), dtype=np.float32), ONE_CLASS)
    bad = np.zeros((3, 5), dtype=np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN at token 2"):
        viterbi_decode(bad, ONE_CLASS)
    with pytest.raises(ValueError, match="unknown Viterbi bias"):
        viterbi_decode(np.zeros((3, 5), dtype=np.float32), ONE_CLASS, {"transition_bias_typo": 1.0})
    with pytest.raises(ValueError, match="must be a number"):
        viterbi_decode(np.zeros((3, 5), dtype=np.float32), ONE_CLASS, {BIAS_KEYS[0]: "1"})


quantised = st.integers(min_value=-6, max_value=0).map(lambda v: float(v) / 2)


@settings(max_examples=60, deadline=None)
@given(
    matrix=st.integers(min_value=1, max_value=14).flatmap(
        lambda n: arrays(np.float32, (n, 9), elements=st.one_of(quantised, st.floats(-12, 0, width=32)))
    ),
    bias_values=st.lists(st.sampled_from([0.0, -1.0, 0.5, 2.0]), min_size=6, max_size=6),
)
def test_viterbi_equals_reference_recurrence_and_is_valid(matrix, bias_values):
    biases = dict(zip(BIAS_KEYS, bias_values))
    path = viterbi_decode(matrix, TWO_CLASSES, biases).tolist()
    assert path == reference_viterbi(matrix, TWO_CLASSES, biases)
    assert is_valid_bioes(path, TWO_CLASSES)


def test_viterbi_equals_reference_on_the_default_space_with_real_shapes():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(300, 33)).astype(np.float32)
    logits[:, 0] += 4.0
    lp = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    path = viterbi_decode(lp, DEFAULT).tolist()
    assert path == reference_viterbi(lp, DEFAULT)
    assert is_valid_bioes(path, DEFAULT) and any(p != 0 for p in path)


def _count_transitions(path, space, from_tags, to_tags):
    tags = ["O" if space.names[p] == "O" else space.names[p][0] for p in path]
    return sum(1 for a, b in zip(tags, tags[1:]) if a in from_tags and b in to_tags)


def test_biases_move_precision_and_recall_the_expected_way():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(400, 9)).astype(np.float32)
    logits[:, 0] += 1.5
    lp = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    levels = [-2.0, -0.5, 0.0, 0.5, 2.0]
    stay = [
        _count_transitions(viterbi_decode(lp, TWO_CLASSES, {"transition_bias_background_stay": b}), TWO_CLASSES, "O", "O")
        for b in levels
    ]
    to_start = [
        _count_transitions(
            viterbi_decode(lp, TWO_CLASSES, {"transition_bias_background_to_start": b}), TWO_CLASSES, "O", "BS"
        )
        for b in levels
    ]
    # A larger bias on an edge can only make the optimal path use it more often.
    assert stay == sorted(stay) and stay[0] < stay[-1]
    assert to_start == sorted(to_start) and to_start[0] < to_start[-1]
    # Shifting weight from staying in O to starting spans flags more tokens (recall up), and back.
    flagged = [
        int(
            (
                viterbi_decode(
                    lp,
                    TWO_CLASSES,
                    {"transition_bias_background_stay": -b, "transition_bias_background_to_start": b},
                )
                != 0
            ).sum()
        )
        for b in (-1.0, -0.5, 0.0, 0.5)
    ]
    assert flagged[0] < flagged[1] < flagged[2] < flagged[3]


def test_recall_bias_flags_a_borderline_token():
    lp = log([[0.9, 0.02, 0.02, 0.02, 0.04], [0.55, 0.05, 0.05, 0.05, 0.30], [0.9, 0.02, 0.02, 0.02, 0.04]])
    assert viterbi_decode(lp, ONE_CLASS).tolist() == [O, O, O]
    recall = {"transition_bias_background_to_start": 1.0}
    assert viterbi_decode(lp, ONE_CLASS, recall).tolist() == [O, SX, O]
    precision = {"transition_bias_background_stay": 1.0}
    strong = log([[0.9, 0.02, 0.02, 0.02, 0.04], [0.2, 0.05, 0.05, 0.05, 0.65], [0.9, 0.02, 0.02, 0.02, 0.04]])
    assert viterbi_decode(strong, ONE_CLASS).tolist() == [O, SX, O]
    assert viterbi_decode(strong, ONE_CLASS, precision).tolist() == [O, O, O]


def random_documents(rng, space, count, max_len, ties=False):
    docs = []
    for n in rng.integers(0, max_len, size=count):
        if ties:
            docs.append((np.round(rng.uniform(-3, 0, size=(n, len(space))) * 2) / 2).astype(np.float32))
        else:
            logits = rng.normal(scale=3.0, size=(n, len(space))).astype(np.float32)
            logits[:, space.background] += 3.0
            docs.append(torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy())
    return docs


@pytest.mark.parametrize(
    "space", [DEFAULT, LabelSpace.from_names(["B-x", "I-x", "E-x", "S-x", "O", "S-y", "E-y", "I-y", "B-y"])],
    ids=["default", "shuffled"],
)
def test_batched_viterbi_equals_one_by_one(space):
    rng = np.random.default_rng(11)
    docs = random_documents(rng, space, 60, 90) + random_documents(rng, space, 60, 12, ties=True)
    docs.append(np.zeros((40, len(space)), dtype=np.float32))  # everything tied
    for biases in (None, dict(zip(BIAS_KEYS, (-0.5, 0.5, 0.25, 0.0, -1.0, 1.0)))):
        expected = [viterbi_decode(d, space, biases) for d in docs]
        for budget in (64, 4096):
            got = viterbi_decode_many(docs, space, biases, token_budget=budget)
            assert len(got) == len(docs)
            assert all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_batched_viterbi_falls_back_for_extreme_scores():
    rng = np.random.default_rng(5)
    docs = random_documents(rng, TWO_CLASSES, 20, 30)
    docs[3] = docs[3] * 1e7  # scores near the -1e9 impossible-move cost: dense path
    docs[4] = np.where(docs[4] < -2, -np.inf, docs[4]).astype(np.float32)
    got = viterbi_decode_many(docs, TWO_CLASSES)
    for doc, path in zip(docs, got):
        assert np.array_equal(path, viterbi_decode(doc, TWO_CLASSES))
    assert [p.tolist() for p in viterbi_decode_many(docs[3:4], TWO_CLASSES)] == [reference_viterbi(docs[3], TWO_CLASSES)]


def test_decode_spans_many_equals_decode_spans():
    rng = np.random.default_rng(2)
    texts = ["".join(rng.choice(list("ab cd\u00e9\U0001f680"), size=n)) for n in rng.integers(0, 25, size=40)]
    offsets, docs = [], []
    for text in texts:
        cuts = np.arange(len(text) + 1, dtype=np.int32)  # one token per character
        offsets.append(TokenOffsets(cuts[:-1], cuts[1:], text, False))
        logits = rng.normal(scale=3.0, size=(len(text), 9)).astype(np.float32)
        docs.append(torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy())
    for mode in ("viterbi", "argmax"):
        many = decode_spans_many(docs, offsets, TWO_CLASSES, mode=mode)
        assert many == [decode_spans(d, o, TWO_CLASSES, mode=mode) for d, o in zip(docs, offsets)]
        assert any(many)
    short = TokenOffsets(np.zeros(1, np.int32), np.ones(1, np.int32), "x", False)
    with pytest.raises(ValueError, match="document 1: logprobs has shape"):
        decode_spans_many([docs[0], np.zeros((3, 9), np.float32)], [offsets[0], short], TWO_CLASSES)
    with pytest.raises(ValueError, match="2 log-prob arrays but 1 offsets"):
        decode_spans_many(docs[:2], offsets[:1], TWO_CLASSES)


# --------------------------------------------------------------------------------------------
# Calibration files


def write_calibration(path, payload):
    path.write_text(json.dumps(payload))
    return path


def calibration_payload(biases=None):
    return {"operating_points": {"default": {"biases": biases or {key: 0.0 for key in BIAS_KEYS}}}}


def test_calibration_file_round_trip(tmp_path):
    biases = {key: float(i) / 4 for i, key in enumerate(BIAS_KEYS)}
    biases["transition_bias_end_to_start"] = 2  # integers are numbers too
    loaded = load_calibration(write_calibration(tmp_path / "c.json", calibration_payload(biases)))
    assert list(loaded) == list(BIAS_KEYS)
    assert loaded["transition_bias_inside_to_continue"] == 0.5 and loaded["transition_bias_end_to_start"] == 2.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p | {"version": 1}, r"top level .*extra \['version'\]"),
        (lambda p: {"operating_points": {"recall": p["operating_points"]["default"]}}, r"operating_points must"),
        (lambda p: {"operating_points": {"default": {"biases": {}, "notes": ""}}}, r"operating_points.default must"),
        (
            lambda p: {"operating_points": {"default": {"biases": {k: 0.0 for k in BIAS_KEYS[:5]}}}},
            r"missing \['transition_bias_end_to_start'\]",
        ),
        (
            lambda p: {"operating_points": {"default": {"biases": {k: True for k in BIAS_KEYS}}}},
            r"transition_bias_background_stay must be a number",
        ),
        (lambda p: {"operating_points": []}, r"operating_points must be a JSON object"),
    ],
)
def test_calibration_schema_is_exact(tmp_path, mutate, message):
    path = write_calibration(tmp_path / "viterbi_calibration.json", mutate(calibration_payload()))
    with pytest.raises(ValueError, match=message) as info:
        load_calibration(path)
    assert str(path) in str(info.value)


def test_calibration_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_calibration(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        load_calibration(tmp_path / "broken.json")


# --------------------------------------------------------------------------------------------
# Token spans and character spans


@pytest.mark.parametrize(
    "labels, expected",
    [
        ([BX, IX, EX], [(0, 0, 3)]),
        ([IX, IX, O], [(0, 0, 2)]),  # I opens a span when none is open
        ([EX, O], [(0, 0, 1)]),  # lone E is a single-token span
        ([BX, BX, EX], [(0, 0, 1), (0, 1, 3)]),  # B closes the open span
        ([BX, IY, EY], [(0, 0, 1), (1, 1, 3)]),  # I of another class closes and reopens
        ([BX, EY], [(0, 0, 1), (1, 1, 2)]),  # E of another class: close, then single
        ([BX, IX, SY, O], [(0, 0, 2), (1, 2, 3)]),  # S closes the open span
        ([BX, IX], [(0, 0, 2)]),  # open at the end closes there
        ([O, SX, SX, O, BY], [(0, 1, 2), (0, 2, 3), (1, 4, 5)]),
    ],
)
def test_labels_to_token_spans_rules(labels, expected):
    assert labels_to_token_spans(np.array(labels), TWO_CLASSES) == expected


def offsets_for(text, pieces):
    starts, ends, cursor = [], [], 0
    for piece in pieces:
        starts.append(cursor)
        cursor += len(piece)
        ends.append(cursor)
    assert cursor == len(text)
    return TokenOffsets(np.array(starts, np.int32), np.array(ends, np.int32), text, False)


def one_hot(labels, n_labels, p=0.8):
    lp = np.full((len(labels), n_labels), np.log((1 - p) / (n_labels - 1)), dtype=np.float32)
    lp[np.arange(len(labels)), labels] = np.log(p)
    return lp


def test_decode_spans_trims_whitespace_and_scores():
    text = "Call John Smith now"
    off = offsets_for(text, ["Call", " John", " Smith", " now"])
    lp = one_hot([O, BX, EX, O], 5)
    lp[2] = np.log(np.array([0.05, 0.05, 0.05, 0.6, 0.25]))
    spans = decode_spans(lp, off, ONE_CLASS)
    assert spans == [CharSpan("x", 5, 15, pytest.approx((0.8 + 0.6) / 2, abs=1e-6))]
    assert text[5:15] == "John Smith"
    untrimmed = decode_spans(lp, off, ONE_CLASS, trim_whitespace=False)
    assert (untrimmed[0].start, untrimmed[0].end) == (4, 15)


def test_decode_spans_argmax_mode_and_mode_errors():
    text = "a b c"
    off = offsets_for(text, ["a", " b", " c"])
    lp = one_hot([IX, O, O], 5)
    assert decode_spans(lp, off, ONE_CLASS, mode="argmax") == [CharSpan("x", 0, 1, pytest.approx(0.8))]
    assert decode_spans(lp, off, ONE_CLASS, mode="viterbi") == []
    with pytest.raises(ValueError, match="decode mode"):
        decode_spans(lp, off, ONE_CLASS, mode="beam")
    with pytest.raises(ValueError, match="3 tokens"):
        decode_spans(lp[:2], off, ONE_CLASS)


def test_whitespace_only_spans_disappear():
    text = "a   b"
    off = offsets_for(text, ["a", "   ", "b"])
    assert decode_spans(one_hot([O, SX, O], 5), off, ONE_CLASS) == []
    assert trim_whitespace_spans([CharSpan("x", 1, 4, 1.0)], text) == []


def test_split_character_tokens_give_overlapping_spans_resolved_greedily():
    # Two tokens share the emoji (a split character): both spans cover it.
    text = "x🚀y"
    off = TokenOffsets(np.array([0, 1, 1], np.int32), np.array([2, 2, 3], np.int32), text, False)
    spans = decode_spans(one_hot([SX, SY, SY], 9), off, TWO_CLASSES)
    assert spans == [CharSpan("x", 0, 2, pytest.approx(0.8))]


def test_discard_and_non_overlap_selection():
    spans = [CharSpan("y", 0, 3, 0.5), CharSpan("x", 0, 3, 0.5), CharSpan("x", 1, 5, 0.5), CharSpan("x", 6, 8, 0.5)]
    assert discard_overlapping_by_label(spans) == [spans[1], spans[0], spans[3]]
    assert select_non_overlapping(spans) == [spans[1], spans[3]]
    assert select_non_overlapping([CharSpan("x", 3, 3, 1.0)]) == []


def test_offsets_refer_to_decoded_text_on_mismatch():
    decoded = "a \ufffd b"
    off = offsets_for(decoded, ["a", " \ufffd", " b"])
    off = TokenOffsets(off.starts, off.ends, decoded, True)
    spans = decode_spans(one_hot([O, SX, O], 5), off, ONE_CLASS)
    assert spans == [CharSpan("x", 2, 3, pytest.approx(0.8))]
