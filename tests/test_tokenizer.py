"""Tokenizer ids and exact character offsets (pii_frames.text)."""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pii_frames.text import TokenizerError, load_tokenizer
from pii_frames.text import tokenizer as tokenizer_module

TEST_VECTOR_TEXT = "Hello, my name is John Smith and my email is john.smith@example.com"
TEST_VECTOR_IDS = [13225, 11, 922, 1308, 382, 5928, 16627, 326, 922, 3719, 382, 64626, 640, 68671, 81309, 1136]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def reference_offsets(tok, ids):
    """Straightforward transcription of the reference algorithm, used as an oracle."""
    token_bytes = [tok.encoding.decode_single_token_bytes(i) for i in ids]
    decoded = b"".join(token_bytes).decode("utf-8", errors="replace")
    char_starts, char_ends, cursor = [], [], 0
    for ch in decoded:
        char_starts.append(cursor)
        cursor += len(ch.encode("utf-8"))
        char_ends.append(cursor)
    starts, ends, cursor = [], [], 0
    for raw in token_bytes:
        b0, b1 = cursor, cursor + len(raw)
        cursor = b1
        s = bisect_right(char_ends, b0)
        e = max(bisect_left(char_starts, b1), s)
        starts.append(s)
        ends.append(e)
    return decoded, starts, ends


def test_test_vector(tok):
    assert tok.encode(TEST_VECTOR_TEXT) == TEST_VECTOR_IDS
    assert tok.n_vocab == 200019
    assert tok.eot_token == 199999
    off = tok.token_offsets(TEST_VECTOR_TEXT, TEST_VECTOR_IDS)
    pieces = [TEST_VECTOR_TEXT[s:e] for s, e in zip(off.starts, off.ends)]
    assert pieces[5:7] == [" John", " Smith"]
    assert "".join(pieces) == TEST_VECTOR_TEXT
    assert off.starts.dtype == np.int32 and off.ends.dtype == np.int32
    assert off.mismatch is False and off.decoded_text == TEST_VECTOR_TEXT


def test_loader_is_cached(tok):
    assert load_tokenizer() is tok
    assert load_tokenizer(vocab_size=None) is tok


def test_special_tokens_are_recognised_like_the_reference(tok):
    assert tok.encode("a<|endoftext|>b<|endofprompt|>") == [64, 199999, 65, 200018]
    off = tok.token_offsets("a<|endoftext|>b", [64, 199999, 65])
    assert off.starts.tolist() == [0, 1, 14] and off.ends.tolist() == [1, 14, 15]


@pytest.mark.parametrize(
    "text",
    [
        "Zoë Müller, geboren am 03.04.1988",
        "山田太郎さんのメールは taro@example.jp です。",
        "line one\r\nline two\ttabbed\r\n\r\n",
        "Emoji 🚀🔥 between words and 👍",
        "👨‍👩‍👧‍👦 family, 🇩🇪 flag, e\u0301 combining",
        "   padded with spaces   ",
        "\x00\x7f\u2028\ufeff",
    ],
)
def test_offsets_match_reference_algorithm(tok, text):
    ids = tok.encode(text)
    off = tok.token_offsets(text, ids)
    decoded, starts, ends = reference_offsets(tok, ids)
    assert off.decoded_text == decoded == text
    assert off.starts.tolist() == starts and off.ends.tolist() == ends
    assert not off.mismatch


def test_crlf_offsets(tok):
    text = "a\r\nb"
    off = tok.token_offsets(text, tok.encode(text))
    assert [text[s:e] for s, e in zip(off.starts, off.ends)] == ["a", "\r\n", "b"]


def char_byte_positions(text):
    """UTF-8 byte offset of every character boundary 0..len(text)."""
    positions = [0]
    for ch in text:
        positions.append(positions[-1] + len(ch.encode("utf-8")))
    return positions


def assert_tokens_cover_their_bytes(tok, text, ids, off):
    """Each token's byte range lies inside the characters it covers, exactly when aligned."""
    boundaries = char_byte_positions(text)
    boundary_set = set(boundaries)
    cursor = 0
    for token_id, s, e in zip(ids, off.starts.tolist(), off.ends.tolist()):
        b0 = cursor
        cursor += len(tok.encoding.decode_single_token_bytes(token_id))
        assert boundaries[s] <= b0 and cursor <= boundaries[e]
        if b0 in boundary_set and cursor in boundary_set:
            assert (boundaries[s], boundaries[e]) == (b0, cursor)


