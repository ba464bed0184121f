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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pii_frames.airflow.fingerprints import stable_hash, table_content_hash, utc_now
from pii_frames.airflow.safety import SanitizeJobError
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
from pii_frames.io.memory import release_memory
from pii_frames.io.sql import SQLLocation
from pii_frames.io.text import MODEL_CALL_BYTES, InvalidTextError, null_invalid_utf8, text_slices

__all__ = ["ChunkSteps"]

# The job's one logger, whichever of its parts speaks (what deployments filter on).
log = logging.getLogger("pii_frames.airflow.jobs")

SPAN_FIELDS = ("label", "start", "end", "score")
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
        """
        table = self._checked_text(table)
        detector = self.detector()
        counts: dict[str, int] = {}
        for name in self.column_names:
            position = table.schema.get_field_index(name)
            original_type = table.schema.field(name).type
            values = table.column(name).combine_chunks()
            if not pa.types.is_string(values.type):
                values = values.cast(pa.string())
            # One bounded slice of text per model call: the engine's memory follows the slice,
            # not the chunk (50,000 rows by default).
            parts = []
            for start, stop in text_slices(values, MODEL_CALL_BYTES) or [(0, 0)]:
                try:
                    parts.append(detector.detect_arrow(values.slice(start, stop - start), policy=self.policy_object,
                                                       column=name, **self.detect_options))
                except Exception as error:
                    where = f" (rows {start}-{stop - 1}; the row number below counts within them)" if start else ""
                    raise SanitizeJobError(f"model failed on column {name!r}{where}: {error}") from error
                release_memory()
            result = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
            if len(result) != len(values):
                raise SanitizeJobError(f"model returned {len(result)} rows for {len(values)} in column {name!r}")
            redacted = pc.struct_field(result, "redacted_text")
            if pa.types.is_large_string(original_type):
                redacted = redacted.cast(original_type)
            table = table.set_column(position, pa.field(name, redacted.type), redacted)
            spans = pc.struct_field(result, "spans")
            if self.include_spans:
                position += 1
                without_text = _spans_without_text(spans)
                table = table.add_column(position, pa.field(name + "_pii_spans", without_text.type), without_text)
            if self.include_category:
                position += 1
                category = pc.struct_field(result, "category")
                table = table.add_column(position, pa.field(name + "_pii_category", category.type), category)
            flat = pc.list_flatten(spans)
            if len(flat):
                for entry in pc.value_counts(pc.struct_field(flat, "label")).to_pylist():
                    counts[entry["values"]] = counts.get(entry["values"], 0) + int(entry["counts"])
        return table, dict(sorted(counts.items()))

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


def _spans_without_text(spans: pa.Array) -> pa.Array:
    """The spans list with the matched text dropped: a sanitized table must not carry the raw PII."""
    if isinstance(spans, pa.ChunkedArray):
        spans = spans.combine_chunks()
    values = spans.values
    kept = pa.StructArray.from_arrays(
        [values.field(name) for name in SPAN_FIELDS], names=list(SPAN_FIELDS)
    )
    return pa.ListArray.from_arrays(spans.offsets, kept, mask=spans.is_null())
