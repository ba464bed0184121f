"""The redaction operators: what a detected value is replaced with.

Each operator is a function ``(policy, label, value) -> replacement text``; :class:`~pii_frames.redaction.policy.Policy`
picks one per label and calls it. Adding an operator is one function and one entry in
:data:`OPERATOR_FUNCTIONS` (plus :data:`KEYED_OPERATORS` when it needs the policy's key).

>>> from pii_frames.redaction.policy import Policy
>>> [OPERATOR_FUNCTIONS[name](Policy(name), "private_phone", "555-0100") for name in ("placeholder", "mask", "keep_last")]
['<PRIVATE_PHONE>', '********', '****0100']
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .policy import Policy

__all__ = ["KEYED_OPERATORS", "OPERATORS", "OPERATOR_FUNCTIONS", "PSEUDONYM_HEX_DIGITS", "placeholder_name"]

# Operators that need the secret key.
KEYED_OPERATORS = ("pseudonym", "encrypt")
# 16 hex digits = 64 bits: a collision between two of 100 million distinct values has odds ~3e-4.
PSEUDONYM_HEX_DIGITS = 16


def placeholder_name(label: str) -> str:
    """Upper-case placeholder stem of a label, as the reference builds it.

    Example:
        >>> placeholder_name("private_person"), placeholder_name("e-mail"), placeholder_name("__")
        ('PRIVATE_PERSON', 'E_MAIL', 'REDACTED')
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", label.upper()).strip("_") or "REDACTED"


def _placeholder(policy: Policy, label: str, value: str) -> str:
    return f"<{placeholder_name(label)}>"


def _mask(policy: Policy, label: str, value: str) -> str:
    return policy.mask_char * len(value)


def _keep_last(policy: Policy, label: str, value: str) -> str:
    if len(value) <= policy.keep_last:
        return policy.mask_char * len(value)
    return policy.mask_char * (len(value) - policy.keep_last) + value[len(value) - policy.keep_last :]


def _drop(policy: Policy, label: str, value: str) -> str:
    return ""


def _pseudonym(policy: Policy, label: str, value: str) -> str:
    message = f"{label}\x00{value}".encode("utf-8", errors="surrogatepass")
    digest = hmac.new(policy._secret(), message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]
    return f"<{placeholder_name(label)}_{digest}>"


def _encrypt(policy: Policy, label: str, value: str) -> str:
    return policy.encryption_key().encrypt(label, value)


OPERATOR_FUNCTIONS = {
    "placeholder": _placeholder,
    "mask": _mask,
    "pseudonym": _pseudonym,
    "encrypt": _encrypt,
    "keep_last": _keep_last,
    "drop": _drop,
}
OPERATORS = tuple(OPERATOR_FUNCTIONS)
