"""What to do with detected spans: which labels, which operator, score floor, allow/deny lists."""

from __future__ import annotations

import pickle
from typing import Iterable, Mapping

from .operators import KEYED_OPERATORS, OPERATOR_FUNCTIONS, OPERATORS, placeholder_name

__all__ = [
    "DENY_LIST_LABEL", "KEEP_LAST_LABELS", "OPERATORS", "REDACTED_LABEL", "KeyInPickleError", "Policy", "as_policy",
    "placeholder_name", "policy_from_dict", "refuse_key_in_pickle",
]

DENY_LIST_LABEL = "deny_list"
# Labels a default "keep_last" operator applies to; other labels get placeholders unless named in per_label.
KEEP_LAST_LABELS = frozenset({"account_number", "private_phone"})
REDACTED_LABEL = "redacted"
#: Written into every pickle that carries a literal key, so whoever finds the bytes knows what they hold.
PICKLE_HOLDS_SECRET = "this pickle holds a secret: the policy key, pickled because allow_key_in_pickle=True"


class KeyInPickleError(pickle.PicklingError, ValueError):
    """Pickling was refused because it would copy a literal key (see :func:`refuse_key_in_pickle`)."""


def refuse_key_in_pickle(what: str, example: str = "Policy('pseudonym', key_env='PII_KEY')") -> KeyInPickleError:
    """The error for pickling ``what`` while it holds a literal key: the one wording of the key-in-pickle rule.

    The rule, for every object that carries a policy to another process
    (:class:`Policy` itself, Airflow's ``SanitizeJob``, the Ray and Spark
    adapters): a key given by reference (``key_env=``/``key_source=``)
    travels as that reference and is read where the policy is used; a literal
    ``key=`` is refused unless ``allow_key_in_pickle=True``, and a pickle made
    with it says that it holds a secret (:data:`PICKLE_HOLDS_SECRET`).

    >>> raise refuse_key_in_pickle("this Policy")
    Traceback (most recent call last):
    ...
    pii_frames.redaction.policy.KeyInPickleError: this Policy holds a literal key, which pickling would copy to wherever the pickle goes (worker processes, task queues, object stores, disk); give the key by reference, e.g. Policy('pseudonym', key_env='PII_KEY') (read where the policy is used), or pass allow_key_in_pickle=True to carry it on purpose
    """
    return KeyInPickleError(
        f"{what} holds a literal key, which pickling would copy to wherever the pickle goes (worker processes, task "
        f"queues, object stores, disk); give the key by reference, e.g. {example} (read where the policy is used), "
        "or pass allow_key_in_pickle=True to carry it on purpose"
    )


