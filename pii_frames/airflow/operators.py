"""Airflow 3 operator and TaskFlow tasks that sanitize a whole table with pii_frames.

Two ways to use it, both resumable and idempotent (see :mod:`pii_frames.airflow.jobs`):

- :class:`PiiSanitizeOperator`: one task does everything (plan, every chunk,
  publish). Simple; fine for tables one worker handles in reasonable time.
- :func:`pii_sanitize_table`: a task group ``plan_chunks`` ->
  ``sanitize_chunk`` (dynamically mapped, one task per chunk, parallel on any
  executor, optionally on a GPU pool/queue) -> ``publish``.

Both emit an Airflow Asset event for the output through an
:class:`~airflow.sdk.AssetAlias` (the destination is usually templated, so the
concrete Asset is only known at run time). Importing this module is light: the
model, pyarrow and the job code load inside ``execute``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from airflow.sdk import Asset, AssetAlias, BaseOperator, get_current_context, task, task_group

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_ASSET_ALIAS = "pii_frames_sanitized"

#: Parameters shared by the operator, the TaskFlow tasks and :class:`~pii_frames.airflow.jobs.SanitizeJob`.
JOB_FIELDS = (
    "source",
    "columns",
    "destination",
    "policy",
    "model",
    "device",
    "dtype",
    "include_spans",
    "include_category",
    "rows_per_chunk",
    "max_chunks",
    "work_dir",
    "audit_destination",
    "detect_options",
    "overwrite",
)


def _make_job(job: dict[str, Any]):
    from pii_frames.airflow.jobs import SanitizeJob

    unknown = sorted(set(job) - set(JOB_FIELDS))
    if unknown:
        raise TypeError(f"unknown pii_frames job parameter(s) {unknown}; known: {list(JOB_FIELDS)}")
    return SanitizeJob(**job)


def emit_asset_event(context: Context, summary: dict[str, Any], asset_alias: str | None) -> None:
    """Attach an Asset event for the published output to ``asset_alias`` (skipped when nothing changed).

    The event's extra carries rows, chunks, spans per label, model revisions,
    policy hash and output digest, so consumers can react without reading the audit.
    """
    if not asset_alias or not summary.get("changed"):
        return
    extra = {
        key: summary[key]
        for key in ("rows", "chunks", "spans_by_label", "model_ids", "policy_hash", "digest", "audit_destination")
    }
    context["outlet_events"][AssetAlias(asset_alias)].add(Asset(uri=summary["asset_uri"]), extra=extra)


def _with_alias(outlets: Any, asset_alias: str | None) -> list:
    outlets = list(outlets or [])
    if asset_alias and not any(isinstance(o, AssetAlias) and o.name == asset_alias for o in outlets):
        outlets.append(AssetAlias(asset_alias))
    return outlets


class PiiSanitizeOperator(BaseOperator):
    """Redact personal data in text columns of a table and publish a sanitized copy, in one task.

    :param source: Parquet file or folder path, or ``duckdb:///path.db::schema.table``.
    :param columns: text columns to sanitize (list, JSON list, or comma-separated names).
    :param destination: Parquet folder path, or ``duckdb:///path.db::schema.table``.
    :param policy: ``pii_frames.Policy``, a dict of its arguments (e.g.
        ``{"operator": "mask", "labels": ["private_email"]}``), its JSON, or an operator name.
    :param model: checkpoint directory or model name; None uses ``PII_FRAMES_MODEL``,
        then a local openai/privacy-filter, then the embedded default model.
    :param device: ``cpu``, ``cuda``...; None uses ``PII_FRAMES_DEVICE`` or auto-detection.
    :param include_spans: add ``<column>_pii_spans`` (label, start, end, score).
    :param include_category: add ``<column>_pii_category`` (multitask checkpoints).
    :param rows_per_chunk: target rows per resumable chunk.
    :param work_dir: where chunk outputs are kept for resuming (default: next to the destination).
    :param audit_destination: audit table location (default ``<dest>_pii_audit.parquet`` or
        ``<table>_pii_audit`` in the destination database).
    :param detect_options: extra ``Detector.detect_arrow`` options (``decode_mode``, ``on_error``...).
    :param overwrite: replace an existing destination or audit that pii_frames did not write
        (default False: such a run fails before any model work; the source is never replaced).
    :param asset_alias: AssetAlias the output's Asset event is attached to (None: no event).

    Returns (XCom) the publish summary: rows, chunks, changed, recomputed, spans_by_label...

    Example::

        from pii_frames.airflow import PiiSanitizeOperator

        PiiSanitizeOperator(
            task_id="sanitize_tickets",
            source="/data/raw/tickets/",
            columns=["subject", "body"],
            destination="duckdb:///data/warehouse.db::clean.tickets",
            policy={"operator": "placeholder"},
        )
    """

    template_fields: Sequence[str] = (
        "source",
        "columns",
        "destination",
        "policy",
        "model",
        "device",
        "dtype",
        "work_dir",
        "audit_destination",
        "detect_options",
    )
    template_fields_renderers = {"policy": "json", "detect_options": "json", "columns": "json"}
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        source: str,
        columns: Any,
        destination: str,
        policy: Any = None,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        include_spans: bool = False,
        include_category: bool = False,
        rows_per_chunk: int = 50_000,
        max_chunks: int = 1024,
        work_dir: str | None = None,
        audit_destination: str | None = None,
        detect_options: dict[str, Any] | None = None,
        overwrite: bool = False,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        **kwargs: Any,
    ) -> None:
        kwargs["outlets"] = _with_alias(kwargs.get("outlets"), asset_alias)
        super().__init__(**kwargs)
        self.source = source
        self.columns = columns
        self.destination = destination
        self.policy = policy
        self.model = model
        self.device = device
        self.dtype = dtype
        self.include_spans = include_spans
        self.include_category = include_category
        self.rows_per_chunk = rows_per_chunk
        self.max_chunks = max_chunks
        self.work_dir = work_dir
        self.audit_destination = audit_destination
        self.detect_options = detect_options
        self.overwrite = overwrite
        self.asset_alias = asset_alias

    def execute(self, context: Context) -> dict[str, Any]:
        job = _make_job({name: getattr(self, name) for name in JOB_FIELDS})
        summary = job.run(run_id=context["run_id"])
        emit_asset_event(context, summary, self.asset_alias)
        return summary


# ----------------------------------------------------------------------------- TaskFlow


@task(task_id="plan_chunks")
def plan_chunks(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Split the source into chunks; the list is what ``sanitize_chunk`` is mapped over."""
    return _make_job(job).plan()


