"""RecognizerSet: every regex recognizer in one compiled alternation, one pass per text.

The pass: ``combined.search`` finds the leftmost position where any recognizer's
regex matches; the first one (in priority order) whose validator and context
accept the match emits its span(s) and the scan resumes after them. Where no
recognizer accepts a match, the others that match at the same position are
tried (one anchored ``match`` each, only on that rejected candidate), then the
scan moves one character on. A text is thus read once by the regex engine
whatever the number of recognizers. Regexes that cannot join an alternation
(numbered back-references, conditionals, the ASCII/locale flags) get their own
pass.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Callable

import phonenumbers
import stdnum

from pii_frames.decode.spans import CharSpan

from .builtin import BUILTINS, TRIGGERS
from .custom import VALIDATORS, Recognizer

__all__ = ["RECOGNIZERS_VERSION", "Compiled", "compile_branches", "find_spans", "fingerprint_of"]

#: Bumped whenever a built-in regex, validator or the scan rule changes, so caches keyed on
#: :attr:`RecognizerSet.fingerprint` are invalidated.
RECOGNIZERS_VERSION = "1"

_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")
_NAMED_GROUP = re.compile(r"(?<!\\)((?:\\\\)*)\(\?P(<|=)([A-Za-z_][A-Za-z0-9_]*)")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]|\(\?\(")
_URL_TRAILING = ".,;:!?'\"*"
_PHONE_LENIENCY = phonenumbers.Leniency.VALID
_MISSING = object()
_MAX_SUBSET_PATTERNS = 512
_BUILTIN_BY_NAME = {r.name: r for r in BUILTINS}
_PHONE_LOOKAHEAD = 4


@dataclass(frozen=True, eq=False)
class Branch:
    """One recognizer compiled for the scan: its group in the alternation, its own pattern, its steps."""

    recognizer: Recognizer
    group: str
    value_groups: tuple[str, ...]
    own: re.Pattern[str]
    own_value_groups: tuple[str, ...]
    validate: Callable[[str], bool] | None
    context: re.Pattern[str] | None
    context_deltas: dict[str, float]
    longest_word: int = 0


def _combinable(source: str, prefix: str) -> str | None:
    """``source`` with its named groups prefixed and leading global flags made local; None if it cannot be combined."""
    flags = _GLOBAL_FLAGS.match(source)
    if flags:
        if set(flags.group(1)) - set("imsx"):
            return None
        source = f"(?{flags.group(1)}:{source[flags.end():]})"
    if _NUMBERED_BACKREF.search(source):
        return None
    return _NAMED_GROUP.sub(lambda m: f"{m.group(1)}(?P{m.group(2)}{prefix}{m.group(3)}", source)


def _value_groups(pattern: re.Pattern[str], prefix: str) -> tuple[str, ...]:
    names = sorted(pattern.groupindex, key=pattern.groupindex.__getitem__)
    return tuple(n for n in names if n == prefix + "value" or n.startswith(prefix + "value_"))


def _context_pattern(recognizer: Recognizer) -> re.Pattern[str] | None:
    if not recognizer.context:
        return None
    words = sorted((re.escape(w) for w, _ in recognizer.context), key=lambda w: (-len(w), w))
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Compiled:
    """The combined pattern, the branches in it (priority order, by group name) and those with their own pass.

    ``parts[i]`` is branch ``i``'s piece of the alternation. ``always`` has the bits of
    branches without a trigger; ``triggers`` pairs a cheap test with the bits of the
    branches it gates. ``patterns`` caches the alternation of each subset of branches
    that texts have needed (the full one under the mask of all bits).
    """

    pattern: re.Pattern[str] | None
    branches: tuple[Branch, ...]
    separate: tuple[Branch, ...]
    lookup: dict[str, tuple[int, Branch]]
    parts: tuple[str, ...] = ()
    always: int = 0
    triggers: tuple[tuple[Callable[[str], object], int], ...] = ()
    patterns: dict[int, re.Pattern[str] | None] = field(default_factory=dict)

    def pattern_for(self, text: str) -> re.Pattern[str] | None:
        """The alternation of the branches whose triggers ``text`` passes."""
        mask = self.always
        for test, bits in self.triggers:
            if bits & ~mask and test(text):
                mask |= bits
        pattern = self.patterns.get(mask, _MISSING)
        if pattern is _MISSING:
            if len(self.patterns) > _MAX_SUBSET_PATTERNS:
                full = (1 << len(self.parts)) - 1
                self.patterns.clear()
                self.patterns[full] = self.pattern
            chosen = [part for i, part in enumerate(self.parts) if mask >> i & 1]
            pattern = self.patterns[mask] = re.compile("|".join(chosen)) if chosen else None
        return pattern


def _trigger_test(spec: str) -> Callable[[str], object]:
    if spec.startswith("re:"):
        return re.compile(spec[3:]).search
    return lambda text: spec in text


def compile_branches(recognizers: tuple[Recognizer, ...]) -> Compiled:
    """Compile ``recognizers`` (priority order) for :func:`find_spans`."""
    combined_parts, combined, separate = [], [], []
    trigger_bits: dict[str, int] = {}
    always = 0
    for index, recognizer in enumerate(recognizers):
        group = f"r{index}"
        own = re.compile(recognizer.pattern)
        validate = (
            VALIDATORS[recognizer.validator] if isinstance(recognizer.validator, str) else recognizer.validator
        )
        deltas = dict(recognizer.context)
        source = _combinable(recognizer.pattern, group + "_")
        branch_args = dict(
            recognizer=recognizer, own=own, own_value_groups=_value_groups(own, ""), validate=validate,
            context=_context_pattern(recognizer), context_deltas=deltas,
            longest_word=max((len(w) for w in deltas), default=0),
        )
        if source is None:
            separate.append(Branch(group=group, value_groups=(), **branch_args))
            continue
        bit = 1 << len(combined_parts)
        original = _BUILTIN_BY_NAME.get(recognizer.name)
        spec = TRIGGERS.get(recognizer.name) if original is not None and original.pattern == recognizer.pattern else None
        if spec is None:
            always |= bit
        else:
            trigger_bits[spec] = trigger_bits.get(spec, 0) | bit
        combined_parts.append(f"(?P<{group}>{source})")
        combined.append((group, branch_args))
    pattern = re.compile("|".join(combined_parts)) if combined_parts else None
    branches = tuple(
        Branch(group=group, value_groups=_value_groups(pattern, group + "_"), **args) for group, args in combined
    )
    lookup = {b.group: (i, b) for i, b in enumerate(branches)}
    triggers = tuple((_trigger_test(spec), bits) for spec, bits in trigger_bits.items())
    compiled = Compiled(pattern, branches, tuple(separate), lookup, tuple(combined_parts), always, triggers)
    compiled.patterns[(1 << len(combined_parts)) - 1] = pattern
    return compiled


def _context_score(branch: Branch, text: str, start: int, end: int) -> float:
    recognizer = branch.recognizer
    score = recognizer.score
    if branch.context is None:
        return score
    before, after = recognizer.context_window
    best_distance, delta = None, 0.0
    if before:
        window_start = max(0, start - before)
        for m in branch.context.finditer(text, window_start, start):
            distance = start - m.end()
            if best_distance is None or distance <= best_distance:
                best_distance, delta = distance, branch.context_deltas[m.group().lower()]
    if after:
        # Searched past the window by the longest word, so a word cut by the window edge ("v" of "version") is no match.
        for m in branch.context.finditer(text, end, min(len(text), end + after + branch.longest_word)):
            distance = m.start() - end
            if distance >= after:
                break
            if best_distance is None or distance < best_distance:
                best_distance, delta = distance, branch.context_deltas[m.group().lower()]
            break
    return min(1.0, max(0.0, score + delta))


def _trim_url(text: str, start: int, end: int) -> int:
    # Sentence punctuation and a closing bracket that the URL did not open are not part of it.
    while end > start:
        last = text[end - 1]
        if last in _URL_TRAILING:
            end -= 1
        elif last in ")]}" and text.count("([{"[")]}".index(last)], start, end) < text.count(last, start, end):
            end -= 1
        else:
            break
    return end


def _candidates(branch: Branch, text: str, m: re.Match[str], groups: tuple[str, ...], region: str):
    """(start, end) pieces of a match that the branch's extractor proposes for validation."""
    extractor = branch.recognizer.extractor
    if extractor == "phone":
        start, end = m.start(), m.end()
        # A few characters past the candidate let phonenumbers see a time suffix (":05") and reject a timestamp.
        for found_start, found_end in _phone_offsets(text[start:end + _PHONE_LOOKAHEAD], end - start, region):
            yield start + found_start, start + found_end
        return
    for name in groups:
        if m.group(name) is not None:
            yield m.start(name), m.end(name)
            return
    start, end = m.start(), m.end()
    if extractor == "url":
        yield start, _trim_url(text, start, end)
    elif extractor == "iban":
        # A spaced IBAN followed by a word in capitals ("... 7034 PAID") also matches; drop whole groups until valid.
        yield start, end
        while " " in text[start:end]:
            end = text.rindex(" ", start, end)
            yield start, end
    else:
        yield start, end


