"""Process-wide settings read from ``PII_FRAMES_*`` environment variables.

Every adapter (Polars, DuckDB, pandas, the CLI, Airflow, dbt) goes through
:func:`pii_frames.load`, so one place decides the defaults:

=============================  ==============================================
variable                       meaning
=============================  ==============================================
``PII_FRAMES_MODEL``           checkpoint directory or known model name
``PII_FRAMES_DEVICE``          ``auto`` (default), ``cpu``, ``cuda``, ``cuda:1``
``PII_FRAMES_DTYPE``           weight dtype: ``float32``, ``float16``, ``bfloat16``
``PII_FRAMES_TOKEN_BUDGET``    tokens per forward batch, padding included
``PII_FRAMES_N_CTX``           window length for long documents
``PII_FRAMES_THREADS``         torch CPU threads used during inference
``PII_FRAMES_PROGRESS``        ``1`` forces progress bars, ``0`` hides them
=============================  ==============================================
"""

from __future__ import annotations

import os

TRUTHY = {"1", "true", "yes", "on"}
FALSY = {"0", "false", "no", "off"}


def env_str(name: str) -> str | None:
    """Return a stripped environment value, or None when unset or empty.

    >>> env_str("PII_FRAMES_SURELY_UNSET_VARIABLE") is None
    True
    """
    value = os.environ.get(name, "").strip()
    return value or None


def env_int(name: str) -> int | None:
    """Return a positive integer setting, with an error that names the variable.

    >>> env_int("PII_FRAMES_SURELY_UNSET_VARIABLE") is None
    True
    """
    raw = env_str(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to a positive whole number or unset it") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive; set it to a positive whole number or unset it")
    return value


def env_flag(name: str) -> bool | None:
    """Return True/False for a boolean setting, None when unset.

    >>> env_flag("PII_FRAMES_SURELY_UNSET_VARIABLE") is None
    True
    """
    raw = env_str(name)
    if raw is None:
        return None
    if raw.lower() in TRUTHY:
        return True
    if raw.lower() in FALSY:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")
