"""One recognizer: a regex or a word list, a label, an optional validator and context words.

A :class:`Recognizer` is a frozen, picklable value. It checks itself when built
(regex compiles, label and name are identifiers, validator is known, scores in
[0, 1]) and every error names it, so a policy file with a typo fails at load
time and says which entry to fix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from . import checksums, formats

__all__ = ["DEFAULT_CONTEXT_BOOST", "VALIDATORS", "Recognizer", "validator_names"]

# Added to a recognizer's score when one of its context words (given as a plain
# list) is near the match: enough to lift a 0.3 "needs context" recognizer over
# the default emit threshold of 0.5, and to push a 0.9 one to 1.0.
DEFAULT_CONTEXT_BOOST = 0.35

#: Validators a recognizer may name (in Python or in a policy file).
VALIDATORS: Mapping[str, Callable[[str], bool]] = {
    "luhn": checksums.is_luhn,
    "payment_card": checksums.is_payment_card,
    "mod97": checksums.is_mod97,
    "iban": checksums.is_iban,
    "us_ssn": checksums.is_us_ssn,
    "uk_nino": checksums.is_uk_nino,
    "de_steuer_id": checksums.is_de_steuer_id,
    "fr_insee": checksums.is_fr_insee,
    "email": formats.is_email,
    "domain": formats.is_domain,
    "url": formats.is_url,
    "ipv4": formats.is_ipv4,
    "ipv6": formats.is_ipv6,
    "jwt": formats.is_jwt,
    "pem_private_key": formats.is_pem_private_key,
    "github_token": formats.is_github_token,
    "aws_access_key": formats.is_aws_access_key,
    "token": formats.is_token,
    "secret_value": formats.is_secret_value,
}

# Internal extraction steps of some built-ins (phone numbers are found by
# phonenumbers inside a digit-run candidate; URLs and IBANs lose trailing text).
EXTRACTORS = ("phone", "url", "iban")

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CONFIG_KEYS = {
    "name", "label", "regex", "words", "validator", "context", "score", "min_score", "ignore_case", "context_window",
}

Validator = str | Callable[[str], bool] | None


def validator_names() -> list[str]:
    """Names accepted as ``validator=`` (sorted).

    Example:
        >>> "luhn" in validator_names() and "iban" in validator_names()
        True
    """
    return sorted(VALIDATORS)


def _callable_id(fn: Callable[..., Any]) -> str:
    ident = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        # Two lambdas (or two versions of a function) share a name; their bytecode tells them apart for caches.
        ident += ":" + hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:12]
    return ident


@dataclass(frozen=True)
class Recognizer:
    """A rule that finds ``label`` spans: ``regex`` or ``words``, then ``validator``, then context words.

    Args:
        name: unique identifier of the rule (letters, digits, ``_``), used in errors and to select built-ins.
        label: span label: an opf label (``account_number``, ``secret``...) or a new one (``employee_id``).
        regex: a Python regular expression. If it has a named group ``value`` (or several
            ``value_...`` alternatives), the span is the first of those that matched, not the whole match.
        words: a word list instead of a regex: each is matched as a whole word, literally.
        validator: a callable ``str -> bool`` or the name of a built-in one (see :func:`validator_names`);
            a match it rejects gives no span.
        context: words whose presence near a match changes its score: a list (each adds
            :data:`DEFAULT_CONTEXT_BOOST`) or a ``{word: delta}`` mapping (a negative delta lowers
            it). Only the context word closest to the match counts. Case-insensitive, whole words.
        score: the span score without context (0..1).
        min_score: spans scoring below this (after context) are not emitted; with ``score=0.3``
            and some ``context`` words, a rule fires only near those words.
        ignore_case: match ``regex``/``words`` case-insensitively.
        context_window: how many characters before and after the match are searched for context words.
        extractor: internal step of some built-ins (``"phone"``, ``"url"``, ``"iban"``); leave None.

    Example:
        >>> Recognizer(name="employee_id", label="employee_id", regex=r"\\bEMP-\\d{6}\\b").label
        'employee_id'
        >>> Recognizer(name="bad", label="x", regex="EMP-(\\\\d{6}")
        Traceback (most recent call last):
        ...
        ValueError: recognizer 'bad': invalid regex 'EMP-(\\\\d{6}': missing ), unterminated subpattern at position 4
    """

    name: str
    label: str
    regex: str | None = None
    words: tuple[str, ...] | None = None
    validator: Validator = None
    context: tuple[tuple[str, float], ...] = ()
    score: float = 0.9
    min_score: float = 0.5
    ignore_case: bool = False
    context_window: tuple[int, int] = (40, 20)
    extractor: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"recognizer {name!r}: name must be letters, digits and '_' starting with a letter")
        fail = lambda message: ValueError(f"recognizer {name!r}: {message}")  # noqa: E731
        if not isinstance(self.label, str) or not self.label.strip():
            raise fail("label is empty; give the label its spans get, e.g. 'account_number' or 'employee_id'")
        if not _IDENTIFIER.fullmatch(self.label):
            raise fail(f"label {self.label!r} must be letters, digits and '_' starting with a letter")
        if (self.regex is None) == (self.words is None):
            raise fail("give exactly one of regex= or words=")
        if self.words is not None:
            words = (self.words,) if isinstance(self.words, str) else tuple(self.words)
            if not words or any(not isinstance(w, str) or not w.strip() for w in words):
                raise fail(f"words must be a non-empty list of non-empty strings, got {self.words!r}")
            object.__setattr__(self, "words", words)
        elif not isinstance(self.regex, str) or not self.regex:
            raise fail(f"regex must be a non-empty string, got {self.regex!r}")
        if isinstance(self.validator, str):
            if self.validator not in VALIDATORS:
                raise fail(f"unknown validator {self.validator!r}; known: {', '.join(validator_names())}")
        elif self.validator is not None and not callable(self.validator):
            raise fail(f"validator must be a name or a callable str -> bool, got {self.validator!r}")
        object.__setattr__(self, "context", self._normalize_context(self.context, fail))
        for key in ("score", "min_score"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise fail(f"{key} must be a number between 0 and 1, got {value!r}")
            object.__setattr__(self, key, float(value))
        window = self.context_window
        if (
            not isinstance(window, (tuple, list)) or len(window) != 2
            or any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in window)
        ):
            raise fail(f"context_window must be two non-negative integers (before, after), got {window!r}")
        object.__setattr__(self, "context_window", tuple(window))
        if self.extractor is not None and self.extractor not in EXTRACTORS:
            raise fail(f"unknown extractor {self.extractor!r}; known: {', '.join(EXTRACTORS)}")
        try:
            compiled = re.compile(self.pattern)
        except re.error as error:
            raise fail(f"invalid regex {self.regex!r}: {error}") from None
        if compiled.search("") is not None:
            raise fail(f"regex {self.regex!r} matches the empty string; it would mark every position")

    @staticmethod
    def _normalize_context(context: Any, fail: Callable[[str], ValueError]) -> tuple[tuple[str, float], ...]:
        if isinstance(context, str):
            context = [context]
        if isinstance(context, Mapping):
            items = list(context.items())
        elif isinstance(context, Sequence):
            items = [(w, DEFAULT_CONTEXT_BOOST) if isinstance(w, str) else tuple(w) for w in context]
        else:
            raise fail(f"context must be a list of words or a {{word: delta}} mapping, got {context!r}")
        normalized = {}
        for item in items:
            if len(item) != 2:
                raise fail(f"context entry {item!r} must be a word or a (word, delta) pair")
            word, delta = item
            if not isinstance(word, str) or not word.strip():
                raise fail(f"context words must be non-empty strings, got {word!r}")
            if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not -1.0 <= delta <= 1.0:
                raise fail(f"context delta for {word!r} must be a number between -1 and 1, got {delta!r}")
            normalized[word.strip().lower()] = float(delta)
        return tuple(sorted(normalized.items()))

    @property
    def pattern(self) -> str:
        """The regex this rule matches with (a word list becomes an escaped whole-word alternation).

        Example:
            >>> Recognizer(name="codes", label="project", words=["Blue Fox", "Owl"]).pattern
            '(?<!\\\\w)(?:Blue\\\\ Fox|Owl)(?!\\\\w)'
        """
        if self.words is not None:
            alternatives = sorted({re.escape(w.strip()) for w in self.words}, key=lambda w: (-len(w), w))
            source = r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)"
        else:
            source = self.regex
        return f"(?i:{source})" if self.ignore_case else source

    def check(self, value: str) -> bool:
        """Whether the validator accepts ``value`` (True without a validator).

        Example:
            >>> Recognizer(name="card", label="account_number", regex=r"\\d{16}", validator="luhn").check("4111111111111112")
            False
        """
        if self.validator is None:
            return True
        fn = VALIDATORS[self.validator] if isinstance(self.validator, str) else self.validator
        return bool(fn(value))

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_config` of it gives an equal recognizer (callable validators excepted).

        Example:
            >>> Recognizer.from_config(Recognizer(name="e", label="employee_id", regex="E-\\\\d+").to_config()).regex
            'E-\\\\d+'
        """
        config: dict[str, Any] = {"name": self.name, "label": self.label}
        if self.regex is not None:
            config["regex"] = self.regex
        else:
            config["words"] = list(self.words or ())
        if self.validator is not None:
            config["validator"] = self.validator if isinstance(self.validator, str) else _callable_id(self.validator)
        if self.context:
            config["context"] = dict(self.context)
        config.update(score=self.score, min_score=self.min_score, ignore_case=self.ignore_case,
                      context_window=list(self.context_window))
        if self.extractor is not None:
            config["extractor"] = self.extractor
        return config

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Recognizer:
        """A recognizer from one ``custom`` entry of a policy file (see docs/recognizers.md for the keys).

        Example:
            >>> Recognizer.from_config({"name": "ticket", "label": "ticket_id", "regex": "TCK-[0-9]{5}"}).score
            0.9
            >>> Recognizer.from_config({"name": "ticket", "label": "ticket_id", "regexp": "TCK"})
            Traceback (most recent call last):
            ...
            ValueError: recognizer 'ticket': unknown key 'regexp'; known keys: context, context_window, ignore_case, label, min_score, name, regex, score, validator, words
        """
        if not isinstance(entry, Mapping):
            raise ValueError(f"a custom recognizer must be a mapping with name, label and regex or words, got {entry!r}")
        name = entry.get("name")
        unknown = sorted(set(entry) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"recognizer {name!r}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_CONFIG_KEYS))}")
        if "validator" in entry and not isinstance(entry["validator"], (str, type(None))):
            raise ValueError(f"recognizer {name!r}: validator in a policy must be a name: one of {', '.join(validator_names())}")
        kwargs = dict(entry)
        if "context_window" in kwargs and isinstance(kwargs["context_window"], list):
            kwargs["context_window"] = tuple(kwargs["context_window"])
        kwargs.setdefault("name", name)
        kwargs.setdefault("label", None)
        return cls(**kwargs)
