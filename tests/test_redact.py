"""Policies, operators and RedactionResult (pii_frames.redaction)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pii_frames.decode import CharSpan
from pii_frames.redaction import MISMATCH_WARNING, Policy, RedactionResult, build_result

SECRET_KEY = "k3y-that-must-never-leak-\u00e9"
TEXT = "Ada Lovelace (ada@example.com) called 555-0100 about ACME-42."
ADA = CharSpan("private_person", 0, 12, 0.95)
EMAIL = CharSpan("private_email", 14, 29, 0.90)
PHONE = CharSpan("private_phone", 38, 46, 0.40)
SPANS = [ADA, EMAIL, PHONE]


def spans_of(result: RedactionResult):
    return [(s.label, s.start, s.end, s.text, s.placeholder) for s in result.detected_spans]


# --------------------------------------------------------------------------------------------
# Schema


def test_to_dict_has_every_reference_key_with_reference_types():
    result = build_result(TEXT, SPANS)
    d = result.to_dict()
    assert list(d)[:5] == ["schema_version", "summary", "text", "detected_spans", "redacted_text"]
    assert d["schema_version"] == 1 and type(d["schema_version"]) is int
    assert list(d["summary"]) == ["output_mode", "span_count", "by_label", "decoded_mismatch"]
    assert d["summary"]["output_mode"] == "typed" and type(d["summary"]["span_count"]) is int
    assert type(d["summary"]["decoded_mismatch"]) is bool and isinstance(d["summary"]["by_label"], dict)
    assert list(d["summary"]["by_label"]) == sorted(d["summary"]["by_label"])
    assert d["summary"]["span_count"] == len(d["detected_spans"]) == sum(d["summary"]["by_label"].values())
    for span in d["detected_spans"]:
        assert list(span) == ["label", "start", "end", "text", "placeholder", "score", "source"]
        assert type(span["start"]) is int and type(span["end"]) is int
        assert all(type(span[k]) is str for k in ("label", "text", "placeholder")) and type(span["score"]) is float
    assert "warning" not in d
    assert d["category"] is None and d["category_score"] is None
    assert d["redacted_text"] == "<PRIVATE_PERSON> (<PRIVATE_EMAIL>) called <PRIVATE_PHONE> about ACME-42."
    assert json.loads(result.to_json()) == d


def test_category_and_mismatch_fields():
    result = build_result("a \ufffd b", [CharSpan("secret", 2, 3, 0.5)], decoded_mismatch=True,
                          category="Health", category_score=0.75)
    d = result.to_dict()
    assert d["summary"]["decoded_mismatch"] is True and d["warning"] == MISMATCH_WARNING
    assert list(d)[-3:] == ["warning", "category", "category_score"]
    assert (result.category, result.category_score) == ("Health", 0.75)


def test_redacted_output_mode_collapses_labels():
    result = build_result(TEXT, SPANS, output_mode="redacted")
    assert result.summary == {"output_mode": "redacted", "span_count": 3, "by_label": {"redacted": 3},
                              "decoded_mismatch": False}
    assert {s.placeholder for s in result.detected_spans} == {"<REDACTED>"}
    assert result.redacted_text.count("<REDACTED>") == 3
    with pytest.raises(ValueError, match="output_mode"):
        build_result(TEXT, SPANS, output_mode="typed-ish")


def test_to_json_keeps_non_ascii_characters():
    result = build_result("Zoë Müller", [CharSpan("private_person", 0, 10, 0.9)])
    assert "Zoë Müller" in result.to_json() and "\\u00eb" not in result.to_json()
    assert json.loads(result.to_json(indent=None))["text"] == "Zoë Müller"


def test_html_view_escapes_and_labels():
    text = "<b>Eve</b> & co"
    result = build_result(text, [CharSpan("private_person", 3, 6, 0.9)], category="Sports", category_score=0.5)
    view = result._repr_html_()
    assert "&lt;b&gt;" in view and "&amp; co" in view and "<b>" not in view
    assert "private_person" in view and "#ffc9c9" in view and "Sports" in view
    assert view.count("<mark") == 1


def test_invalid_spans_are_dropped_and_overlaps_resolved_like_the_reference():
    spans = [CharSpan("secret", -1, 3, 1.0), CharSpan("secret", 50, 99, 1.0), CharSpan("secret", 4, 4, 1.0),
             CharSpan("private_person", 0, 12, 0.9), CharSpan("secret", 4, 20, 0.9)]
    result = build_result(TEXT, spans)
    assert [(s.label, s.start, s.end) for s in result.detected_spans] == [("private_person", 0, 12)]


# --------------------------------------------------------------------------------------------
# Operators


def test_each_operator():
    def redact(policy):
        return build_result(TEXT, SPANS, policy=policy).redacted_text

    assert redact(Policy("mask")) == "************ (***************) called ******** about ACME-42."
    assert redact(Policy("mask", mask_char="#")).startswith("############ (")
    # keep_last as the default operator keeps the tails of account numbers and phones only (a name's tail
    # identifies its owner); other labels get placeholders unless per_label names them.
    assert redact(Policy("keep_last", keep_last=4)) == "<PRIVATE_PERSON> (<PRIVATE_EMAIL>) called ****0100 about ACME-42."
    every_label = Policy("keep_last", keep_last=4, per_label={"private_person": "keep_last", "private_email": "keep_last"})
    assert redact(every_label) == "********lace (***********.com) called ****0100 about ACME-42."
    assert redact(Policy("drop")) == " () called  about ACME-42."
    assert Policy("keep_last", keep_last=4).replacement("account_number", "abcd") == "****"  # short values fully masked
    pseudo = redact(Policy("pseudonym", key=SECRET_KEY))
    assert pseudo.startswith("<PRIVATE_PERSON_") and "Ada" not in pseudo and "555-0100" not in pseudo
    token = build_result(TEXT, SPANS, policy=Policy("pseudonym", key=SECRET_KEY)).detected_spans[0].placeholder
    assert len(token) == len("<PRIVATE_PERSON_>") + 16 and int(token[-17:-1], 16) >= 0


def test_per_label_operators_and_placeholders_recorded():
    policy = Policy("placeholder", per_label={"private_phone": "keep_last", "private_email": "drop"}, keep_last=2)
    result = build_result(TEXT, SPANS, policy=policy)
    assert [s.placeholder for s in result.detected_spans] == ["<PRIVATE_PERSON>", "", "******00"]
    assert result.redacted_text == "<PRIVATE_PERSON> () called ******00 about ACME-42."


def test_labels_min_score_and_allow_filter_spans_out_entirely():
    only_people = build_result(TEXT, SPANS, policy=Policy(labels=["private_person"]))
    assert [s.label for s in only_people.detected_spans] == ["private_person"]
    assert "ada@example.com" in only_people.redacted_text and only_people.summary["span_count"] == 1
    confident = build_result(TEXT, SPANS, policy=Policy(min_score=0.5))
    assert [s.label for s in confident.detected_spans] == ["private_person", "private_email"]
    assert "555-0100" in confident.redacted_text
    allowed = build_result(TEXT, SPANS, policy=Policy(allow=["ada@example.com"]))
    assert [s.label for s in allowed.detected_spans] == ["private_person", "private_phone"]
    case_sensitive = build_result(TEXT, SPANS, policy=Policy(allow=["ADA@EXAMPLE.COM"]))
    assert len(case_sensitive.detected_spans) == 3


def test_deny_list_finds_every_occurrence_the_model_missed():
    text = "ACME-42 shipped; ACME-42 again, and acme-42 in lower case."
    result = build_result(text, [], policy=Policy(deny=["ACME-42"]))
    assert [(s.label, s.start, s.end, s.score) for s in result.detected_spans] == [
        ("deny_list", 0, 7, 1.0), ("deny_list", 17, 24, 1.0)]
    assert result.redacted_text == "<DENY_LIST> shipped; <DENY_LIST> again, and acme-42 in lower case."
    labelled = build_result(text, [], policy=Policy(deny={"ACME-42": "secret"}, labels=["private_person"]))
    assert {s.label for s in labelled.detected_spans} == {"secret"}  # deny always applies


def test_deny_list_overlapping_a_model_span_merges_without_leaking():
    text = "mail john.smith@example.com now"
    model = [CharSpan("private_email", 5, 27, 0.8)]
    # The deny value starts before the model span: the union is redacted.
    result = build_result(text, model, policy=Policy(deny=["mail john"]))
    assert [(s.label, s.start, s.end) for s in result.detected_spans] == [("deny_list", 0, 27)]
    assert result.redacted_text == "<DENY_LIST> now"
    # Overlapping deny values ("abc", "bcd") leave no character of either in clear.
    both = build_result("x abcd x", [], policy=Policy("mask", deny=["abc", "bcd"]))
    assert both.redacted_text == "x **** x"
    # Same start and length: the deny-list label wins the tie, deterministically.
    tie = build_result(text, model, policy=Policy(deny={"john.smith@example.com": "custom"}))
    assert [(s.label, s.start, s.end) for s in tie.detected_spans] == [("custom", 5, 27)]


# --------------------------------------------------------------------------------------------
# Pseudonyms


def test_pseudonyms_are_stable_keyed_and_label_specific():
    policy = Policy("pseudonym", key=SECRET_KEY)
    token = policy.replacement("private_person", "Ada Lovelace")
    assert token == Policy("pseudonym", key=SECRET_KEY).replacement("private_person", "Ada Lovelace")
    assert token == Policy("pseudonym", key=SECRET_KEY.encode("utf-8")).replacement("private_person", "Ada Lovelace")
    assert token != Policy("pseudonym", key="other key").replacement("private_person", "Ada Lovelace")
    assert token != policy.replacement("private_person", "Ada Lovelacf")
    assert token != policy.replacement("secret", "Ada Lovelace")
    # The same value in two rows gets the same token.
    rows = [build_result(f"Hi {name}", [CharSpan("private_person", 3, 3 + len(name), 0.9)], policy=policy)
            for name in ("Ada Lovelace", "Alan Turing", "Ada Lovelace")]
    assert rows[0].redacted_text == rows[2].redacted_text != rows[1].redacted_text


def test_pseudonyms_are_stable_across_processes():
    code = (
        "from pii_frames.redaction import Policy;"
        f"print(Policy('pseudonym', key={SECRET_KEY!r}).replacement('private_person', 'Ada Lovelace'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == Policy("pseudonym", key=SECRET_KEY).replacement("private_person", "Ada Lovelace")


def test_ten_thousand_values_give_ten_thousand_tokens():
    policy = Policy("pseudonym", key=SECRET_KEY)
    tokens = {policy.replacement("private_person", f"Person {i}") for i in range(10_000)}
    assert len(tokens) == 10_000


def test_key_never_appears_in_output_repr_or_errors():
    policy = Policy("pseudonym", key=SECRET_KEY, per_label={"secret": "mask"})
    result = build_result(TEXT, SPANS, policy=policy)
    for rendering in (repr(policy), str(policy), repr(result), str(result), result.to_json(),
                      result._repr_html_(), result.redacted_text):
        assert SECRET_KEY not in rendering
    assert "key=<hidden>" in repr(policy)
    errors = []
    for bad in (
        dict(operator="pseudonym", key=SECRET_KEY, per_label={"secret": "hash"}),
        dict(operator="pseudonym", key=SECRET_KEY, mask_char="**"),
        dict(operator="pseudonym", key=SECRET_KEY, allow=["x"], deny=["x"]),
        dict(operator="pseudonym", key=SECRET_KEY, min_score=2),
    ):
        with pytest.raises(ValueError) as info:
            Policy(**bad)
        errors.append(str(info.value))
    with pytest.raises(ValueError) as info:
        Policy("pseudonym", key=SECRET_KEY, labels=["nope"]).check_labels(["private_person"])
    errors.append(str(info.value))
    assert all(SECRET_KEY not in message for message in errors)


def test_policy_pickles_compares_and_is_immutable():
    policy = Policy("pseudonym", key=SECRET_KEY, labels=["private_person"], deny={"ACME-42": "secret"})
    clone = pickle.loads(pickle.dumps(policy.allowing_key_in_pickle()))  # a literal key only on purpose
    assert clone == policy and hash(clone) == hash(policy)
    assert clone.replacement("private_person", "Ada") == policy.replacement("private_person", "Ada")
    assert Policy("pseudonym", key="other") != Policy("pseudonym", key=SECRET_KEY)
    with pytest.raises(AttributeError, match="immutable"):
        policy.operator = "mask"


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(operator="hash"), ValueError, "unknown Policy operator 'hash'; choose one of placeholder, mask"),
        (dict(operator="pseudonym"), ValueError, "needs a secret key"),
        (dict(per_label={"secret": "pseudonym"}), ValueError, "needs a secret key"),
        (dict(per_label={"secret": "redact"}), ValueError, r"per_label\['secret'\]"),
        (dict(operator="pseudonym", key=""), ValueError, "must not be empty"),
        (dict(operator="pseudonym", key=12345), TypeError, "str or bytes"),
        (dict(labels=[]), ValueError, "labels is empty"),
        (dict(min_score=1.5), ValueError, "min_score"),
        (dict(mask_char=""), ValueError, "single character"),
        (dict(keep_last=-1), ValueError, "keep_last"),
        (dict(allow=["x", ""]), ValueError, "allow entries"),
        (dict(deny={"": "secret"}), ValueError, "deny values"),
        (dict(allow=["ACME"], deny=["ACME"]), ValueError, "both allow and deny"),
    ],
)
def test_policy_validation_messages(kwargs, error, message):
    with pytest.raises(error, match=message):
        Policy(**kwargs)


def test_check_labels_against_a_known_label_space():
    known = ["private_person", "private_email", "secret"]
    Policy(labels=["private_person"], per_label={"deny_list": "mask", "redacted": "mask"}).check_labels(known)
    Policy(deny={"x": "internal_code"}, per_label={"internal_code": "drop"}).check_labels(known)
    with pytest.raises(ValueError, match=r"per_label name unknown label\(s\) \['private_phon'\]"):
        Policy(per_label={"private_phon": "mask"}).check_labels(known)
    assert Policy(labels="secret").labels == frozenset({"secret"})


def test_build_result_takes_a_policy_or_a_dict_of_its_arguments():
    assert build_result(TEXT, SPANS, policy={"operator": "mask"}).redacted_text == build_result(
        TEXT, SPANS, policy=Policy("mask")).redacted_text
    with pytest.raises(TypeError, match="pii_frames.Policy"):
        build_result(TEXT, SPANS, policy="mask")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['operater'\]"):
        build_result(TEXT, SPANS, policy={"operater": "mask"})


# --------------------------------------------------------------------------------------------
# Properties on random texts and spans

FILLER = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\u00a7"), max_size=8)
SECRET = st.text(alphabet=st.sampled_from("\u00a7\u2603\U0001f680XYZ"), min_size=1, max_size=6).map(
    lambda s: "\u00a7" + s)  # every secret starts with a character filler never contains


@st.composite
def texts_with_secrets(draw):
    pieces, spans, cursor = [], [], 0
    for _ in range(draw(st.integers(0, 5))):
        filler, secret = draw(FILLER), draw(SECRET)
        label = draw(st.sampled_from(["private_person", "secret", "private_url"]))
        pieces += [filler, secret]
        cursor += len(filler)
        spans.append(CharSpan(label, cursor, cursor + len(secret), draw(st.floats(0.01, 1.0))))
        cursor += len(secret)
    pieces.append(draw(FILLER))
    return "".join(pieces), spans


@settings(max_examples=150, deadline=None)
@given(sample=texts_with_secrets(), operator=st.sampled_from(["placeholder", "mask", "keep_last", "drop", "pseudonym"]),
       mode=st.sampled_from(["typed", "redacted"]))
def test_properties_of_redaction(sample, operator, mode):
    text, spans = sample
    # keep_last applies to every sampled label only when named (its default is account numbers and phones).
    per_label = {label: "keep_last" for label in ("private_person", "secret", "private_url")} if operator == "keep_last" else None
    policy = Policy(operator, key=SECRET_KEY if operator == "pseudonym" else None, keep_last=2, per_label=per_label)
    result = build_result(text, spans, policy=policy, output_mode=mode, opf_compatible=True)
    assert len(result.detected_spans) == len(spans)
    for span in result.detected_spans:
        assert text[span.start : span.end] == span.text
    # Rebuild the redacted text from the spans: everything outside them is untouched.
    rebuilt, cursor = [], 0
    for span in result.detected_spans:
        rebuilt += [text[cursor : span.start], span.placeholder]
        cursor = span.end
    assert "".join(rebuilt) + text[cursor:] == result.redacted_text
    if operator in ("placeholder", "pseudonym", "drop"):
        assert "\u00a7" not in result.redacted_text
        for span in result.detected_spans:
            assert span.text not in result.redacted_text
    if operator in ("mask", "keep_last"):
        assert len(result.redacted_text) == len(text)
    assert result.summary["span_count"] == len(spans)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=30), raw=st.lists(st.tuples(st.integers(-3, 35), st.integers(-3, 35),
                                                         st.sampled_from(["a", "b"])), max_size=6))
def test_random_spans_always_give_consistent_results(text, raw):
    spans = [CharSpan(label, start, end, 0.5) for start, end, label in raw]
    result = build_result(text, spans, policy=Policy(deny=["zz"]))
    previous_end = 0
    for span in result.detected_spans:
        assert 0 <= span.start < span.end <= len(text) and span.start >= previous_end
        assert text[span.start : span.end] == span.text
        previous_end = span.end
    assert "zz" not in result.redacted_text
