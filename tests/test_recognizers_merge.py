"""merge_spans: validated pattern spans win over model spans of another label; same-label overlaps unite."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pii_frames.decode.spans import CharSpan
from pii_frames.recognizers import RecognizerSet, merge_spans


def P(label, start, end, score=0.95, source="pattern"):
    return CharSpan(label, start, end, score, source)


def test_pattern_wins_over_a_model_span_of_another_label():
    out = merge_spans([CharSpan("private_phone", 10, 29, 0.8)], [P("account_number", 10, 29)])
    assert out == [P("account_number", 10, 29)]


def test_model_span_keeps_its_parts_outside_the_pattern_span():
    text = "Call Jane Doe-4111111111111111 now"
    model = [CharSpan("private_person", 5, 30, 0.7)]
    pattern = [P("account_number", 14, 30, 0.97)]
    assert merge_spans(model, pattern) == [CharSpan("private_person", 5, 14, 0.7, "model"), P("account_number", 14, 30, 0.97)]
    # With the text, the leftover loses the hyphen it ended on.
    assert merge_spans(model, pattern, text) == [CharSpan("private_person", 5, 13, 0.7, "model"), P("account_number", 14, 30, 0.97)]


def test_leftover_without_letters_or_digits_vanishes_with_text():
    text = "x 4111111111111111 - 5555555555554444 y"
    model = [CharSpan("private_phone", 2, 37, 0.6)]
    pattern = [P("account_number", 2, 18), P("account_number", 21, 37)]
    assert merge_spans(model, pattern, text) == pattern
    assert merge_spans(model, pattern) == [pattern[0], CharSpan("private_phone", 18, 21, 0.6, "model"), pattern[1]]


def test_same_label_overlaps_become_their_union():
    out = merge_spans([CharSpan("private_email", 0, 12, 0.6)], [P("private_email", 4, 20, 0.95)])
    assert out == [CharSpan("private_email", 0, 20, 0.95, "pattern")]


def test_non_overlapping_spans_are_kept_sorted_and_model_spans_say_model():
    out = merge_spans([CharSpan("private_person", 30, 34, 0.9), CharSpan("private_date", 0, 5, 0.8)], [P("secret", 10, 20)])
    assert out == [CharSpan("private_date", 0, 5, 0.8, "model"), P("secret", 10, 20), CharSpan("private_person", 30, 34, 0.9, "model")]
    assert merge_spans([], []) == []


def test_deny_list_beats_pattern_beats_model():
    deny = P("deny_list", 5, 10, 1.0, "deny_list")
    pattern = P("secret", 0, 12, 0.99)
    model = CharSpan("private_person", 0, 20, 0.99)
    assert merge_spans([model], [pattern, deny]) == [
        P("secret", 0, 5, 0.99), deny, P("secret", 10, 12, 0.99), CharSpan("private_person", 12, 20, 0.99, "model")]


def test_with_recognizer_output_end_to_end():
    text = "Pay 4111 1111 1111 1111 to Jane"
    pattern = RecognizerSet.default().find(text)
    model = [CharSpan("private_phone", 4, 23, 0.55), CharSpan("private_person", 27, 31, 0.98)]
    assert [(s.label, text[s.start:s.end], s.source) for s in merge_spans(model, pattern, text)] == [
        ("account_number", "4111 1111 1111 1111", "pattern"), ("private_person", "Jane", "model")]


_spans = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 40), st.integers(1, 12), st.floats(0, 1),
              st.sampled_from(["model", "pattern", "deny_list"])),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(_spans, _spans)
def test_merge_properties(model_raw, pattern_raw):
    model = [CharSpan(label, s, s + n, score, "model") for label, s, n, score, _ in model_raw]
    pattern = [CharSpan(label, s, s + n, score, source) for label, s, n, score, source in pattern_raw]
    out = merge_spans(model, pattern)
    # Non-overlapping and sorted.
    assert all(a.end <= b.start for a, b in zip(out, out[1:]))
    # Without text nothing is lost: exactly the characters of the inputs stay covered.
    covered = lambda spans: {i for s in spans for i in range(s.start, s.end)}  # noqa: E731
    assert covered(out) == covered(model + pattern)
    # Every character of a strongest-source span keeps that span's label (no model span takes it over).
    labels = {i: s.label for s in out for i in range(s.start, s.end)}
    strongest = [s for s in pattern if s.source == "deny_list"] or [s for s in pattern if s.source == "pattern"]
    if len({s.label for s in strongest}) == 1:
        for s in strongest:
            assert all(labels[i] == s.label for i in range(s.start, s.end))
