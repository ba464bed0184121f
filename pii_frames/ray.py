"""Redact PII in Ray Datasets: a pool of actors, each loading the model once.

Install with ``pip install "pii_frames[ray]"``. On a cluster::

    import ray, pii_frames.ray as pii_ray
    ds = ray.data.read_parquet("s3://bucket/tickets/")
    clean = pii_ray.redact(ds, ["body"], spans=True, actors=(2, 8), num_cpus=4)
    clean.write_parquet("s3://bucket/tickets_clean/")

(docs/distributed.md: model files, GPUs, memory per worker, submitting from Airflow.)

How it runs: ``map_batches`` with a callable class, ``batch_format="pyarrow"``
and ``compute=ray.data.ActorPoolStrategy(...)``. Each actor loads the model in
its constructor (from its own disk: the constructor gets the model's *name or
path*, never weights), runs one warm-up row, then hands every batch to
:func:`pii_frames.arrow.redact_table` (the same engine path as every other
adapter: deduplication, length-sorted packing, the result cache). Output types
come from :mod:`pii_frames.engine.schema`, so an empty or all-null block has
the same schema as a full one.

- ``num_cpus`` per actor also sets its torch threads (whole CPUs, at least
  one). ``num_gpus`` (fractions allowed: ``0.5`` puts two actors on one
  device) moves the model to CUDA.
- Blocks larger than ``batch_size`` rows are split first (a streaming
  repartition, no shuffle), so a single-block dataset such as
  ``ray.data.from_arrow(table)`` still gives every actor work.
- Ray does not keep row order across actors; ``preserve_order=True`` asks it
  to (slower: results wait for the slowest batch). Carry an id column if you
  join the results back.
- Bad rows follow ``on_error`` exactly as elsewhere: ``"raise"`` fails the
  job naming the column and the row (counted from the start of its batch),
  ``"null"`` sets that row to null and warns in the actor's log. Nulls stay
  null.
- Everything given here is pickled to the actors. A policy key must travel by
  reference (``Policy("pseudonym", key_env="PII_KEY")``, the variable set on
  the workers from your secret store); a literal ``key=`` is refused.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import ray
import ray.data

from pii_frames._workers import rows_named, threads_for, worker_options
from pii_frames.arrow import detect_table, redact_table, resolve_detector, split_options
from pii_frames.engine.schema import is_text_type

__all__ = ["redact", "detect", "DEFAULT_BATCH_SIZE", "DETECT_SUFFIX", "WARM_UP_TEXT"]

DEFAULT_BATCH_SIZE = 1024
TASKS_IN_FLIGHT_PER_ACTOR = 2
# Default name of the column detect() adds.
DETECT_SUFFIX = "_pii"
# One short row run in every actor's constructor, so kernel selection and
# scripted expert groups are ready before the first real batch is timed.
WARM_UP_TEXT = "Warm-up: write to ann.lee@example.com or call +1 415 555 0100."


class _PiiBatches:
    """The callable class handed to ``map_batches``: one model per actor, Arrow batches in and out.

    Constructor arguments are what the actor gets through Ray's object store:
    column names, the model's name or path and small options only.
    """

    def __init__(self, mode: str, columns: list[str], model: Any, options: dict[str, Any],
                 spans: bool, category: bool, into: str | None):
        self.mode = mode
        self.columns = columns
        self.spans = spans
        self.category = category
        self.into = into
        load_options, self.detect_options = split_options(options)
        # The process-wide shared Detector: loaded here, once per actor.
        self.detector = resolve_detector(model, **load_options)
        self.detector.detect_arrow(pa.array([WARM_UP_TEXT]), policy=self.detect_options.get("policy"))

    def __call__(self, batch: pa.Table) -> pa.Table:
        where = f"row numbers count from the start of this {batch.num_rows}-row Ray batch"
        with rows_named(where):
            if self.mode == "redact":
                return redact_table(batch, self.columns, model=self.detector, spans=self.spans,
                                    category=self.category, **self.detect_options)
            (column,) = self.columns
            result = detect_table(batch, [column], model=self.detector, **self.detect_options)[column]
        return batch.add_column(batch.schema.get_field_index(column) + 1, pa.field(self.into, result.type), result)


def _check_actors(actors: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(actors, bool):
        raise TypeError(f"actors must be an int or a (min, max) tuple, got {actors!r}")
    if isinstance(actors, int):
        low = high = actors
    elif isinstance(actors, tuple) and len(actors) == 2 and all(
        isinstance(a, int) and not isinstance(a, bool) for a in actors
    ):
        low, high = actors
    else:
        raise TypeError(f"actors must be an int or a (min, max) tuple of ints, got {actors!r}")
    if low < 1 or high < low:
        raise ValueError(f"actors={actors!r}: need 1 <= min <= max (for example actors=2 or actors=(1, 8))")
    return low, high


def _check_columns(ds: ray.data.Dataset, columns: list[str], *, where: str) -> None:
    """Fail before any actor starts when the schema is already known (no data is read for this)."""
    schema = ds.schema(fetch_if_missing=False)
    if schema is None:
        return
    names = list(schema.names)
    missing = [name for name in columns if name not in names]
    if missing:
        raise KeyError(f"{where}: column(s) {missing} not found; the dataset has columns {names}")
    for name, arrow_type in zip(names, schema.types):
        if name in columns and isinstance(arrow_type, pa.DataType) and not is_text_type(arrow_type):
            raise TypeError(
                f"{where}: column {name!r} has type {arrow_type}, but PII detection needs text; cast it to "
                "string first"
            )


def _supports(function, argument: str) -> bool:
    return argument in inspect.signature(function).parameters


def _spread(ds: ray.data.Dataset, batch_size: int, actors: int) -> ray.data.Dataset:
    """Split blocks bigger than a batch so every actor of the pool gets work."""
    if actors < 2:
        return ds
    if _supports(ray.data.Dataset.repartition, "target_num_rows_per_block"):
        return ds.repartition(target_num_rows_per_block=batch_size)
    # Ray without streaming repartition: only materialized datasets know their block count cheaply.
    if isinstance(ds, ray.data.MaterializedDataset) and ds.num_blocks() < actors:
        return ds.repartition(actors)
    return ds


def _warn_if_no_cpu_left(actors: int, num_cpus: float | None, where: str) -> None:
    """Warn when the pool's minimum takes every CPU of the running cluster: Ray then waits for ever."""
    if not num_cpus or not ray.is_initialized():
        return
    total = ray.cluster_resources().get("CPU", 0)
    if total and actors * num_cpus >= total:
        warnings.warn(
            f"{where}: {actors} actor(s) x num_cpus={num_cpus} reserve all {total:g} CPUs of the cluster, but "
            "Ray's read and write tasks need CPUs too: unless the cluster adds nodes, the job waits for ever; "
            "lower num_cpus (fractions are fine) or the number of actors",
            RuntimeWarning,
            stacklevel=4,
        )


