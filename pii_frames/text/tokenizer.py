"""o200k_base tokenization with exact character offsets, fully offline.

The vocabulary comes from the file bundled with the package (sha256-verified at
load) or from a checkpoint's Hugging Face ``tokenizer.json``; nothing here ever
touches the network (``tiktoken.get_encoding`` may download, so it is never
used).

Offsets follow the reference algorithm byte for byte: the token bytes are
joined, decoded as UTF-8 (errors replaced) and every token is mapped to the
code points its bytes touch, so a token that starts or ends inside a multi-byte
character covers the whole character.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tiktoken

__all__ = [
    "BUNDLED_VOCAB_PATH",
    "BUNDLED_VOCAB_SHA256",
    "O200K_PATTERN",
    "O200K_SPECIAL_TOKENS",
    "TokenOffsets",
    "Tokenizer",
    "TokenizerError",
    "load_tokenizer",
]

BUNDLED_VOCAB_PATH = Path(__file__).resolve().parent.parent / "assets" / "o200k_base.tiktoken"
BUNDLED_VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# The o200k_base pre-tokenisation regex and special tokens, as tiktoken defines them.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_ENDOFTEXT = "<|endoftext|>"
_SUPPORTED_ENCODINGS = ("o200k_base",)


class TokenizerError(ValueError):
    """A vocabulary file is missing, corrupted or in a format we cannot use."""


@dataclass(frozen=True, eq=False)
class TokenOffsets:
    """Character offsets of every token, as Python ``str`` indices into ``decoded_text``.

    ``starts[i]:ends[i]`` is the slice of ``decoded_text`` covered by token ``i``.
    ``mismatch`` is True when the tokens do not decode back to the input text
    (for example lone surrogates, which tiktoken replaces by U+FFFD); offsets
    then index ``decoded_text``, which otherwise equals the input text.
    """

    starts: np.ndarray
    ends: np.ndarray
    decoded_text: str
    mismatch: bool

    def __len__(self) -> int:
        return int(self.starts.shape[0])


class Tokenizer:
    """tiktoken encoder plus exact token-to-character offsets.

    Build one with :func:`load_tokenizer`; instances are cached per vocabulary
    source and are safe to share between threads.

    Example:
        >>> tok = load_tokenizer()
        >>> text = "Zoë, call me"
        >>> ids = tok.encode(text)
        >>> off = tok.token_offsets(text, ids)
        >>> [text[s:e] for s, e in zip(off.starts, off.ends)]
        ['Zo', 'ë', ',', ' call', ' me']
    """

    def __init__(self, encoding: tiktoken.Encoding, token_bytes: Sequence[bytes | None], source: str):
        self._encoding = encoding
        self.source = source
        # (tokenizer.json path or None for the bundled vocabulary, vocab_size): enough to rebuild.
        self._origin: tuple[Path | None, int | None] = (None, None)
        # Per-id byte length; 0 marks an id with no token (gaps between ranks and specials).
        lengths = np.zeros(len(token_bytes), dtype=np.int64)
        for token_id, raw in enumerate(token_bytes):
            if raw is not None:
                lengths[token_id] = len(raw)
        self._byte_lengths = lengths

    @property
    def encoding(self) -> tiktoken.Encoding:
        """The underlying ``tiktoken.Encoding``."""
        return self._encoding

    @property
    def name(self) -> str:
        return self._encoding.name

    @property
    def n_vocab(self) -> int:
        """One more than the largest token id this tokenizer can produce."""
        return self._encoding.n_vocab

    @property
    def eot_token(self) -> int | None:
        """Id of ``<|endoftext|>``, or None when a cut vocabulary has no room for it."""
        return self._encoding._special_tokens.get(_ENDOFTEXT)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special-token strings recognised in input text, with their ids."""
        return dict(self._encoding._special_tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token strings map to their ids like the reference.

        Example:
            >>> load_tokenizer().encode("Hello, my name")
            [13225, 11, 922, 1308]
        """
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer.encode expects a str, got {type(text).__name__}")
        return self._encoding.encode(text, allowed_special="all")

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Token ids of many texts (tiktoken encodes them on worker threads).

        Example:
            >>> load_tokenizer().encode_batch(["Hello", "", "my name"])
            [[13225], [], [3825, 1308]]
        """
        texts = list(texts)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"Tokenizer.encode_batch expects str values; row {row} is {type(text).__name__}"
                )
        if len(texts) < 4:
            return [self._encoding.encode(t, allowed_special="all") for t in texts]
        threads = max(1, min(8, os.cpu_count() or 1))
        return self._encoding.encode_batch(texts, num_threads=threads, allowed_special="all")

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (invalid UTF-8 replaced by U+FFFD)."""
        return self._encoding.decode_bytes(self._checked_ids(ids).tolist()).decode("utf-8", errors="replace")

    def token_offsets(self, text: str, ids: Sequence[int]) -> TokenOffsets:
        """Character offsets of ``ids`` (the tokens of ``text``).

        Token ``i`` covers ``decoded_text[starts[i]:ends[i]]``. When the token
        bytes are not a whole number of characters (emoji split over tokens),
        each token covers every character its bytes touch, so neighbouring
        tokens can share a character and some tokens have ``start == end``.

        Example:
            >>> tok = load_tokenizer()
            >>> off = tok.token_offsets("a\\r\\nb", tok.encode("a\\r\\nb"))
            >>> off.starts.tolist(), off.ends.tolist(), off.mismatch
            ([0, 1, 3], [1, 3, 4], False)
        """
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer.token_offsets expects a str, got {type(text).__name__}")
        id_array = self._checked_ids(ids)
        if id_array.size == 0:
            empty = np.zeros(0, dtype=np.int32)
            return TokenOffsets(empty, empty.copy(), text, False)

        decoded_text = self._encoding.decode_bytes(id_array.tolist()).decode("utf-8", errors="replace")

        # UTF-8 byte extent of each character of the decoded text (1-4 bytes by code point).
        code_points = np.frombuffer(decoded_text.encode("utf-32-le"), dtype=np.uint32)
        char_bytes = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
        char_byte_ends = np.cumsum(char_bytes, dtype=np.int64)
        char_byte_starts = char_byte_ends - char_bytes

        token_byte_ends = np.cumsum(self._byte_lengths[id_array])
        token_byte_starts = token_byte_ends - self._byte_lengths[id_array]
        # A character belongs to a token when any of its bytes lies in the token's byte range.
        starts = np.searchsorted(char_byte_ends, token_byte_starts, side="right")
        ends = np.searchsorted(char_byte_starts, token_byte_ends, side="left")
        ends = np.maximum(ends, starts)

        mismatch = decoded_text != text
        return TokenOffsets(
            starts.astype(np.int32),
            ends.astype(np.int32),
            decoded_text if mismatch else text,
            mismatch,
        )

    def _checked_ids(self, ids: Sequence[int]) -> np.ndarray:
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        if id_array.size:
            bad = (id_array < 0) | (id_array >= self._byte_lengths.shape[0])
            if not bad.any():
                bad = self._byte_lengths[id_array] == 0
            if bad.any():
                position = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"token id {int(id_array[position])} at position {position} is not in the "
                    f"{self.name} vocabulary of {self.source} (n_vocab {self.n_vocab})"
                )
        return id_array

    def __reduce__(self):
        # Pickle by origin, not by its 200k ranks: the receiving process reloads (and caches) it.
        return (_cached_tokenizer, self._origin)

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, n_vocab={self.n_vocab}, source={self.source!r})"


# ---------------------------------------------------------------------------------------------
# Loading


_CACHE: dict[tuple[str, int | None], Tokenizer] = {}
_CACHE_LOCK = threading.Lock()


def load_tokenizer(
    checkpoint_dir: str | os.PathLike | None = None,
    *,
    encoding: str = "o200k_base",
    vocab_size: int | None = None,
) -> Tokenizer:
    """Load the tokenizer for a checkpoint, or the bundled o200k_base one.

    Source: ``<checkpoint_dir>/tokenizer.json`` when it exists, else the
    o200k_base vocabulary bundled with the package (sha256-verified).

    ``vocab_size`` is the model's embedding size (read from the checkpoint's
    ``config.json`` when omitted). When it is below the number of BPE ranks,
    only the first ``vocab_size`` ranks are kept (still a valid BPE, ids
    unchanged) so every id fits the embedding; special tokens whose id does not
    fit are then encoded as plain text.

    Example:
        >>> tok = load_tokenizer()
        >>> tok.encode(" john.smith@example.com")
        [64626, 640, 68671, 81309, 1136]
        >>> load_tokenizer(vocab_size=1000).n_vocab
        1000
    """
    if encoding not in _SUPPORTED_ENCODINGS:
        raise TokenizerError(
            f"encoding {encoding!r} is not supported; pii_frames bundles only "
            f"{', '.join(_SUPPORTED_ENCODINGS)} (or pass a checkpoint with a tokenizer.json)"
        )
    tokenizer_json: Path | None = None
    if checkpoint_dir is not None:
        checkpoint = Path(checkpoint_dir)
        if not checkpoint.is_dir():
            raise TokenizerError(f"checkpoint directory not found: {checkpoint}")
        candidate = checkpoint / "tokenizer.json"
        if candidate.is_file():
            tokenizer_json = candidate.resolve()
        config = _read_config(checkpoint)
        if vocab_size is None and isinstance(config.get("vocab_size"), int):
            vocab_size = config["vocab_size"]
        config_encoding = config.get("encoding")
        if config_encoding not in (None, *_SUPPORTED_ENCODINGS) and tokenizer_json is None:
            raise TokenizerError(
                f"{checkpoint / 'config.json'} asks for encoding {config_encoding!r}; only "
                f"{', '.join(_SUPPORTED_ENCODINGS)} is bundled. Add a tokenizer.json to the checkpoint."
            )
    if vocab_size is not None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 256:
            raise TokenizerError(f"vocab_size must be an integer >= 256 (the byte tokens), got {vocab_size!r}")
        vocab_size = int(vocab_size)

    return _cached_tokenizer(tokenizer_json, vocab_size)


def _cached_tokenizer(tokenizer_json: Path | None, vocab_size: int | None) -> Tokenizer:
    source = str(tokenizer_json) if tokenizer_json is not None else str(BUNDLED_VOCAB_PATH)
    key = (source, vocab_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        if tokenizer_json is not None:
            ranks, specials, pattern = _read_tokenizer_json(tokenizer_json)
        else:
            ranks, specials, pattern = _read_bundled_vocab(), dict(O200K_SPECIAL_TOKENS), O200K_PATTERN
        tokenizer = _build(ranks, specials, pattern, vocab_size=vocab_size, source=source)
        tokenizer._origin = (tokenizer_json, vocab_size)
        _CACHE[key] = tokenizer
        return tokenizer


def _build(
    ranks: dict[bytes, int],
    specials: dict[str, int],
    pattern: str,
    *,
    vocab_size: int | None,
    source: str,
) -> Tokenizer:
    name = "o200k_base"
    if vocab_size is not None:
        if len(ranks) > vocab_size:
            ranks = {token: rank for token, rank in ranks.items() if rank < vocab_size}
            name = f"o200k_base_cut{vocab_size}"
        specials = {text: token_id for text, token_id in specials.items() if token_id < vocab_size}
    size = max([*ranks.values(), *specials.values()]) + 1
    token_bytes: list[bytes | None] = [None] * size
    for token, rank in ranks.items():
        token_bytes[rank] = token
    for text, token_id in specials.items():
        token_bytes[token_id] = text.encode("utf-8")
    encoding = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    return Tokenizer(encoding, token_bytes, source)


def _read_bundled_vocab() -> dict[bytes, int]:
    path = BUNDLED_VOCAB_PATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TokenizerError(
            f"the bundled vocabulary {path} is missing; reinstall pii_frames "
            "(the wheel ships it under pii_frames/assets/)"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != BUNDLED_VOCAB_SHA256:
        raise TokenizerError(
            f"the bundled vocabulary {path} is corrupted: sha256 {actual}, expected "
            f"{BUNDLED_VOCAB_SHA256}; reinstall pii_frames to restore it"
        )
    # The .tiktoken format is "<base64 token> <rank>" per line; one split and a map over the already
    # verified bytes reads it in a quarter of load_tiktoken_bpe's time (which would read and hash again).
    fields = data.split()
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2])))


def _read_config(checkpoint: Path) -> dict:
    path = checkpoint / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"cannot read {path}: {exc}") from exc
    return config if isinstance(config, dict) else {}


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json (byte-level BPE converted from tiktoken ranks)


def _byte_level_alphabet() -> dict[str, int]:
    """Map each printable stand-in character of byte-level BPE back to its byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    byte_for_char = {chr(b): b for b in printable}
    shift = 0
    for b in range(256):
        if b not in printable:
            byte_for_char[chr(256 + shift)] = b
            shift += 1
    return byte_for_char