def test_token_that_splits_a_character_covers_the_whole_character(tok):
    text = "🚀🔥"
    ids = tok.encode(text)
    pieces = [tok.encoding.decode_single_token_bytes(i) for i in ids]
    # o200k splits these emoji across tokens: a byte boundary falls inside a character.
    assert any(_is_partial_utf8(p) for p in pieces)
    off = tok.token_offsets(text, ids)
    assert_tokens_cover_their_bytes(tok, text, ids, off)
    assert off.starts[0] == 0 and off.ends[-1] == len(text)
    assert all(s < e for s, e in zip(off.starts, off.ends))


def _is_partial_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def test_lone_surrogate_is_a_mismatch(tok):
    text = "Call \ud83d me"
    ids = tok.encode(text)
    off = tok.token_offsets(text, ids)
    assert off.mismatch is True
    assert off.decoded_text == "Call \ufffd me"
    assert off.ends[-1] == len(off.decoded_text)


def test_empty_text_has_no_tokens(tok):
    assert tok.encode("") == []
    off = tok.token_offsets("", [])
    assert len(off) == 0 and off.decoded_text == "" and off.mismatch is False


def test_bad_ids_and_types_are_rejected_with_clear_errors(tok):
    with pytest.raises(ValueError, match=r"token id 199998 at position 1"):
        tok.token_offsets("ab", [64, 199998])
    with pytest.raises(ValueError, match=r"token id -1 at position 0"):
        tok.token_offsets("a", [-1])
    with pytest.raises(TypeError, match="expects a str"):
        tok.encode(None)
    with pytest.raises(TypeError, match="row 1 is int"):
        tok.encode_batch(["a", 3])
    with pytest.raises(TokenizerError, match="not supported"):
        load_tokenizer(encoding="cl100k_base")


def test_encode_batch_matches_encode(tok):
    texts = ["", "Hello", TEST_VECTOR_TEXT, "山田太郎", "a\r\nb", "<|endoftext|>"] * 3
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_offsets_round_trip_on_random_unicode(tok, text):
    ids = tok.encode(text)
    off = tok.token_offsets(text, ids)
    assert not off.mismatch and off.decoded_text == text
    decoded, starts, ends = reference_offsets(tok, ids)
    assert off.starts.tolist() == starts and off.ends.tolist() == ends
    if ids:
        assert off.starts[0] == 0 and off.ends[-1] == len(text)
        assert np.all(np.diff(off.starts) >= 0) and np.all(np.diff(off.ends) >= 0)
        # Tokens overlap only where a character is split between them.
        assert np.all(off.starts[1:] <= off.ends[:-1])
    assert_tokens_cover_their_bytes(tok, text, ids, off)


def test_sha256_failure_names_the_file(tmp_path, monkeypatch):
    corrupted = tmp_path / "o200k_base.tiktoken"
    data = bytearray(tokenizer_module.BUNDLED_VOCAB_PATH.read_bytes())
    data[100] ^= 1
    corrupted.write_bytes(bytes(data))
    monkeypatch.setattr(tokenizer_module, "BUNDLED_VOCAB_PATH", corrupted)
    with pytest.raises(TokenizerError) as info:
        load_tokenizer()
    message = str(info.value)
    assert str(corrupted) in message and "sha256" in message and "reinstall" in message
    monkeypatch.setattr(tokenizer_module, "BUNDLED_VOCAB_PATH", tmp_path / "missing.tiktoken")
    with pytest.raises(TokenizerError, match="missing"):
        load_tokenizer()