@task(task_id="sanitize_chunk", map_index_template="chunk {{ pii_frames_chunk }}")
def sanitize_chunk(chunk: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Sanitize one chunk (or reuse its output when its fingerprint already has one); returns small stats."""
    context = get_current_context()
    context["pii_frames_chunk"] = chunk["index"]  # type: ignore[typeddict-unknown-key]  # names the mapped task in the UI
    return _make_job(job).sanitize_chunk(chunk, run_id=context["run_id"])


@task(task_id="publish")
def publish(
    plan: list[dict[str, Any]], results: list[dict[str, Any]], job: dict[str, Any], asset_alias: str | None = None
) -> dict[str, Any]:
    """Check row counts chunk by chunk, publish the output and its audit table, emit the Asset event."""
    # One slice request reads every mapped result; iterating the lazy sequence instead reads item by item
    # until a lookup past the end fails, which Airflow logs as "[error] XCom not found ... offset=N".
    summary = _make_job(job).publish(plan, list(results[:]))
    emit_asset_event(get_current_context(), summary, asset_alias)
    return summary


def pii_sanitize_table(
    *,
    source: str,
    columns: Any,
    destination: str,
    policy: Any = None,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    include_spans: bool = False,
    include_category: bool = False,
    rows_per_chunk: int = 50_000,
    max_chunks: int = 1024,
    work_dir: str | None = None,
    audit_destination: str | None = None,
    detect_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    asset_alias: str | None = DEFAULT_ASSET_ALIAS,
    pool: str | None = None,
    queue: str | None = None,
    max_parallel_chunks: int | None = None,
    group_id: str = "pii_sanitize",
):
    """Add a ``plan_chunks -> sanitize_chunk (mapped) -> publish`` task group to the current DAG.

    Parameters are those of :class:`PiiSanitizeOperator` (all templated, e.g.
    ``"{{ params.source }}"``), plus where the model-running tasks go:
    ``pool``/``queue`` (e.g. a GPU worker pool) and ``max_parallel_chunks``
    (``max_active_tis_per_dagrun`` of the mapped task). Returns the ``publish``
    task's output (an XComArg holding the publish summary), so downstream
    tasks can depend on it: ``pii_sanitize_table(...) >> notify()``.

    Example::

        from airflow.sdk import DAG
        from pii_frames.airflow import pii_sanitize_table

        with DAG("sanitize_tickets", schedule=None, render_template_as_native_obj=True,
                 params={"source": "/data/raw/tickets/"}):
            pii_sanitize_table(source="{{ params.source }}", columns=["body"],
                               destination="/data/clean/tickets", pool="gpu")
    """
    job = {
        "source": source,
        "columns": columns,
        "destination": destination,
        "policy": policy,
        "model": model,
        "device": device,
        "dtype": dtype,
        "include_spans": include_spans,
        "include_category": include_category,
        "rows_per_chunk": rows_per_chunk,
        "max_chunks": max_chunks,
        "work_dir": work_dir,
        "audit_destination": audit_destination,
        "detect_options": detect_options,
        "overwrite": overwrite,
    }
    placement: dict[str, Any] = {}
    if pool:
        placement["pool"] = pool
    if queue:
        placement["queue"] = queue
    if max_parallel_chunks:
        placement["max_active_tis_per_dagrun"] = int(max_parallel_chunks)

    @task_group(group_id=group_id)
    def sanitize_table_group():
        chunks = plan_chunks(job=job)
        results = sanitize_chunk.override(**placement).partial(job=job).expand(chunk=chunks)
        return publish.override(outlets=_with_alias(None, asset_alias))(
            plan=chunks, results=results, job=job, asset_alias=asset_alias
        )

    return sanitize_table_group()
