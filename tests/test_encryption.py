"""The "encrypt" operator and reveal: token format, keys, tamper detection, errors, key sources.

No model runs here: tokens are made with Policy.replacement / build_result on
hand-made spans. Adapters (Polars, DuckDB, pandas, CLI, Airflow) are in
test_reveal_adapters.py.
"""

from __future__ import annotations

import base64
import doctest
import os
import pickle
import string
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from faker import Faker

import pii_frames
from pii_frames.decode.spans import CharSpan
from pii_frames.redaction import encryption
from pii_frames.redaction.apply import build_result
from pii_frames.redaction.encryption import (
    ENCRYPTED_TOKEN_RE,
    EncryptionKey,
    KeyRing,
    RevealError,
    RevealWarning,
    key_fingerprint,
    resolve_key_source,
    reveal,
    reveal_many,
)
from pii_frames.redaction.policy import OPERATORS, Policy, placeholder_name

REPO = Path(__file__).resolve().parents[1]
KEY = "test key: 7f1c0e9b2d4a6c8e0f1a3b5c7d9e1f20"
OTHER_KEY = "another test key: 0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
LABELS = ("private_person", "private_email", "private_phone", "account_number", "private_address")


def faker_values(n: int, seed: int = 19) -> list[tuple[str, str]]:
    """``n`` (label, value) pairs; about a third repeat an earlier value so equality can be checked."""
    fake = Faker(["en_US", "de_DE", "fr_FR"])
    fake.seed_instance(seed)
    makers = {
        "private_person": fake.name,
        "private_email": fake.email,
        "private_phone": fake.phone_number,
        "account_number": fake.iban,
        "private_address": lambda: fake.address().replace("\n", ", "),
    }
    pairs: list[tuple[str, str]] = []
    for i in range(n):
        if i % 3 == 2:
            pairs.append(pairs[(i * 7919) % len(pairs)])
        else:
            label = LABELS[i % len(LABELS)]
            pairs.append((label, makers[label]()))
    return pairs


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    return faker_values(10_000)


# ------------------------------------------------------------------ format
def test_token_format_is_the_documented_one():
    policy = Policy("encrypt", key=KEY, key_id="2025-q1")
    token = policy.replacement("private_email", "ann@example.com")
    match = ENCRYPTED_TOKEN_RE.fullmatch(token)
    assert match is not None, token
    assert match["label"] == placeholder_name("private_email") == "PRIVATE_EMAIL"
    assert match["key_id"] == "2025-q1"
    payload = match["payload"]
    assert "=" not in payload and set(payload) <= set(string.ascii_letters + string.digits + "-_")
    sealed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert len(sealed) == 16 + len("ann@example.com")  # SIV tag + ciphertext, nothing else

    # The documented construction, rebuilt from cryptography's primitives, opens the token:
    # HKDF-SHA256 (fixed salt and info) to a 64-byte AES-SIV key, associated data
    # "pii_frames:v1:<key id>:<LABEL>".
    derived = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=b"pii_frames reversible pseudonyms", info=b"aes-siv-512 key v1"
    ).derive(KEY.encode())
    plain = AESSIV(derived).decrypt(sealed, [b"pii_frames:v1:2025-q1:PRIVATE_EMAIL"])
    assert plain == b"ann@example.com"


def test_token_regex_matches_exactly_one_whole_token_and_nothing_else():
    token = EncryptionKey(KEY, key_id="k1").encrypt("private_person", "Ada Lovelace")
    assert ENCRYPTED_TOKEN_RE.fullmatch(token)
    assert [m.group(0) for m in ENCRYPTED_TOKEN_RE.finditer(f"a {token}{token} b")] == [token, token]
    pseudonym = Policy("pseudonym", key=KEY).replacement("private_person", "Ada Lovelace")
    for text in ("<PRIVATE_PERSON>", pseudonym, "<REDACTED>", token[:-1], token[1:], token.replace(":v1:", ":v2:")):
        assert ENCRYPTED_TOKEN_RE.search(text) is None, text


