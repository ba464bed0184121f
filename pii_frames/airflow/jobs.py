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

import ast
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pii_frames.io import atomic
from pii_frames.io import sql as sql_io
from pii_frames.io.locations import (
    DuckDBLocation,
    Location,
    ParquetLocation,
    conflicts,
    connect_duckdb,
    describe_parquet_row,
    duckdb_table_comment,
    find_duckdb_relation,
    first_row,
    is_text_type,
    list_parquet_files,
    parse_location,
    plan_duckdb_ranges,
    plan_parquet_pieces,
    quote_identifier,
    read_duckdb_range,
    read_duckdb_schema,
    read_parquet_pieces,
    read_parquet_schema,
)
from pii_frames.io.memory import release_memory
from pii_frames.io.paths import overlaps
from pii_frames.io.sql import SQLLocation
from pii_frames.io.text import MODEL_CALL_BYTES, InvalidTextError, null_invalid_utf8, text_slices
from pii_frames.redaction.policy import jsonable

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "_pii_frames_manifest.json"
OUTPUT_MARK = "pii_frames:"
DIGEST_METADATA_KEY = b"pii_frames_output_digest"
POLICY_FIELDS = (
    "operator", "key", "key_id", "labels", "per_label", "min_score", "allow", "deny", "mask_char", "keep_last",
)
SPAN_FIELDS = ("label", "start", "end", "score")

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


class SanitizeJobError(RuntimeError):
    """A table job cannot go on safely (lost/duplicated rows, changed source, foreign output)."""


_VERSION_DIR = re.compile(r"^(?P<link>.+)\.pii-[0-9a-f]{12}$")
_CHUNK_FILE = re.compile(r"^\.?[0-9a-f]{64}\.(parquet|json)(\.tmp-[0-9a-f]{12})?$")


def parse_columns(columns: Any) -> list[str]:
    """Normalize the ``columns`` parameter: a list, a JSON list, or comma-separated names.

    >>> parse_columns("body, notes")
    ['body', 'notes']
    >>> parse_columns('["body"]')
    ['body']
    """
    if isinstance(columns, str):
        text = columns.strip()
        if text.startswith("["):
            columns = _parse_literal(text, "columns")
        else:
            columns = [part.strip() for part in text.split(",")]
    if not isinstance(columns, (list, tuple)) or not columns:
        raise ValueError(f"columns must name at least one text column, got {columns!r}")
    names = [str(name).strip() for name in columns]
    if any(not name for name in names):
        raise ValueError(f"columns holds an empty name: {columns!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"columns names a column twice: {columns!r}")
    return names


def _parse_literal(text: str, name: str) -> Any:
    """JSON, or the Python literal Jinja renders for a list/dict when a DAG does not render native objects."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{name} is neither JSON nor a Python literal: {text[:200]!r}") from None


def _optional_text(value: Any) -> str | None:
    """Treat blanks and the strings Jinja renders for None ("None", "null") as unset."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "none", "null") else text


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", "", "none"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def resolve_policy(spec: Any):
    """Turn the ``policy`` parameter into a :class:`pii_frames.Policy` (or None for the default).

    Accepts a Policy, a dict of Policy arguments, its JSON text, or an operator name.
    Give a pseudonym/encrypt key by reference, ``{"key_env": "PII_KEY"}`` (or
    ``"key_source"``): it is read where the job runs and never travels.

    >>> resolve_policy(None) is None
    True
    >>> resolve_policy('{"operator": "mask"}').operator
    'mask'
    """
    if spec is None:
        return None
    from pii_frames.redaction.policy import Policy

    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "none", "null", "default"):
            return None
        if text.startswith("{"):
            spec = _parse_literal(text, "policy")
        else:
            spec = {"operator": text}
    if not isinstance(spec, Mapping):
        raise TypeError(f"policy must be a pii_frames.Policy, a dict, JSON text or an operator name, got {spec!r}")
    from pii_frames.redaction.policy import policy_from_dict

    return policy_from_dict(spec)