def _run(ds, mode: str, columns: list[str], *, into, model, policy, spans, category, batch_size, actors,
         num_cpus, num_gpus, memory, preserve_order, options, where: str) -> ray.data.Dataset:
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(f"{where}: expected a ray.data.Dataset, got {type(ds).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    low, high = _check_actors(actors)
    if num_cpus is not None and num_cpus < 0 or num_gpus is not None and num_gpus < 0:
        raise ValueError(f"{where}: num_cpus and num_gpus must be >= 0, got {num_cpus!r} and {num_gpus!r}")
    _check_columns(ds, columns, where=where)
    shipped = worker_options(model, policy, options, where=where)
    if num_gpus:
        shipped.setdefault("device", "cuda")  # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU
    elif shipped.get("threads") is None and threads_for(num_cpus) is not None:
        shipped["threads"] = threads_for(num_cpus)

    _warn_if_no_cpu_left(low, num_cpus, where)
    pool: dict[str, Any] = {"size": low} if low == high else {"min_size": low, "max_size": high}
    if _supports(ray.data.ActorPoolStrategy, "max_tasks_in_flight_per_actor"):
        # A batch keeps an actor busy for seconds: queue one more behind it (hides the transfer) rather
        # than Ray's default of several, which piles the first batches on the first actor ready.
        pool["max_tasks_in_flight_per_actor"] = TASKS_IN_FLIGHT_PER_ACTOR
    strategy = ray.data.ActorPoolStrategy(**pool)
    named: dict[str, Any] = {}
    if _supports(ray.data.Dataset.map_batches, "udf_modifying_row_count"):
        named["udf_modifying_row_count"] = False  # one output row per input row
    out = _spread(ds, batch_size, high).map_batches(
        _PiiBatches,
        fn_constructor_kwargs={
            "mode": mode, "columns": columns, "model": model, "options": shipped,
            "spans": spans, "category": category, "into": into,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=strategy,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        memory=memory,
        **named,
    )
    if preserve_order:
        try:
            # A deep copy owns its DataContext, so the caller's dataset keeps its own setting.
            out = ray.data.Dataset.copy(out, _deep_copy=True)
        except TypeError:
            pass
        out.context.execution_options.preserve_order = True
    return out


def redact(
    ds: ray.data.Dataset,
    columns: str | Iterable[str],
    *,
    model: Any = None,
    policy: Any = None,
    spans: bool = False,
    category: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actors: int | tuple[int, int] = 1,
    num_cpus: float | None = 1,
    num_gpus: float | None = None,
    memory: float | None = None,
    preserve_order: bool = False,
    **options: Any,
) -> ray.data.Dataset:
    """Return ``ds`` with each of ``columns`` replaced by its redacted text (lazy, like any Ray transform).

    ``spans=True`` adds ``<column>_pii_spans`` (label, start, end, score,
    source; no raw text) and ``category=True`` adds ``<column>_pii_category``
    right after each column. ``model``: a checkpoint directory or model name
    every worker can read (None: ``PII_FRAMES_MODEL``, a local
    openai/privacy-filter, the embedded model). ``policy``: a
    :class:`~pii_frames.Policy` or a dict of its arguments (keys by
    reference only). ``actors``: a fixed pool size or ``(min, max)`` for an
    autoscaling pool; ``num_cpus``/``num_gpus``/``memory``: what each actor
    reserves. Other keywords (``on_error``, ``output_mode``, ``device``,
    ``dtype``, ...) as in :func:`pii_frames.arrow.redact_table`.

    Leave CPUs for reading and writing: on a 2-CPU machine, two actors of
    ``num_cpus=1`` take every CPU and Ray waits forever for the read tasks.

    >>> import ray, pyarrow as pa, pii_frames.ray as pii_ray
    >>> ds = ray.data.from_arrow(pa.table({"id": [1, 2], "body": ["Reply to ann@example.com", None]}))
    >>> pii_ray.redact(ds, "body", model="default", num_cpus=0.5, preserve_order=True).take_all()
    [{'id': 1, 'body': 'Reply to <PRIVATE_EMAIL>'}, {'id': 2, 'body': None}]
    """
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names:
        raise ValueError("pii_frames.ray.redact: columns is empty; name the text column(s) to redact")
    return _run(
        ds, "redact", names, into=None, model=model, policy=policy, spans=spans, category=category,
        batch_size=batch_size, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        preserve_order=preserve_order, options=options, where="pii_frames.ray.redact",
    )


def detect(
    ds: ray.data.Dataset,
    column: str,
    *,
    into: str | None = None,
    model: Any = None,
    policy: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actors: int | tuple[int, int] = 1,
    num_cpus: float | None = 1,
    num_gpus: float | None = None,
    memory: float | None = None,
    preserve_order: bool = False,
    **options: Any,
) -> ray.data.Dataset:
    """Return ``ds`` with a detect struct column added right after ``column`` (named ``into``).

    ``into`` defaults to ``<column>_pii``; its type is
    :func:`pii_frames.engine.schema.detect_type` (``redacted_text``,
    ``spans``, ``category``, ``labels``; ``with_text=True`` adds the raw span
    text, which is PII). The original column is kept, so this is for
    analysis, not for publishing. Other arguments as in :func:`redact`.

    >>> import ray, pyarrow as pa, pii_frames.ray as pii_ray
    >>> ds = ray.data.from_arrow(pa.table({"body": ["Reply to ann@example.com"]}))
    >>> row = pii_ray.detect(ds, "body", model="default", num_cpus=0.5).take_all()[0]
    >>> row["body"], row["body_pii"]["redacted_text"], [span["label"] for span in row["body_pii"]["spans"]]
    ('Reply to ann@example.com', 'Reply to <PRIVATE_EMAIL>', ['private_email'])
    """
    if not isinstance(column, str):
        raise TypeError(f"pii_frames.ray.detect: column must be one column name, got {column!r}")
    into = into or column + DETECT_SUFFIX
    schema = ds.schema(fetch_if_missing=False) if isinstance(ds, ray.data.Dataset) else None
    if schema is not None and into in schema.names:
        raise ValueError(f"pii_frames.ray.detect: column {into!r} already exists; pass another into=")
    return _run(
        ds, "detect", [column], into=into, model=model, policy=policy, spans=False, category=False,
        batch_size=batch_size, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        preserve_order=preserve_order, options=options, where="pii_frames.ray.detect",
    )
