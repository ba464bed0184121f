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

import datetime as _dt
import decimal
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qs

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "AIRFLOW_CONN_PREFIX", "SQLLocation", "check_sql_owner", "default_schema", "is_sql_location", "open_engine", "parse_sql_location",
    "plan_sql_ranges", "publish_sql_table", "read_sql_comment", "read_sql_range", "read_sql_sample",
    "read_sql_schema", "same_sql_database", "write_sql_audit",
]

#: The ``uri`` prefix of a location reached through an Airflow Connection (``airflow-conn://<conn_id>::table``).
AIRFLOW_CONN_PREFIX = "airflow-conn://"
_NOT_SQL_SCHEMES = ("duckdb", "file")
OUTPUT_MARK = "pii_frames:"


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


def _preparer(engine):
    return engine.dialect.identifier_preparer


def _qualified(engine, location: SQLLocation, table: str | None = None) -> str:
    """``"schema"."table"`` quoted by the dialect's own rules."""
    prep = _preparer(engine)
    name = prep.quote_identifier(table or location.table)
    return f"{prep.quote_identifier(location.schema)}.{name}" if location.schema else name


# --------------------------------------------------------------------------- reading


def _columns(con, location: SQLLocation, *, role: str = "source") -> list[dict[str, Any]]:
    import sqlalchemy as sa

    inspector = sa.inspect(con)
    try:
        columns = inspector.get_columns(location.table, schema=location.schema)
    except sa.exc.NoSuchTableError:
        columns = []
    if not columns:
        raise ValueError(f"{role} {location.describe()} does not exist (names are case-sensitive here; "
                         f"tables in that schema: {sorted(_table_names(inspector, location))[:20]}); "
                         f"check the {role!r} parameter")
    return columns


def _table_names(inspector, location: SQLLocation) -> list[str]:
    try:
        return inspector.get_table_names(schema=location.schema)
    except Exception:  # the schema itself is missing
        return []


def _arrow_type(sql_type) -> pa.DataType:
    """The Arrow type a column is read as; anything without a faithful Arrow type is read as its text."""
    import sqlalchemy as sa

    if isinstance(sql_type, (sa.Enum, sa.String)):
        return pa.string()
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.SmallInteger):
        return pa.int16()
    if isinstance(sql_type, sa.BigInteger):
        return pa.int64()
    if isinstance(sql_type, sa.Integer):
        return pa.int32() if type(sql_type) in (sa.Integer, sa.INTEGER) else pa.int64()
    if isinstance(sql_type, sa.Float):  # before Numeric: Float is one in SQLAlchemy
        return pa.float64()
    if isinstance(sql_type, sa.Numeric):
        precision, scale = sql_type.precision, sql_type.scale
        if precision and scale is not None and precision <= 38:
            return pa.decimal128(precision, scale)
        return pa.string()
    if isinstance(sql_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if sql_type.timezone else None)
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    if isinstance(sql_type, sa.Time):
        return pa.time64("us")
    if isinstance(sql_type, sa.Interval):
        return pa.duration("us")
    if isinstance(sql_type, sa.LargeBinary):
        return pa.binary()
    return pa.string()


def _to_arrow_value(value: Any, arrow_type: pa.DataType) -> Any:
    if value is None or not pa.types.is_string(arrow_type) or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def read_sql_schema(con_or_engine, location: SQLLocation) -> pa.Schema:
    """The Arrow schema rows are read as (text types as ``string``); a missing table is a clear error."""
    with _connection(con_or_engine) as con:
        columns = _columns(con, location)
    return pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in columns])


class _connection:
    """``with _connection(engine_or_connection) as con``: a connection, opened and closed only when needed."""

    def __init__(self, con_or_engine) -> None:
        self.given = con_or_engine
        self.owned = None

    def __enter__(self):
        if hasattr(self.given, "connect"):
            self.owned = self.given.connect()
            return self.owned
        return self.given

    def __exit__(self, *exc) -> None:
        if self.owned is not None:
            self.owned.close()


def _table(location: SQLLocation, columns: Sequence[dict[str, Any]], name: str | None = None):
    import sqlalchemy as sa

    return sa.Table(name or location.table, sa.MetaData(), *[sa.Column(c["name"], c["type"]) for c in columns],
                    schema=location.schema)