def _literal_key_in(spec: Any, policy: Any) -> bool:
    """Whether the policy holds its key itself (rather than the name of where to read it)."""
    if policy is None or not getattr(policy, "has_key", False):
        return False
    return getattr(policy, "key_source", None) is None


def _hidden_spec(spec: Any, policy: Any) -> Any:
    """The ``policy`` parameter as it may be shown: a literal key replaced by ``<hidden>``."""
    if isinstance(spec, Mapping):
        return {k: ("<hidden>" if k == "key" else v) for k, v in spec.items()}
    if isinstance(spec, str) and spec.strip().startswith("{"):
        return policy  # JSON text with a key inside: show the parsed Policy, whose repr hides it
    return spec


def describe_policy(policy: Any) -> dict[str, Any] | None:
    """A JSON-able description of a policy for hashing; a secret key appears only as its SHA-256."""
    if policy is None:
        return None
    described: dict[str, Any] = {name: jsonable(getattr(policy, name, None)) for name in POLICY_FIELDS if name != "key"}
    if getattr(policy, "has_key", False):
        # The key is not readable back from a Policy; pseudonyms of fixed probes depend on it
        # (a new key means new pseudonyms, so new outputs) without revealing it.
        described["key"] = [
            policy.replacement(label, f"pii_frames fingerprint probe {label}", operator="pseudonym")
            for label in ("private_person", "private_email", "account_number", "secret")
        ]
    return described


def stable_hash(payload: Any) -> str:
    """SHA-256 of canonical JSON.

    >>> stable_hash({"b": 1, "a": [2]}) == stable_hash({"a": [2], "b": 1})
    True
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def table_content_hash(table: pa.Table) -> str:
    """SHA-256 of a table's rows and schema (Arrow IPC stream of the contiguous table)."""
    sink = pa.BufferOutputStream()
    table = table.replace_schema_metadata(None).combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pii_frames")
    except PackageNotFoundError:
        return "unknown"


