"""Sanitize a whole table in resumable chunks: plan, sanitize each chunk, publish with an audit.

This is the engine behind :class:`pii_frames.airflow.PiiSanitizeOperator` and the
TaskFlow tasks of :func:`pii_frames.airflow.pii_sanitize_table`, kept free of
Airflow imports so it also runs from a plain script::

    job = SanitizeJob(source="/data/tickets/", columns=["body"], destination="/data/tickets_clean")
    summary = job.run()            # plan -> every chunk -> publish

How a run stays correct when it is stopped, retried or repeated:

- every chunk's output is written under a temporary name and renamed, so a
  chunk file is complete or absent;
- a chunk's output is stored under its *fingerprint* (hash of the chunk's input
  rows + model id + policy hash + output options + pii_frames version), so a
  re-run skips every chunk whose fingerprint already has output (resume after a
  failure) and recomputes only what changed;
- publishing checks that every planned chunk is present exactly once with its
  planned row count, then swaps the whole output in one step and writes a
  per-chunk audit table; when the published output already holds exactly these
  fingerprints nothing is rewritten (a second run after success is a no-op).

How it never destroys data that is not its own:

- the destination, the audit and the work folder may not be, contain or lie
  inside the source, nor each other (paths compared through ``..``, symlinks
  and hard links; DuckDB tables by DuckDB's own identifier rules, so
  ``main.RAW_TICKETS`` is ``main.raw_tickets``);
- an existing destination or audit that pii_frames did not write (no manifest,
  no digest mark) is refused unless ``overwrite=True``; this is checked when
  planning, before any model work, and again when publishing;
- a destination that is a symbolic link (``current -> v1``) is published into
  a new sibling folder and the link is swapped in one step;
- temporaries are named after their host and process, and each plan/publish
  sweeps those whose process is gone (a ``kill -9`` leaves nothing for good);
- a pseudonym/encrypt key given literally is hidden from ``repr`` and a job
  holding one is only pickled with ``allow_key_in_pickle=True``; give the key
  by reference instead (``policy={"operator": "pseudonym", "key_env": "PII_KEY"}``),
  read on the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa

from pii_frames.airflow.chunks import ChunkSteps
from pii_frames.airflow.fingerprints import model_revision, package_version, stable_hash
from pii_frames.airflow.params import (
    flag,
    hidden_spec,
    literal_key_in,
    optional_text,
    parse_columns,
    parse_literal,
    resolve_policy,
)
from pii_frames.airflow.publish import PublishSteps
from pii_frames.airflow.safety import SafetyChecks, SanitizeJobError
from pii_frames.arrow import CATEGORY_SUFFIX, SPANS_SUFFIX
from pii_frames.io import sql as sql_io
from pii_frames.io.locations import (
    Location,
    ParquetLocation,
    connect_duckdb,
    is_text_type,
    list_parquet_files,
    parse_location,
    plan_duckdb_ranges,
    plan_parquet_pieces,
    read_duckdb_schema,
    read_parquet_schema,
)
from pii_frames.io.memory import release_memory
from pii_frames.io.sql import SQLLocation
from pii_frames.redaction.policy import PICKLE_HOLDS_SECRET, Policy, jsonable, refuse_key_in_pickle

# The job's parts: parameters (params), output identity (fingerprints), never touching what is not
# its own (safety), chunk execution (chunks), publishing with the audit (publish).
__all__ = ["FORMAT_VERSION", "SanitizeJob", "SanitizeJobError", "parse_columns", "resolve_policy"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(repr=False)
class SanitizeJob(SafetyChecks, ChunkSteps, PublishSteps):
    """One table-sanitization job: which table, which columns, where to, with which model and policy.

    Parameters are plain values (strings, lists, dicts) so they survive Airflow
    templating and XCom. ``source`` and ``destination`` are location strings (see
    :mod:`pii_frames.io.locations`); the destination is a Parquet folder (or a
    symbolic link to one: see :meth:`publish`), a DuckDB table, or a SQL table
    of the source's database (``{"conn_id" | "url": ..., "table": ..., "key": ...}``,
    see :mod:`pii_frames.io.sql`). Each sanitized
    column keeps its name and holds the redacted text; ``include_spans`` adds
    ``<column>_pii_spans`` (label, start, end, score; offsets into the original
    text, which is *not* copied) and ``include_category`` adds ``<column>_pii_category``.

    ``overwrite=True`` lets the job replace an existing destination or audit
    that pii_frames did not write (never the source). ``allow_key_in_pickle=True``
    lets a job whose policy holds a literal key be pickled, key included; the
    default refuses (use ``policy={..., "key_env": "PII_KEY"}`` instead).
    ``detect_options={"on_error": "null"}`` nulls cells that cannot be redacted
    (e.g. bytes that are not valid UTF-8) instead of failing the chunk.

    >>> job = SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/out")
    >>> job.work_dir
    '/tmp/out.pii_work'
    >>> SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/o",
    ...             policy={"operator": "pseudonym", "key": "s3cret"})  # doctest: +ELLIPSIS
    SanitizeJob(source='/tmp/in.parquet', ..., policy={'operator': 'pseudonym', 'key': '<hidden>'}, ...)
    """

    source: str
    columns: Any
    destination: str
    policy: Any = None
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    include_spans: bool = False
    include_category: bool = False
    rows_per_chunk: int = 50_000
    max_chunks: int = 1024
    work_dir: str | None = None
    audit_destination: str | None = None
    detect_options: Mapping[str, Any] | None = None
    overwrite: bool = False
    allow_key_in_pickle: bool = False
    _detector: Any = field(default=None, init=False, repr=False, compare=False)
    _model_revision: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.source_location: Location = parse_location(self.source, role="source")
        self.destination_location: Location = parse_location(self.destination, role="destination")
        self.column_names = parse_columns(self.columns)
        self.rows_per_chunk = int(self.rows_per_chunk)
        self.max_chunks = int(self.max_chunks)
        if self.rows_per_chunk <= 0 or self.max_chunks <= 0:
            raise ValueError("rows_per_chunk and max_chunks must be positive")
        self.model = optional_text(self.model)
        self.device = optional_text(self.device)
        self.dtype = optional_text(self.dtype)
        self.work_dir = optional_text(self.work_dir)
        self.audit_destination = optional_text(self.audit_destination)
        self.include_spans = flag(self.include_spans, "include_spans")
        self.include_category = flag(self.include_category, "include_category")
        self.overwrite = flag(self.overwrite, "overwrite")
        self.allow_key_in_pickle = flag(self.allow_key_in_pickle, "allow_key_in_pickle")
        if isinstance(self.detect_options, str):
            self.detect_options = parse_literal(self.detect_options, "detect_options") if self.detect_options.strip() else None
        self.detect_options = dict(self.detect_options or {})
        for reserved in ("policy", "progress"):
            if reserved in self.detect_options:
                raise ValueError(f"detect_options may not set {reserved!r}; pass it as its own parameter")
        self.on_error = str(self.detect_options.get("on_error") or "raise")
        if self.on_error not in ("raise", "null"):
            raise ValueError(f"detect_options on_error must be 'raise' or 'null', got {self.on_error!r}")
        destination = self.destination_location
        if isinstance(destination, ParquetLocation):
            default_work = destination.path + ".pii_work"
            default_audit = destination.path + "_pii_audit.parquet"
        elif isinstance(destination, SQLLocation):
            if not isinstance(self.source_location, SQLLocation):
                raise ValueError(f"destination {destination.uri} is a SQL table, so the source must be a table of "
                                 "the same database (its columns are copied from it by the database)")
            # No file sits beside a SQL table: chunk outputs wait under PII_FRAMES_WORK_DIR (shared storage
            # when workers run on several machines) or the user's cache.
            work_root = os.environ.get("PII_FRAMES_WORK_DIR") or os.path.join(
                os.path.expanduser("~"), ".cache", "pii_frames", "work")
            default_work = os.path.join(work_root, f"{destination.table}-{stable_hash(destination.uri)[:12]}")
            default_audit = destination.with_table(destination.table + "_pii_audit").spec
        else:
            default_work = os.path.join(destination.database + ".pii_work", f"{destination.schema}.{destination.table}")
            default_audit = destination.with_table(destination.table + "_pii_audit").uri
        self.work_dir = os.path.abspath(self.work_dir or default_work)
        self.audit_destination = self.audit_destination or default_audit
        self.audit_location = parse_location(self.audit_destination, role="audit_destination")
        self._check_locations()
        self.policy_object = resolve_policy(self.policy)
        # Policy.description() is the one description of a policy (the same dict this job hashed before it
        # was the job's own): runs over an earlier destination find their chunks' fingerprints unchanged.
        self.policy_hash = stable_hash(None if self.policy_object is None else self.policy_object.description())

    # ------------------------------------------------------------------ secrets

    def __repr__(self) -> str:
        shown = []
        for item in dataclasses.fields(self):
            if not item.repr:
                continue
            value = getattr(self, item.name)
            if item.name == "policy":
                value = hidden_spec(value, self.policy_object)
            elif sql_io.is_sql_location(value):
                value = sql_io.parse_sql_location(value).uri  # a password in a URL is never shown
            shown.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def holds_literal_key(self) -> bool:
        """Whether the policy carries its pseudonym/encrypt key itself (not an env/secret reference)."""
        return literal_key_in(self.policy, self.policy_object)

    def __getstate__(self) -> dict[str, Any]:
        # The key-in-pickle rule is redaction.policy's: refused unless allowed, and then marked.
        if self.holds_literal_key() and not self.allow_key_in_pickle:
            raise refuse_key_in_pickle("this SanitizeJob's policy", "policy={'operator': 'pseudonym', 'key_env': 'PII_KEY'}")
        state = dict(self.__dict__)
        state["_detector"] = None  # a loaded model never travels; each worker loads its own
        if self.holds_literal_key():
            state["policy_object"] = self.policy_object.allowing_key_in_pickle()
            if isinstance(self.policy, Policy):
                state["policy"] = self.policy.allowing_key_in_pickle()
            state["_pickle_holds_secret"] = PICKLE_HOLDS_SECRET
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_pickle_holds_secret", None)
        self.__dict__.update(state)

    def __copy__(self) -> SanitizeJob:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: dict) -> SanitizeJob:
        import copy

        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name in ("_detector", "policy_object") else copy.deepcopy(value, memo)
        return clone

    @property
    def chunk_dir(self) -> str:
        return os.path.join(self.work_dir, "chunks")

    def output_options(self) -> dict[str, Any]:
        """Everything besides input rows, model and policy that shapes a chunk's output."""
        return {
            "format": FORMAT_VERSION,
            "pii_frames": package_version(),
            "columns": self.column_names,
            "include_spans": bool(self.include_spans),
            "include_category": bool(self.include_category),
            "dtype": self.dtype,
            "detect_options": jsonable(self.detect_options),
        }

    def model_revision(self) -> str:
        """The model's id and checkpoint hash, resolved once per job without loading the weights."""
        if self._model_revision is None:
            self._model_revision = model_revision(self.model)
        return self._model_revision

    def detector(self):
        """The model, loaded once per process (pii_frames caches it per checkpoint/device/dtype)."""
        if self._detector is None:
            import pii_frames

            options: dict[str, Any] = {}
            if self.device:
                options["device"] = self.device
            if self.dtype:
                options["dtype"] = self.dtype
            self._detector = pii_frames.load(self.model, **options)
        return self._detector

    # ------------------------------------------------------------------ plan

    def plan(self) -> list[dict[str, Any]]:
        """Split the source into chunks (small JSON-able dicts, one per mapped task).

        Checks the source exists and that every requested column is a text
        column, and that the destination and audit are new or pii_frames' own
        (:meth:`check_destinations`), before any model work. Sweeps temporaries
        dead earlier runs left. Always returns at least one chunk, so an empty
        source still publishes an empty output with the right schema.
        """
        self.check_destinations()
        self._sweep_temporaries()
        source = self.source_location
        rows_per_chunk = self.rows_per_chunk
        if isinstance(source, ParquetLocation):
            files = list_parquet_files(source)
            schema = read_parquet_schema(files)
            self._check_columns(schema, source.describe())
            while True:
                raw = plan_parquet_pieces(files, rows_per_chunk)
                if len(raw) <= self.max_chunks:
                    break
                rows_per_chunk *= 2
            extra = {"schema_file": files[0]}
        elif isinstance(source, SQLLocation):
            self._check_sql_tables()
            schema, raw = sql_io.plan_sql_ranges(source, rows_per_chunk, self.max_chunks, self.column_names)
            self._check_columns(schema, source.describe())
            extra = {}
        else:
            with connect_duckdb(source, read_only=True) as con:
                schema = read_duckdb_schema(con, source)
                self._check_columns(schema, source.describe())
                raw = plan_duckdb_ranges(con, source, rows_per_chunk, self.max_chunks)
            extra = {}
        if not raw:
            raw = [{"rows": 0, "pieces": []} if isinstance(source, ParquetLocation) else
                   {"rows": 0, "key_start": None, "key_stop": None} if isinstance(source, SQLLocation) else
                   {"rows": 0, "rowid_start": 0, "rowid_stop": 0}]
        chunks = [{"index": i, "source": source.uri, **extra, **spec} for i, spec in enumerate(raw)]
        log.info(
            "planned %d chunk(s), %d row(s) from %s", len(chunks), sum(c["rows"] for c in chunks), source.describe()
        )
        return chunks

    def _check_columns(self, schema: pa.Schema, where: str) -> None:
        for name in self.column_names:
            if schema.get_field_index(name) < 0:
                raise ValueError(f"column {name!r} is not in {where}; its columns are {schema.names}")
            data_type = schema.field(name).type
            if not is_text_type(data_type):
                raise ValueError(
                    f"column {name!r} of {where} has type {data_type}, not text; cast it to a string or drop it from columns"
                )
            for added in self.added_columns(name):
                if schema.get_field_index(added) >= 0:
                    raise ValueError(
                        f"{where} already has a column {added!r}; rename it or turn off that output column"
                    )

    def added_columns(self, column: str) -> list[str]:
        """The output columns written next to ``column``: ``<column>_pii_spans`` and/or ``<column>_pii_category``.

        >>> SanitizeJob(source="/tmp/in.parquet", columns="body", destination="/tmp/out",
        ...             include_spans=True).added_columns("body")
        ['body_pii_spans']
        """
        wanted = ((SPANS_SUFFIX, self.include_spans), (CATEGORY_SUFFIX, self.include_category))
        return [column + suffix for suffix, include in wanted if include]

    # ------------------------------------------------------------------ whole job

    def run(self, *, run_id: str | None = None) -> dict[str, Any]:
        """Plan, sanitize every chunk in this process, then publish. Returns the publish summary."""
        plan = self.plan()
        results = []
        for chunk in plan:
            results.append(self.sanitize_chunk(chunk, run_id=run_id))
            release_memory()  # each chunk frees what the last allocated; glibc keeps it unless asked
        return self.publish(plan, results)
