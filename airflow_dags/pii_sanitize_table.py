"""
### pii_sanitize_table

Redact personal data (names, emails, phones, addresses, account numbers,
secrets...) in text columns of a table with a local privacy-filter model, and
publish a sanitized copy plus a per-chunk audit table.

Trigger it with a config, for example:

```json
{"source": "/data/raw/tickets/", "columns": ["subject", "body"],
 "destination": "duckdb:///data/warehouse.db::clean.tickets"}
```

- `source`: a Parquet file or folder, `duckdb:///path.db::schema.table`, or a
  SQL table `{"conn_id": "warehouse", "table": "raw.tickets", "key": "id"}`
- `destination`: a Parquet folder, `duckdb:///path.db::schema.table`, or a
  SQL table in the source's database (same form)
- `policy` (optional): e.g. `{"operator": "mask"}`; for `pseudonym` keep the
  key in an Airflow Variable whose name contains `secret` (masked in logs)
- `model` (optional): checkpoint folder or name; empty uses `PII_FRAMES_MODEL`,
  then a local openai/privacy-filter, then the embedded default model.

Tasks: `plan_chunks` splits the source; `sanitize_chunk` runs once per chunk
(in parallel, in the pool/queue named by `PII_FRAMES_POOL` / `PII_FRAMES_QUEUE`);
`publish` checks row counts, swaps the output in and writes the audit;
`scan_published` then scans a sample of the published columns and fails the
run when it finds a `scan_fail_on` label there (null: only record the report,
in the task's XCom). A re-run resumes where a failed run stopped; a re-run
after success changes nothing. See airflow_dags/README.md for deployment.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param

from pii_frames.airflow import PiiScanOperator, pii_sanitize_table

with DAG(
    dag_id="pii_sanitize_table",
    description="Redact personal data in text columns of a table (pii_frames)",
    schedule=None,
    catchup=False,
    max_active_runs=1,  # two runs writing one destination would race for the publish step
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["pii", "pii_frames", "data-quality"],
    params={
        # source, columns and destination have no default: a trigger must name them.
        "source": Param(
            type=["string", "object"],
            minLength=1,
            description='Parquet file/folder, duckdb:///path.db::schema.table, or a SQL table '
                        '{"conn_id": "...", "table": "schema.table", "key": "id"}',
        ),
        "columns": Param(
            type="array", items={"type": "string"}, minItems=1, description="Text columns to sanitize"
        ),
        "destination": Param(
            type=["string", "object"],
            minLength=1,
            description='Parquet folder, duckdb:///path.db::schema.table, or a SQL table of the source\'s '
                        'database {"conn_id": "...", "table": "schema.table", "key": "id"}',
        ),
        "policy": Param(
            None, type=["null", "object", "string"], description='pii_frames.Policy arguments, e.g. {"operator": "mask"}'
        ),
        "model": Param(None, type=["null", "string"], description="Checkpoint folder or model name; empty = default"),
        "include_spans": Param(True, type="boolean", description="Add <column>_pii_spans (label, start, end, score)"),
        "include_category": Param(False, type="boolean", description="Add <column>_pii_category"),
        "rows_per_chunk": Param(50_000, type="integer", minimum=1, description="Rows per resumable chunk"),
        "scan_fail_on": Param(
            ["private_email"], type=["null", "array"], items={"type": "string"},
            description="Labels that fail the post-publish scan of the output (null: only record it)",
        ),
    },
):
    published = pii_sanitize_table(
        source="{{ params.source }}",
        columns="{{ params.columns }}",
        destination="{{ params.destination }}",
        policy="{{ params.policy }}",
        model="{{ params.model }}",
        include_spans="{{ params.include_spans }}",
        include_category="{{ params.include_category }}",
        rows_per_chunk="{{ params.rows_per_chunk }}",
        pool=os.environ.get("PII_FRAMES_POOL") or None,
        queue=os.environ.get("PII_FRAMES_QUEUE") or None,
        max_parallel_chunks=int(os.environ.get("PII_FRAMES_MAX_PARALLEL_CHUNKS", "0")) or None,
    )
    # Post-check: what was published must not still hold personal data.
    published >> PiiScanOperator(
        task_id="scan_published",
        source="{{ params.destination }}",
        columns="{{ params.columns }}",
        model="{{ params.model }}",
        fail_on="{{ params.scan_fail_on }}",
    )