def test_default_key_id_is_the_fingerprint():
    fingerprint = key_fingerprint(KEY)
    assert len(fingerprint) == 8 and encryption.KEY_ID_RE.fullmatch(fingerprint)
    assert fingerprint == key_fingerprint(KEY.encode()) != key_fingerprint(OTHER_KEY)
    token = Policy("encrypt", key=KEY).replacement("secret", "hunter2")
    assert ENCRYPTED_TOKEN_RE.fullmatch(token)["key_id"] == fingerprint
    assert Policy("encrypt", key=KEY).encryption_key().key_id == fingerprint
    assert KEY not in fingerprint


# ---------------------------------------------------------- round trip, 10k
def test_round_trip_equal_values_and_keys_on_10000_faker_values(pairs):
    policy = Policy("encrypt", key=KEY)
    other = Policy("encrypt", key=OTHER_KEY)
    tokens = [policy.replacement(label, value) for label, value in pairs]
    assert all(ENCRYPTED_TOKEN_RE.fullmatch(token) for token in tokens)
    assert reveal_many(tokens, key=KEY) == [value for _, value in pairs]
    by_pair: dict[tuple[str, str], set[str]] = {}
    for pair, token in zip(pairs, tokens):
        by_pair.setdefault(pair, set()).add(token)
    assert all(len(found) == 1 for found in by_pair.values()), "equal values must give equal tokens"
    assert len({next(iter(found)) for found in by_pair.values()}) == len(by_pair), "distinct values, distinct tokens"
    repeated = sum(1 for i in range(len(pairs)) if i % 3 == 2)
    assert len(by_pair) <= len(pairs) - repeated + 1
    other_tokens = [other.replacement(label, value) for label, value in pairs]
    assert not set(tokens) & set(other_tokens), "another key must give other tokens"
    # A fresh Policy (another process would do the same) gives the same tokens.
    assert [Policy("encrypt", key=KEY).replacement(label, value) for label, value in pairs[:50]] == tokens[:50]


def test_round_trip_of_odd_values():
    key = EncryptionKey(KEY)
    for value in ("", " ", "Zoë Łukasiewicz 🎉", "a\nb\tc", "<PRIVATE_EMAIL>", "x" * 5000, "lone \ud800 surrogate"):
        token = key.encrypt("private_person", value)
        assert key.decrypt(token) == value
        assert reveal(f"[{token}]", key=KEY) == f"[{value}]"


def test_tokens_are_stable_across_processes():
    code = (
        "from pii_frames.redaction.policy import Policy;"
        f"print(Policy('encrypt', key={KEY!r}).replacement('private_email', 'ann@example.com'))"
    )
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    assert out.stdout.strip() == Policy("encrypt", key=KEY).replacement("private_email", "ann@example.com")


# ------------------------------------------------------------ tampering
def _changed(char: str) -> str:
    """Another character of the same kind, so the change stays plausible."""
    for pool in (string.ascii_uppercase, string.ascii_lowercase, string.digits, "-_"):
        if char in pool:
            return pool[(pool.index(char) + 1) % len(pool)]
    return "x"


def test_every_single_character_change_is_detected():
    key = EncryptionKey(KEY, key_id="k-2025")
    token = key.encrypt("private_email", "ann@example.com")
    for position in range(len(token)):
        tampered = token[:position] + _changed(token[position]) + token[position + 1 :]
        assert tampered != token
        with pytest.raises(RevealError):
            reveal(f"mail {tampered} now", key=KEY)
    # Deleting any one character (a truncated or mangled token) is caught as well.
    for position in range(len(token)):
        with pytest.raises(RevealError):
            reveal(f"mail {token[:position] + token[position + 1:]} now", key=KEY)


def test_truncated_tokens_are_detected():
    token = EncryptionKey(KEY).encrypt("private_phone", "+1 415 555 0100")
    head = len("<PRIVATE_PHONE:v1:")
    for cut in range(head, len(token)):
        with pytest.raises(RevealError, match="truncated or changed token"):
            reveal(f"call {token[:cut]}", key=KEY)
    payload_start = token.rindex(":") - 1
    for cut in range(1, payload_start):
        with pytest.raises(RevealError):
            reveal(f"call {token[cut:]}", key=KEY)