class Policy:
    """How detected spans are replaced. Pass it as ``policy=`` to any redaction call.

    Args:
        operator: default operator for every label: ``"placeholder"`` (``<PRIVATE_PERSON>``),
            ``"mask"`` (same length of ``mask_char``), ``"pseudonym"`` (keyed, stable token such as
            ``<PRIVATE_PERSON_3f9a1c2b7d4e5f60>``: same value and label give the same token in every
            row, run and process; another key gives other tokens), ``"encrypt"`` (reversible: a
            deterministic AES-SIV token such as ``<PRIVATE_EMAIL:v1:KEYID:...>`` that
            :func:`pii_frames.reveal` turns back into the value with the key; see
            :mod:`pii_frames.redaction.encryption`), ``"keep_last"`` (mask all but the
            last ``keep_last`` characters; values that short are masked entirely; as the default
            operator it applies to account numbers and phones only, other labels get placeholders
            unless ``per_label`` names them) or ``"drop"`` (remove the text).
        key: secret for ``"pseudonym"`` and ``"encrypt"`` (str or bytes, required when any label
            uses them, unless ``key_env``/``key_source`` names where to read it). It never
            appears in output, ``repr`` or error messages.
        key_id: id written into ``"encrypt"`` tokens (``[A-Za-z0-9_-]{1,32}``, not secret) so
            keys can rotate; default: a fingerprint of the key
            (:func:`pii_frames.redaction.encryption.key_fingerprint`).
        key_env: name of an environment variable holding the key, read when first needed (a
            pickled Policy then carries only the name). Same as ``key_source="env:NAME"``.
        key_source: where to read the key when first needed: ``"env:NAME"``,
            ``"airflow-variable:NAME"`` or ``"airflow-connection:CONN_ID"`` (its password); see
            :func:`pii_frames.redaction.encryption.resolve_key_source`.
        allow_key_in_pickle: let a Policy with a literal ``key=`` be pickled, key included
            (the pickle then says it holds a secret). By default pickling it raises
            :class:`KeyInPickleError`: a pickle goes to worker processes, task queues and
            object stores, so give the key by reference (``key_env``/``key_source``), which
            pickles as the reference and is read on the worker. Not part of equality or
            :meth:`description` (it changes no output).
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
        recognizers: the pattern recognizers to run beside the model for this policy, replacing
            the Detector's (built-ins by default): a
            :class:`~pii_frames.recognizers.RecognizerSet` or its config (the ``"recognizers"``
            entry of a policy file, e.g. ``{"custom": [{"name": "employee_id", "label":
            "employee_id", "regex": "EMP-\\d{6}"}]}``; see docs/recognizers.md). A Detector
            loaded with ``recognizers=None`` or ``opf_compatible=True`` runs none.

    Example:
        >>> policy = Policy("mask", per_label={"private_person": "pseudonym"}, key="s3cret",
        ...                 deny=["ACME-42"], allow=["Support Team"])
        >>> policy
        Policy(operator='mask', key=<hidden>, per_label={'private_person': 'pseudonym'}, allow=['Support Team'], deny={'ACME-42': 'deny_list'})
        >>> policy.replacement("private_phone", "555-0100")
        '********'
        >>> policy.replacement("private_person", "Ada") == policy.replacement("private_person", "Ada")
        True
        >>> import pickle
        >>> pickle.dumps(policy)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pii_frames.redaction.policy.KeyInPickleError: this Policy holds a literal key, which pickling would copy ...
        >>> pickle.loads(pickle.dumps(Policy("pseudonym", key_env="PII_KEY")))
        Policy(operator='pseudonym', key_source='env:PII_KEY')
    """

    __slots__ = (
        "operator",
        "_key",
        "key_id",
        "key_source",
        "_resolved",
        "labels",
        "per_label",
        "min_score",
        "allow",
        "deny",
        "mask_char",
        "keep_last",
        "recognizers",
        "allow_key_in_pickle",
    )

    def __init__(
        self,
        operator: str = "placeholder",
        *,
        key: str | bytes | None = None,
        key_id: str | None = None,
        key_env: str | None = None,
        key_source: str | None = None,
        labels: Iterable[str] | None = None,
        per_label: Mapping[str, str] | None = None,
        min_score: float = 0.0,
        allow: Iterable[str] = (),
        deny: Iterable[str] | Mapping[str, str] = (),
        mask_char: str = "*",
        keep_last: int = 4,
        recognizers=None,
        allow_key_in_pickle: bool = False,
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
        if key_env is not None:
            if key_source is not None:
                raise ValueError("Policy takes key_env or key_source, not both")
            if not isinstance(key_env, str) or not key_env:
                raise ValueError(f"Policy key_env must name an environment variable, got {key_env!r}")
            key_source = f"env:{key_env}"
        if key_source is not None:
            from .encryption import parse_key_source

            parse_key_source(key_source)
            if key is not None:
                raise ValueError("Policy takes key or key_env/key_source, not both")
        for keyed in KEYED_OPERATORS:
            uses_keyed = operator == keyed or keyed in checked_per_label.values()
            if uses_keyed and key is None and key_source is None:
                raise ValueError(
                    f"Policy operator {keyed!r} needs a secret key: Policy({keyed!r}, key=...) or "
                    f"Policy({keyed!r}, key_env='PII_KEY') (keep the key outside the code, e.g. in an "
                    "environment variable)"
                )
        if key_id is not None:
            from .encryption import KEY_ID_RE

            if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
                raise ValueError(
                    f"Policy key_id must be 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-', got {key_id!r}"
                )
        set_(self, "_key", key)
        set_(self, "key_id", key_id)
        set_(self, "key_source", key_source)
        set_(self, "_resolved", None)  # (secret, EncryptionKey or None), filled when first needed

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
        if recognizers is not None:
            from pii_frames.recognizers import RecognizerSet

            if not isinstance(recognizers, RecognizerSet):
                recognizers = RecognizerSet.from_config(recognizers)
        set_(self, "recognizers", recognizers)
        if not isinstance(allow_key_in_pickle, bool):
            raise TypeError(f"Policy allow_key_in_pickle must be True or False, got {allow_key_in_pickle!r}")
        set_(self, "allow_key_in_pickle", allow_key_in_pickle)

    def __setattr__(self, name, value):
        raise AttributeError("Policy is immutable; build a new one")

    def __reduce__(self):
        # A key by reference travels as the reference; a literal key only when allowed, and then marked.
        if not self.holds_literal_key:
            return (_rebuild_policy, (self._state(),))
        if not self.allow_key_in_pickle:
            raise refuse_key_in_pickle("this Policy")
        return (_rebuild_policy, (self._state(), True, PICKLE_HOLDS_SECRET))

    def __copy__(self) -> Policy:
        return self  # immutable: a copy (which would go through __reduce__) is the same policy

    def __deepcopy__(self, memo: dict) -> Policy:
        return self

    def allowing_key_in_pickle(self) -> Policy:
        """This policy with ``allow_key_in_pickle=True``: its pickles carry the literal key (and say so).

        For a caller that was itself told to carry the key (``SanitizeJob(...,
        allow_key_in_pickle=True)``). A policy without a literal key comes back as it is.

        >>> policy = Policy("pseudonym", key="s3cret").allowing_key_in_pickle()
        >>> import pickle; b"allow_key_in_pickle=True" in pickle.dumps(policy)
        True
        """
        if not self.holds_literal_key or self.allow_key_in_pickle:
            return self
        return _rebuild_policy(self._state(), True)

    def _state(self) -> dict:
        return {
            "operator": self.operator,
            "key": self._key,
            "key_id": self.key_id,
            "key_source": self.key_source,
            "labels": None if self.labels is None else sorted(self.labels),
            "per_label": dict(self.per_label),
            "min_score": self.min_score,
            "allow": sorted(self.allow),
            "deny": dict(self.deny),
            "mask_char": self.mask_char,
            "keep_last": self.keep_last,
            "recognizers": self.recognizers,
        }

    @property
    def has_key(self) -> bool:
        """Whether a key or a key source is set (the key itself is not readable back)."""
        return self._key is not None or self.key_source is not None

    @property
    def holds_literal_key(self) -> bool:
        """Whether the key itself was given (``key=``), rather than where to read it (``key_env``/``key_source``).

        >>> Policy("pseudonym", key="s3cret").holds_literal_key, Policy("pseudonym", key_env="K").holds_literal_key
        (True, False)
        """
        return self._key is not None

    def _secret(self) -> bytes:
        if self._key is not None:
            return self._key
        if self.key_source is None:  # only reachable through per-call operator overrides
            raise ValueError("operators 'pseudonym' and 'encrypt' need a Policy key (key=, key_env= or key_source=)")
        resolved = self._resolved
        if resolved is None:
            from .encryption import resolve_key_source

            resolved = (resolve_key_source(self.key_source), None)
            object.__setattr__(self, "_resolved", resolved)
        return resolved[0]

    def encryption_key(self):
        """The :class:`~pii_frames.redaction.encryption.EncryptionKey` of ``"encrypt"`` tokens.

        Reads ``key_source`` on first use. Its ``key_id`` (not secret) is the one
        written into tokens; an audit can record it.

        Example:
            >>> Policy("encrypt", key="s3cret", key_id="2025-q1").encryption_key()
            EncryptionKey(key_id='2025-q1')
        """
        resolved = self._resolved
        if resolved is None or resolved[1] is None:
            from .encryption import EncryptionKey

            secret = self._secret()
            resolved = (secret, EncryptionKey(secret, key_id=self.key_id))
            object.__setattr__(self, "_resolved", resolved)
        return resolved[1]

    def operator_for(self, label: str) -> str:
        """Operator applied to spans of ``label``.

        A default operator of ``"keep_last"`` applies to the labels in
        :data:`KEEP_LAST_LABELS` only (a name's or an address's tail identifies
        its owner); other labels get placeholders unless ``per_label`` names
        them explicitly.

        Example:
            >>> policy = Policy("keep_last", per_label={"secret": "keep_last"})
            >>> [policy.operator_for(label) for label in ("account_number", "private_person", "secret")]
            ['keep_last', 'placeholder', 'keep_last']
        """
        if label in self.per_label:
            return self.per_label[label]
        if self.operator == "keep_last" and label not in KEEP_LAST_LABELS:
            return "placeholder"
        return self.operator

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
        return OPERATOR_FUNCTIONS[operator or self.operator_for(label)](self, label, value)

    def description(self) -> dict:
        """A JSON-able description of everything that changes the output, for fingerprints and audits.

        Every field but the key and where it is read from, as plain JSON values; recognizers, when the
        policy sets them, by their fingerprint; the key as the tokens it gives for fixed probes, so a new
        key means a new description while the key itself never appears, and a key given literally or by
        reference (``key_env``) describes alike. This is the one description of a policy: jobs hash it
        to decide whether earlier output can be reused.

        Example:
            >>> a = Policy("pseudonym", key="k1").description()
            >>> a["operator"], "k1" in str(a), a == Policy("pseudonym", key="k2").description()
            ('pseudonym', False, False)
            >>> import os; os.environ["PII_DOC_POLICY_KEY"] = "k1"
            >>> a == Policy("pseudonym", key_env="PII_DOC_POLICY_KEY").description()
            True
        """
        described = {}
        for name, value in self._state().items():
            # The key's source changes no output (the probes stand for the key), and a policy without
            # recognizers is described as before policies had them, so earlier fingerprints stay valid.
            if name in ("key", "key_source") or (name == "recognizers" and value is None):
                continue
            if name == "recognizers":
                value = value.fingerprint
            described[name] = jsonable(value)
        if self.has_key:
            described["key"] = [
                OPERATOR_FUNCTIONS["pseudonym"](self, label, f"pii_frames fingerprint probe {label}")
                for label in ("private_person", "private_email", "account_number", "secret")
            ]
        return described

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
        if self.recognizers is not None:
            accepted |= set(self.recognizers.labels)
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
        if self.allow_key_in_pickle:
            parts.append("allow_key_in_pickle=True")
        return f"Policy({', '.join(parts)})"


def jsonable(value):
    """``value`` as plain, ordered JSON values: mappings sorted by key, sets sorted, regexes by pattern.

    >>> jsonable({"b": {2, 1}, "a": (3,)})
    {'a': [3], 'b': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "pattern"):  # compiled regular expressions
        return value.pattern
    return repr(value)


def _rebuild_policy(state: dict, allow_key_in_pickle: bool = False, note: str | None = None) -> Policy:
    # ``note`` is PICKLE_HOLDS_SECRET in pickles that carry a key: it is there to be read, not used.
    return Policy(**state, allow_key_in_pickle=allow_key_in_pickle)


def policy_from_dict(spec: Mapping) -> Policy:
    """Build a :class:`Policy` from a plain mapping (a JSON/YAML file, dbt or Airflow config).

    The one parser of policy specs: every adapter, the CLI and the Airflow
    jobs call it. Keys are :class:`Policy`'s arguments; lists become the
    matching sets. An unknown key or a bad value raises ValueError naming it
    (the key itself is never shown).

    Example:
        >>> policy_from_dict({"operator": "mask", "labels": ["private_person"]}).operator
        'mask'
        >>> policy_from_dict({"operator": "mask", "colour": "red"})
        Traceback (most recent call last):
        ...
        ValueError: invalid policy {'operator': 'mask', 'colour': 'red'}: unknown key(s) ['colour']; known keys: ...
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"a policy spec must be a mapping of Policy arguments, got {type(spec).__name__}")
    spec = dict(spec)
    shown = {name: ("<hidden>" if name == "key" else value) for name, value in spec.items()}
    known = set(_DEFAULT_STATE) | {"key_env", "allow_key_in_pickle"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"invalid policy {shown!r}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    operator = spec.pop("operator", "placeholder")
    try:
        return Policy(operator, **spec)
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid policy {shown!r}: {error}") from None


def as_policy(policy) -> Policy | None:
    """``None``, a :class:`Policy` or a mapping of its arguments, as a Policy (None stays None).

    Example:
        >>> as_policy({"operator": "drop"})
        Policy(operator='drop')
    """
    if policy is None or isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return policy_from_dict(policy)
    raise TypeError(f"policy must be a pii_frames.Policy or a dict of its arguments, got {type(policy).__name__}")


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
    "key_id": None,
    "key_source": None,
    "labels": None,
    "per_label": {},
    "min_score": 0.0,
    "allow": [],
    "deny": {},
    "mask_char": "*",
    "keep_last": 4,
    "recognizers": None,
}
