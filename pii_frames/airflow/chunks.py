"""Chunk execution of a table job: read a planned chunk, skip it when its fingerprint already has output,
else run the model over its text columns and write the output and its stats atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import warnings
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from pii_frames.airflow.fingerprints import stable_hash, table_content_hash, utc_now
from pii_frames.airflow.safety import SanitizeJobError
from pii_frames.arrow import SPANS_SUFFIX, apply_detections, detect_table
from pii_frames.engine.counts import LabelCounts
from pii_frames.engine.schema import span_type, spans_as
from pii_frames.io import atomic
from pii_frames.io import sql as sql_io
from pii_frames.io.locations import (
    ParquetLocation,
    connect_duckdb,
    describe_parquet_row,
    read_duckdb_range,
    read_duckdb_schema,
    read_parquet_pieces,
)
from pii_frames.io.sql import SQLLocation
from pii_frames.io.text import MODEL_CALL_BYTES, InvalidTextError, null_invalid_utf8

__all__ = ["ChunkSteps"]

# The job's one logger, whichever of its parts speaks (what deployments filter on).
log = logging.getLogger("pii_frames.airflow.jobs")

# Published spans say where, what and how sure, not who found it: the job's output format predates
# ``source``, and chunk outputs of earlier runs publish together with new ones.
PUBLISHED_SPAN_TYPE = span_type(with_source=False)
_CHUNK_FILE = re.compile(r"^\.?[0-9a-f]{64}\.(parquet|json)(\.tmp-[0-9a-f]{12})?$")


class ChunkSteps:
    """The chunk steps of a SanitizeJob: read, reuse or sanitize, and prune the work folder."""

    def read_chunk(self, chunk: Mapping[str, Any]) -> pa.Table:
        source = self.source_location
        if chunk.get("source") not in (None, source.uri):
            raise SanitizeJobError(f"chunk {chunk.get('index')} was planned for {chunk['source']}, not {source.uri}")
        if isinstance(source, ParquetLocation):
            schema = pq.read_schema(chunk["schema_file"]).remove_metadata()
            return read_parquet_pieces(chunk["pieces"], schema)
        if isinstance(source, SQLLocation):
            return sql_io.read_sql_range(source, chunk, sql_io.read_sql_schema(sql_io.open_engine(source), source))
        with connect_duckdb(source, read_only=True) as con:
            schema = read_duckdb_schema(con, source)
            return read_duckdb_range(con, source, chunk["rowid_start"], chunk["rowid_stop"], schema)

    def sanitize_chunk(self, chunk: Mapping[str, Any], *, run_id: str | None = None) -> dict[str, Any]:
        """Sanitize one planned chunk, or reuse its output when its fingerprint already has one.

        Returns a small dict (fit for XCom): index, fingerprint, rows,
        spans_total, spans_by_label, model_id, policy_hash, duration_s,
        computed_in_run, computed_at, reused.
        """
        index = int(chunk["index"])
        table = self.read_chunk(chunk)
        if table.num_rows != chunk["rows"]:
            raise SanitizeJobError(
                f"chunk {index} of {self.source_location.describe()} has {table.num_rows} rows, "
                f"{chunk['rows']} were planned; the source changed during the run, re-run the DAG"
            )
        model_id = self.model_revision()
        fingerprint = stable_hash(
            {
                "input": table_content_hash(table),
                "model": model_id,
                "policy": self.policy_hash,
                "options": self.output_options(),
            }
        )
        output_path = os.path.join(self.chunk_dir, fingerprint + ".parquet")
        stats_path = os.path.join(self.chunk_dir, fingerprint + ".json")
        existing = self._existing_chunk(output_path, stats_path, table.num_rows)
        if existing is not None:
            log.info("chunk %d: output for fingerprint %s already exists, skipped", index, fingerprint[:16])
            return {**existing, "index": index, "reused": True}

        started = time.monotonic()
        table = self._checked_text(table, chunk)
        sanitized, spans_by_label = self.sanitize_table(table)
        duration = time.monotonic() - started
        atomic.atomic_write(output_path, lambda tmp: pq.write_table(sanitized, tmp, compression="zstd"))
        stats = {
            "index": index,
            "fingerprint": fingerprint,
            "rows": table.num_rows,
            "spans_total": int(sum(spans_by_label.values())),
            "spans_by_label": spans_by_label,
            "model_id": model_id,
            "policy_hash": self.policy_hash,
            "duration_s": round(duration, 4),
            "computed_in_run": run_id,
            "computed_at": utc_now(),
        }
        # The stats file is written last: its presence certifies a complete output file.
        atomic.atomic_write_json(stats_path, stats)
        log.info(
            "chunk %d: %d row(s), %d span(s) in %.2fs", index, table.num_rows, stats["spans_total"], duration
        )
        return {**stats, "reused": False}

    @staticmethod
    def _existing_chunk(output_path: str, stats_path: str, rows: int) -> dict[str, Any] | None:
        if not (os.path.exists(stats_path) and os.path.exists(output_path)):
            return None
        try:
            with open(stats_path, encoding="utf-8") as handle:
                stats = json.load(handle)
            if pq.ParquetFile(output_path).metadata.num_rows != rows or stats.get("rows") != rows:
                return None
        except (OSError, ValueError, pa.ArrowException):
            return None  # damaged leftovers are recomputed, never trusted
        return stats

    def _checked_text(self, table: pa.Table, chunk: Mapping[str, Any] | None = None) -> pa.Table:
        """The table with cells that are not valid UTF-8 nulled (on_error='null') or a SanitizeJobError naming them."""
        where: Callable[[int], str] = lambda row: f"row {row}"  # noqa: E731
        if chunk is not None:
            index = chunk.get("index")
            if chunk.get("pieces"):
                where = lambda row: f"row {row} of chunk {index} ({describe_parquet_row(chunk['pieces'], row)})"  # noqa: E731
            elif "key_stop" in chunk:
                where = lambda row: (f"row {row} of chunk {index} (keys from {chunk['key_start']} to before "  # noqa: E731
                                     f"{chunk['key_stop']} of {self.source_location.describe()})")
            elif "rowid_start" in chunk:
                where = lambda row: (f"row {row} of chunk {index} (rowids {chunk['rowid_start']} to "  # noqa: E731
                                     f"{chunk['rowid_stop'] - 1} of {self.source_location.describe()})")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            try:
                table, _ = null_invalid_utf8(
                    table, self.column_names, on_error=self.on_error, where=where,
                    hint="fix the source, or pass detect_options={'on_error': 'null'} to null such cells "
                         "and keep the other rows",
                )
            except InvalidTextError as error:
                raise SanitizeJobError(str(error)) from None
        for warning in caught:
            log.warning("%s", warning.message)
        return table

    def sanitize_table(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        """Run the model over the chosen columns of an in-memory table.

        Returns the sanitized table (same rows, same order, nulls kept) and the
        number of detected spans per label. Cells that are not valid UTF-8 are
        an error naming the column and row, or null with ``on_error='null'``.
        The table path is the adapters' (:func:`pii_frames.arrow.detect_table`,
        at most MODEL_CALL_BYTES of text per model call, so the engine's memory
        follows that, not the 50,000-row chunk; then
        :func:`~pii_frames.arrow.apply_detections`); what the job adds is its
        output format: span structs without ``source`` (nor raw text) and
        large_string columns kept large.
        """
        table = self._checked_text(table)
        detector = self.detector()
        counts = LabelCounts()
        detected = {}
        for name in self.column_names:
            try:
                detected[name] = detect_table(table, [name], model=detector, max_call_bytes=MODEL_CALL_BYTES,
                                              policy=self.policy_object, **self.detect_options)[name]
            except Exception as error:
                raise SanitizeJobError(f"model failed on column {name!r}: {error}") from error
            counts.add(detected[name])
        out = apply_detections(table, detected, spans=self.include_spans, category=self.include_category)
        for name in self.column_names:
            original_type = table.schema.field(name).type
            if pa.types.is_large_string(original_type):
                position = out.schema.get_field_index(name)
                out = out.set_column(position, pa.field(name, original_type), out.column(name).cast(original_type))
            if self.include_spans:
                position = out.schema.get_field_index(name + SPANS_SUFFIX)
                spans = spans_as(out.column(position), PUBLISHED_SPAN_TYPE)
                out = out.set_column(position, pa.field(name + SPANS_SUFFIX, spans.type), spans)
        return out, dict(sorted(counts.spans.items()))

    def _prune_work_dir(self, keep: set[str]) -> None:
        """Drop chunk outputs no published fingerprint uses (old policies, changed inputs, crashed writes).

        Only files named like chunk outputs (or their temporaries, once their
        writer is gone) are touched, whatever else the folder holds.
        """
        if not os.path.isdir(self.chunk_dir):
            return
        for name in os.listdir(self.chunk_dir):
            path = os.path.join(self.chunk_dir, name)
            if name.startswith(".") and ".pii-" in name:
                if atomic.is_stale_temporary(path):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                continue
            if not _CHUNK_FILE.match(name) or name.split(".")[0] in keep:
                continue
            try:
                os.remove(path)
            except OSError as error:
                log.warning("could not remove stale work file %s: %s", name, error)
