"""What to do with detected spans: which labels, which operator, score floor, allow/deny lists."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Iterable, Mapping

__all__ = ["DENY_LIST_LABEL", "OPERATORS", "REDACTED_LABEL", "Policy", "placeholder_name"]

OPERATORS = ("placeholder", "mask", "pseudonym", "keep_last", "drop")
DENY_LIST_LABEL = "deny_list"
REDACTED_LABEL = "redacted"
# 16 hex digits = 64 bits: a collision between two of 100 million distinct values has odds ~3e-4.
PSEUDONYM_HEX_DIGITS = 16


def placeholder_name(label: str) -> str:
    """Upper-case placeholder stem of a label, as the reference builds it.

    Example:
        >>> placeholder_name("private_person"), placeholder_name("e-mail"), placeholder_name("__")
        ('PRIVATE_PERSON', 'E_MAIL', 'REDACTED')
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", label.upper()).strip("_") or "REDACTED"


class Policy:
    """How detected spans are replaced. Pass it as ``policy=`` to any redaction call.

    Args:
        operator: default operator for every label: ``"placeholder"`` (``<PRIVATE_PERSON>``),
            ``"mask"`` (same length of ``mask_char``), ``"pseudonym"`` (keyed, stable token such as
            ``<PRIVATE_PERSON_3f9a1c2b7d4e5f60>``: same value and label give the same token in every
            row, run and process; another key gives other tokens), ``"keep_last"`` (mask all but the
            last ``keep_last`` characters; values that short are masked entirely) or ``"drop"``
            (remove the text).
        key: secret for ``"pseudonym"`` (str or bytes, required when any label uses it). It never
            appears in output, ``repr`` or error messages.
        labels: span labels to act on (default: all). Spans of other labels are neither replaced
            nor reported.
        per_label: ``{label: operator}`` overriding ``operator`` for those labels.
        min_score: spans whose score is below this are neither replaced nor reported.
        allow: exact values (case-sensitive) never redacted.
        deny: values always redacted wherever they occur, even when the model misses them: a list
            (reported with label ``"deny_list"``) or a ``{value: label}`` mapping. Case-sensitive.
            Where a deny-list match overlaps a model span, the two merge into one span covering
            both (label of the leftmost, then longest; the deny-list label on ties).
        mask_char: the single character used by ``"mask"`` and ``"keep_last"``.
        keep_last: characters left in clear by ``"keep_last"``.

    Example:
        >>> policy = Policy("mask", per_label={"private_person": "pseudonym"}, key="s3cret",
        ...                 deny=["ACME-42"], allow=["Support Team"])
        >>> policy
        Policy(operator='mask', key=<hidden>, per_label={'private_person': 'pseudonym'}, allow=['Support Team'], deny={'ACME-42': 'deny_list'})
        >>> policy.replacement("private_phone", "555-0100")
        '********'
        >>> policy.replacement("private_person", "Ada") == policy.replacement("private_person", "Ada")
        True
    """

    __slots__ = (
        "operator",
        "_key",
        "labels",
        "per_label",
        "min_score",
        "allow",
        "deny",
        "mask_char",
        "keep_last",
    )

    def __init__(
        self,
        operator: str = "placeholder",
        *,
        key: str | bytes | None = None,
        labels: Iterable[str] | None = None,
        per_label: Mapping[str, str] | None = None,
        min_score: float = 0.0,
        allow: Iterable[str] = (),
        deny: Iterable[str] | Mapping[str, str] = (),
        mask_char: str = "*",
        keep_last: int = 4,
    ):
        set_ = object.__setattr__
        set_(self, "operator", _check_operator(operator, "operator"))

        per_label = {} if per_label is None else per_label
        if not isinstance(per_label, Mapping):
            raise TypeError(f"Policy per_label must be a mapping of label to operator, got {type(per_label).__name__}")
        checked_per_label = {}
        for label, label_operator in per_label.items():
            if not isinstance(label, str) or not label:
                raise ValueError(f"Policy per_label keys must be label names, got {label!r}")
            checked_per_label[label] = _check_operator(label_operator, f"per_label[{label!r}]")
        set_(self, "per_label", checked_per_label)

        if isinstance(key, str):
            key = key.encode("utf-8")
        elif isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        if key is not None and not isinstance(key, bytes):
            raise TypeError(f"Policy key must be str or bytes, got {type(key).__name__}")
        if key is not None and not key:
            raise ValueError("Policy key must not be empty")
        uses_pseudonym = operator == "pseudonym" or "pseudonym" in checked_per_label.values()
        if uses_pseudonym and key is None:
            raise ValueError(
                "Policy operator 'pseudonym' needs a secret key: Policy('pseudonym', key=...) "
                "(keep the key outside the code, e.g. in an environment variable)"
            )
        set_(self, "_key", key)

        set_(self, "labels", None if labels is None else _string_set(labels, "labels"))
        if self.labels is not None and not self.labels:
            raise ValueError("Policy labels is empty; pass None to act on every label")

        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not (0.0 <= min_score <= 1.0):
            raise ValueError(f"Policy min_score must be a number between 0 and 1, got {min_score!r}")
        set_(self, "min_score", float(min_score))

        allow_values = _string_set(allow, "allow")
        set_(self, "allow", allow_values)

        if isinstance(deny, Mapping):
            deny_map = dict(deny)
        else:
            deny_map = {value: DENY_LIST_LABEL for value in _string_set(deny, "deny")}
        for value, label in deny_map.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"Policy deny values must be non-empty strings, got {value!r}")
            if not isinstance(label, str) or not label:
                raise ValueError(f"Policy deny label for {value!r} must be a non-empty string, got {label!r}")
        both = sorted(set(deny_map) & allow_values)
        if both:
            raise ValueError(f"Policy values {both} are in both allow and deny; keep each value in one list")
        set_(self, "deny", dict(sorted(deny_map.items())))

        if not isinstance(mask_char, str) or len(mask_char) != 1:
            raise ValueError(f"Policy mask_char must be a single character, got {mask_char!r}")
        set_(self, "mask_char", mask_char)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValueError(f"Policy keep_last must be an integer >= 0, got {keep_last!r}")
        set_(self, "keep_last", keep_last)

    def __setattr__(self, name, value):
        raise AttributeError("Policy is immutable; build a new one")

    def __reduce__(self):
        # Pickling (for worker processes) must carry the key; it stays out of repr and errors.
        return (_rebuild_policy, (self._state(),))

    def _state(self) -> dict:
        return {
            "operator": self.operator,
            "key": self._key,
            "labels": None if self.labels is None else sorted(self.labels),
            "per_label": dict(self.per_label),
            "min_score": self.min_score,
            "allow": sorted(self.allow),
            "deny": dict(self.deny),
            "mask_char": self.mask_char,
            "keep_last": self.keep_last,
        }

    @property
    def has_key(self) -> bool:
        """Whether a pseudonym key is set (the key itself is not readable back)."""
        return self._key is not None

    def operator_for(self, label: str) -> str:
        """Operator applied to spans of ``label``."""
        return self.per_label.get(label, self.operator)

    def acts_on(self, label: str) -> bool:
        """Whether spans of ``label`` are replaced and reported."""
        return self.labels is None or label in self.labels

    def replacement(self, label: str, value: str, *, operator: str | None = None) -> str:
        """Text that replaces ``value`` (a span of ``label``) in the redacted output.

        Example:
            >>> Policy("keep_last", keep_last=4).replacement("account_number", "DE89 3704 0044")
            '**********0044'
            >>> Policy().replacement("private_person", "Ada")
            '<PRIVATE_PERSON>'
        """
        operator = operator or self.operator_for(label)
        if operator == "placeholder":
            return f"<{placeholder_name(label)}>"
        if operator == "mask":
            return self.mask_char * len(value)
        if operator == "keep_last":
            if len(value) <= self.keep_last:
                return self.mask_char * len(value)
            return self.mask_char * (len(value) - self.keep_last) + value[len(value) - self.keep_last :]
        if operator == "drop":
            return ""
        if self._key is None:  # only reachable through per-call operator overrides
            raise ValueError("operator 'pseudonym' needs a Policy key")
        message = f"{label}\x00{value}".encode("utf-8", errors="surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]
        return f"<{placeholder_name(label)}_{digest}>"

    def check_labels(self, known_labels: Iterable[str]) -> None:
        """Raise ValueError when ``labels`` or ``per_label`` names a label the model does not have.

        Deny-list labels and ``"redacted"`` are always accepted.

        Example:
            >>> Policy(labels=["private_persn"]).check_labels(["private_person", "secret"])
            Traceback (most recent call last):
            ...
            ValueError: Policy labels name unknown label(s) ['private_persn']; known labels: ['private_person', 'secret']
        """
        known = set(known_labels)
        accepted = known | set(self.deny.values()) | {DENY_LIST_LABEL, REDACTED_LABEL}
        for field_name, names in (("labels", self.labels or ()), ("per_label", self.per_label)):
            unknown = sorted(set(names) - accepted)
            if unknown:
                raise ValueError(
                    f"Policy {field_name} name unknown label(s) {unknown}; known labels: {sorted(known)}"
                )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self._state() == other._state()

    def __hash__(self) -> int:
        state = self._state()
        return hash(tuple((name, repr(value)) for name, value in state.items()))

    def __repr__(self) -> str:
        defaults = _DEFAULT_STATE
        parts = [f"operator={self.operator!r}"]
        if self._key is not None:
            parts.append("key=<hidden>")
        for name, value in self._state().items():
            if name in ("operator", "key") or value == defaults[name]:
                continue
            parts.append(f"{name}={value!r}")
        return f"Policy({', '.join(parts)})"


def _rebuild_policy(state: dict) -> Policy:
    return Policy(**state)


def _check_operator(value: object, where: str) -> str:
    if value not in OPERATORS:
        raise ValueError(f"unknown Policy {where} {value!r}; choose one of {', '.join(OPERATORS)}")
    return value  # type: ignore[return-value]


def _string_set(values: Iterable[str] | str, name: str) -> frozenset[str]:
    if isinstance(values, str):
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"Policy {name} must be a list of strings, got {type(values).__name__}") from None
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"Policy {name} entries must be non-empty strings, got {item!r}")
    return frozenset(items)


_DEFAULT_STATE = {
    "operator": "placeholder",
    "key": None,
    "labels": None,
    "per_label": {},
    "min_score": 0.0,
    "allow": [],
    "deny": {},
    "mask_char": "*",
    "keep_last": 4,
}