def test_payload_with_only_unused_bits_changed_is_detected():
    key = EncryptionKey(KEY, key_id="k")
    token = key.encrypt("secret", "a")  # 17 bytes: the last base64 character carries 4 unused bits
    payload = ENCRYPTED_TOKEN_RE.fullmatch(token)["payload"]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet.index(payload[-1])
    twin = alphabet[last ^ 1]  # same 2 data bits, other padding bits: decodes to the same bytes
    assert base64.urlsafe_b64decode(payload[:-1] + twin + "=") == base64.urlsafe_b64decode(payload + "=")
    with pytest.raises(RevealError, match="damaged"):
        key.decrypt(token[:-2] + twin + ">")


def test_label_and_key_id_are_bound_into_the_ciphertext():
    key = EncryptionKey(KEY, key_id="k1")
    token = key.encrypt("private_person", "Ada")
    with pytest.raises(RevealError, match="does not decrypt"):
        reveal(token.replace("PRIVATE_PERSON", "PRIVATE_EMAIL"), key=KEY)
    with pytest.raises(RevealError, match="does not decrypt"):
        reveal(token.replace(":k1:", ":k2:"), key=KEY)  # the default key answers every key id


# ---------------------------------------------------------- keys and errors
def test_wrong_key_and_unknown_key_id_give_one_clear_error_without_secrets():
    token = Policy("encrypt", key=KEY, key_id="k1").replacement("private_email", "ann@example.com")
    with pytest.raises(RevealError) as wrong:
        reveal(f"to {token}", key=OTHER_KEY)
    message = str(wrong.value)
    assert "key id 'k1'" in message and "PRIVATE_EMAIL" in message
    with pytest.raises(RevealError) as unknown:
        reveal(f"to {token}", keys={"k2": KEY})
    assert "key id 'k1'" in str(unknown.value) and "['k2']" in str(unknown.value)
    for error in (wrong.value, unknown.value):
        text = str(error) + repr(error)
        assert KEY not in text and OTHER_KEY not in text and "ann@example.com" not in text
    with pytest.raises(ValueError, match="needs a key"):
        reveal(token)


def test_rotation_with_keys_by_id():
    old = Policy("encrypt", key=OTHER_KEY, key_id="2024")
    new = Policy("encrypt", key=KEY, key_id="2025")
    text = f"{old.replacement('private_person', 'Ada')} wrote to {new.replacement('private_email', 'bob@example.com')}"
    keys = {"2024": OTHER_KEY, "2025": KEY}
    assert reveal(text, keys=keys) == "Ada wrote to bob@example.com"
    assert reveal(text, keys=KeyRing(keys)) == "Ada wrote to bob@example.com"
    assert reveal(text, keys={"2024": OTHER_KEY}, key=KEY) == "Ada wrote to bob@example.com"
    with pytest.raises(RevealError, match="key id '2025'"):
        reveal(text, keys={"2024": OTHER_KEY})
    # A list of keys files each under its fingerprint.
    fingerprinted = f"{Policy('encrypt', key=KEY).replacement('secret', 's1')} {Policy('encrypt', key=OTHER_KEY).replacement('secret', 's2')}"
    assert reveal(fingerprinted, keys=[KEY, OTHER_KEY]) == "s1 s2"


def test_text_without_tokens_and_none_come_back_unchanged():
    pseudonym = Policy("pseudonym", key=KEY).replacement("private_person", "Ada")
    for text in ("", "plain text", "<PRIVATE_EMAIL> and <REDACTED>", pseudonym, "a < b > c: d", "x:y:z"):
        assert reveal(text, key=KEY) == text
    assert reveal(None, key=KEY) is None
    with pytest.raises(TypeError, match="str or None"):
        reveal(42, key=KEY)


