"""The parameters of a table job as Airflow hands them over: columns, flags and the policy, from plain values,
JSON, Python literals (what Jinja renders without native objects) or the strings Jinja renders for None.
"""

from __future__ import annotations

import ast
import json
from typing import Any, Mapping

__all__ = ["flag", "hidden_spec", "literal_key_in", "optional_text", "parse_columns", "parse_literal", "resolve_policy"]


def parse_columns(columns: Any) -> list[str]:
    """Normalize the ``columns`` parameter: a list, a JSON list, or comma-separated names.

    >>> parse_columns("body, notes")
    ['body', 'notes']
    >>> parse_columns('["body"]')
    ['body']
    """
    if isinstance(columns, str):
        text = columns.strip()
        if text.startswith("["):
            columns = parse_literal(text, "columns")
        else:
            columns = [part.strip() for part in text.split(",")]
    if not isinstance(columns, (list, tuple)) or not columns:
        raise ValueError(f"columns must name at least one text column, got {columns!r}")
    names = [str(name).strip() for name in columns]
    if any(not name for name in names):
        raise ValueError(f"columns holds an empty name: {columns!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"columns names a column twice: {columns!r}")
    return names


def parse_literal(text: str, name: str) -> Any:
    """JSON, or the Python literal Jinja renders for a list/dict when a DAG does not render native objects."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{name} is neither JSON nor a Python literal: {text[:200]!r}") from None


def optional_text(value: Any) -> str | None:
    """Treat blanks and the strings Jinja renders for None ("None", "null") as unset."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "none", "null") else text


def flag(value: Any, name: str) -> bool:
    """A boolean parameter: a bool, or a string such as ``"true"``/``"off"``; anything else is a ValueError naming it."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", "", "none"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def resolve_policy(spec: Any):
    """Turn the ``policy`` parameter into a :class:`pii_frames.Policy` (or None for the default).

    Accepts a Policy, a dict of Policy arguments, its JSON text, or an operator name.
    Give a pseudonym/encrypt key by reference, ``{"key_env": "PII_KEY"}`` (or
    ``"key_source"``): it is read where the job runs and never travels.

    >>> resolve_policy(None) is None
    True
    >>> resolve_policy('{"operator": "mask"}').operator
    'mask'
    """
    if spec is None:
        return None
    from pii_frames.redaction.policy import Policy

    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "none", "null", "default"):
            return None
        if text.startswith("{"):
            spec = parse_literal(text, "policy")
        else:
            spec = {"operator": text}
    if not isinstance(spec, Mapping):
        raise TypeError(f"policy must be a pii_frames.Policy, a dict, JSON text or an operator name, got {spec!r}")
    from pii_frames.redaction.policy import policy_from_dict

    return policy_from_dict(spec)


def literal_key_in(spec: Any, policy: Any) -> bool:
    """Whether the policy holds its key itself (rather than the name of where to read it)."""
    if policy is None or not getattr(policy, "has_key", False):
        return False
    return getattr(policy, "key_source", None) is None


def hidden_spec(spec: Any, policy: Any) -> Any:
    """The ``policy`` parameter as it may be shown: a literal key replaced by ``<hidden>``."""
    if isinstance(spec, Mapping):
        return {k: ("<hidden>" if k == "key" else v) for k, v in spec.items()}
    if isinstance(spec, str) and spec.strip().startswith("{"):
        return policy  # JSON text with a key inside: show the parsed Policy, whose repr hides it
    return spec
