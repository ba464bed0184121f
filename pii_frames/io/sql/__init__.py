"""Tables in a SQL database as job sources and destinations: key-range chunks in, a staged swap out.

A SQL location names a table, the database holding it, and a *key*: a unique
column (usually the primary key) that orders the rows, so chunks are stable
key ranges that a retry reads again identically. It is written as

- a dict (or its JSON text) for a table reached through an Airflow Connection,
  read with that connection's ``DbApiHook`` (the ``common.sql`` provider; any
  database with a provider hook that gives a SQLAlchemy engine)::

      {"conn_id": "warehouse", "table": "raw.tickets", "key": "id"}

- a SQLAlchemy URL, for scripts and tests outside Airflow, either as a dict
  ``{"url": "postgresql+psycopg://user@host/db", "table": "raw.tickets", "key": "id"}``
  or as one string ``<url>::<schema>.<table>?key=<column>``::

      postgresql+psycopg://etl@db.internal:5432/crm::raw.tickets?key=id

  (``schema.`` may be left out for the connection's default schema; names
  holding ``.``, ``:`` or ``?`` need the dict form). Prefer a URL without a
  password (``~/.pgpass``, ``PGPASSWORD``) or a connection id: a password in
  the URL is hidden from ``uri``, ``describe()`` and ``repr`` but travels with
  the job's parameters.

Reading: :func:`plan_sql_ranges` checks the key is unique and not null (a
clear error before anything is written), then cuts the table into ranges of
about ``rows_per_chunk`` keys (row-number quantiles, so sparse or text keys
split evenly); :func:`read_sql_range` reads one range ``ORDER BY key``.

Writing (:func:`publish_sql_table`): the sanitized text columns are loaded
into a temporary table, a staging table with the source's column definitions
(``CREATE TABLE ... (LIKE source ...)`` on PostgreSQL) is filled by one
``INSERT ... SELECT`` joining the source on the key, so every column that is
not sanitized is copied by the database itself with its exact type, and the
staging table replaces the destination, the audit is written and the output
is marked, all in one transaction. Readers see the old table or the new one;
a failure or a kill rolls everything back (PostgreSQL's DDL is transactional).
On databases whose DDL commits implicitly (MySQL, Snowflake) the drop and the
rename are separate steps, so readers may briefly find no table there; only
PostgreSQL is tested. The destination must be in the source's database.

Every schema, table and column name goes through the dialect's identifier
quoting (SQLAlchemy's ``IdentifierPreparer``); nothing is pasted into SQL text.
"""

from __future__ import annotations

from pii_frames.io.sql.location import (
    AIRFLOW_CONN_PREFIX,
    SQLLocation,
    default_schema,
    is_sql_location,
    open_engine,
    parse_sql_location,
    same_sql_database,
)
from pii_frames.io.sql.publish import OUTPUT_MARK, check_sql_owner, publish_sql_table, read_sql_comment, write_sql_audit
from pii_frames.io.sql.reader import plan_sql_ranges, read_sql_range, read_sql_sample, read_sql_schema

__all__ = [
    "AIRFLOW_CONN_PREFIX", "OUTPUT_MARK", "SQLLocation", "check_sql_owner", "default_schema", "is_sql_location",
    "open_engine", "parse_sql_location", "plan_sql_ranges", "publish_sql_table", "read_sql_comment", "read_sql_range",
    "read_sql_sample", "read_sql_schema", "same_sql_database", "write_sql_audit",
]
