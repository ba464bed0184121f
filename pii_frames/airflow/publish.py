"""Publishing a table job: check every planned chunk is there once with its row count, then swap the whole
output in (Parquet folder, DuckDB table or SQL table) and write the per-chunk audit; a run whose output is
already current rewrites nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pii_frames.airflow.fingerprints import stable_hash, utc_now
from pii_frames.airflow.safety import (
    DIGEST_METADATA_KEY,
    MANIFEST_NAME,
    SanitizeJobError,
    is_version_of,
    manifest_digest,
    parquet_digest,
    version_stem,
)
from pii_frames.io import atomic
from pii_frames.io import sql as sql_io
from pii_frames.io.locations import (
    DuckDBLocation,
    ParquetLocation,
    connect_duckdb,
    duckdb_table_comment,
    find_duckdb_relation,
    first_row,
    quote_identifier,
)
from pii_frames.io.sql import OUTPUT_MARK, SQLLocation
from pii_frames.io.sql.publish import comment_digest, marked

__all__ = ["AUDIT_SCHEMA", "PublishSteps"]

# The job's one logger, whichever of its parts speaks (what deployments filter on).
log = logging.getLogger("pii_frames.airflow.jobs")

AUDIT_SCHEMA = pa.schema(
    [
        ("chunk_index", pa.int32()),
        ("rows", pa.int64()),
        ("spans_total", pa.int64()),
        ("spans_by_label", pa.map_(pa.string(), pa.int64())),
        ("model_id", pa.string()),
        ("policy_hash", pa.string()),
        ("fingerprint", pa.string()),
        ("duration_s", pa.float64()),
        ("computed_in_run", pa.string()),
        ("computed_at", pa.string()),
        ("source", pa.string()),
        ("destination", pa.string()),
        ("columns", pa.list_(pa.string())),
    ]
)


class PublishSteps:
    """The publish step of a SanitizeJob, and its audit."""

    def publish(self, plan: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Check every planned chunk is present once with its row count, then publish output and audit.

        Returns a summary dict: destination, asset_uri, rows, chunks, changed
        (False when the published output already held these exact chunks),
        recomputed (chunks computed rather than reused), spans_by_label,
        model_ids, policy_hash, digest.

        A Parquet destination that is a symbolic link (``current -> v1``, the
        blue/green layout) is followed: the output goes into a new folder beside
        the link's target, ``<link name>.pii-<digest prefix>``, and the link is
        swapped to it in one step. The previous target is removed only when it is
        such a folder (pii_frames' own); any other folder it pointed to (``v1``)
        is left as it was.
        """
        self.check_destinations()
        self._sweep_temporaries()
        plan = sorted(plan, key=lambda c: int(c["index"]))
        by_index: dict[int, Mapping[str, Any]] = {}
        for result in results:
            index = int(result["index"])
            if index in by_index:
                raise SanitizeJobError(f"chunk {index} reported twice; its rows would be duplicated")
            by_index[index] = result
        planned_indexes = [int(c["index"]) for c in plan]
        if len(set(planned_indexes)) != len(planned_indexes):
            raise SanitizeJobError("the plan lists a chunk twice")
        missing = sorted(set(planned_indexes) - set(by_index))
        unplanned = sorted(set(by_index) - set(planned_indexes))
        if missing or unplanned:
            raise SanitizeJobError(f"chunk results do not match the plan: missing {missing}, unplanned {unplanned}")
        ordered = []
        for chunk in plan:
            result = by_index[int(chunk["index"])]
            if int(result["rows"]) != int(chunk["rows"]):
                raise SanitizeJobError(
                    f"chunk {chunk['index']} produced {result['rows']} rows, {chunk['rows']} were planned"
                )
            path = os.path.join(self.chunk_dir, result["fingerprint"] + ".parquet")
            if not os.path.exists(path):
                raise SanitizeJobError(f"output of chunk {chunk['index']} ({path}) is missing; re-run the DAG")
            if pq.ParquetFile(path).metadata.num_rows != int(chunk["rows"]):
                raise SanitizeJobError(f"output of chunk {chunk['index']} ({path}) has the wrong row count")
            ordered.append((result, path))

        total_rows = sum(int(c["rows"]) for c in plan)
        digest = stable_hash([result["fingerprint"] for result, _ in ordered])
        audit = self.audit_table([result for result, _ in ordered], digest)
        if isinstance(self.destination_location, ParquetLocation):
            changed = self._publish_parquet(ordered, audit, digest, total_rows)
        elif isinstance(self.destination_location, SQLLocation):
            changed = self._publish_sql(ordered, audit, digest, total_rows)
        else:
            changed = self._publish_duckdb(ordered, audit, digest, total_rows)
        self._prune_work_dir({result["fingerprint"] for result, _ in ordered})

        totals: dict[str, int] = {}
        for result, _ in ordered:
            for label, count in result["spans_by_label"].items():
                totals[label] = totals.get(label, 0) + int(count)
        summary = {
            "destination": self.destination_location.uri,
            "asset_uri": self.destination_location.asset_uri,
            "audit_destination": self.audit_location.uri,
            "rows": total_rows,
            "chunks": len(ordered),
            "changed": changed,
            "recomputed": sum(1 for result, _ in ordered if not result.get("reused")),
            "spans_by_label": dict(sorted(totals.items())),
            "model_ids": sorted({str(result["model_id"]) for result, _ in ordered}),
            "policy_hash": self.policy_hash,
            "digest": digest,
        }
        log.info(
            "%s %s: %d row(s) in %d chunk(s)",
            "published" if changed else "unchanged, nothing rewritten:",
            self.destination_location.describe(),
            total_rows,
            len(ordered),
        )
        return summary

    def audit_table(self, results: Sequence[Mapping[str, Any]], digest: str) -> pa.Table:
        """One audit row per chunk, with the output digest in the schema metadata."""
        columns: dict[str, list[Any]] = {name: [] for name in AUDIT_SCHEMA.names}
        for result in results:
            columns["chunk_index"].append(int(result["index"]))
            columns["rows"].append(int(result["rows"]))
            columns["spans_total"].append(int(result["spans_total"]))
            columns["spans_by_label"].append(list(result["spans_by_label"].items()))
            columns["model_id"].append(str(result["model_id"]))
            columns["policy_hash"].append(result["policy_hash"])
            columns["fingerprint"].append(result["fingerprint"])
            columns["duration_s"].append(float(result["duration_s"]))
            columns["computed_in_run"].append(result.get("computed_in_run"))
            columns["computed_at"].append(result.get("computed_at"))
            columns["source"].append(self.source_location.uri)
            columns["destination"].append(self.destination_location.uri)
            columns["columns"].append(list(self.column_names))
        table = pa.table(columns, schema=AUDIT_SCHEMA)
        return table.replace_schema_metadata({DIGEST_METADATA_KEY: digest.encode()})

    def _publish_parquet(self, ordered, audit: pa.Table, digest: str, total_rows: int) -> bool:
        link = self.destination_location.path
        is_link = os.path.islink(link)
        target = os.path.realpath(link) if is_link else link
        if os.path.isdir(target) and manifest_digest(os.path.join(target, MANIFEST_NAME)) == digest:
            if self._audit_digest() != digest:
                self._write_audit(audit)  # output is current; only the audit write was interrupted
            return False
        # Staged beside the final folder, so the swap is a rename within one filesystem.
        stage_beside = version_stem(link) if is_link else target
        width = max(5, len(str(len(ordered) - 1)))
        with atomic.scratch_directory(stage_beside, "publish") as staging:
            for result, path in ordered:
                atomic.link_or_copy(path, os.path.join(staging, f"part-{int(result['index']):0{width}d}.parquet"))
            staged_rows = sum(
                pq.ParquetFile(os.path.join(staging, name)).metadata.num_rows
                for name in os.listdir(staging)
            )
            if staged_rows != total_rows:
                raise SanitizeJobError(f"staged output has {staged_rows} rows, expected {total_rows}")
            atomic.atomic_write_json(
                os.path.join(staging, MANIFEST_NAME),
                {
                    "digest": digest,
                    "rows": total_rows,
                    "fingerprints": [result["fingerprint"] for result, _ in ordered],
                    "source": self.source_location.uri,
                    "published_at": utc_now(),
                },
            )
            if not is_link:
                atomic.replace_directory(staging, target)
            else:
                version = f"{version_stem(link)}.pii-{digest[:12]}"
                atomic.replace_directory(staging, version)
                atomic.replace_symlink(link, version)
                if target != version and is_version_of(target, link):
                    shutil.rmtree(target, ignore_errors=True)
        self._write_audit(audit)
        return True

    def _audit_digest(self) -> str | None:
        location = self.audit_location
        try:
            if isinstance(location, ParquetLocation):
                return parquet_digest(location.path)
            if isinstance(location, SQLLocation):
                with sql_io.open_engine(location).connect() as con:
                    return comment_digest(sql_io.read_sql_comment(con, location)[1])
            if not os.path.exists(location.database):
                return None
            with connect_duckdb(location, read_only=True) as con:
                return comment_digest(duckdb_table_comment(con, location))
        except (OSError, pa.ArrowException, ValueError):
            return None

    def _write_audit(self, audit: pa.Table, con=None) -> None:
        location = self.audit_location
        if isinstance(location, ParquetLocation):
            # Through a symlink to its target: the user's layout of links stays as it is.
            atomic.atomic_write(os.path.realpath(location.path), lambda tmp: pq.write_table(audit, tmp))
            return
        digest = audit.schema.metadata[DIGEST_METADATA_KEY].decode()
        if isinstance(location, SQLLocation):
            sql_io.write_sql_audit(location, audit, digest, overwrite=self.overwrite, error=SanitizeJobError)
            return
        if con is not None:
            _replace_duckdb_table_from_arrow(con, location, audit, digest)
            return
        with connect_duckdb(location, read_only=False) as own, transaction(own):
            _replace_duckdb_table_from_arrow(own, location, audit, digest)

    def _publish_sql(self, ordered, audit: pa.Table, digest: str, total_rows: int) -> bool:
        extra = [added for name in self.column_names for added in self.added_columns(name)]
        audit_location = self.audit_location
        same_database = isinstance(audit_location, SQLLocation) and sql_io.same_sql_database(
            audit_location, self.destination_location)
        changed = sql_io.publish_sql_table(
            self.source_location, self.destination_location, [path for _, path in ordered],
            columns=self.column_names, extra_columns=extra, digest=digest, total_rows=total_rows,
            overwrite=self.overwrite, audit=audit, audit_location=audit_location if same_database else None,
            error=SanitizeJobError,
        )
        if not same_database and (changed or self._audit_digest() != digest):
            self._write_audit(audit)
        return changed

    def _publish_duckdb(self, ordered, audit: pa.Table, digest: str, total_rows: int) -> bool:
        target = self.destination_location
        assert isinstance(target, DuckDBLocation)
        audit_location = self.audit_location
        audit_in_same_database = isinstance(audit_location, DuckDBLocation) and (
            audit_location.database == target.database
        )
        with connect_duckdb(target, read_only=False) as con:
            current = None
            found = find_duckdb_relation(con, target)
            if found is not None:
                comment = duckdb_table_comment(con, target)
                current = comment_digest(comment)
                if (found[2] != "BASE TABLE" or not marked(comment)) and not self.overwrite:
                    raise SanitizeJobError(
                        f"{target.describe()} exists as {found[0]}.{found[1]} and was not written by pii_frames; "
                        "choose another table, drop it first, or pass overwrite=True to replace it"
                    )
            changed = current != digest
            if changed:
                files = [path for _, path in ordered]
                with transaction(con):
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(target.schema)}")
                    # preserve_insertion_order (DuckDB's default) keeps the list's file order and row order.
                    con.execute(
                        f"CREATE OR REPLACE TABLE {target.qualified_name} AS SELECT * FROM read_parquet(?)", [files]
                    )
                    (published,) = first_row(con, f"SELECT count(*) FROM {target.qualified_name}")
                    if published != total_rows:
                        raise SanitizeJobError(
                            f"{target.describe()} would hold {published} rows, expected {total_rows}"
                        )
                    con.execute(f"COMMENT ON TABLE {target.qualified_name} IS '{OUTPUT_MARK}{digest}'")
                    if audit_in_same_database:
                        self._write_audit(audit, con=con)
            elif audit_in_same_database and comment_digest(duckdb_table_comment(con, audit_location)) != digest:
                with transaction(con):
                    self._write_audit(audit, con=con)  # output is current; only the audit was lost
        if not audit_in_same_database and (changed or self._audit_digest() != digest):
            self._write_audit(audit)
        return changed


@contextlib.contextmanager
def transaction(con):
    """BEGIN ... COMMIT, rolled back on any error so a failed publish leaves the old table in place."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _replace_duckdb_table_from_arrow(con, location: DuckDBLocation, table: pa.Table, digest: str) -> None:
    view_name = "pii_frames_audit_rows"
    con.register(view_name, table)
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(location.schema)}")
        con.execute(f"CREATE OR REPLACE TABLE {location.qualified_name} AS SELECT * FROM {view_name}")
        con.execute(f"COMMENT ON TABLE {location.qualified_name} IS '{OUTPUT_MARK}{digest}'")
    finally:
        con.unregister(view_name)
