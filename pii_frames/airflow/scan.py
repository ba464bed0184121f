"""Airflow 3 operator that scans a table for personal data: fail the task, or only record what was found.

:class:`PiiScanOperator` runs :func:`pii_frames.scan` on a source (a Parquet
file or folder, a ``.duckdb`` file, ``duckdb:///path.db::schema.table``, CSV
or JSON Lines), logs one summary line per table and pushes the report as an
XCom-sized dict (:func:`pii_frames.discovery.gate.compact_report`). With
``fail_on`` labels (or ``"any"``) it fails the task when one of them is
found, after pushing the report under the key ``pii_scan_report``, so a
post-check after a sanitizing job stops the pipeline; with ``fail_on=None``
it only records. Importing this module is light: the model and pyarrow load
inside ``execute``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PiiScanOperator", "REPORT_XCOM_KEY"]

#: XCom key of the report (also pushed when the task fails on a finding).
REPORT_XCOM_KEY = "pii_scan_report"


def _columns(value: Any) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [part.strip() for part in text.split(",") if part.strip()] or None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"columns must be a list of column names, got {value!r}")
    return list(value) or None


def _number(name: str, value: Any, kind: type):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None


class PiiScanOperator(BaseOperator):
    """Scan a source for personal data and fail on (or record) what is found.

    :param source: Parquet file or folder, ``.duckdb`` file (every table),
        ``duckdb:///path.db::schema.table``, CSV or JSON Lines file, or a SQL table
        (``{"conn_id": ..., "table": "schema.table", "key": "id"}``, see :mod:`pii_frames.io.sql`).
    :param columns: only these columns (list, JSON list or comma-separated names); default: every text column.
    :param sample_rows: rows sampled per table (default 1000); the sample, not the table, bounds the work.
    :param seed: seed of the random sample (the same seed gives the same sample).
    :param fail_on: labels that fail the task when found (a list, comma-separated text, or ``"any"``);
        None (or an empty list) only records the report.
    :param model: checkpoint directory or model name; None uses ``PII_FRAMES_MODEL``,
        then a local openai/privacy-filter, then the embedded default model.
    :param device: ``cpu``, ``cuda``...; None uses auto-detection.
    :param policy: ``pii_frames.Policy`` arguments choosing which labels, scores and allow/deny values count.
    :param min_share: share of sampled non-null rows a label needs to count (default 0.05).
    :param min_score: spans scored below this are ignored (default 0.5).
    :param include_examples: keep the redacted example snippets in the XCom report.
    :param max_xcom_bytes: the report is trimmed (examples first) until its JSON fits.

    Returns (XCom) the report dict: source, settings, totals and per table its
    summary line and columns (verdict, reason, label shares, counts).

    Example::

        from pii_frames.airflow import PiiScanOperator

        PiiScanOperator(
            task_id="no_pii_in_clean_tickets",
            source="duckdb:///data/warehouse.db::clean.tickets",
            columns=["subject", "body"],
            fail_on=["private_email", "private_phone"],
        )
    """

    template_fields: Sequence[str] = ("source", "columns", "sample_rows", "seed", "fail_on", "model", "device",
                                      "policy")
    template_fields_renderers = {"columns": "json", "fail_on": "json", "policy": "json"}
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        source: str,
        columns: Any = None,
        sample_rows: Any = 1000,
        seed: Any = 0,
        fail_on: Any = "any",
        model: str | None = None,
        device: str | None = None,
        policy: Any = None,
        min_share: float | None = None,
        min_score: float | None = None,
        include_examples: bool = True,
        max_xcom_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.columns = columns
        self.sample_rows = sample_rows
        self.seed = seed
        self.fail_on = fail_on
        self.model = model
        self.device = device
        self.policy = policy
        self.min_share = min_share
        self.min_score = min_score
        self.include_examples = include_examples
        self.max_xcom_bytes = max_xcom_bytes

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from pii_frames.discovery import scan
        from pii_frames.discovery.gate import (
            DEFAULT_MAX_BYTES,
            check_labels,
            compact_report,
            describe_hits,
            offending_columns,
            parse_fail_on,
        )
        from pii_frames.discovery.scan import DEFAULT_MIN_SCORE, DEFAULT_MIN_SHARE

        fail_on = parse_fail_on(self.fail_on)
        policy = json.loads(self.policy) if isinstance(self.policy, str) and self.policy.strip() else self.policy
        options: dict[str, Any] = {"device": self.device} if self.device else {}
        data = self.source
        from pii_frames.io import sql as sql_io

        if sql_io.is_sql_location(data):
            # A SQL table ({"conn_id": ..., "table": ..., "key": ...}): a fixed sample of it, read by the database.
            location = sql_io.parse_sql_location(data)
            data = {location.qualified: sql_io.read_sql_sample(
                location, _columns(self.columns), _number("sample_rows", self.sample_rows, int),
                _number("seed", self.seed, int))}
        report = scan(
            data,
            columns=_columns(self.columns),
            sample_rows=_number("sample_rows", self.sample_rows, int),
            seed=_number("seed", self.seed, int),
            model=self.model or None,
            policy=policy or None,
            progress=False,
            min_share=DEFAULT_MIN_SHARE if self.min_share is None else self.min_share,
            min_score=DEFAULT_MIN_SCORE if self.min_score is None else self.min_score,
            **options,
        )
        check_labels(fail_on, report.labels)
        for line in report.summary_lines():
            self.log.info("%s", line)
        payload = compact_report(report, examples=self.include_examples,
                                 max_bytes=self.max_xcom_bytes or DEFAULT_MAX_BYTES)
        hits = offending_columns(report, fail_on)
        if hits:
            ti = context.get("ti") if hasattr(context, "get") else None
            if ti is not None:
                ti.xcom_push(key=REPORT_XCOM_KEY, value=payload)
            # AirflowFailException: a retry would sample the same rows and find the same values.
            raise AirflowFailException(f"{describe_hits(hits, fail_on)} (scan of {report.source}; the report is "
                                       f"in the XCom {REPORT_XCOM_KEY!r})")
        if fail_on is None and report.pii_columns:
            self.log.warning("pii_frames scan: %s (recorded only: fail_on is not set)",
                             describe_hits(report.pii_columns, ["any"]))
        return payload
