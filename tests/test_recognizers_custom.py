"""Custom recognizers from Python and from policy files; errors; pickling, fingerprints, immutability."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from pii_frames.recognizers import Recognizer, RecognizerSet
from pii_frames.recognizers.scanner import compile_branches


def _show(rs: RecognizerSet, text: str) -> list[tuple[str, str]]:
    return [(s.label, text[s.start:s.end]) for s in rs.find(text)]


def even_digit_sum(value: str) -> bool:
    """A module-level validator, so sets using it pickle."""
    return sum(int(c) for c in value if c.isdigit()) % 2 == 0


EMPLOYEE = Recognizer(name="employee_id", label="employee_id", regex=r"\bEMP-\d{6}\b")


def test_one_line_custom_recognizer_from_python():
    rs = RecognizerSet.default().with_custom(EMPLOYEE)
    assert _show(rs, "EMP-004217 called from +44 20 7946 0958") == [
        ("employee_id", "EMP-004217"), ("private_phone", "+44 20 7946 0958")]
    assert rs.labels[0] == "employee_id" and "private_phone" in rs.labels
    assert rs.find("EMP-004217")[0].source == "pattern"
    assert RecognizerSet.default().find("EMP-004217") == []


def test_custom_recognizer_wins_over_a_builtin_at_the_same_position():
    member = Recognizer(name="member_no", label="member_id", regex=r"\b\d{3}-\d{2}-\d{4}\b")
    assert _show(RecognizerSet.default().with_custom(member), "member 536-90-4399") == [("member_id", "536-90-4399")]
    assert _show(RecognizerSet.default(), "member 536-90-4399") == [("account_number", "536-90-4399")]


def test_word_list_is_literal_and_whole_word():
    rs = RecognizerSet([Recognizer(name="projects", label="project", words=["Blue Fox", "c++"], ignore_case=True)])
    assert _show(rs, "blue fox and C++ but not Blue Foxes") == [("project", "blue fox"), ("project", "C++")]


def test_validators_by_name_and_callable():
    by_name = RecognizerSet([Recognizer(name="card16", label="card", regex=r"\b\d{16}\b", validator="luhn")])
    assert _show(by_name, "4111111111111111 4111111111111112") == [("card", "4111111111111111")]
    by_callable = RecognizerSet([Recognizer(name="even", label="code", regex=r"\bC\d{3}\b", validator=even_digit_sum)])
    assert _show(by_callable, "C112 C111") == [("code", "C112")]


def test_context_words_raise_and_lower_the_score():
    rule = Recognizer(name="badge", label="badge_id", regex=r"\b\d{5}\b", score=0.3,
                      context={"badge": 0.5, "zip": -0.3})
    rs = RecognizerSet([rule])
    assert _show(rs, "badge 12345") == [("badge_id", "12345")]
    assert rs.find("badge 12345")[0].score == pytest.approx(0.8)
    assert rs.find("room 12345") == []  # 0.3 < min_score 0.5
    lowered = RecognizerSet([Recognizer(name="badge", label="badge_id", regex=r"\b\d{5}\b", context={"zip": -0.3})])
    assert lowered.find("zip 12345")[0].score == pytest.approx(0.6)
    assert lowered.find("at 12345")[0].score == pytest.approx(0.9)


def test_value_group_is_the_span_and_group_names_do_not_clash():
    a = Recognizer(name="a", label="order_ref", regex=r"order[:=] ?(?P<value>[A-Z]{3}\d{4})")
    b = Recognizer(name="b", label="lot", regex=r"lot[:=] ?(?P<value>\d{4})")
    rs = RecognizerSet([a, b])
    assert compile_branches(rs.recognizers).separate == ()
    assert _show(rs, "order: ABC1234, lot=9876") == [("order_ref", "ABC1234"), ("lot", "9876")]


def test_regexes_that_cannot_join_the_alternation_still_work():
    backref = Recognizer(name="doubled", label="doubled", regex=r"\b(\w{3})-\1\b")
    flagged = Recognizer(name="emp_ci", label="employee_id", regex=r"(?i)emp-\d{4}")
    ascii_flag = Recognizer(name="ascii", label="word", regex=r"(?a)\bZ\w+")
    rs = RecognizerSet([backref, flagged, ascii_flag])
    compiled = compile_branches(rs.recognizers)
    assert [b.recognizer.name for b in compiled.separate] == ["doubled", "ascii"]
    assert _show(rs, "abc-abc EMP-1234 Zeta") == [("doubled", "abc-abc"), ("employee_id", "EMP-1234"), ("word", "Zeta")]


POLICY = {
    "labels": ["private_person"],  # other policy keys belong to the caller
    "recognizers": {
        "builtin": ["email", "payment_card"],
        "region": "GB",
        "custom": [
            {"name": "employee_id", "label": "employee_id", "regex": "EMP-[0-9]{6}", "score": 0.9,
             "context": ["staff", "employee"]},
            {"name": "ticket", "label": "ticket_id", "words": ["TCK-ALPHA", "TCK-BETA"]},
            {"name": "card_like", "label": "account_number", "regex": "\\bX\\d{16}\\b", "validator": "luhn"},
        ],
    },
}


def test_policy_dict_from_json():
    rs = RecognizerSet.from_config(json.loads(json.dumps(POLICY)))
    assert rs.names == ("employee_id", "ticket", "card_like", "email", "payment_card")
    assert rs.region == "GB"
    assert set(rs.labels) == {"employee_id", "ticket_id", "account_number", "private_email"}
    text = "staff EMP-123456 on TCK-BETA paid 4111111111111111, mail a@b.example"
    assert _show(rs, text) == [("employee_id", "EMP-123456"), ("ticket_id", "TCK-BETA"),
                               ("account_number", "4111111111111111"), ("private_email", "a@b.example")]
    assert rs.find(text)[0].score == 1.0


def test_policy_files_json_and_yaml(tmp_path):
    yaml = pytest.importorskip("yaml")
    (tmp_path / "p.json").write_text(json.dumps(POLICY), encoding="utf-8")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY), encoding="utf-8")
    a, b = RecognizerSet.from_file(tmp_path / "p.json"), RecognizerSet.from_file(tmp_path / "p.yml" if False else tmp_path / "p.yaml")
    assert a == b and a.fingerprint == RecognizerSet.from_config(POLICY).fingerprint
    (tmp_path / "bad.json").write_text('{"recognizers": {"custom": [{"name": "x", "label": "", "regex": "a"}]}}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json.*recognizer 'x': label is empty"):
        RecognizerSet.from_file(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json' is not valid json"):
        RecognizerSet.from_file(tmp_path / "broken.json")


def test_policy_shorthands():
    assert len(RecognizerSet.from_config(None)) == 0 and len(RecognizerSet.from_config({"recognizers": False})) == 0
    assert RecognizerSet.from_config({"recognizers": True}) == RecognizerSet.default()
    listed = RecognizerSet.from_config([{"name": "t", "label": "ticket", "regex": "TCK-\\d+"}])
    assert listed.names[0] == "t" and len(listed) == len(RecognizerSet.default()) + 1
    assert "phone" not in RecognizerSet.from_config({"exclude": ["phone"]})


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "emp", "label": "employee_id", "regex": "EMP-(\\d{6}"}, r"recognizer 'emp': invalid regex 'EMP-\(.*': missing \), unterminated subpattern"),
        ({"name": "emp", "label": "employee_id", "regex": "EMP", "validator": "crc99"}, r"recognizer 'emp': unknown validator 'crc99'; known: .*luhn"),
        ({"name": "emp", "label": "", "regex": "EMP"}, r"recognizer 'emp': label is empty"),
        ({"name": "emp", "label": "  ", "regex": "EMP"}, r"recognizer 'emp': label is empty"),
        ({"name": "emp", "regex": "EMP"}, r"recognizer 'emp': label is empty"),
        ({"name": "emp", "label": "employee id", "regex": "EMP"}, r"recognizer 'emp': label 'employee id' must be"),
        ({"name": "emp", "label": "e", "regex": "\\d*"}, r"recognizer 'emp': regex .* matches the empty string"),
        ({"name": "emp", "label": "e"}, r"recognizer 'emp': give exactly one of regex= or words="),
        ({"name": "emp", "label": "e", "regex": "E", "words": ["E"]}, r"recognizer 'emp': give exactly one"),
        ({"name": "emp", "label": "e", "regex": "E", "score": 1.5}, r"recognizer 'emp': score must be a number between 0 and 1"),
        ({"name": "emp", "label": "e", "regex": "E", "context": {"x": 3}}, r"recognizer 'emp': context delta for 'x'"),
        ({"name": "emp", "label": "e", "regex": "E", "colour": "red"}, r"recognizer 'emp': unknown key 'colour'"),
        ({"name": "emp", "label": "e", "regex": "E", "validator": 7}, r"recognizer 'emp': validator in a policy must be a name"),
        ({"name": "emp", "label": "e", "words": []}, r"recognizer 'emp': words must be a non-empty list"),
        ({"name": "", "label": "e", "regex": "E"}, r"recognizer '': name must be"),
    ],
)
def test_bad_custom_recognizer_is_one_clear_error(entry, message):
    with pytest.raises(ValueError, match=message):
        RecognizerSet.from_config({"recognizers": {"custom": [entry]}})


def test_bad_set_configuration_errors():
    with pytest.raises(ValueError, match="recognizer 'email': given twice"):
        RecognizerSet.default().with_custom({"name": "email", "label": "x", "regex": "x"})
    with pytest.raises(ValueError, match="unknown built-in recognizer 'passport'"):
        RecognizerSet.from_config({"builtin": ["passport"]})
    with pytest.raises(ValueError, match="phone region must be"):
        RecognizerSet.default(region="XX")
    with pytest.raises(ValueError, match="recognizer 'nope': not in this set"):
        RecognizerSet.default().without("nope")
    with pytest.raises(ValueError, match="validator must be a name or a callable"):
        Recognizer(name="v", label="x", regex="x", validator=3)


def test_sets_pickle_and_fingerprint():
    rs = RecognizerSet.default().with_custom(EMPLOYEE, Recognizer(name="even", label="code", regex=r"\bC\d{3}\b", validator=even_digit_sum))
    text = "EMP-000001 C112 4111 1111 1111 1111"
    clone = pickle.loads(pickle.dumps(rs))
    assert clone == rs and hash(clone) == hash(rs) and clone.fingerprint == rs.fingerprint
    assert clone.find(text) == rs.find(text) and len(rs.find(text)) == 3
    assert RecognizerSet.default().fingerprint != rs.fingerprint
    assert RecognizerSet.default(region="DE").fingerprint != RecognizerSet.default().fingerprint
    assert len(rs.fingerprint) == 16
    with pytest.raises(AttributeError, match="immutable"):
        rs._region = "DE"
    other = Recognizer(name="even", label="code", regex=r"\bC\d{3}\b", validator=lambda v: True)
    assert RecognizerSet([other]).fingerprint != RecognizerSet([rs.recognizers[1]]).fingerprint


def test_fingerprint_is_stable_across_processes():
    code = "from pii_frames.recognizers import RecognizerSet; print(RecognizerSet.default().fingerprint)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    assert out == RecognizerSet.default().fingerprint


def test_to_config_round_trip():
    rs = RecognizerSet.from_config(POLICY)
    assert RecognizerSet.from_config(json.loads(json.dumps(rs.to_config()))) == rs
    assert Recognizer.from_config(EMPLOYEE.to_config()) == EMPLOYEE
