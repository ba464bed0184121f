"""What the Ray and Spark adapters share: checking what gets shipped to workers, threads, row errors.

Everything a cluster adapter sends to its workers is pickled: into Ray's
object store (actor constructor arguments) or into every Spark task closure.
So it must be small (a model *name or path*, never a loaded Detector with its
weights) and it must hold no secret: a :class:`pii_frames.Policy` with a
literal ``key=`` would travel, key included, to every worker and into the
cluster's object store and logs of failed tasks. Keys travel by reference
instead (``Policy("pseudonym", key_env="PII_KEY")``), and each worker reads
the variable, which the cluster's secret store provides.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pii_frames.arrow import split_options
from pii_frames.redaction.policy import refuse_key_in_pickle

__all__ = ["worker_options", "threads_for", "rows_named"]


def worker_options(model: Any, policy: Any, options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Check ``model``/``policy``/``options`` can go to workers; return the options to ship.

    The result holds ``policy`` (as a :class:`~pii_frames.Policy`) and the
    other options, ready for :func:`pii_frames.arrow.split_options` on the
    worker. ``where`` names the caller in error messages.

    >>> worker_options("default", {"operator": "mask"}, {"on_error": "null"}, where="pii_frames.ray.redact")
    {'on_error': 'null', 'policy': Policy(operator='mask')}
    >>> worker_options(None, {"operator": "pseudonym", "key": "s3cret"}, {}, where="pii_frames.spark.redact_col")
    Traceback (most recent call last):
    ...
    pii_frames.redaction.policy.KeyInPickleError: pii_frames.spark.redact_col: the policy holds a literal key, which pickling would copy to wherever the pickle goes (worker processes, task queues, object stores, disk); give the key by reference, e.g. Policy('pseudonym', key_env='PII_KEY') with PII_KEY set on the workers from the cluster's secret store (read where the policy is used), or pass allow_key_in_pickle=True to carry it on purpose
    """
    if model is not None and hasattr(model, "detect_arrow"):
        raise TypeError(
            f"{where}: model= is a loaded Detector, which would ship its weights to every worker; pass the "
            "checkpoint directory or model name instead (each worker loads it once, from its own disk)"
        )
    load_options, detect_options = split_options({**options, "policy": policy})
    shipped_policy = detect_options.get("policy")
    if shipped_policy is not None and shipped_policy.holds_literal_key and not shipped_policy.allow_key_in_pickle:
        # Policy's own pickling would refuse too, but only once the cluster is already scheduling work.
        keyed = next((op for op in ("pseudonym", "encrypt") if op == shipped_policy.operator
                      or op in shipped_policy.per_label.values()), "pseudonym")
        raise refuse_key_in_pickle(
            f"{where}: the policy",
            f"Policy({keyed!r}, key_env='PII_KEY') with PII_KEY set on the workers from the cluster's secret store",
        )
    return {**load_options, **detect_options}


def threads_for(cpus: float | int | None) -> int | None:
    """Torch threads for a worker granted ``cpus`` CPUs: whole CPUs, at least one (None: engine default).

    Rounded down, so fractional grants never oversubscribe the node.

    >>> threads_for(4), threads_for(1.5), threads_for(0.25), threads_for(None)
    (4, 1, 1, None)
    """
    if cpus is None:
        return None
    return max(1, math.floor(cpus))


@contextmanager
def rows_named(where: str, offset: int = 0) -> Iterator[None]:
    """Re-raise a :class:`~pii_frames.RowError` with where its batch sits (row numbers shifted by ``offset``).

    Workers see batches, not tables: the engine numbers rows from the start
    of its batch, so the error says which batch that was.

    >>> from pii_frames.engine.rows import RowError
    >>> with rows_named("Spark partition 3", offset=1000):
    ...     raise RowError(2, ValueError("bad bytes"), "column 'body'")
    Traceback (most recent call last):
    ...
    pii_frames.engine.rows.RowError: column 'body' (Spark partition 3), row 1002: ValueError: bad bytes (pass on_error='null' to keep the other rows)
    """
    from pii_frames.engine.rows import RowError

    try:
        yield
    except RowError as error:
        column = f"{error.column} ({where})" if error.column else where
        raise RowError(error.row + offset, error.cause, column) from None