_KEY_CODECS = {"int": int, "str": str, "uuid": uuid.UUID, "date": _dt.date.fromisoformat,
               "datetime": _dt.datetime.fromisoformat, "decimal": decimal.Decimal}


def _key_codec(value: Any) -> str:
    for name, kind in (("int", int), ("str", str), ("uuid", uuid.UUID), ("datetime", _dt.datetime),
                       ("date", _dt.date), ("decimal", decimal.Decimal)):
        if isinstance(value, kind) and not isinstance(value, bool):
            return name
    raise ValueError(f"key values of type {type(value).__name__} cannot be planned; use an integer, text, "
                     "UUID, date/timestamp or numeric key column")


def _encode_key(value: Any) -> Any:
    """Chunk bounds travel as JSON (XCom): ints and strings as they are, other key types as their text."""
    return value if isinstance(value, (int, str)) or value is None else (
        value.isoformat() if isinstance(value, (_dt.date, _dt.datetime)) else str(value))


def plan_sql_ranges(location: SQLLocation, rows_per_chunk: int, max_chunks: int,
                    text_columns: Sequence[str] = ()) -> tuple[pa.Schema, list[dict[str, Any]]]:
    """Check the table, its columns and its key, then split it into key ranges of about ``rows_per_chunk`` rows.

    Returns the Arrow schema and the chunks, each ``{"rows", "key_start",
    "key_stop", "key_codec"}`` (``key_start`` inclusive, ``key_stop``
    exclusive; None is unbounded, so the first and last ranges also catch
    rows added since: their counts then differ and the read fails loudly).
    Raises ValueError naming the table, the column or the duplicated key.
    """
    import sqlalchemy as sa

    engine = open_engine(location)
    with engine.connect() as con:
        columns = _columns(con, location)
        names = [c["name"] for c in columns]
        if location.key not in names:
            raise ValueError(f"key column {location.key!r} is not in {location.describe()}; its columns are {names}")
        for name in text_columns:
            if name not in names:
                raise ValueError(f"column {name!r} is not in {location.describe()}; its columns are {names}")
        by_name = {c["name"]: c for c in columns}
        for name in text_columns:
            if not isinstance(by_name[name]["type"], sa.String) or isinstance(by_name[name]["type"], sa.Enum):
                raise ValueError(f"column {name!r} of {location.describe()} has type {by_name[name]['type']}, not "
                                 "text; only text columns are rewritten: cast it to text or drop it from columns")
        if location.key in text_columns:
            raise ValueError(f"column {location.key!r} is the key of {location.describe()}; a sanitized key could "
                             "no longer be matched to its row: choose another key or leave it out of columns")
        table = _table(location, columns)
        key = table.c[location.key]
        total, non_null, distinct = con.execute(
            sa.select(sa.func.count(), sa.func.count(key), sa.func.count(sa.distinct(key))).select_from(table)
        ).one()
        if non_null != total or distinct != total:
            example = con.execute(
                sa.select(key, sa.func.count()).select_from(table).group_by(key)
                .having(sa.func.count() > 1).order_by(sa.func.count().desc(), key).limit(1)
            ).first()
            detail = f"{total - non_null} null key(s)" if non_null != total else \
                f"value {example[0]!r} appears {example[1]} times"
            raise ValueError(
                f"key column {location.key!r} of {location.describe()} is not unique: {total} rows, {distinct} "
                f"distinct non-null keys ({detail}); give a unique, non-null key column (the primary key)"
            )
        schema = pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in columns])
        if total == 0:
            return schema, []
        width = max(int(rows_per_chunk), -(-total // int(max_chunks)))
        numbered = sa.select(key.label("k"), sa.func.row_number().over(order_by=key).label("rn")).subquery()
        starts = [row[0] for row in con.execute(
            sa.select(numbered.c.k).where((numbered.c.rn - 1) % width == 0).order_by(numbered.c.k)
        )]
    codec = _key_codec(starts[0])
    chunks = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else None
        rows = width if stop is not None else total - width * (len(starts) - 1)
        chunks.append({"rows": int(rows), "key_start": None if i == 0 else _encode_key(start),
                       "key_stop": _encode_key(stop), "key_codec": codec})
    return schema, chunks


def _decode_key(value: Any, codec: str | None) -> Any:
    if value is None or codec in (None, "int", "str"):
        return value
    return _KEY_CODECS[codec](value)


def read_sql_range(location: SQLLocation, chunk: Mapping[str, Any], schema: pa.Schema,
                   columns: Sequence[str] | None = None) -> pa.Table:
    """Read the rows of one planned key range, ordered by the key, as an Arrow table of ``schema``."""
    import sqlalchemy as sa

    engine = open_engine(location)
    with engine.connect() as con:
        reflected = _columns(con, location)
        table = _table(location, reflected)
        wanted = list(columns) if columns is not None else schema.names
        key = table.c[location.key]
        query = sa.select(*[table.c[name] for name in wanted]).order_by(key)
        codec = chunk.get("key_codec")
        if chunk.get("key_start") is not None:
            query = query.where(key >= _decode_key(chunk["key_start"], codec))
        if chunk.get("key_stop") is not None:
            query = query.where(key < _decode_key(chunk["key_stop"], codec))
        rows = con.execute(query).fetchall()
    return _rows_to_arrow(rows, wanted, schema)


def _rows_to_arrow(rows, names: Sequence[str], schema: pa.Schema) -> pa.Table:
    arrays = []
    for i, name in enumerate(names):
        arrow_type = schema.field(name).type
        values = [_to_arrow_value(row[i], arrow_type) for row in rows]
        arrays.append(pa.array(values, type=arrow_type))
    return pa.Table.from_arrays(arrays, schema=pa.schema([schema.field(n) for n in names]))


def read_sql_sample(location: SQLLocation, columns: Sequence[str] | None, rows: int, seed: int = 0) -> pa.Table:
    """About ``rows`` rows of the table (key and ``columns``), the same rows for the same seed.

    On PostgreSQL and MySQL rows are ordered by ``md5(key || seed)`` (a fixed
    pseudo-random sample); elsewhere the first rows by key are taken.
    """
    import sqlalchemy as sa

    engine = open_engine(location)
    with engine.connect() as con:
        reflected = _columns(con, location)
        table = _table(location, reflected)
        names = [c["name"] for c in reflected]
        wanted = [location.key] + [n for n in (columns or names) if n != location.key]
        for name in wanted:
            if name not in names:
                raise ValueError(f"column {name!r} is not in {location.describe()}; its columns are {names}")
        key = table.c[location.key]
        order = key
        if engine.dialect.name in ("postgresql", "mysql"):
            order = sa.func.md5(sa.func.concat(sa.cast(key, sa.Text), str(int(seed))))
        result = con.execute(sa.select(*[table.c[n] for n in wanted]).order_by(order).limit(int(rows))).fetchall()
        schema = pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in reflected])
    return _rows_to_arrow(result, wanted, schema)