def test_on_error_null_gives_none_and_a_warning_naming_the_row():
    good = EncryptionKey(KEY).encrypt("private_person", "Ada")
    bad = good[:-3] + ">"
    with pytest.warns(RevealWarning, match="could not be revealed"):
        assert reveal(bad, key=KEY, on_error="null") is None
    with pytest.warns(RevealWarning, match=r"1 row\(s\) of column 'body'.*first: 2"):
        out = reveal_many([good, None, bad, good], key=KEY, on_error="null", name="body")
    assert out == ["Ada", None, None, "Ada"]
    with pytest.raises(RevealError, match="column 'body' row 12: .*on_error='null'") as error:
        reveal_many([good, bad], key=KEY, name="body", first_row=11)
    assert error.value.row == 12 and error.value.column == "body"
    with pytest.raises(ValueError, match="on_error"):
        reveal(good, key=KEY, on_error="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reveal_many([good], key=KEY, on_error="null") == ["Ada"]


def test_keys_never_show_in_reprs_errors_or_pickles_of_key_objects():
    key = EncryptionKey(KEY, key_id="k1")
    ring = KeyRing({"k1": KEY}, default=OTHER_KEY)
    for shown in (repr(key), repr(ring), str(key), str(ring)):
        assert KEY not in shown and OTHER_KEY not in shown
    for value in (key, ring):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(value)
    with pytest.raises(AttributeError):
        key.key_id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="key id"):
        EncryptionKey(KEY, key_id="has space")
    with pytest.raises(ValueError, match="not be empty"):
        EncryptionKey("")


# ------------------------------------------------------------------ Policy
def test_policy_encrypt_needs_a_key_and_hides_it():
    with pytest.raises(ValueError, match="'encrypt' needs a secret key"):
        Policy("encrypt")
    with pytest.raises(ValueError, match="'encrypt' needs a secret key"):
        Policy(per_label={"private_email": "encrypt"})
    with pytest.raises(ValueError, match="key_id"):
        Policy("encrypt", key=KEY, key_id="bad id!")
    with pytest.raises(ValueError, match="not both"):
        Policy("encrypt", key=KEY, key_env="PII_TEST_KEY")
    policy = Policy("encrypt", key=KEY, key_id="k1")
    assert "encrypt" in OPERATORS
    assert repr(policy) == "Policy(operator='encrypt', key=<hidden>, key_id='k1')"
    assert KEY not in repr(policy.encryption_key())
    try:
        Policy("encrypt", key=KEY, min_score=2)
    except ValueError as error:
        assert KEY not in str(error)
    # Pickled for worker processes (a literal key only on purpose), it still makes the same tokens.
    clone = pickle.loads(pickle.dumps(policy.allowing_key_in_pickle()))
    assert clone == policy
    assert clone.replacement("private_person", "Ada") == policy.replacement("private_person", "Ada")


def test_policy_per_label_encrypt_and_build_result_round_trip():
    text = "Ada Lovelace (ada@example.com) called 555-0100 twice; Ada Lovelace again."
    spans = [
        CharSpan("private_person", 0, 12, 0.99),
        CharSpan("private_email", 14, 29, 0.98),
        CharSpan("private_phone", 38, 46, 0.97),
        CharSpan("private_person", 54, 66, 0.99),
    ]
    policy = Policy("placeholder", per_label={"private_person": "encrypt", "private_email": "encrypt"}, key=KEY)
    result = build_result(text, spans, policy=policy)
    assert "<PRIVATE_PHONE>" in result.redacted_text
    assert "Ada" not in result.redacted_text and "ada@" not in result.redacted_text
    person_tokens = [s.placeholder for s in result.detected_spans if s.label == "private_person"]
    assert len(set(person_tokens)) == 1 and ENCRYPTED_TOKEN_RE.fullmatch(person_tokens[0])
    assert reveal(result.redacted_text, key=KEY) == text.replace("555-0100", "<PRIVATE_PHONE>")
    # All-encrypt: reveal gives back the exact input; output_mode="redacted" tokens say REDACTED.
    everything = Policy("encrypt", key=KEY)
    assert reveal(build_result(text, spans, policy=everything).redacted_text, key=KEY) == text
    hidden = build_result(text, spans, policy=everything, output_mode="redacted").redacted_text
    assert hidden.count("<REDACTED:v1:") == 4 and reveal(hidden, key=KEY) == text