def _read_tokenizer_json(path: Path) -> tuple[dict[bytes, int], dict[str, int], str]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"cannot read {path}: {exc}") from exc
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise TokenizerError(f"{path} is not a BPE tokenizer.json (expected model.type 'BPE' with a vocab)")
    if "ByteLevel" not in json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")]):
        raise TokenizerError(f"{path} is not a byte-level BPE (no ByteLevel pre-tokenizer or decoder)")

    byte_for_char = _byte_level_alphabet()
    ranks: dict[bytes, int] = {}
    for piece, token_id in model["vocab"].items():
        try:
            token = bytes(byte_for_char[ch] for ch in piece)
        except KeyError:
            raise TokenizerError(f"{path}: vocab entry {piece!r} is not byte-level encoded") from None
        if not isinstance(token_id, int) or token_id < 0:
            raise TokenizerError(f"{path}: vocab entry {piece!r} has invalid id {token_id!r}")
        ranks[token] = token_id

    # tiktoken merges by the rank of the merged token; that matches the file's merge
    # priority only when merges are listed in non-decreasing id order of their result.
    previous = -1
    for position, merge in enumerate(model.get("merges") or []):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        merged_id = model["vocab"].get(left + right)
        if merged_id is None or merged_id < previous:
            raise TokenizerError(
                f"{path}: merge #{position} {left!r} + {right!r} does not follow the token id order; "
                "only tokenizer.json files converted from tiktoken ranks (ids = ranks) are supported"
            )
        previous = merged_id

    # Added tokens are matched as whole strings in the input, like tiktoken special tokens. A special
    # token that also sits in the BPE vocabulary under the same id is taken out of the BPE ranks.
    specials: dict[str, int] = {}
    for added in spec.get("added_tokens") or []:
        content, token_id = added.get("content"), added.get("id")
        if isinstance(content, str) and isinstance(token_id, int):
            if content not in model["vocab"] or added.get("special"):
                specials[content] = token_id
    duplicated = {token_id for content, token_id in specials.items() if model["vocab"].get(content) == token_id}
    if duplicated:
        ranks = {token: rank for token, rank in ranks.items() if rank not in duplicated}
    taken = set(ranks.values())
    clash = [text for text, token_id in specials.items() if token_id in taken]
    if clash:
        raise TokenizerError(f"{path}: added token {clash[0]!r} reuses the id of a vocabulary token")

    return ranks, specials, _split_pattern(spec) or O200K_PATTERN


def _split_pattern(spec: dict) -> str | None:
    """The regex of the first ``Split`` pre-tokenizer, if the file has one."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    for step in steps:
        if isinstance(step, dict) and step.get("type") == "Split":
            pattern = step.get("pattern") or {}
            if isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str):
                return pattern["Regex"]
    return None
