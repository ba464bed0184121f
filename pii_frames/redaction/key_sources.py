"""Where an encryption or pseudonym key comes from: the key itself, or the name of where to read it.

A :class:`~pii_frames.Policy` given ``key_env="NAME"`` or ``key_source="kind:name"`` carries only that
name (configs, pickles and task parameters never hold the key); :func:`resolve_key_source` reads the key
where the redaction runs: an environment variable, an Airflow Variable or an Airflow Connection's password.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["KEY_SOURCE_KINDS", "parse_key_source", "resolve_key_source", "secret_bytes"]

KEY_SOURCE_KINDS = ("env", "airflow-variable", "airflow-connection")


def secret_bytes(secret: Any, what: str = "key") -> bytes:
    """A key given as ``str`` (UTF-8) or bytes, as bytes; empty or other types are refused.

    >>> secret_bytes("k1")
    b'k1'
    """
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    elif isinstance(secret, (bytearray, memoryview)):
        secret = bytes(secret)
    if not isinstance(secret, bytes):
        raise TypeError(f"the encryption {what} must be str or bytes, got {type(secret).__name__}")
    if not secret:
        raise ValueError(f"the encryption {what} must not be empty")
    return secret


def resolve_key_source(source: str) -> bytes:
    """Read a key from where ``source`` points, so configs and pickles carry only a name.

    Forms:

    - ``"env:NAME"``: the environment variable ``NAME``;
    - ``"airflow-variable:NAME"``: the Airflow Variable ``NAME``
      (``airflow.sdk.Variable``, imported only here; without Airflow installed,
      the variable ``AIRFLOW_VAR_<NAME>`` that Airflow itself would read);
    - ``"airflow-connection:CONN_ID"``: the password of that Airflow
      Connection (without Airflow: ``AIRFLOW_CONN_<CONN_ID>``, a URI or JSON).

    Errors name the source, never a value.

    Example:
        >>> import os
        >>> os.environ["PII_DOC_KEY"] = "s3cret"
        >>> resolve_key_source("env:PII_DOC_KEY")
        b's3cret'
        >>> resolve_key_source("env:PII_DOC_MISSING")
        Traceback (most recent call last):
        ...
        ValueError: encryption key source 'env:PII_DOC_MISSING': the environment variable PII_DOC_MISSING is not set or empty
    """
    kind, name = parse_key_source(source)
    if kind == "env":
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"encryption key source {source!r}: the environment variable {name} is not set or empty")
    elif kind == "airflow-variable":
        value = _airflow_variable(name, source)
    else:
        value = _airflow_connection_password(name, source)
    if not value:
        raise ValueError(f"encryption key source {source!r} is empty")
    return secret_bytes(value)


def parse_key_source(source: Any) -> tuple[str, str]:
    """Split ``"kind:name"`` and check both parts.

    >>> parse_key_source("airflow-variable:pii_key")
    ('airflow-variable', 'pii_key')
    """
    if not isinstance(source, str) or ":" not in source:
        raise ValueError(
            f"key source must be 'env:NAME', 'airflow-variable:NAME' or 'airflow-connection:CONN_ID', got {source!r}"
        )
    kind, _, name = source.partition(":")
    if kind not in KEY_SOURCE_KINDS or not name.strip() or name != name.strip():
        raise ValueError(
            f"key source must be 'env:NAME', 'airflow-variable:NAME' or 'airflow-connection:CONN_ID', got {source!r}"
        )
    return kind, name


def _airflow_variable(name: str, source: str) -> str:
    try:
        from airflow.sdk import Variable
    except ImportError:
        return _from_env(f"AIRFLOW_VAR_{name.upper()}", source)
    try:
        value = Variable.get(name)
    except Exception as error:  # Airflow raises its own not-found types, which vary by version
        raise ValueError(
            f"encryption key source {source!r}: Airflow Variable {name!r} cannot be read ({type(error).__name__})"
        ) from None
    return value


def _airflow_connection_password(conn_id: str, source: str) -> str:
    try:
        from airflow.sdk import Connection
    except ImportError:
        return _password_from_connection_text(_from_env(f"AIRFLOW_CONN_{conn_id.upper()}", source), source)
    try:
        connection = Connection.get(conn_id)
    except Exception as error:
        raise ValueError(
            f"encryption key source {source!r}: Airflow Connection {conn_id!r} cannot be read ({type(error).__name__})"
        ) from None
    if not connection.password:
        raise ValueError(f"encryption key source {source!r}: Airflow Connection {conn_id!r} has no password")
    return connection.password


def _from_env(variable: str, source: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ValueError(
            f"encryption key source {source!r}: Airflow is not installed and the environment variable "
            f"{variable} is not set or empty"
        )
    return value


def _password_from_connection_text(text: str, source: str) -> str:
    if text.lstrip().startswith("{"):
        try:
            password = json.loads(text).get("password")
        except (ValueError, AttributeError):
            password = None
    else:
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        password = None if password is None else unquote(password)
    if not password:
        raise ValueError(f"encryption key source {source!r}: the connection has no password")
    return password