@functools.lru_cache(maxsize=8192)
def _phone_offsets(window: str, length: int, region: str) -> tuple[tuple[int, int], ...]:
    """Phone numbers in ``window[:length]`` (offsets in it); cached, as columns repeat their values."""
    candidate = window[:length]
    if candidate[0] != "+" and sum(c.isdigit() for c in candidate) < _min_national_length(region):
        # Without a country code every number in the run is read as the region's: too few digits for any.
        return ()
    if _is_whole_phone(candidate, region):
        return ((0, length),)
    return tuple(
        (found.start, found.end)
        for found in phonenumbers.PhoneNumberMatcher(window, region, leniency=_PHONE_LENIENCY)
        if found.end <= length
    )


@functools.cache
def _min_national_length(region: str) -> int:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    lengths = metadata.general_desc.possible_length if metadata is not None else ()
    return min(lengths, default=1)


def _is_whole_phone(candidate: str, region: str) -> bool:
    """Fast path: the whole candidate is a valid number of the region its country code points to first.

    ``is_valid_number`` tries every region sharing a country code (25 for +1); the
    default region's (or the code's main region's) check alone settles most valid
    numbers. Anything else goes to PhoneNumberMatcher, which also finds numbers
    inside a longer candidate.
    """
    if candidate[0] not in "+(0123456789" or candidate.startswith("00"):
        return False
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    if number.country_code == phonenumbers.country_code_for_region(region):
        main = region
    else:
        main = phonenumbers.region_code_for_country_code(number.country_code)
    return phonenumbers.is_valid_number_for_region(number, main)