# --------------------------------------------------------------------------- ownership


def read_sql_comment(con, location: SQLLocation) -> tuple[bool, str | None]:
    """``(exists, comment)`` of the table (comment None when it has none or the dialect keeps none)."""
    import sqlalchemy as sa

    inspector = sa.inspect(con)
    if not inspector.has_table(location.table, schema=location.schema):
        return False, None
    try:
        return True, inspector.get_table_comment(location.table, schema=location.schema).get("text")
    except NotImplementedError:
        return True, None


def check_sql_owner(location: SQLLocation, role: str, overwrite: bool, error=RuntimeError) -> str | None:
    """Refuse an existing table pii_frames did not write unless ``overwrite``; returns its output digest or None."""
    with open_engine(location).connect() as con:
        exists, comment = read_sql_comment(con, location)
    if not exists:
        return None
    if _marked(comment):
        return comment[len(OUTPUT_MARK):]
    if not overwrite:
        raise error(f"{role} {location.describe()} exists and was not written by pii_frames (its comment is "
                    f"{comment!r}); choose another table, drop it first, or pass overwrite=True to replace it")
    return None


def _marked(comment: str | None) -> bool:
    return bool(comment) and str(comment).startswith(OUTPUT_MARK)


# --------------------------------------------------------------------------- writing