def test_cut_vocabulary_keeps_ids_below_the_embedding_size(tok):
    small = load_tokenizer(vocab_size=1000)
    assert small.n_vocab == 1000
    assert small.eot_token is None
    text = TEST_VECTOR_TEXT + " <|endoftext|> Zoë 👍"
    ids = small.encode(text)
    assert max(ids) < 1000
    assert small.decode(ids) == text
    off = small.token_offsets(text, ids)
    assert not off.mismatch
    decoded, starts, ends = reference_offsets(small, ids)
    assert off.starts.tolist() == starts and off.ends.tolist() == ends
    assert_tokens_cover_their_bytes(small, text, ids, off)
    # Special-token text is plain text once the special ids no longer fit.
    assert 199999 not in ids
    # Tokens that fit are still produced with the same ids.
    assert small.encode("Hello")[0] < 1000 and tok.encode(" is")[0] in small.encode(" is")
    # Keeping <|endoftext|> but not <|endofprompt|>:
    mid = load_tokenizer(vocab_size=200000)
    assert mid.encode("<|endoftext|><|endofprompt|>")[0] == 199999
    assert 200018 not in mid.encode("<|endofprompt|>")


def test_vocab_size_is_read_from_checkpoint_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 512, "encoding": "o200k_base"}))
    small = load_tokenizer(tmp_path)
    assert small.n_vocab == 512
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 512, "encoding": "p50k_base"}))
    tokenizer_module._CACHE.clear()
    with pytest.raises(TokenizerError, match="p50k_base"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match=">= 256"):
        load_tokenizer(vocab_size=10)


def _write_cut_tiktoken(path, n_ranks):
    lines = tokenizer_module.BUNDLED_VOCAB_PATH.read_bytes().splitlines()[:n_ranks]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {base64.b64decode(line.split()[0]): int(line.split()[1]) for line in lines}


def test_tokenizer_json_source_matches_tiktoken_and_hf(tmp_path):
    converter_module = pytest.importorskip("transformers.convert_slow_tokenizer")
    n_ranks = 3000
    vocab_file = tmp_path / "cut.tiktoken"
    _write_cut_tiktoken(vocab_file, n_ranks)
    specials = {"<|endoftext|>": n_ranks, "<|start|>": n_ranks + 1}
    hf = converter_module.TikTokenConverter(
        vocab_file=str(vocab_file), pattern=tokenizer_module.O200K_PATTERN, extra_special_tokens=list(specials)
    ).converted()
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    hf.save(str(checkpoint / "tokenizer.json"))

    from_json = load_tokenizer(checkpoint)
    assert from_json.source.endswith("tokenizer.json")
    assert from_json.special_tokens == specials
    bundled_cut = load_tokenizer(vocab_size=n_ranks)
    texts = [TEST_VECTOR_TEXT, "Zoë Müller 03.04.1988", "山田太郎 👍🚀", "a\r\nb\t c", "x<|start|>y<|endoftext|>"]
    for text in texts:
        ids = from_json.encode(text)
        assert ids == hf.encode(text).ids
        if "<|" not in text:
            assert ids == bundled_cut.encode(text)
        off = from_json.token_offsets(text, ids)
        assert not off.mismatch and off.ends[-1] == len(text)


def test_tokenizer_json_errors_are_explicit(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}))
    with pytest.raises(TokenizerError, match="not a BPE tokenizer.json"):
        load_tokenizer(bad)
    unordered = tmp_path / "unordered"
    unordered.mkdir()
    spec = {
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 3, "ba": 2}, "merges": ["a b", "b a"]},
        "pre_tokenizer": {"type": "ByteLevel"},
        "added_tokens": [],
    }
    (unordered / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match="merge #1"):
        load_tokenizer(unordered)
    (unordered / "tokenizer.json").write_text("{not json")
    tokenizer_module._CACHE.clear()
    with pytest.raises(TokenizerError, match="cannot read"):
        load_tokenizer(unordered)


def test_tokenizer_pickles_by_origin(tok):
    import pickle

    payload = pickle.dumps(tok)
    assert len(payload) < 1000  # not the 200k ranks
    assert pickle.loads(payload) is load_tokenizer()  # the process-wide cached instance
    small = load_tokenizer(vocab_size=1000)
    clone = pickle.loads(pickle.dumps(small))
    assert clone.n_vocab == 1000 and clone.encode(TEST_VECTOR_TEXT) == small.encode(TEST_VECTOR_TEXT)


def test_tokenizer_json_special_token_listed_in_vocab_stays_special(tmp_path):
    spec = {
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<|x|>": 3}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "ByteLevel"},
        "added_tokens": [{"id": 3, "content": "<|x|>", "special": True}],
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    tok = load_tokenizer(tmp_path)
    assert tok.special_tokens == {"<|x|>": 3}
    assert tok.encode("ab<|x|>a") == [2, 3, 0]
