"""Validators of structured strings: e-mail addresses, URLs, IP addresses, JWTs, PEM keys, API tokens.

Each takes the matched text and returns a bool. They check what a regex cannot:
IDNA-encodability and label lengths of domains, the address ranges of
``ipaddress``, the JSON header of a JWT, the base64 body of a PEM block, the
CRC-32 that GitHub puts at the end of its tokens, and that a token or password
value is not a placeholder (``****``, ``${VAR}``, ``<your-key>``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import string
import zlib
from collections import Counter
from urllib.parse import urlsplit

__all__ = [
    "is_aws_access_key",
    "is_domain",
    "is_email",
    "is_github_token",
    "is_ipv4",
    "is_ipv6",
    "is_jwt",
    "is_pem_private_key",
    "is_secret_value",
    "is_token",
    "is_url",
]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def is_domain(host: str) -> bool:
    """A DNS host name with a TLD (Unicode labels allowed): IDNA-encodable, labels of 1-63 octets, 253 in all.

    Example:
        >>> is_domain("example.com"), is_domain("bücher.example"), is_domain("localhost"), is_domain("a..b.com")
        (True, True, False, False)
    """
    host = host.rstrip(".")
    labels = host.split(".")
    if len(labels) < 2 or any(not label for label in labels):
        return False
    try:
        encoded = host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return False
    if len(encoded) > 253:
        return False
    ascii_labels = encoded.split(".")
    if any(len(label) > 63 or label.startswith("-") or label.endswith("-") for label in ascii_labels):
        return False
    if not all(re.fullmatch(r"[A-Za-z0-9-]+", label) for label in ascii_labels):
        return False
    tld = ascii_labels[-1]
    return tld.isalpha() and len(tld) >= 2 or tld.lower().startswith("xn--")


def is_email(text: str) -> bool:
    """An e-mail address: a dot-atom local part (Unicode allowed, RFC 6531) of at most 64 characters @ a domain.

    Example:
        >>> is_email("jane.doe+news@example.co.uk"), is_email("josé@exämple.de"), is_email("a..b@example.com")
        (True, True, False)
        >>> is_email("root@localhost")
        False
    """
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return is_domain(domain)


def is_url(text: str) -> bool:
    """An http(s)/ftp URL (or one starting with ``www.``) whose host is a valid domain or IP address.

    Example:
        >>> is_url("https://example.com/a?b=1"), is_url("www.bücher.de/x"), is_url("https://exa_mple/"), is_url("http://10.0.0.1:8080/")
        (True, True, False, True)
    """
    candidate = text if "://" in text else "http://" + text
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https", "ftp") or not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return is_domain(host)


def is_ipv4(text: str) -> bool:
    """A dotted-quad IPv4 address (octets 0-255, no leading zeros).

    Example:
        >>> is_ipv4("192.168.10.4"), is_ipv4("256.1.1.1"), is_ipv4("01.2.3.4")
        (True, False, False)
    """
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_ipv6(text: str) -> bool:
    """An IPv6 address (compressed forms, an embedded IPv4 tail and a %zone allowed), not the bare ``::``.

    Example:
        >>> is_ipv6("2001:db8::8a2e:370:7334"), is_ipv6("fe80::1%eth0"), is_ipv6("12:30:45"), is_ipv6("::")
        (True, True, False, False)
    """
    if text.count(":") < 2 or text == "::":
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _b64url_json(part: str) -> object:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))


def is_jwt(text: str) -> bool:
    """A JSON Web Token (JWS compact form): the base64url header is a JSON object with ``alg``, the payload a JSON object.

    Example:
        >>> import base64, json
        >>> enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
        >>> is_jwt(enc({"alg": "HS256", "typ": "JWT"}) + "." + enc({"sub": "42"}) + ".c2lnbmF0dXJl")
        True
        >>> is_jwt(enc({"typ": "JWT"}) + "." + enc({"sub": "42"}) + ".c2lnbmF0dXJl")
        False
    """
    parts = text.split(".")
    if len(parts) != 3:
        return False
    try:
        header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    except (ValueError, UnicodeError, binascii.Error):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str) and isinstance(payload, dict)


_PEM = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY(?: BLOCK)?)-----(.*?)-----END \1-----", re.S)


def is_pem_private_key(text: str) -> bool:
    """A PEM (or OpenSSH/PGP armoured) private-key block whose body is base64 of at least 32 bytes.

    Example:
        >>> body = "MC4CAQAwBQYDK2VwBCIEIHeZ2S3vE8x0ZV2c3yXJ2mE0Gf3hV2g9dJmW1Xl4mP0q"
        >>> is_pem_private_key("-----BEGIN PRIVATE KEY-----\\n" + body + "\\n-----END PRIVATE KEY-----")
        True
        >>> is_pem_private_key("-----BEGIN PRIVATE KEY-----\\n<your key here>\\n-----END PRIVATE KEY-----")
        False
    """
    match = _PEM.fullmatch(text.strip())
    if match is None:
        return False
    lines = []
    for line in match.group(2).splitlines():
        line = line.strip()
        # Armour headers (Proc-Type:, DEK-Info:, Version:) and the PGP CRC line (=XXXX) are not key material.
        if not line or ":" in line or (line.startswith("=") and len(line) == 5):
            continue
        lines.append(line)
    body = "".join(lines)
    try:
        decoded = base64.b64decode(body.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeError):
        return False
    return len(decoded) >= 32


def _entropy_bits_per_char(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


_PLACEHOLDER = re.compile(
    r"""(?ix)
    ^(?: [*xX.#_\-•]+                      # masks: ****, xxxx, ----
    |  \$\{.*\} | \$\(.*\) | \$[A-Z_][A-Z0-9_]* | %\(.*\)s | %s | \{\{.*\}\} | \{[^{}]*\} | <.*> | \[.*\]
    |  (?:none|null|nil|undefined|empty|true|false|redacted|hidden|secret|password|changeit|your[-_\w]*|example[-_\w]*|placeholder|todo|tbd|n/?a)
    )$
    """
)


def is_secret_value(text: str) -> bool:
    """A value assigned to ``password=``/``secret:`` that is not a placeholder, a mask, a variable reference or a bool.

    Example:
        >>> [is_secret_value(v) for v in ("hunter2!", "********", "${DB_PASSWORD}", "<password>", "null", "ab")]
        [True, False, False, False, False, False]
    """
    value = text.strip().strip("\"'")
    if len(value) < 4 or _PLACEHOLDER.match(value):
        return False
    return len(set(value)) > 1


def is_token(text: str) -> bool:
    """An opaque API token: its random part (after the last of ``_``/``-`` that follows a known prefix) looks random.

    At least 16 characters, at least 3 bits of entropy per character, and not one
    character class only (so ``sk_live_xxxxxxxxxxxxxxxxxxxxxxxx`` is no key).

    Example:
        >>> is_token("sk_live_4eC39HqLyjWDarjtT1zdp7dc"), is_token("sk_live_xxxxxxxxxxxxxxxxxxxxxxxx")
        (True, False)
    """
    body = re.sub(r"^(?:[a-z]+[_-])+", "", text).replace("-", "").replace("_", "")
    if len(body) < 16:
        return False
    classes = sum(bool(re.search(p, body)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return classes >= 2 and _entropy_bits_per_char(body) >= 3.0


def is_github_token(text: str) -> bool:
    """A GitHub token: ``gh[pousr]_`` + 30 base62 characters + their CRC-32 in 6 base62 digits (GitHub's 2021 format).

    ``github_pat_`` fine-grained tokens carry no published checksum; they are checked as :func:`is_token`.

    Example:
        >>> import zlib
        >>> body = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1"
        >>> n, crc = zlib.crc32(body.encode()), ""
        >>> while n: n, r = divmod(n, 62); crc = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[r] + crc
        >>> is_github_token("ghp_" + body + crc.rjust(6, "0")), is_github_token("ghp_" + body + "000000")
        (True, False)
    """
    if text.startswith("github_pat_"):
        return is_token(text[len("github_pat_"):])
    match = re.fullmatch(r"(?:gh[pousr]|npm)_([A-Za-z0-9]{30})([A-Za-z0-9]{6})", text)
    if match is None:
        return False
    body, checksum = match.groups()
    value = 0
    for char in checksum:
        value = value * 62 + _BASE62.index(char)
    return value == zlib.crc32(body.encode("ascii"))


def is_aws_access_key(text: str) -> bool:
    """An AWS access key ID: a known 4-character prefix + 16 base32 characters (A-Z, 2-7) that decode.

    Example:
        >>> is_aws_access_key("AKIA2OGYBAH6QZ7N3XFV"), is_aws_access_key("AKIA2OGYBAH6QZ7N3XF0"), is_aws_access_key("AKIA2OGYBAH6")
        (True, False, False)
    """
    if not re.fullmatch(r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z2-7]{16}", text):
        return False
    try:
        base64.b32decode(text[4:])
    except binascii.Error:
        return False
    return len(set(text[4:])) > 4