def _emit(branch: Branch, text: str, m: re.Match[str], groups: tuple[str, ...], region: str) -> list[CharSpan]:
    spans = []
    recognizer = branch.recognizer
    for start, end in _candidates(branch, text, m, groups, region):
        if start >= end:
            continue
        if branch.validate is not None and not branch.validate(text[start:end]):
            continue
        score = _context_score(branch, text, start, end)
        if score >= recognizer.min_score:
            spans.append(CharSpan(recognizer.label, start, end, score, "pattern"))
            if recognizer.extractor != "phone":
                break
    return spans


def find_spans(text: str, compiled: Compiled, region: str) -> list[CharSpan]:
    """All accepted spans of ``text``, non-overlapping, sorted by start (see the module docstring)."""
    spans: list[CharSpan] = []
    branches, separate, lookup = compiled.branches, compiled.separate, compiled.lookup
    pattern = compiled.pattern_for(text)
    if pattern is not None:
        search, pos, length = pattern.search, 0, len(text)
        while pos < length:
            m = search(text, pos)
            if m is None:
                break
            index, branch = lookup[m.lastgroup]
            start = m.start()
            emitted = _emit(branch, text, m, branch.value_groups, region) if m.end() > start else []
            if not emitted:
                for other in branches[index + 1:]:
                    own = other.own.match(text, start)
                    if own is not None and own.end() > start:
                        emitted = _emit(other, text, own, other.own_value_groups, region)
                        if emitted:
                            m = own
                            break
            if emitted:
                spans.extend(emitted)
                pos = max(m.end(), emitted[-1].end)
            else:
                pos = start + 1
    for branch in separate:
        for m in branch.own.finditer(text):
            for span in _emit(branch, text, m, branch.own_value_groups, region) if m.end() > m.start() else ():
                if not any(s.start < span.end and span.start < s.end for s in spans):
                    spans.append(span)
    spans.sort(key=lambda s: (s.start, s.end))
    return spans


def fingerprint_of(recognizers: tuple[Recognizer, ...], region: str) -> str:
    """A stable hash of the rules, the region and the versions of the libraries that validate."""
    payload = {
        "version": RECOGNIZERS_VERSION,
        "phonenumbers": phonenumbers.__version__,
        "stdnum": stdnum.__version__,
        "region": region,
        "recognizers": [r.to_config() for r in recognizers],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