def test_policy_key_env_is_read_when_needed_and_pickles_only_the_name(monkeypatch):
    monkeypatch.delenv("PII_TEST_KEY", raising=False)
    policy = Policy("encrypt", key_env="PII_TEST_KEY")  # no variable yet: building must not need it
    assert policy.has_key and policy.key_source == "env:PII_TEST_KEY"
    assert policy == Policy("encrypt", key_source="env:PII_TEST_KEY")
    with pytest.raises(ValueError, match="PII_TEST_KEY is not set"):
        policy.replacement("private_person", "Ada")
    monkeypatch.setenv("PII_TEST_KEY", KEY)
    token = policy.replacement("private_person", "Ada")
    assert token == Policy("encrypt", key=KEY).replacement("private_person", "Ada")
    data = pickle.dumps(policy)
    assert KEY.encode() not in data and b"PII_TEST_KEY" in data
    assert pickle.loads(data).replacement("private_person", "Ada") == token
    assert KEY not in repr(policy)
    # Pseudonyms read the same source.
    assert Policy("pseudonym", key_env="PII_TEST_KEY").replacement("x", "y") == Policy("pseudonym", key=KEY).replacement("x", "y")
    with pytest.raises(ValueError, match="key source"):
        Policy("encrypt", key_source="vault:secret/pii")


def test_airflow_variable_and_connection_sources(monkeypatch):
    """Airflow's environment conventions, through airflow.sdk when installed and without it."""
    monkeypatch.setenv("AIRFLOW_VAR_PII_TEST_KEY", KEY)
    monkeypatch.setenv("AIRFLOW_CONN_PII_TEST_JSON", '{"conn_type": "generic", "password": "' + KEY + '"}')
    monkeypatch.setenv("AIRFLOW_CONN_PII_TEST_URI", "generic://user:" + KEY.replace(" ", "%20").replace(":", "%3A") + "@host")
    expected = Policy("encrypt", key=KEY).replacement("private_person", "Ada")
    sources = ("airflow-variable:pii_test_key", "airflow-connection:pii_test_json", "airflow-connection:pii_test_uri")

    def check_all() -> None:
        for source in sources:
            assert resolve_key_source(source) == KEY.encode(), source
            assert Policy("encrypt", key_source=source).replacement("private_person", "Ada") == expected
        with pytest.raises(ValueError) as missing:
            resolve_key_source("airflow-variable:pii_test_missing")
        assert "pii_test_missing" in str(missing.value).lower() and KEY not in str(missing.value)

    try:
        import airflow.sdk  # noqa: F401
    except ImportError:
        pass
    else:
        check_all()  # Airflow's own Variable / Connection lookups
    monkeypatch.setitem(sys.modules, "airflow.sdk", None)  # now "import airflow.sdk" fails
    check_all()  # the documented fallback reads the same environment variables


# --------------------------------------------------------- no model, export
def test_reveal_is_exported_lazily_and_never_imports_the_model():
    code = (
        "import sys, pii_frames;"
        f"token = pii_frames.Policy('encrypt', key={KEY!r}).replacement('private_email', 'a@b.co');"
        f"assert pii_frames.reveal('to ' + token, key={KEY!r}) == 'to a@b.co';"
        "heavy = ('torch', 'safetensors', 'pii_frames.engine', 'pii_frames.model.encoder', 'pii_frames.model.checkpoint');"
        "loaded = [m for m in sys.modules if m.startswith(heavy)];"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert pii_frames.reveal is encryption.reveal and pii_frames.RevealError is RevealError


def test_module_doctests():
    failures, tried = doctest.testmod(encryption, optionflags=doctest.ELLIPSIS)
    assert tried > 10 and failures == 0
