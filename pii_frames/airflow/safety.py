"""How a table job never destroys data that is not its own (see :mod:`pii_frames.airflow.jobs`).

The destination, the audit and the work folder may not be, contain or lie inside the source, nor each
other; an existing destination or audit pii_frames did not write (no manifest, no digest mark) is refused
unless ``overwrite=True``; temporaries of dead runs are swept. :class:`SafetyChecks` holds these checks
for :class:`~pii_frames.airflow.jobs.SanitizeJob`, with the marks that say an output is pii_frames' own.
"""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from pii_frames.io import atomic
from pii_frames.io import sql as sql_io
from pii_frames.io.locations import (
    DuckDBLocation,
    Location,
    ParquetLocation,
    conflicts,
    connect_duckdb,
    duckdb_table_comment,
    find_duckdb_relation,
)
from pii_frames.io.paths import overlaps
from pii_frames.io.sql import SQLLocation
from pii_frames.io.sql.publish import marked

__all__ = ["DIGEST_METADATA_KEY", "MANIFEST_NAME", "SafetyChecks", "SanitizeJobError", "is_version_of",
           "manifest_digest", "parquet_digest", "version_stem"]

MANIFEST_NAME = "_pii_frames_manifest.json"
DIGEST_METADATA_KEY = b"pii_frames_output_digest"
_VERSION_DIR = re.compile(r"^(?P<link>.+)\.pii-[0-9a-f]{12}$")


class SanitizeJobError(RuntimeError):
    """A table job cannot go on safely (lost/duplicated rows, changed source, foreign output)."""


class SafetyChecks:
    """The location and ownership checks of a SanitizeJob (its locations, work_dir and overwrite flag)."""

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
                ours = parquet_digest(path) is not None
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
        if not marked(comment) and not self.overwrite:
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
                targets.append(version_stem(destination.path))
        for target in targets:
            atomic.sweep_stale_temporaries(target)

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


def manifest_digest(path: str) -> str | None:
    """The output digest in a published folder's manifest, else None."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("digest")
    except (OSError, ValueError):
        return None


def parquet_digest(path: str) -> str | None:
    """The output digest an audit file written by pii_frames carries in its schema metadata, else None."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return None
    value = metadata.get(DIGEST_METADATA_KEY)
    return value.decode() if value else None


def version_stem(link: str) -> str:
    """``<folder of the link's target>/<link name>``: new versions of a linked destination are named after it."""
    return os.path.join(os.path.dirname(os.path.realpath(link)), os.path.basename(link))


def is_version_of(folder: str, link: str) -> bool:
    """Whether ``folder`` is a version folder pii_frames published for ``link`` (so it may remove it)."""
    match = _VERSION_DIR.match(os.path.basename(folder))
    return bool(
        match
        and match["link"] == os.path.basename(link)
        and os.path.dirname(folder) == os.path.dirname(version_stem(link))
        and os.path.exists(os.path.join(folder, MANIFEST_NAME))
    )