def checkpoint_fingerprint(checkpoint_dir: str | os.PathLike) -> str:
    """A cheap content hash of a checkpoint folder, so retrained weights in the same folder count as a new model.

    Small files (config, calibration, tokenizer) are hashed whole; large weight
    files by their size and 16 evenly spaced 64 KiB blocks, which any retraining
    changes, without reading gigabytes.
    """
    digest = hashlib.sha256()
    folder = os.fspath(checkpoint_dir)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        digest.update(f"{name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= 8 << 20:
                digest.update(handle.read())
                continue
            block = 64 << 10
            for i in range(16):
                handle.seek((size - block) * i // 15)
                digest.update(handle.read(block))
    return digest.hexdigest()


def model_revision(model: str | None) -> str:
    """``<model id>@<checkpoint hash prefix>`` for the model ``pii_frames.load(model)`` would use, without loading it.

    >>> model_revision("default")                # doctest: +ELLIPSIS
    'pii-frames/default@...'
    """
    from pii_frames.engine.loading import resolve_checkpoint

    checkpoint_dir, model_id = resolve_checkpoint(model)
    return f"{model_id}@{checkpoint_fingerprint(checkpoint_dir)[:12]}"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass(repr=False)
class SanitizeJob:
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
        self.model = _optional_text(self.model)
        self.device = _optional_text(self.device)
        self.dtype = _optional_text(self.dtype)
        self.work_dir = _optional_text(self.work_dir)
        self.audit_destination = _optional_text(self.audit_destination)
        self.include_spans = _flag(self.include_spans, "include_spans")
        self.include_category = _flag(self.include_category, "include_category")
        self.overwrite = _flag(self.overwrite, "overwrite")
        self.allow_key_in_pickle = _flag(self.allow_key_in_pickle, "allow_key_in_pickle")
        if isinstance(self.detect_options, str):
            self.detect_options = _parse_literal(self.detect_options, "detect_options") if self.detect_options.strip() else None
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
        self.policy_hash = stable_hash(describe_policy(self.policy_object))

    # ------------------------------------------------------------------ secrets

    def __repr__(self) -> str:
        shown = []
        for item in dataclasses.fields(self):
            if not item.repr:
                continue
            value = getattr(self, item.name)
            if item.name == "policy":
                value = _hidden_spec(value, self.policy_object)
            elif sql_io.is_sql_location(value):
                value = sql_io.parse_sql_location(value).uri  # a password in a URL is never shown
            shown.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def holds_literal_key(self) -> bool:
        """Whether the policy carries its pseudonym/encrypt key itself (not an env/secret reference)."""
        return _literal_key_in(self.policy, self.policy_object)

    def __getstate__(self) -> dict[str, Any]:
        if self.holds_literal_key() and not self.allow_key_in_pickle:
            raise pickle.PicklingError(
                "this SanitizeJob's policy holds a literal key, which pickling would copy to wherever the pickle "
                "goes (task queues, result backends, disk); give the key by reference, e.g. "
                "policy={'operator': 'pseudonym', 'key_env': 'PII_KEY'} (read on the worker), or pass "
                "allow_key_in_pickle=True to carry it on purpose"
            )
        state = dict(self.__dict__)
        state["_detector"] = None  # a loaded model never travels; each worker loads its own
        if self.holds_literal_key():
            state["_pickle_holds_secret"] = "yes: the policy key, pickled because allow_key_in_pickle=True"
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

    # ------------------------------------------------------------------ checks

    def _check_locations(self) -> None:
        """Refuse any layout where writing the output, audit or work files could touch the source or each other."""
        source, destination, audit = self.source_location, self.destination_location, self.audit_location
        if conflicts(source, destination):
            if isinstance(source, DuckDBLocation) and isinstance(destination, DuckDBLocation):
                raise ValueError(
                    f"destination {destination.uri} is the source table {source.uri} (DuckDB matches names "
                    "case-insensitively); choose another table name"
                )
            if isinstance(source, SQLLocation):
                raise ValueError(f"destination {destination.uri} is the source table {source.uri}; choose another "
                                 "table name")
            raise ValueError(
                f"destination {destination.uri} overlaps the source {source.uri}; write to a separate folder"
            )
        if conflicts(source, audit):
            raise ValueError(
                f"audit_destination {audit.uri} overlaps the source {source.uri}; the audit would replace or "
                "be read as source data: put it elsewhere"
            )
        if conflicts(destination, audit):
            raise ValueError(
                f"audit_destination {audit.uri} overlaps the destination {destination.uri}; an audit inside the "
                "output would be read as data rows (or replace the output): put it beside the destination"
            )
        for role, location in (("source", source), ("destination", destination), ("audit_destination", audit)):
            if location.footprint is not None and overlaps(self.work_dir, location.footprint):
                raise ValueError(
                    f"work_dir {self.work_dir} overlaps the {role} {location.uri}; chunk files are pruned "
                    "there, so give it a folder of its own"
                )

    def check_destinations(self) -> None:
        """Refuse an existing destination or audit not written by pii_frames (unless ``overwrite=True``).

        Called by :meth:`plan` (before any model work) and again by :meth:`publish`.
        """
        self._check_owner(self.destination_location, "destination")
        self._check_owner(self.audit_location, "audit_destination")

    def _check_owner(self, location: Location, role: str) -> None:
        advice = "choose another location, remove it first, or pass overwrite=True to replace it"
        if isinstance(location, SQLLocation):
            sql_io.check_sql_owner(location, role, self.overwrite, error=SanitizeJobError)
            return
        if isinstance(location, ParquetLocation):
            path = os.path.realpath(location.path)
            if not os.path.exists(path):
                return
            if role == "destination":
                if not os.path.isdir(path):
                    raise SanitizeJobError(f"destination {location.path} is a file; give a folder path for Parquet output")
                ours = not os.listdir(path) or os.path.exists(os.path.join(path, MANIFEST_NAME))
            else:
                if os.path.isdir(path):
                    raise SanitizeJobError(f"audit_destination {location.path} is a folder; the audit is one Parquet "
                                           "file, give a file path")
                ours = _parquet_digest(path) is not None
            if not ours and not self.overwrite:
                raise SanitizeJobError(f"{role} {location.path} exists and was not written by pii_frames; {advice}")
            return
        if not os.path.exists(location.database):
            return
        with connect_duckdb(location, read_only=True) as con:
            found = find_duckdb_relation(con, location)
            comment = duckdb_table_comment(con, location) if found else None
        if found is None:
            return
        if found[2] != "BASE TABLE":
            raise SanitizeJobError(
                f"{role} {location.describe()} is the {found[2].lower()} {found[0]}.{found[1]}; choose another table"
            )
        if not _marked(comment) and not self.overwrite:
            raise SanitizeJobError(
                f"{role} {location.describe()} exists as table {found[0]}.{found[1]} (DuckDB matches names "
                f"case-insensitively) and was not written by pii_frames; {advice}"
            )

    def _sweep_temporaries(self) -> None:
        """Remove temporaries that earlier, dead runs left beside the outputs (never anyone else's files)."""
        targets = [self.audit_location.path] if isinstance(self.audit_location, ParquetLocation) else []
        destination = self.destination_location
        if isinstance(destination, ParquetLocation):
            targets.append(destination.path)
            if os.path.islink(destination.path):
                targets.append(_version_stem(destination.path))
        for target in targets:
            atomic.sweep_stale_temporaries(target)

    @property
    def chunk_dir(self) -> str:
        return os.path.join(self.work_dir, "chunks")

    def output_options(self) -> dict[str, Any]:
        """Everything besides input rows, model and policy that shapes a chunk's output."""
        return {
            "format": FORMAT_VERSION,
            "pii_frames": _package_version(),
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
            for suffix, wanted in (("_pii_spans", self.include_spans), ("_pii_category", self.include_category)):
                if wanted and schema.get_field_index(name + suffix) >= 0:
                    raise ValueError(
                        f"{where} already has a column {name + suffix!r}; rename it or turn off that output column"
                    )

    # ------------------------------------------------------------------ chunks

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
            "computed_at": _utc_now(),
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

    # ------------------------------------------------------------------ publish

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
        if os.path.isdir(target) and _manifest_digest(os.path.join(target, MANIFEST_NAME)) == digest:
            if self._audit_digest() != digest:
                self._write_audit(audit)  # output is current; only the audit write was interrupted
            return False
        # Staged beside the final folder, so the swap is a rename within one filesystem.
        stage_beside = _version_stem(link) if is_link else target
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
                    "published_at": _utc_now(),
                },
            )
            if not is_link:
                atomic.replace_directory(staging, target)
            else:
                version = f"{_version_stem(link)}.pii-{digest[:12]}"
                atomic.replace_directory(staging, version)
                atomic.replace_symlink(link, version)
                if target != version and _is_version_of(target, link):
                    shutil.rmtree(target, ignore_errors=True)
        self._write_audit(audit)
        return True

    def _audit_digest(self) -> str | None:
        location = self.audit_location
        try:
            if isinstance(location, ParquetLocation):
                return _parquet_digest(location.path)
            if isinstance(location, SQLLocation):
                with sql_io.open_engine(location).connect() as con:
                    return _comment_digest(sql_io.read_sql_comment(con, location)[1])
            if not os.path.exists(location.database):
                return None
            with connect_duckdb(location, read_only=True) as con:
                return _comment_digest(duckdb_table_comment(con, location))
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
        with connect_duckdb(location, read_only=False) as own, _transaction(own):
            _replace_duckdb_table_from_arrow(own, location, audit, digest)

    def _check_sql_tables(self) -> None:
        """Source and destination in one database (the publish joins them), and not one table under two names."""
        source, destination = self.source_location, self.destination_location
        if not isinstance(destination, SQLLocation):
            return
        if not sql_io.same_sql_database(source, destination):
            raise ValueError(f"destination {destination.uri} is not in the database of the source {source.uri}; "
                             "a SQL destination must be in the source's database (its other columns are copied "
                             "there by INSERT ... SELECT)")
        for role, other in (("destination", destination), ("audit_destination", self.audit_location)):
            if isinstance(other, SQLLocation) and other.table == source.table and (
                (other.schema or sql_io.default_schema(other)) == (source.schema or sql_io.default_schema(source))
            ):
                raise ValueError(f"{role} {other.uri} is the source table {source.uri}; choose another table name")

    def _publish_sql(self, ordered, audit: pa.Table, digest: str, total_rows: int) -> bool:
        extra = [name + suffix for name in self.column_names
                 for suffix, wanted in (("_pii_spans", self.include_spans), ("_pii_category", self.include_category))
                 if wanted]
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
                current = _comment_digest(comment)
                if (found[2] != "BASE TABLE" or not _marked(comment)) and not self.overwrite:
                    raise SanitizeJobError(
                        f"{target.describe()} exists as {found[0]}.{found[1]} and was not written by pii_frames; "
                        "choose another table, drop it first, or pass overwrite=True to replace it"
                    )
            changed = current != digest
            if changed:
                files = [path for _, path in ordered]
                with _transaction(con):
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
            elif audit_in_same_database and _comment_digest(duckdb_table_comment(con, audit_location)) != digest:
                with _transaction(con):
                    self._write_audit(audit, con=con)  # output is current; only the audit was lost
        if not audit_in_same_database and (changed or self._audit_digest() != digest):
            self._write_audit(audit)
        return changed

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

    # ------------------------------------------------------------------ whole job

    def run(self, *, run_id: str | None = None) -> dict[str, Any]:
        """Plan, sanitize every chunk in this process, then publish. Returns the publish summary."""
        plan = self.plan()
        results = []
        for chunk in plan:
            results.append(self.sanitize_chunk(chunk, run_id=run_id))
            release_memory()  # each chunk frees what the last allocated; glibc keeps it unless asked
        return self.publish(plan, results)


@contextlib.contextmanager
def _transaction(con):
    """BEGIN ... COMMIT, rolled back on any error so a failed publish leaves the old table in place."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _manifest_digest(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("digest")
    except (OSError, ValueError):
        return None


def _parquet_digest(path: str) -> str | None:
    """The output digest an audit file written by pii_frames carries in its schema metadata, else None."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return None
    value = metadata.get(DIGEST_METADATA_KEY)
    return value.decode() if value else None


def _marked(comment: str | None) -> bool:
    return bool(comment) and str(comment).startswith(OUTPUT_MARK)


def _comment_digest(comment: str | None) -> str | None:
    return str(comment)[len(OUTPUT_MARK):] if _marked(comment) else None


def _version_stem(link: str) -> str:
    """``<folder of the link's target>/<link name>``: new versions of a linked destination are named after it."""
    return os.path.join(os.path.dirname(os.path.realpath(link)), os.path.basename(link))


def _is_version_of(folder: str, link: str) -> bool:
    """Whether ``folder`` is a version folder pii_frames published for ``link`` (so it may remove it)."""
    match = _VERSION_DIR.match(os.path.basename(folder))
    return bool(
        match
        and match["link"] == os.path.basename(link)
        and os.path.dirname(folder) == os.path.dirname(_version_stem(link))
        and os.path.exists(os.path.join(folder, MANIFEST_NAME))
    )


def _replace_duckdb_table_from_arrow(con, location: DuckDBLocation, table: pa.Table, digest: str) -> None:
    view_name = "pii_frames_audit_rows"
    con.register(view_name, table)
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(location.schema)}")
        con.execute(f"CREATE OR REPLACE TABLE {location.qualified_name} AS SELECT * FROM {view_name}")
        con.execute(f"COMMENT ON TABLE {location.qualified_name} IS '{OUTPUT_MARK}{digest}'")
    finally:
        con.unregister(view_name)


def _spans_without_text(spans: pa.Array) -> pa.Array:
    """The spans list with the matched text dropped: a sanitized table must not carry the raw PII."""
    if isinstance(spans, pa.ChunkedArray):
        spans = spans.combine_chunks()
    values = spans.values
    kept = pa.StructArray.from_arrays(
        [values.field(name) for name in SPAN_FIELDS], names=list(SPAN_FIELDS)
    )
    return pa.ListArray.from_arrays(spans.offsets, kept, mask=spans.is_null())
