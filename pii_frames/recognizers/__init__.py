"""Validated patterns and custom rules that run beside the model.

Built-in recognizers find identifiers that have a checksum or a fixed format
(payment cards, IBANs, national IDs, e-mail addresses, URLs, IP addresses,
phone numbers through ``phonenumbers``, API tokens, private keys, passwords in
config lines); custom ones add a team's own IDs in one line. All regexes of a
:class:`RecognizerSet` run in one pass per text; :func:`merge_spans` combines
their spans with the model's under one rule. See docs/recognizers.md.

Example:
    >>> from pii_frames.recognizers import Recognizer, RecognizerSet
    >>> rs = RecognizerSet.default().with_custom(Recognizer(name="employee_id", label="employee_id", regex=r"EMP-\\d{6}"))
    >>> [s.label for s in rs.find("EMP-123456 mailed jane@example.com")]
    ['employee_id', 'private_email']
"""

from .builtin import BUILTIN_NAMES, BUILTINS, builtin
from .custom import DEFAULT_CONTEXT_BOOST, VALIDATORS, Recognizer, validator_names
from .merge import SOURCES, merge_spans
from .scanner import RECOGNIZERS_VERSION
from .sets import RecognizerSet

__all__ = [
    "BUILTINS",
    "BUILTIN_NAMES",
    "DEFAULT_CONTEXT_BOOST",
    "RECOGNIZERS_VERSION",
    "SOURCES",
    "VALIDATORS",
    "Recognizer",
    "RecognizerSet",
    "builtin",
    "merge_spans",
    "validator_names",
]
