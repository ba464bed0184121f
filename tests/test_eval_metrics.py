"""Metric definitions pinned on hand-made cases (opf's containment matching and token counts)."""

from __future__ import annotations

import numpy as np
import pytest

from pii_frames.evaluation.metrics import MetricsAccumulator, Span, SpanCounts, f_scores, match_spans

LABELS = ["O", "B-x", "I-x", "E-x", "S-x", "B-y", "I-y", "E-y", "S-y"]


def test_prediction_inside_gold_is_correct_but_does_not_recall_it():
    pred_ok, gold_found = match_spans([Span("x", 10, 20)], [Span("x", 12, 18)])
    assert pred_ok == [True] and gold_found == [False]


def test_prediction_covering_gold_recalls_it_but_is_not_correct():
    pred_ok, gold_found = match_spans([Span("x", 10, 20)], [Span("x", 8, 22)])
    assert pred_ok == [False] and gold_found == [True]


def test_exact_match_counts_both_ways_and_partial_overlap_neither():
    assert match_spans([Span("x", 0, 5)], [Span("x", 0, 5)]) == ([True], [True])
    assert match_spans([Span("x", 0, 5)], [Span("x", 3, 8)]) == ([False], [False])


def test_typed_mode_needs_the_same_label_untyped_does_not():
    gold, pred = [Span("x", 0, 5)], [Span("y", 0, 5)]
    assert match_spans(gold, pred, typed=True) == ([False], [False])
    assert match_spans(gold, pred, typed=False) == ([True], [True])


def test_one_wide_prediction_recalls_several_gold_spans():
    gold = [Span("x", 0, 4), Span("x", 5, 9)]
    assert match_spans(gold, [Span("x", 0, 9)]) == ([False], [True, True])


def test_f_scores():
    assert f_scores(None, 0.5) == (None, None)
    assert f_scores(0.0, 0.0) == (0.0, 0.0)
    f1, f2 = f_scores(0.5, 1.0)
    assert f1 == pytest.approx(2 / 3)
    assert f2 == pytest.approx(5 * 0.5 / (4 * 0.5 + 1.0))


def test_span_counts_with_zero_denominators_are_none():
    counts = SpanCounts(predicted=0, correct=0, gold=3, found=1)
    assert counts.precision is None and counts.f1 is None
    assert counts.recall == pytest.approx(1 / 3)


def test_accumulator_span_and_token_metrics_on_a_hand_made_example():
    # tokens:  Hi | Ann | Lee | at | a@b.c | now
    gold_tokens = [0, 1, 3, 0, 8, 0]          # B-x E-x ... S-y
    pred_tokens = [0, 4, 0, 0, 8, 4]          # S-x on "Ann", S-y right, a spurious S-x on "now"
    text = "Hi Ann Lee at a@b.c now"
    gold_spans = [Span("x", 3, 10), Span("y", 14, 19)]
    pred_spans = [Span("x", 3, 6), Span("y", 14, 19), Span("x", 20, 23)]
    logprobs = np.log(np.full((6, len(LABELS)), 1 / len(LABELS)))
    acc = MetricsAccumulator(LABELS, ["x", "y"])
    acc.add_example(gold_tokens=gold_tokens, pred_tokens=pred_tokens, gold_spans=gold_spans, pred_spans=pred_spans,
                    text=text, logprobs=logprobs)

    total = acc.span_total()
    assert (total.predicted, total.correct, total.gold, total.found) == (3, 2, 2, 1)
    assert total.precision == pytest.approx(2 / 3) and total.recall == pytest.approx(1 / 2)
    assert acc.per_span_label["x"].to_dict()["precision"] == pytest.approx(1 / 2)
    assert acc.per_span_label["x"].recall == 0.0
    assert acc.per_span_label["y"].f1 == 1.0

    # detection: TP = tokens 1, 4; FP = token 5; FN = token 2
    assert (acc.detection.tp, acc.detection.fp, acc.detection.fn) == (2, 1, 1)
    assert acc.detection.f1 == pytest.approx(4 / 6)
    assert acc.detection.f2 == pytest.approx(10 / (10 + 4 + 1))
    assert acc.token_accuracy == pytest.approx(3 / 6)
    assert acc.loss == pytest.approx(np.log(len(LABELS)))
    assert acc.per_token_label["S-y"].f1 == 1.0
    assert acc.per_token_label["B-x"].recall == 0.0

    flat = acc.flat_metrics()
    assert flat["detection.span.precision"] == pytest.approx(2 / 3)
    assert flat["by_class.y.span.f1"] == 1.0
    assert "token_accuracy" in flat and "loss" in flat
    assert "by_class.S-x.recall" not in flat  # no gold S-x token: zero denominator, omitted


def test_untyped_mode_reports_character_recall_per_gold_label_and_hides_loss():
    acc = MetricsAccumulator(LABELS, ["x", "y"], mode="untyped")
    text = "name: Ann Lee, mail a@b.c"
    acc.add_example(gold_tokens=[0, 1, 1], pred_tokens=[0, 1, 0], text=text,
                    gold_spans=[Span("given_name", 6, 13), Span("email_address", 20, 25)],
                    pred_spans=[Span("y", 6, 9)], logprobs=np.zeros((3, len(LABELS))))
    flat = acc.flat_metrics()
    assert flat["ground_truth_label_recall.recalled_chars.given_name"] == 3
    assert flat["ground_truth_label_recall.ground_truth_chars.given_name"] == 7
    assert flat["ground_truth_label_recall.recall.email_address"] == 0.0
    assert "loss" not in flat and "token_accuracy" not in flat
    # untyped: the "y" prediction inside the given_name gold span is correct
    assert flat["detection.span.precision"] == 1.0
    assert flat["detection.span.recall"] == 0.0


def test_mismatched_token_lengths_are_rejected():
    acc = MetricsAccumulator(LABELS, ["x", "y"])
    with pytest.raises(ValueError, match="differ in length"):
        acc.add_example(gold_tokens=[0, 1], pred_tokens=[0], gold_spans=[], pred_spans=[], text="ab")


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        MetricsAccumulator(LABELS, ["x"], mode="strict")
