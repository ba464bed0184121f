"""Reading a SQL table: its Arrow schema, key-range chunks of it (:func:`plan_sql_ranges`), one range
(:func:`read_sql_range`) and a seeded sample (:func:`read_sql_sample`).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import uuid
from typing import Any, Mapping, Sequence

import pyarrow as pa

from pii_frames.io.sql.location import SQLLocation, open_engine

__all__ = ["plan_sql_ranges", "read_sql_range", "read_sql_sample", "read_sql_schema", "reflect_columns", "sa_table"]

def reflect_columns(con, location: SQLLocation, *, role: str = "source") -> list[dict[str, Any]]:
    """The columns of the table as SQLAlchemy reflects them; a missing table is a ValueError naming ``role``."""
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
        columns = reflect_columns(con, location)
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


def sa_table(location: SQLLocation, columns: Sequence[dict[str, Any]], name: str | None = None):
    """A SQLAlchemy ``Table`` of the location with the reflected ``columns``."""
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
        columns = reflect_columns(con, location)
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
        table = sa_table(location, columns)
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
        reflected = reflect_columns(con, location)
        table = sa_table(location, reflected)
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
        reflected = reflect_columns(con, location)
        table = sa_table(location, reflected)
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