def _set_comment(con, location: SQLLocation, digest: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.schema import SetTableComment

    table = sa.Table(location.table, sa.MetaData(), schema=location.schema, comment=OUTPUT_MARK + digest)
    if con.dialect.supports_comments:
        con.execute(SetTableComment(table))


def _audit_table(location: SQLLocation):
    import sqlalchemy as sa

    return sa.Table(
        location.table, sa.MetaData(),
        sa.Column("chunk_index", sa.Integer), sa.Column("rows", sa.BigInteger), sa.Column("spans_total", sa.BigInteger),
        sa.Column("spans_by_label", sa.Text), sa.Column("model_id", sa.Text), sa.Column("policy_hash", sa.Text),
        sa.Column("fingerprint", sa.Text), sa.Column("duration_s", sa.Float), sa.Column("computed_in_run", sa.Text),
        sa.Column("computed_at", sa.Text), sa.Column("source", sa.Text), sa.Column("destination", sa.Text),
        sa.Column("columns", sa.Text),
        schema=location.schema,
    )


def write_sql_audit(location: SQLLocation, audit: pa.Table, digest: str, *, con=None, overwrite: bool = False,
                    error=RuntimeError) -> None:
    """Replace the audit table by ``audit`` (maps and lists as JSON text) and mark it with the digest.

    With ``con`` (an open transaction) it joins that transaction; otherwise it runs in its own.
    """
    if con is None:
        with open_engine(location).begin() as own:
            write_sql_audit(location, audit, digest, con=own, overwrite=overwrite, error=error)
        return
    exists, comment = read_sql_comment(con, location)
    if exists and not _marked(comment) and not overwrite:
        raise error(f"audit_destination {location.describe()} exists and was not written by pii_frames; choose "
                    "another table, drop it first, or pass overwrite=True to replace it")
    table = _audit_table(location)
    if exists:
        table.drop(con)
    table.create(con)
    rows = []
    for row in audit.to_pylist():
        row = dict(row)
        row["spans_by_label"] = json.dumps(dict(row["spans_by_label"] or []), sort_keys=True)
        row["columns"] = json.dumps(row["columns"])
        rows.append(row)
    if rows:
        con.execute(table.insert(), rows)
    _set_comment(con, location, digest)


def publish_sql_table(
    source: SQLLocation,
    destination: SQLLocation,
    chunk_files: Sequence[str],
    *,
    columns: Sequence[str],
    extra_columns: Sequence[str],
    digest: str,
    total_rows: int,
    overwrite: bool,
    audit: pa.Table | None = None,
    audit_location: SQLLocation | None = None,
    error=RuntimeError,
) -> bool:
    """Swap in the sanitized table in one transaction; False (nothing written) when it already holds ``digest``.

    ``chunk_files`` are the chunk outputs (Parquet, in plan order) holding the
    key, the sanitized ``columns`` and the ``extra_columns``
    (``<col>_pii_spans`` as JSON, ``<col>_pii_category``). Every other column
    is copied from ``source`` by ``INSERT ... SELECT ... JOIN`` on the key.
    When ``audit_location`` is given it is written in the same transaction.
    Raises ``error`` when a planned key is missing or repeated, or the
    destination is a table pii_frames did not write and ``overwrite`` is False.
    """
    import sqlalchemy as sa

    engine = open_engine(destination)
    with engine.begin() as con:
        exists, comment = read_sql_comment(con, destination)
        if exists and not _marked(comment) and not overwrite:
            raise error(f"destination {destination.describe()} exists and was not written by pii_frames; choose "
                        "another table, drop it first, or pass overwrite=True to replace it")
        if exists and comment == OUTPUT_MARK + digest:
            if audit_location is not None:
                _, audit_comment = read_sql_comment(con, audit_location)
                if audit_comment != OUTPUT_MARK + digest:
                    write_sql_audit(audit_location, audit, digest, con=con, overwrite=overwrite, error=error)
            return False
        source_columns = _columns(con, source)
        by_name = {c["name"]: c for c in source_columns}
        key_column = by_name[source.key]
        is_postgres = engine.dialect.name == "postgresql"
        json_type = sa.dialects.postgresql.JSONB() if is_postgres else sa.Text()

        # 1. The sanitized values, keyed, in a temporary table dropped at commit.
        temp_name = f"pii_frames_sanitized_{os.getpid()}"
        temp_columns = [sa.Column(source.key, key_column["type"], primary_key=True)]
        temp_columns += [sa.Column(name, by_name[name]["type"]) for name in columns]
        temp_columns += [sa.Column(name, json_type if name.endswith("_pii_spans") else sa.Text)
                         for name in extra_columns]
        temp_kwargs = {"postgresql_on_commit": "DROP"} if is_postgres else {}
        temp = sa.Table(temp_name, sa.MetaData(), *temp_columns, prefixes=["TEMPORARY"], **temp_kwargs)
        temp.create(con)
        wanted = [source.key, *columns, *extra_columns]
        for path in chunk_files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000, columns=wanted):
                rows = batch.to_pylist()
                for row in rows:
                    for name in extra_columns:
                        if name.endswith("_pii_spans") and row[name] is not None:
                            row[name] = row[name] if is_postgres else json.dumps(row[name])
                if rows:
                    con.execute(temp.insert(), rows)
        loaded, distinct = con.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(temp.c[source.key])))
        ).one()
        if loaded != total_rows or distinct != total_rows:
            raise error(f"the chunk outputs hold {loaded} rows with {distinct} distinct keys, {total_rows} were "
                        "planned; re-run the DAG")

        # 2. A staging table with the source's column definitions, filled by one INSERT ... SELECT.
        stage = destination.with_table(f"pii_stage_{digest[:16]}")
        stage_q = _qualified(engine, stage)
        con.execute(sa.text(f"DROP TABLE IF EXISTS {stage_q}"))
        if is_postgres:
            # Types, NOT NULL, CHECK constraints, indexes and column comments of the source; no defaults or
            # identity/generated clauses, which would tie the copy to the source's sequences or refuse the copy.
            con.execute(sa.text(
                f"CREATE TABLE {stage_q} (LIKE {_qualified(engine, source)} INCLUDING CONSTRAINTS "
                "INCLUDING INDEXES INCLUDING STORAGE INCLUDING COMMENTS)"
            ))
            for name in extra_columns:
                kind = "JSONB" if name.endswith("_pii_spans") else "TEXT"
                con.execute(sa.text(
                    f"ALTER TABLE {stage_q} ADD COLUMN {_preparer(engine).quote_identifier(name)} {kind}"))
        else:
            sa.Table(stage.table, sa.MetaData(),
                     *[sa.Column(c["name"], c["type"], nullable=c.get("nullable", True)) for c in source_columns],
                     *[sa.Column(name, sa.Text) for name in extra_columns], schema=stage.schema).create(con)
        src = _table(source, source_columns).alias("src")
        names = [c["name"] for c in source_columns] + list(extra_columns)
        selected = [temp.c[n] if (n in columns or n in extra_columns) else src.c[n] for n in names]
        stage_table = sa.Table(stage.table, sa.MetaData(), *[sa.Column(n) for n in names], schema=stage.schema)
        result = con.execute(stage_table.insert().from_select(
            names, sa.select(*selected).select_from(src.join(temp, src.c[source.key] == temp.c[source.key]))
        ))
        (staged,) = con.execute(sa.select(sa.func.count()).select_from(stage_table)).one()
        if staged != total_rows:
            raise error(f"{staged} source rows matched the {total_rows} sanitized keys (rows were deleted from "
                        f"{source.describe()} since it was read: {result.rowcount}); re-run the DAG")

        # 3. The swap: readers see the old table until this transaction commits, then the new one.
        target_q = _qualified(engine, destination)
        if exists:
            try:
                con.execute(sa.text(f"DROP TABLE {target_q}"))
            except sa.exc.DBAPIError as failure:
                raise error(f"cannot replace {destination.describe()}: {failure.orig}; drop or recreate the objects "
                            "that depend on it (views), then re-run") from None
        con.execute(sa.text(
            f"ALTER TABLE {stage_q} RENAME TO {_preparer(engine).quote_identifier(destination.table)}"))
        _set_comment(con, destination, digest)
        if audit_location is not None:
            write_sql_audit(audit_location, audit, digest, con=con, overwrite=overwrite, error=error)
    return True
