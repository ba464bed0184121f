"""Where a SQL table is: :class:`SQLLocation` (URL or Airflow connection, schema, table, key), parsing it, and
the one SQLAlchemy engine per database with its dialect's identifier quoting.

See :mod:`pii_frames.io.sql` for the forms a location is written in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs

__all__ = [
    "AIRFLOW_CONN_PREFIX", "SQLLocation", "default_schema", "is_sql_location", "open_engine", "parse_sql_location",
    "qualified_name", "quote", "resolved_url", "same_sql_database",
]

#: The ``uri`` prefix of a location reached through an Airflow Connection (``airflow-conn://<conn_id>::table``).
AIRFLOW_CONN_PREFIX = "airflow-conn://"
_NOT_SQL_SCHEMES = ("duckdb", "file")


@dataclass(frozen=True)
class SQLLocation:
    """A table in a SQL database: by SQLAlchemy ``url`` or Airflow ``conn_id``, with its unique ``key`` column.

    ``schema`` None means the connection's default schema (``public`` on PostgreSQL).

    >>> loc = parse_sql_location("postgresql+psycopg://etl:pw@db:5432/crm::raw.tickets?key=id")
    >>> loc.uri
    'postgresql+psycopg://etl:***@db:5432/crm::raw.tickets?key=id'
    >>> loc.describe()
    'SQL table raw.tickets (key id) in postgresql+psycopg://etl:***@db:5432/crm'
    """

    table: str
    key: str
    schema: str | None = None
    conn_id: str | None = None
    url: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        where = f"conn_id={self.conn_id!r}" if self.conn_id else f"url={self.safe_url!r}"
        return f"SQLLocation({where}, schema={self.schema!r}, table={self.table!r}, key={self.key!r})"

    @property
    def safe_url(self) -> str | None:
        """The URL with its password replaced by ``***`` (None for a connection id)."""
        if self.url is None:
            return None
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    @property
    def uri(self) -> str:
        """A printable, password-free name of this location (used in audits, logs and chunk plans)."""
        where = AIRFLOW_CONN_PREFIX + self.conn_id if self.conn_id else self.safe_url
        return f"{where}::{self.qualified}?key={self.key}"

    @property
    def spec(self) -> dict[str, str]:
        """The dict form (URL included as given): what :func:`parse_sql_location` reads back."""
        spec = {"conn_id": self.conn_id} if self.conn_id else {"url": self.url}
        return {**spec, "table": self.qualified, "key": self.key}

    @property
    def asset_uri(self) -> str:
        """``<backend>://host:port/database/schema/table``, the form Airflow's SQL providers use for Assets."""
        url = resolved_url(self)
        backend = "postgres" if url.get_backend_name() == "postgresql" else url.get_backend_name()
        port = url.port or {"postgres": 5432, "mysql": 3306}.get(backend)
        host = f"{url.host or 'localhost'}" + (f":{port}" if port else "")
        return f"{backend}://{host}/{url.database}/{self.schema or default_schema(self)}/{self.table}"

    @property
    def footprint(self) -> None:
        """No file: a SQL table never overlaps a local path (``work_dir`` checks skip it)."""
        return None

    def with_table(self, table: str) -> SQLLocation:
        return SQLLocation(table=table, key=self.key, schema=self.schema, conn_id=self.conn_id, url=self.url)

    def same_table(self, other: SQLLocation) -> bool:
        """Whether both name one table of one database, judged without connecting (same conn id or same server).

        >>> a = parse_sql_location("postgresql://u@h/db::public.t?key=id")
        >>> a.same_table(parse_sql_location("postgresql+psycopg://u:x@h:5432/db::public.t?key=other"))
        True
        """
        return self.database_identity() == other.database_identity() and (
            (self.schema or "") == (other.schema or "") and self.table == other.table
        )

    def database_identity(self) -> tuple:
        """``(backend, host, port, database)`` for a URL, ``("airflow", conn_id)`` for a connection."""
        if self.conn_id:
            return ("airflow", self.conn_id)
        return _url_identity(_make_url(self.url))

    def describe(self) -> str:
        where = f"Airflow connection {self.conn_id!r}" if self.conn_id else self.safe_url
        return f"SQL table {self.qualified} (key {self.key}) in {where}"


def _make_url(text: str):
    from sqlalchemy.engine import make_url

    return make_url(text)


def _url_identity(url) -> tuple:
    backend = url.get_backend_name()
    port = url.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}.get(backend)
    return (backend, (url.host or "localhost").lower(), port, url.database)


def is_sql_location(value: Any) -> bool:
    """Whether ``value`` is written as a SQL location (dict with conn_id/url, its JSON, or ``<url>::table``).

    >>> is_sql_location({"conn_id": "pg", "table": "t", "key": "id"}), is_sql_location("duckdb:///w.db::t")
    (True, False)
    >>> is_sql_location("postgresql://u@h/db::public.t?key=id"), is_sql_location("/data/t.parquet")
    (True, False)
    """
    if isinstance(value, SQLLocation):
        return True
    if isinstance(value, Mapping):
        return "conn_id" in value or "url" in value
    if not isinstance(value, str):
        return False
    text = value.strip()
    if text.startswith("{"):
        try:
            return is_sql_location(json.loads(text))
        except ValueError:
            return False
    scheme, sep, _ = text.partition("://")
    return bool(sep) and "::" in text and scheme.split("+")[0].lower() not in _NOT_SQL_SCHEMES


