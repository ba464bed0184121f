"""Reversible pseudonyms: deterministic authenticated encryption of detected values, and ``reveal``.

The ``"encrypt"`` operator of :class:`pii_frames.Policy` replaces each
detected value by a token that analysts can join and group on, and that only
holders of the key can turn back into the value::

    <PRIVATE_EMAIL:v1:Kx3a9QbT:8yP1m5yqV2gkJ3b1f0hN2wqzYw>
     label         |  key id   payload (unpadded base64url of the AES-SIV output)
                   token format version

- **label** is :func:`pii_frames.redaction.operators.placeholder_name` of the span's
  label, as in the ``"placeholder"`` operator's ``<PRIVATE_EMAIL>``;
- **key id** (``[A-Za-z0-9_-]{1,32}``) names the key that made the token, so
  keys can rotate: :func:`reveal` takes ``keys={key_id: key}``. It is given
  explicitly (``Policy("encrypt", key=..., key_id="2025-q1")``) or defaults to
  the key's *fingerprint*: 8 base64url characters (48 bits) derived from the
  key with HKDF, non-secret but stable for the key;
- **payload** is AES-SIV (RFC 5297, ``cryptography``'s ``AESSIV``, a 512-bit
  key derived from the given key with HKDF-SHA256) of the UTF-8 value, with
  ``pii_frames:v1:<key id>:<label>`` as associated data. AES-SIV is
  deterministic (no nonce), so the same value, label and key always give the
  same token, and authenticated: changing any character of the label, key id or
  payload makes decryption fail instead of giving another value.

:data:`ENCRYPTED_TOKEN_RE` matches one whole token (a second sanitizing pass
uses it to leave tokens alone). Revealing needs only this module and
``cryptography``: it never loads or runs the model. A key named rather than
given (``key_env``, ``key_source``) is read by :mod:`pii_frames.redaction.key_sources`.

Example:
    >>> from pii_frames.redaction.policy import Policy
    >>> policy = Policy("encrypt", key="correct horse battery staple", key_id="k1")
    >>> token = policy.replacement("private_email", "ann@example.com")
    >>> token
    '<PRIVATE_EMAIL:v1:k1:fc56WvWrJs8PCNdgdg2hP0F5_PtWw44foH87iNn24w>'
    >>> reveal(f"mail {token} today", key="correct horse battery staple")
    'mail ann@example.com today'
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Reading a key from where a policy names it is key_sources' business; these names stay importable
# from here, where Policy, the docs and users have found them.
from .key_sources import KEY_SOURCE_KINDS, parse_key_source, resolve_key_source
from .key_sources import secret_bytes as _secret_bytes
from .operators import placeholder_name

__all__ = [
    "ENCRYPTED_TOKEN_RE",
    "KEY_ID_RE",
    "KEY_SOURCE_KINDS",
    "TOKEN_VERSION",
    "EncryptionKey",
    "KeyRing",
    "RevealError",
    "RevealWarning",
    "key_fingerprint",
    "parse_key_source",
    "resolve_key_source",
    "reveal",
    "reveal_arrow",
    "reveal_many",
]

TOKEN_VERSION = "v1"
KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
# A label is what placeholder_name() makes (upper-case words joined by single "_"); the payload is
# at least AES-SIV's 16-byte tag (22 base64url characters). Named groups: label, key_id, payload.
ENCRYPTED_TOKEN_RE = re.compile(
    r"<(?P<label>[A-Z0-9]+(?:_[A-Z0-9]+)*):v1:(?P<key_id>[A-Za-z0-9_-]{1,32}):(?P<payload>[A-Za-z0-9_-]{22,})>"
)
# Anything that starts or ends like a token; where it is not part of a whole token, a token was
# cut or changed (its head, e.g. the label, or its tail, e.g. a ':' or the closing '>').
_BROKEN_TOKEN_RE = re.compile(r"<[A-Z0-9_]+:v[0-9]+:|[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{22,}>")
# One pass over a text finds both: whole tokens first at each position, else broken ones. (Neither
# broken form can contain '<' after its start, so none overlaps a whole token.)
_SCAN_RE = re.compile(f"(?P<token>{ENCRYPTED_TOKEN_RE.pattern})|(?P<broken>{_BROKEN_TOKEN_RE.pattern})")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Unused low bits of the last character of an unpadded base64 text, by its length mod 4.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}
ON_ERROR = ("raise", "null")

# Fixed salt and info strings: the derivation must give the same key in every process (tokens are
# deterministic), and the cipher key and the key id come from separate derivations.
_HKDF_SALT = b"pii_frames reversible pseudonyms"
_CIPHER_INFO = b"aes-siv-512 key v1"
_KEY_ID_INFO = b"key id v1"
_AES_SIV_KEY_BYTES = 64  # AES-256-SIV
_FINGERPRINT_BYTES = 6  # 8 base64url characters


class RevealError(ValueError):
    """A token could not be revealed: wrong key, unknown key id, or a changed or truncated token.

    ``row`` is the row index (None for a single text) and ``column`` the column
    name when a column was being revealed. The message never holds a key or a
    revealed value.
    """

    def __init__(self, reason: str, *, row: int | None = None, column: str | None = None):
        self.reason = reason
        self.row = row
        self.column = column
        where = []
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        prefix = f"{' '.join(where)}: " if where else ""
        hint = " (pass on_error='null' to get null for such rows instead)" if row is not None else ""
        super().__init__(f"{prefix}{reason}{hint}")


class RevealWarning(UserWarning):
    """Rows that could not be revealed were set to null (``on_error="null"``)."""


# ---------------------------------------------------------------------- keys
def _derive(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_HKDF_SALT, info=info).derive(secret)


def key_fingerprint(secret: str | bytes) -> str:
    """The default key id of ``secret``: 8 base64url characters derived from it with HKDF-SHA256.

    Non-secret and stable: it tells which key made a token without telling
    the key. Anyone who already has a candidate key can check it against the
    fingerprint, so use a random key (``secrets.token_urlsafe(32)``), not a
    guessable password.

    Example:
        >>> key_fingerprint("correct horse battery staple")
        'YAG9I6-0'
    """
    digest = _derive(_secret_bytes(secret), _KEY_ID_INFO, _FINGERPRINT_BYTES)
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _check_key_id(key_id: Any) -> str:
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"key id must be 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-', got {key_id!r}")
    return key_id


class EncryptionKey:
    """One secret, ready to encrypt values into tokens and decrypt tokens back.

    Args:
        secret: the key, str (UTF-8) or bytes of any length; the AES-SIV key is
            derived from it with HKDF-SHA256, so a random 32-byte secret is
            plenty. It is not readable back and never shown.
        key_id: the id written into tokens (``[A-Za-z0-9_-]{1,32}``); default
            :func:`key_fingerprint` of the secret.

    Example:
        >>> key = EncryptionKey("correct horse battery staple")
        >>> key
        EncryptionKey(key_id='YAG9I6-0')
        >>> token = key.encrypt("private_person", "Ada Lovelace")
        >>> token.startswith("<PRIVATE_PERSON:v1:YAG9I6-0:"), key.decrypt(token)
        (True, 'Ada Lovelace')
    """

    __slots__ = ("key_id", "_cipher", "_fingerprint", "_labels")

    def __init__(self, secret: str | bytes, *, key_id: str | None = None):
        secret = _secret_bytes(secret)
        fingerprint = key_fingerprint(secret)
        object.__setattr__(self, "_fingerprint", fingerprint)
        object.__setattr__(self, "key_id", fingerprint if key_id is None else _check_key_id(key_id))
        object.__setattr__(self, "_cipher", AESSIV(_derive(secret, _CIPHER_INFO, _AES_SIV_KEY_BYTES)))
        object.__setattr__(self, "_labels", {})  # label -> (token prefix, associated data), few distinct

    def __setattr__(self, name, value):
        raise AttributeError("EncryptionKey is immutable")

    def __repr__(self) -> str:
        return f"EncryptionKey(key_id={self.key_id!r})"

    def __reduce__(self):
        raise TypeError(
            "EncryptionKey cannot be pickled (that would copy the secret); pickle a Policy with "
            "key_env=/key_source= so that only the variable name travels"
        )

    @property
    def fingerprint(self) -> str:
        """:func:`key_fingerprint` of the secret (equals ``key_id`` unless one was given)."""
        return self._fingerprint

    def encrypt(self, label: str, value: str) -> str:
        """The token of ``value`` as a span of ``label``: same inputs, same token.

        Example:
            >>> key = EncryptionKey(b"\\x00" * 32, key_id="demo")
            >>> key.encrypt("private_email", "a@b.co") == key.encrypt("private_email", "a@b.co")
            True
            >>> key.encrypt("private_email", "a@b.co") == key.encrypt("private_person", "a@b.co")
            False
        """
        known = self._labels.get(label)
        if known is None:
            name = placeholder_name(label)
            known = self._labels[label] = (f"<{name}:{TOKEN_VERSION}:{self.key_id}:", _associated_data(self.key_id, name))
        prefix, associated = known
        sealed = self._cipher.encrypt(value.encode("utf-8", errors="surrogatepass"), [associated])
        return prefix + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii") + ">"

    def decrypt(self, token: str) -> str:
        """The value inside ``token`` (one whole token); RevealError if it does not decrypt.

        The key id in the token is not checked against ``key_id`` (it is bound
        into the ciphertext, so a changed key id fails like any other change).

        Example:
            >>> key = EncryptionKey("k")
            >>> key.decrypt(key.encrypt("secret", "hunter2"))
            'hunter2'
            >>> key.decrypt(key.encrypt("secret", "hunter2").replace("SECRET", "PASSWORD"))
            Traceback (most recent call last):
            ...
            pii_frames.redaction.encryption.RevealError: token <PASSWORD:v1:FYLY2Aoq:ymOkJU5D…> does not decrypt: the key for key id 'FYLY2Aoq' is not the one that made it, or the token was changed (label, key id or payload)
        """
        match = ENCRYPTED_TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise RevealError(f"{_shown(token)} is not a pii_frames encrypted token <LABEL:v1:KEYID:PAYLOAD>")
        return self._open(match)

    def _open(self, match: re.Match) -> str:
        label, key_id, payload = match.group("label", "key_id", "payload")
        sealed = _payload_bytes(payload)
        if sealed is None:
            raise RevealError(f"token {_short(match)} is damaged: its payload is not canonical base64url")
        try:
            plain = self._cipher.decrypt(sealed, [_associated_data(key_id, label)])
        except InvalidTag:
            raise RevealError(
                f"token {_short(match)} does not decrypt: the key for key id {key_id!r} is not the one "
                "that made it, or the token was changed (label, key id or payload)"
            ) from None
        return plain.decode("utf-8", errors="surrogatepass")


def _associated_data(key_id: str, label: str) -> bytes:
    # ':' occurs in neither a key id nor a label, so the joined string is unambiguous.
    return f"pii_frames:{TOKEN_VERSION}:{key_id}:{label}".encode("ascii")


def _payload_bytes(payload: str) -> bytes | None:
    unused = _UNUSED_BITS.get(len(payload) % 4)
    # The last base64 character can carry unused bits; a payload that differs only there decodes
    # to the same bytes, so only the canonical spelling (unused bits zero) counts as untouched.
    if unused is None or _B64_ALPHABET.index(payload[-1]) & unused:
        return None
    try:
        return binascii.a2b_base64(payload.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return None


def _short(match: re.Match) -> str:
    # The payload's head (ciphertext, not secret) lets users find the row, e.g. with SQL LIKE.
    return f"<{match.group('label')}:v1:{match.group('key_id')}:{match.group('payload')[:8]}…>"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    return f"a {type(value).__name__}"


class KeyRing:
    """The keys :func:`reveal` may use, by key id (rotation), plus an optional default key.

    Args:
        keys: ``{key_id: secret}`` (str/bytes or :class:`EncryptionKey`), or a
            list of secrets / EncryptionKeys filed under their own key ids.
        default: a secret used for tokens whose key id is not in ``keys``
            (handy with a single key whatever id it was given).

    Example:
        >>> old, new = EncryptionKey("old secret", key_id="2024"), EncryptionKey("new secret", key_id="2025")
        >>> text = f"{old.encrypt('private_person', 'Ada')} met {new.encrypt('private_person', 'Bob')}"
        >>> ring = KeyRing({"2024": "old secret", "2025": "new secret"})
        >>> ring
        KeyRing(key_ids=['2024', '2025'])
        >>> ring.reveal(text)
        'Ada met Bob'
    """

    __slots__ = ("_keys", "_default")

    def __init__(
        self,
        keys: Mapping[str, Any] | Iterable[Any] | None = None,
        *,
        default: Any = None,
    ):
        ring: dict[str, EncryptionKey] = {}
        if keys is None:
            pass
        elif isinstance(keys, Mapping):
            for key_id, secret in keys.items():
                _check_key_id(key_id)
                if isinstance(secret, EncryptionKey):
                    if secret.key_id != key_id:
                        raise ValueError(f"keys[{key_id!r}] is an EncryptionKey with key id {secret.key_id!r}")
                    ring[key_id] = secret
                else:
                    ring[key_id] = EncryptionKey(_secret_bytes(secret, f"key for key id {key_id!r}"), key_id=key_id)
        elif isinstance(keys, (str, bytes, bytearray, memoryview)):
            raise TypeError("keys must be a mapping {key_id: key} or a list of keys; pass a single key as key=")
        else:
            for secret in keys:
                key = secret if isinstance(secret, EncryptionKey) else EncryptionKey(secret)
                ring[key.key_id] = key
        if default is not None and not isinstance(default, EncryptionKey):
            default = EncryptionKey(default)
        if not ring and default is None:
            raise ValueError("reveal needs a key: pass key=... or keys={key_id: key}")
        object.__setattr__(self, "_keys", ring)
        object.__setattr__(self, "_default", default)

    def __setattr__(self, name, value):
        raise AttributeError("KeyRing is immutable")

    def __reduce__(self):
        raise TypeError("KeyRing cannot be pickled (that would copy its secrets)")

    def __repr__(self) -> str:
        parts = [f"key_ids={sorted(self._keys)}"]
        if self._default is not None:
            parts.append(f"default={self._default!r}")
        return f"KeyRing({', '.join(parts)})"

    @property
    def key_ids(self) -> list[str]:
        """The key ids filed explicitly (the default key answers every other id)."""
        return sorted(self._keys)

    def key_for(self, key_id: str) -> EncryptionKey:
        """The key for tokens naming ``key_id``; RevealError when there is none."""
        key = self._keys.get(key_id, self._default)
        if key is None:
            raise RevealError(
                f"a token names key id {key_id!r}, which is not among the keys given ({sorted(self._keys)}); "
                f"pass keys={{{key_id!r}: ...}} with the key that made it"
            )
        return key

    def reveal(self, text: str | None) -> str | None:
        """``text`` with every token replaced by its value (see :func:`reveal`)."""
        if text is None:
            return None
        if not isinstance(text, str):
            raise TypeError(f"reveal expects text (str or None), got {type(text).__name__}")
        pieces: list[str] = []
        cursor = 0
        for match in _SCAN_RE.finditer(text):
            if match.group("broken") is not None:
                at = match.start()
                raise RevealError(
                    f"the text holds a truncated or changed token at character {at} "
                    f"(starting {text[at : at + 32]!r}…); only whole <LABEL:v1:KEYID:PAYLOAD> tokens can be revealed"
                )
            pieces.append(text[cursor : match.start()])
            pieces.append(self.key_for(match.group("key_id"))._open(match))
            cursor = match.end()
        if not cursor:
            return text  # no token: unchanged (the same object)
        pieces.append(text[cursor:])
        return "".join(pieces)


def _key_ring(key: Any, keys: Any) -> KeyRing:
    if isinstance(keys, KeyRing):
        if key is not None:
            raise ValueError("pass key= or a KeyRing as keys=, not both")
        return keys
    if isinstance(key, KeyRing) and keys is None:
        return key
    return KeyRing(keys, default=key)


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'null', got {on_error!r}")


# -------------------------------------------------------------------- reveal
def reveal(text: str | None, *, key: Any = None, keys: Any = None, on_error: str = "raise") -> str | None:
    """Restore every encrypted token in ``text`` to its original value.

    Args:
        text: a text (None gives None; a text without tokens comes back unchanged).
        key: the secret (str/bytes, an :class:`EncryptionKey` or a
            :class:`KeyRing`), used for every token whose key id is not in ``keys``.
        keys: ``{key_id: secret}`` for texts holding tokens of several keys (rotation).
        on_error: ``"raise"`` (default): a wrong key, an unknown key id, or a
            changed or truncated token raises :class:`RevealError`;
            ``"null"``: return None and warn (:class:`RevealWarning`).

    Never loads or runs the model.

    Example:
        >>> token = EncryptionKey("s3cret", key_id="k1").encrypt("private_phone", "+1 415 555 0100")
        >>> reveal(f"call {token}", keys={"k1": "s3cret"})
        'call +1 415 555 0100'
        >>> reveal("no tokens here", key="s3cret"), reveal(None, key="s3cret")
        ('no tokens here', None)
        >>> reveal(f"call {token}", key="wrong")
        Traceback (most recent call last):
        ...
        pii_frames.redaction.encryption.RevealError: token <PRIVATE_PHONE:v1:k1:qN0jKaUZ…> does not decrypt: the key for key id 'k1' is not the one that made it, or the token was changed (label, key id or payload)
    """
    _check_on_error(on_error)
    ring = _key_ring(key, keys)
    try:
        return ring.reveal(text)
    except RevealError as error:
        if on_error == "raise":
            raise
        warnings.warn(f"text could not be revealed and is null: {error}", RevealWarning, stacklevel=2)
        return None


def reveal_many(
    texts: Iterable[str | None],
    *,
    key: Any = None,
    keys: Any = None,
    on_error: str = "raise",
    name: str | None = None,
    first_row: int = 0,
) -> list[str | None]:
    """:func:`reveal` for many texts; errors name the row (and ``name``, the column).

    Rows are numbered from ``first_row`` (the offset of this batch in a larger table).

    Under ``on_error="null"`` the rows that fail become None and one
    :class:`RevealWarning` counts them and shows the first.

    Example:
        >>> key = EncryptionKey("s3cret", key_id="k1")
        >>> rows = [key.encrypt("private_person", "Ada"), None, "plain", "<PRIVATE_PERSON:v1:k1:AAAA"]
        >>> reveal_many(rows, key="s3cret", name="body")
        Traceback (most recent call last):
        ...
        pii_frames.redaction.encryption.RevealError: column 'body' row 3: the text holds a truncated or changed token at character 0 (starting '<PRIVATE_PERSON:v1:k1:AAAA'…); only whole <LABEL:v1:KEYID:PAYLOAD> tokens can be revealed (pass on_error='null' to get null for such rows instead)
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     reveal_many(rows, key="s3cret", on_error="null")
        ['Ada', None, 'plain', None]
    """
    _check_on_error(on_error)
    ring = _key_ring(key, keys)
    out: list[str | None] = []
    seen: dict[str, str | None] = {}
    failed: list[RevealError] = []
    for row, text in enumerate(texts, start=first_row):
        if text is None:
            out.append(None)
            continue
        if not isinstance(text, str):
            column = f"column {name!r} " if name is not None else ""
            raise TypeError(f"{column}row {row} holds a {type(text).__name__}; reveal needs text (str or None)")
        cached = seen.get(text, _MISSING)
        if cached is _MISSING:
            try:
                cached = ring.reveal(text)
            except RevealError as error:
                located = RevealError(error.reason, row=row, column=name)
                if on_error == "raise":
                    raise located from None
                failed.append(located)
                cached = None
            else:
                seen[text] = cached
        out.append(cached)
    if failed:
        where = f" of column {name!r}" if name is not None else ""
        warnings.warn(
            f"{len(failed)} row(s){where} could not be revealed and are null; first: {failed[0].row}: "
            f"{failed[0].reason}",
            RevealWarning,
            stacklevel=2,
        )
    return out


_MISSING = object()


def reveal_arrow(
    values: Any,
    *,
    key: Any = None,
    keys: Any = None,
    on_error: str = "raise",
    name: str = "input",
    first_row: int = 0,
):
    """:func:`reveal_many` on an Arrow (chunked) array of text; returns a ``string`` array, nulls kept.

    The common ground of the Polars, DuckDB and pandas ``reveal`` functions.

    Example:
        >>> import pyarrow as pa
        >>> token = EncryptionKey("s3cret").encrypt("private_email", "ann@example.com")
        >>> reveal_arrow(pa.array([f"to {token}", None]), key="s3cret").to_pylist()
        ['to ann@example.com', None]
    """
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.string())
    arrow_type = values.type
    if pa.types.is_dictionary(arrow_type):
        values = values.cast(arrow_type.value_type)
        arrow_type = values.type
    if not (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_null(arrow_type)
    ):
        raise TypeError(f"column {name!r} has type {arrow_type}, but reveal needs text; cast it to string first")
    revealed = reveal_many(values.to_pylist(), key=key, keys=keys, on_error=on_error, name=name, first_row=first_row)
    return pa.array(revealed, type=pa.string())
