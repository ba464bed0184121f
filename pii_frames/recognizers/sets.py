"""RecognizerSet: an immutable, picklable, fingerprinted collection of recognizers that finds spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import phonenumbers

from pii_frames.decode.spans import CharSpan

from .builtin import BUILTIN_NAMES, BUILTINS, builtin
from .custom import Recognizer
from .scanner import Compiled, compile_branches, find_spans, fingerprint_of

__all__ = ["RecognizerSet"]

_CONFIG_KEYS = ("builtin", "exclude", "region", "custom")


def _as_recognizer(item: Recognizer | Mapping[str, Any]) -> Recognizer:
    if isinstance(item, Recognizer):
        return item
    if isinstance(item, Mapping):
        return Recognizer.from_config(item)
    raise ValueError(f"expected a Recognizer or a mapping with name, label and regex or words, got {item!r}")


class RecognizerSet:
    """Recognizers in priority order, run together in one pass per text by :meth:`find`.

    Immutable: :meth:`with_custom` and :meth:`without` return new sets. Equal sets
    have equal :attr:`fingerprint` (a stable hash of the rules, the phone region and
    the versions of the validating libraries) for caches; sets pickle (custom
    validators must then be importable functions).

    Example:
        >>> rs = RecognizerSet.default().with_custom(Recognizer(name="employee_id", label="employee_id", regex=r"\\bEMP-\\d{6}\\b"))
        >>> text = "EMP-004217 paid with 4111 1111 1111 1111, call +44 20 7946 0958"
        >>> [(s.label, text[s.start:s.end]) for s in rs.find(text)]
        [('employee_id', 'EMP-004217'), ('account_number', '4111 1111 1111 1111'), ('private_phone', '+44 20 7946 0958')]
        >>> "employee_id" in rs.labels
        True
    """

    __slots__ = ("_recognizers", "_region", "_fingerprint", "_compiled")

    def __init__(self, recognizers: Iterable[Recognizer | Mapping[str, Any]] = (), *, region: str = "US") -> None:
        items = tuple(_as_recognizer(r) for r in recognizers)
        seen: set[str] = set()
        for r in items:
            if r.name in seen:
                raise ValueError(f"recognizer {r.name!r}: given twice; names must be unique in a set")
            seen.add(r.name)
        if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"phone region must be a two-letter region code known to phonenumbers (e.g. 'US', 'DE'), got {region!r}")
        self._recognizers = items
        self._region = region.upper()
        self._fingerprint: str | None = None
        self._compiled: Compiled | None = None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def default(cls, region: str = "US") -> RecognizerSet:
        """All built-in recognizers; phone numbers without a ``+`` country code are read as ``region``'s.

        Example:
            >>> len(RecognizerSet.default()) == len(RecognizerSet.builtin_names())
            True
        """
        return cls(BUILTINS, region=region)

    @staticmethod
    def builtin_names() -> tuple[str, ...]:
        """Names of the built-in recognizers, in priority order."""
        return BUILTIN_NAMES

    @classmethod
    def from_config(cls, config: Any, *, region: str | None = None) -> RecognizerSet:
        """A set from a policy file's content (parsed JSON/YAML); the schema is in docs/recognizers.md.

        ``config`` is a whole policy (a mapping with a ``"recognizers"`` key; other keys are
        left to the caller), its ``recognizers`` value (a mapping with ``builtin``: true,
        false or a list of names; ``exclude``: names; ``region``; ``custom``: a list of
        recognizers), a list (custom recognizers next to all built-ins), or False/None
        (no recognizers; an absent key means the defaults).

        Example:
            >>> rs = RecognizerSet.from_config({"recognizers": {"builtin": ["email"], "custom": [
            ...     {"name": "employee_id", "label": "employee_id", "regex": "EMP-[0-9]{6}", "score": 0.9}]}})
            >>> rs.names, rs.labels
            (('employee_id', 'email'), ('employee_id', 'private_email'))
            >>> RecognizerSet.from_config({"recognizers": {"builtins": True}})
            Traceback (most recent call last):
            ...
            ValueError: recognizers config: unknown key 'builtins'; known keys: builtin, exclude, region, custom
        """
        if isinstance(config, Mapping) and "recognizers" in config:
            config = config["recognizers"]
        if config is None or config is False:
            return cls((), region=region or "US")
        if config is True:
            config = {}
        if isinstance(config, Sequence) and not isinstance(config, (str, bytes)):
            config = {"custom": list(config)}
        if not isinstance(config, Mapping):
            raise ValueError(f"recognizers config must be a mapping, a list of custom recognizers, true or false; got {config!r}")
        unknown = [k for k in config if k not in _CONFIG_KEYS]
        if unknown:
            raise ValueError(f"recognizers config: unknown key {unknown[0]!r}; known keys: {', '.join(_CONFIG_KEYS)}")
        selection = config.get("builtin", True)
        if selection is True:
            builtins = list(BUILTINS)
        elif selection is False or selection is None:
            builtins = []
        elif isinstance(selection, Sequence) and not isinstance(selection, str):
            builtins = [builtin(name) for name in selection]
        else:
            raise ValueError(f"recognizers config: builtin must be true, false or a list of names, got {selection!r}")
        exclude = config.get("exclude", ())
        if isinstance(exclude, str) or not isinstance(exclude, Sequence):
            raise ValueError(f"recognizers config: exclude must be a list of names, got {exclude!r}")
        for name in exclude:
            builtin(name)
        builtins = [r for r in builtins if r.name not in set(exclude)]
        custom = config.get("custom", ())
        if isinstance(custom, (str, Mapping)) or not isinstance(custom, Sequence):
            raise ValueError(f"recognizers config: custom must be a list of recognizers, got {custom!r}")
        return cls([*(_as_recognizer(c) for c in custom), *builtins], region=region or config.get("region", "US"))

    @classmethod
    def from_file(cls, path: str | Path, *, region: str | None = None) -> RecognizerSet:
        """A set from a JSON or YAML (``.yaml``/``.yml``) policy file; errors name the file.

        Example:
            >>> import tempfile, os
            >>> with tempfile.TemporaryDirectory() as d:
            ...     p = os.path.join(d, "policy.json")
            ...     _ = open(p, "w").write('{"recognizers": {"builtin": false, "custom": [{"name": "t", "label": "ticket", "words": ["TCK-1"]}]}}')
            ...     RecognizerSet.from_file(p).names
            ('t',)
        """
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read recognizer policy {str(path)!r}: {error}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(raw)
            else:
                data = json.loads(raw)
        except Exception as error:  # JSON and YAML parsers raise their own error types
            raise ValueError(f"recognizer policy {str(path)!r} is not valid {path.suffix.lstrip('.') or 'JSON'}: {error}") from None
        try:
            return cls.from_config(data, region=region)
        except ValueError as error:
            raise ValueError(f"recognizer policy {str(path)!r}: {error}") from None

    def with_custom(self, *recognizers: Recognizer | Mapping[str, Any]) -> RecognizerSet:
        """This set with ``recognizers`` added in front (they win over built-ins at the same position).

        Example:
            >>> rs = RecognizerSet.default().with_custom({"name": "ticket", "label": "ticket_id", "regex": "TCK-[0-9]{5}"})
            >>> rs.names[0], len(rs) == len(RecognizerSet.default()) + 1
            ('ticket', True)
        """
        return RecognizerSet([*recognizers, *self._recognizers], region=self._region)

    def without(self, *names: str) -> RecognizerSet:
        """This set without the recognizers called ``names`` (unknown names are an error).

        Example:
            >>> "phone" in RecognizerSet.default().without("phone")
            False
        """
        unknown = [n for n in names if n not in self]
        if unknown:
            raise ValueError(f"recognizer {unknown[0]!r}: not in this set; it has {', '.join(self.names)}")
        return RecognizerSet([r for r in self._recognizers if r.name not in names], region=self._region)

    def with_region(self, region: str) -> RecognizerSet:
        """This set reading phone numbers without a country code as ``region``'s."""
        return RecognizerSet(self._recognizers, region=region)

    # --- use ----------------------------------------------------------------------------------
    def find(self, text: str) -> list[CharSpan]:
        """Validated spans of ``text`` (source ``"pattern"``), non-overlapping, sorted by start.

        Example:
            >>> text = "IBAN GB82 WEST 1234 5698 7654 32, not GB82 WEST 1234 5698 7654 33"
            >>> [(s.label, text[s.start:s.end], s.source) for s in RecognizerSet.default().find(text)]
            [('account_number', 'GB82 WEST 1234 5698 7654 32', 'pattern')]
        """
        if not isinstance(text, str):
            raise TypeError(f"RecognizerSet.find takes a str, got {type(text).__name__}")
        if self._compiled is None:
            self._compiled = compile_branches(self._recognizers)
        return find_spans(text, self._compiled, self._region)

    def find_many(self, texts: Iterable[str | None]) -> list[list[CharSpan] | None]:
        """:meth:`find` of each text; a null stays None.

        Example:
            >>> RecognizerSet.default().find_many(["mail bob@example.org", None, ""])
            [[CharSpan(label='private_email', start=5, end=20, score=0.95, source='pattern')], None, []]
        """
        return [None if t is None else self.find(t) for t in texts]

    # --- description ---------------------------------------------------------------------------
    @property
    def recognizers(self) -> tuple[Recognizer, ...]:
        """The recognizers, in priority order."""
        return self._recognizers

    @property
    def names(self) -> tuple[str, ...]:
        """Recognizer names, in priority order."""
        return tuple(r.name for r in self._recognizers)

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels the set can emit, in order of first appearance.

        Example:
            >>> RecognizerSet.default().labels
            ('secret', 'private_email', 'private_url', 'account_number', 'private_phone')
        """
        return tuple(dict.fromkeys(r.label for r in self._recognizers))

    @property
    def region(self) -> str:
        """Region whose numbering plan reads phone numbers written without ``+``."""
        return self._region

    @property
    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of the rules, the region and the validating libraries' versions."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self._recognizers, self._region)
        return self._fingerprint

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready ``{"recognizers": ...}`` policy section that :meth:`from_config` reads back.

        Example:
            >>> rs = RecognizerSet.default().with_custom({"name": "t", "label": "ticket", "regex": "TCK-[0-9]+"})
            >>> RecognizerSet.from_config(rs.to_config()) == rs
            True
        """
        builtin_set = {r.name: r for r in BUILTINS}
        builtins = [r.name for r in self._recognizers if builtin_set.get(r.name) == r]
        custom = [r.to_config() for r in self._recognizers if builtin_set.get(r.name) != r]
        ordered = [r.name for r in self._recognizers]
        if ordered != [c["name"] for c in custom] + builtins:
            raise ValueError("this set puts built-ins before custom recognizers; a policy file cannot say that order")
        return {"recognizers": {"builtin": builtins, "region": self._region, "custom": custom}}

    def __len__(self) -> int:
        return len(self._recognizers)

    def __iter__(self) -> Iterator[Recognizer]:
        return iter(self._recognizers)

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self._recognizers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecognizerSet) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self):
        return (_restore, (self._recognizers, self._region))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__slots__ and not hasattr(self, "_compiled"):
            object.__setattr__(self, name, value)
        elif name in ("_fingerprint", "_compiled"):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError("RecognizerSet is immutable; use with_custom(), without() or with_region()")

    def __repr__(self) -> str:
        return f"RecognizerSet({len(self)} recognizers, labels={list(self.labels)}, region={self._region!r})"


def _restore(recognizers: tuple[Recognizer, ...], region: str) -> RecognizerSet:
    return RecognizerSet(recognizers, region=region)