def parse_sql_location(value: Any, *, role: str = "source") -> SQLLocation:
    """Parse a SQL location (dict, JSON text, ``<url>::schema.table?key=col`` or ``airflow-conn://id::...``).

    >>> parse_sql_location({"conn_id": "warehouse", "table": "raw.tickets", "key": "id"})
    SQLLocation(conn_id='warehouse', schema='raw', table='tickets', key='id')
    >>> parse_sql_location("postgresql://u@h/db::tickets")
    Traceback (most recent call last):
    ...
    ValueError: source 'postgresql://u@h/db::tickets' names no key column; add '?key=<unique column>', e.g. postgresql://u@h/db::tickets?key=id
    """
    if isinstance(value, SQLLocation):
        return value
    shown = value
    if isinstance(value, str) and value.strip().startswith("{"):
        value = json.loads(value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"conn_id", "url", "table", "schema", "key"})
        if unknown:
            raise ValueError(f"{role} {dict(value)!r}: unknown key(s) {unknown}; use conn_id or url, table, key")
        if bool(value.get("conn_id")) == bool(value.get("url")):
            raise ValueError(f"{role} must give exactly one of 'conn_id' (an Airflow Connection) or 'url' "
                             f"(a SQLAlchemy URL), got {sorted(value)}")
        table, key = value.get("table"), value.get("key")
        if not table or not isinstance(table, str):
            raise ValueError(f"{role} names no table: add \"table\": \"schema.table\"")
        if not key or not isinstance(key, str):
            raise ValueError(f"{role} table {table!r} names no key column: add \"key\": \"<unique column>\" "
                             "(chunks are key ranges; the primary key is the usual choice)")
        schema = value.get("schema")
        if schema is None and "." in table:
            schema, table = table.split(".", 1)
        if value.get("url"):
            _make_url(str(value["url"]))  # a malformed URL fails here, naming the role
        return SQLLocation(table=table, key=key, schema=schema or None,
                           conn_id=value.get("conn_id") or None, url=value.get("url") or None)
    if not isinstance(value, str):
        raise ValueError(f"{role} must be a location string or a dict, got {shown!r}")
    text = value.strip()
    where, sep, rest = text.rpartition("::")
    if not sep or not where or not rest:
        raise ValueError(f"{role} {text!r} names no table; write it as '<sqlalchemy url>::schema.table?key=id'")
    table_part, _, query = rest.partition("?")
    keys = parse_qs(query).get("key") if query else None
    if not keys:
        raise ValueError(f"{role} {text!r} names no key column; add '?key=<unique column>', e.g. {text}?key=id")
    spec: dict[str, Any] = {"table": table_part, "key": keys[0]}
    if where.startswith(AIRFLOW_CONN_PREFIX):
        spec["conn_id"] = where[len(AIRFLOW_CONN_PREFIX):]
    else:
        try:
            _make_url(where)
        except Exception as error:  # sqlalchemy.exc.ArgumentError, with the URL in it
            raise ValueError(f"{role}: {where.split('@')[-1]!r} is not a SQLAlchemy URL ({type(error).__name__})") from None
        spec["url"] = where
    return parse_sql_location(spec, role=role)


# --------------------------------------------------------------------------- engines

_ENGINES: dict[tuple, Any] = {}


def open_engine(location: SQLLocation):
    """The SQLAlchemy engine of a location, one per process and database.

    A ``conn_id`` is resolved through Airflow: the connection's hook must be a
    ``DbApiHook`` (``common.sql`` provider), whose ``get_sqlalchemy_engine()``
    is used, so the provider's own URL rules (drivers, IAM tokens, extras) apply.
    """
    cache_key = ("airflow", location.conn_id) if location.conn_id else ("url", location.url)
    engine = _ENGINES.get(cache_key)
    if engine is not None:
        return engine
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    if location.conn_id:
        try:
            from airflow.sdk import BaseHook
        except ImportError:  # pragma: no cover - Airflow 2
            try:
                from airflow.hooks.base import BaseHook
            except ImportError:
                raise ImportError(f"{location.describe()} needs Apache Airflow to resolve its connection; "
                                  "outside Airflow give a SQLAlchemy 'url' instead") from None
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(location.conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise ValueError(f"Airflow connection {location.conn_id!r} gives a {type(hook).__name__}, not a SQL "
                             "DbApiHook; use a connection of a SQL database (postgres, mysql, snowflake...)")
        # NullPool: tasks are short-lived processes; a pool would only hold connections open.
        engine = hook.get_sqlalchemy_engine(engine_kwargs={"poolclass": NullPool})
    else:
        engine = sa.create_engine(location.url, poolclass=NullPool)
    _ENGINES[cache_key] = engine
    return engine


def resolved_url(location: SQLLocation):
    """The SQLAlchemy URL the location connects with (a connection id resolved through Airflow)."""
    return open_engine(location).url if location.conn_id else _make_url(location.url)


def same_sql_database(first: SQLLocation, second: SQLLocation) -> bool:
    """Whether two locations are in one database (connection ids resolved to their servers)."""
    if first.database_identity() == second.database_identity():
        return True
    return _url_identity(resolved_url(first)) == _url_identity(resolved_url(second))


def default_schema(location: SQLLocation) -> str | None:
    """The schema an unqualified table name resolves to on that connection (``public`` on PostgreSQL)."""
    import sqlalchemy as sa

    with open_engine(location).connect() as con:
        return sa.inspect(con).default_schema_name


def quote(engine, name: str) -> str:
    """``name`` quoted as an identifier by the dialect's own rules."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def qualified_name(engine, location: SQLLocation, table: str | None = None) -> str:
    """``"schema"."table"`` quoted by the dialect's own rules."""
    name = quote(engine, table or location.table)
    return f"{quote(engine, location.schema)}.{name}" if location.schema else name
