"""Writing a SQL table: the output mark, ownership checks, the audit table, and :func:`publish_sql_table`,
which stages the sanitized table and swaps it in within one transaction.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pii_frames.io.sql.location import SQLLocation, open_engine, qualified_name, quote
from pii_frames.io.sql.reader import reflect_columns, sa_table

__all__ = ["OUTPUT_MARK", "check_sql_owner", "comment_digest", "marked", "publish_sql_table", "read_sql_comment",
           "write_sql_audit"]

#: Tables (and DuckDB tables) that pii_frames wrote carry the comment ``pii_frames:<output digest>``.
OUTPUT_MARK = "pii_frames:"


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
    if marked(comment):
        return comment_digest(comment)
    if not overwrite:
        raise error(f"{role} {location.describe()} exists and was not written by pii_frames (its comment is "
                    f"{comment!r}); choose another table, drop it first, or pass overwrite=True to replace it")
    return None


def marked(comment: str | None) -> bool:
    """Whether a table comment is pii_frames' output mark.

    >>> marked("pii_frames:ab12"), marked("raw tickets"), marked(None)
    (True, False, False)
    """
    return bool(comment) and str(comment).startswith(OUTPUT_MARK)


def comment_digest(comment: str | None) -> str | None:
    """The output digest a marked comment carries, else None.

    >>> comment_digest("pii_frames:ab12"), comment_digest("raw tickets")
    ('ab12', None)
    """
    return str(comment)[len(OUTPUT_MARK):] if marked(comment) else None


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
    if exists and not marked(comment) and not overwrite:
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
        if exists and not marked(comment) and not overwrite:
            raise error(f"destination {destination.describe()} exists and was not written by pii_frames; choose "
                        "another table, drop it first, or pass overwrite=True to replace it")
        if exists and comment == OUTPUT_MARK + digest:
            if audit_location is not None:
                _, audit_comment = read_sql_comment(con, audit_location)
                if audit_comment != OUTPUT_MARK + digest:
                    write_sql_audit(audit_location, audit, digest, con=con, overwrite=overwrite, error=error)
            return False
        source_columns = reflect_columns(con, source)
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
        stage_q = qualified_name(engine, stage)
        con.execute(sa.text(f"DROP TABLE IF EXISTS {stage_q}"))
        if is_postgres:
            # Types, NOT NULL, CHECK constraints, indexes and column comments of the source; no defaults or
            # identity/generated clauses, which would tie the copy to the source's sequences or refuse the copy.
            con.execute(sa.text(
                f"CREATE TABLE {stage_q} (LIKE {qualified_name(engine, source)} INCLUDING CONSTRAINTS "
                "INCLUDING INDEXES INCLUDING STORAGE INCLUDING COMMENTS)"
            ))
            for name in extra_columns:
                kind = "JSONB" if name.endswith("_pii_spans") else "TEXT"
                con.execute(sa.text(
                    f"ALTER TABLE {stage_q} ADD COLUMN {quote(engine, name)} {kind}"))
        else:
            sa.Table(stage.table, sa.MetaData(),
                     *[sa.Column(c["name"], c["type"], nullable=c.get("nullable", True)) for c in source_columns],
                     *[sa.Column(name, sa.Text) for name in extra_columns], schema=stage.schema).create(con)
        src = sa_table(source, source_columns).alias("src")
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
        target_q = qualified_name(engine, destination)
        if exists:
            try:
                con.execute(sa.text(f"DROP TABLE {target_q}"))
            except sa.exc.DBAPIError as failure:
                raise error(f"cannot replace {destination.describe()}: {failure.orig}; drop or recreate the objects "
                            "that depend on it (views), then re-run") from None
        con.execute(sa.text(
            f"ALTER TABLE {stage_q} RENAME TO {quote(engine, destination.table)}"))
        _set_comment(con, destination, digest)
        if audit_location is not None:
            write_sql_audit(audit_location, audit, digest, con=con, overwrite=overwrite, error=error)
    return True
