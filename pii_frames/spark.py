"""Redact PII in Spark DataFrames and Spark SQL, the model loaded once per Python worker.

Install with ``pip install "pii_frames[spark]"`` (Spark also needs a Java 17+
runtime: ``apt-get install openjdk-17-jre-headless`` on Debian/Ubuntu, or any
JDK on ``JAVA_HOME``). On a cluster::

    import pii_frames.spark as pii_spark
    df = spark.read.parquet("s3://bucket/tickets/")
    df.select("id", pii_spark.redact_col("body"), pii_spark.spans_col("body"))
    pii_spark.redact(df, ["body", "subject"], spans=True).write.parquet("s3://bucket/clean/")
    pii_spark.register(spark)
    spark.sql("SELECT id, pii_redact(body) AS body FROM tickets")

(docs/distributed.md: model files, GPUs, memory per worker, submitting from Airflow.)

How it runs:

- Column functions (:func:`redact_col`, :func:`spans_col`,
  :func:`category_col`, :func:`detect_col`) are Arrow UDFs over an iterator of
  batches (``pyspark.sql.functions.arrow_udf``, Spark 4.1+); on Spark 3.5
  they are iterator pandas UDFs, converted to Arrow at once. Each batch
  (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000 by default)
  goes to :func:`pii_frames.arrow.detect_array`, the engine path every adapter
  shares. Sibling functions on one column in one ``select`` run the model once
  (the worker's Detector caches results).
- :func:`redact` rewrites whole tables with ``DataFrame.mapInArrow``: one pass
  for every listed column, all other columns untouched.
- The Detector is cached per Python worker process
  (:func:`pii_frames.engine.loading.shared_detector`); keep
  ``spark.python.worker.reuse`` on (the default) so it loads once per
  executor core rather than once per task. ``spark.task.cpus`` sets its torch
  threads. With GPU scheduling (``spark.task.resource.gpu.amount``) and
  ``device="cuda"``, each task uses the GPU Spark assigned it.
- Result types are Spark types converted from the engine's Arrow schema
  (:func:`spark_type`), so Spark never infers them. NULL in gives NULL out.
- Bad rows follow ``on_error``: ``"raise"`` fails the task naming the column,
  the partition and the row within it; ``"null"`` nulls the row and warns in
  the executor's log.
- Everything given here is pickled into every task. A policy key must travel
  by reference (``Policy("pseudonym", key_env="PII_KEY")``, the variable set on
  the executors from your secret store); a literal ``key=`` is refused. Pass
  the model as a checkpoint path every executor can read, or a model name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import TaskContext
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pii_frames._workers import rows_named, threads_for, worker_options
from pii_frames.arrow import CATEGORY_SUFFIX, SPANS_SUFFIX, detect_array, redact_table
from pii_frames.engine.schema import detect_type

__all__ = [
    "spark_type",
    "redact_col",
    "spans_col",
    "category_col",
    "detect_col",
    "redact",
    "register",
    "FUNCTION_NAMES",
    "DETECT_SUFFIX",
]

DETECT_SUFFIX = "_pii"

# Spark 4.1+; None on 3.5, where the column functions are pandas UDFs.
_ARROW_UDF = getattr(F, "arrow_udf", None)

_SCALARS = {
    pa.string(): T.StringType(),
    pa.large_string(): T.StringType(),
    pa.int32(): T.IntegerType(),
    pa.int64(): T.LongType(),
    pa.float64(): T.DoubleType(),
    pa.bool_(): T.BooleanType(),
}


def spark_type(arrow_type: pa.DataType) -> T.DataType:
    """The Spark type of an engine Arrow type (the engine's schema is the one definition).

    Every field is nullable, as every engine output may be null.

    >>> spark_type(detect_type().field("spans").type).simpleString()
    'array<struct<label:string,start:int,end:int,score:double,source:string>>'
    >>> spark_type(pa.date32())
    Traceback (most recent call last):
    ...
    TypeError: no Spark type for the Arrow type date32[day] in pii_frames' output schema
    """
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return T.ArrayType(spark_type(arrow_type.value_type), containsNull=True)
    if pa.types.is_struct(arrow_type):
        return T.StructType([T.StructField(field.name, spark_type(field.type), True) for field in arrow_type])
    if arrow_type in _SCALARS:
        return _SCALARS[arrow_type]
    raise TypeError(f"no Spark type for the Arrow type {arrow_type} in pii_frames' output schema")


def _output_type(field: str | None, with_text: bool) -> pa.DataType:
    struct = detect_type(with_text)
    return struct if field is None else struct.field(field).type


def _task_options(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Options for this task (threads from ``spark.task.cpus``, the task's GPU) and where it runs."""
    options = dict(options)
    context = TaskContext.get()
    if context is None:  # called on the driver (tests, local debugging)
        return options, "Spark driver"
    if options.get("threads") is None and hasattr(context, "cpus"):
        options["threads"] = threads_for(context.cpus())
    if options.get("device") == "cuda":
        gpus = context.resources().get("gpu")
        if gpus is not None and gpus.addresses:
            options["device"] = f"cuda:{gpus.addresses[0]}"
    return options, f"Spark partition {context.partitionId()}"


def _detect_batches(batches: Iterable[pa.Array], field: str | None, model: Any, options: dict[str, Any],
                    name: str) -> Iterator[pa.Array]:
    """The work of every column function: one engine call per Arrow batch, rows named within the partition."""
    options, where = _task_options(options)
    offset = 0
    for batch in batches:
        with rows_named(where, offset):
            result = detect_array(batch, model=model, name=name, **options)
        offset += len(batch)
        # struct_field carries the row nulls into the field (NULL in -> NULL out).
        yield result if field is None else pc.struct_field(result, field)


def _as_pandas(result: pa.Array, field: str | None) -> pd.Series | pd.DataFrame:
    if field is None:  # a struct result is a DataFrame for pandas UDFs (no null rows there: see detect_col)
        return pd.DataFrame({name: result.field(name).to_pandas() for name in result.type.names})
    return result.to_pandas()


def _udf(field: str | None, model: Any, options: dict[str, Any], name: str):
    """The Spark UDF computing ``field`` of the detect struct (None: all of it)."""
    return_type = spark_type(_output_type(field, bool(options.get("with_text"))))
    if _ARROW_UDF is not None:

        def pii_arrow(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            yield from _detect_batches(batches, field, model, options, name)

        return _ARROW_UDF(pii_arrow, return_type)

    if field is None:

        def pii_pandas_struct(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            arrays = (pa.Array.from_pandas(series, type=pa.string()) for series in batches)
            for result in _detect_batches(arrays, field, model, options, name):
                yield _as_pandas(result, field)

        return F.pandas_udf(pii_pandas_struct, return_type)

    def pii_pandas(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        arrays = (pa.Array.from_pandas(series, type=pa.string()) for series in batches)
        for result in _detect_batches(arrays, field, model, options, name):
            yield _as_pandas(result, field)

    return F.pandas_udf(pii_pandas, return_type)


def _column_function(column: str | Column, field: str | None, suffix: str | None, model: Any, policy: Any,
                     options: dict[str, Any], where: str) -> Column:
    if not isinstance(column, (str, Column)):
        raise TypeError(f"{where}: expected a column name or a pyspark Column, got {type(column).__name__}")
    shipped = worker_options(model, policy, options, where=where)
    name = column if isinstance(column, str) else "input"
    out = _udf(field, model, shipped, name)(F.col(column) if isinstance(column, str) else column)
    return out.alias(column + (suffix or "")) if isinstance(column, str) else out


def redact_col(column: str | Column, *, model: Any = None, policy: Any = None, **options: Any) -> Column:
    """Redacted text of ``column`` (string), named like the column when given by name.

    ``model``: a checkpoint directory every executor can read, or a model
    name (None: ``PII_FRAMES_MODEL`` on the executors, a local
    openai/privacy-filter, the embedded model). ``policy``: a
    :class:`~pii_frames.Policy` or a dict of its arguments (keys by reference
    only). Other keywords (``on_error``, ``output_mode``, ``device``, ...) as
    in :func:`pii_frames.arrow.detect_array`.

    >>> df = spark.createDataFrame([(1, "Reply to ann@example.com"), (2, None)], "id long, body string")
    >>> df.select("id", redact_col("body", model="default")).collect()
    [Row(id=1, body='Reply to <PRIVATE_EMAIL>'), Row(id=2, body=None)]
    """
    return _column_function(column, "redacted_text", "", model, policy, options, "pii_frames.spark.redact_col")


def spans_col(column: str | Column, *, model: Any = None, policy: Any = None, **options: Any) -> Column:
    """Detected spans of ``column``, named ``<column>_pii_spans``.

    Type ``array<struct<label, start, end, score, source>>``: where each span
    is (code-point offsets, end-exclusive), never the value;
    ``with_text=True`` appends the raw ``text`` (raw PII: inspection only).
    Explode with ``F.explode`` and ``col("span.*")``.

    >>> df = spark.createDataFrame([("Reply to ann@example.com",)], "body string")
    >>> df.select(F.explode(spans_col("body", model="default")).alias("span")).select("span.label", "span.start",
    ...                                                                                 "span.end").collect()
    [Row(label='private_email', start=9, end=24)]
    """
    return _column_function(column, "spans", SPANS_SUFFIX, model, policy, options, "pii_frames.spark.spans_col")


def category_col(column: str | Column, *, model: Any = None, **options: Any) -> Column:
    """Document category of ``column`` (string, null without a document head), named ``<column>_pii_category``.

    >>> df = spark.createDataFrame([("Reply to ann@example.com",)], "body string")
    >>> df.select(category_col("body", model="default")).schema.simpleString()
    'struct<body_pii_category:string>'
    """
    return _column_function(column, "category", CATEGORY_SUFFIX, model, None, options,
                            "pii_frames.spark.category_col")


def detect_col(column: str | Column, *, model: Any = None, policy: Any = None, **options: Any) -> Column:
    """Everything at once: a struct of ``redacted_text``, ``spans``, ``category``, ``labels``, named ``<column>_pii``.

    On Spark 3.5 (pandas UDFs) a NULL input gives a struct of NULL fields
    rather than a NULL struct: pandas cannot return a missing struct.

    >>> df = spark.createDataFrame([("Reply to ann@example.com",)], "body string")
    >>> df.select(detect_col("body", model="default").alias("pii")).select("pii.redacted_text").first()[0]
    'Reply to <PRIVATE_EMAIL>'
    """
    return _column_function(column, None, DETECT_SUFFIX, model, policy, options, "pii_frames.spark.detect_col")


def _text_columns(df: DataFrame, columns: str | Iterable[str] | None, where: str) -> list[str]:
    fields = {field.name: field.dataType for field in df.schema.fields}
    if columns is None:
        names = [name for name, dtype in fields.items() if isinstance(dtype, T.StringType)]
        if not names:
            raise ValueError(f"{where}: no string columns among {list(fields)}; pass columns=[...]")
        return names
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names:
        raise ValueError(f"{where}: columns is empty; name the text column(s) to redact")
    missing = [name for name in names if name not in fields]
    if missing:
        raise KeyError(f"{where}: column(s) {missing} not found; the DataFrame has columns {list(fields)}")
    for name in names:
        if not isinstance(fields[name], T.StringType):
            raise TypeError(
                f"{where}: column {name!r} has type {fields[name].simpleString()}, but PII detection needs "
                f"text; cast it first (F.col({name!r}).cast('string'))"
            )
    return names


def _table_schema(schema: T.StructType, names: list[str], spans: bool, category: bool,
                  with_text: bool) -> T.StructType:
    """The output schema of :func:`redact` (the Spark twin of :func:`pii_frames.arrow.apply_detections`)."""
    fields: list[T.StructField] = []
    for field in schema.fields:
        if field.name not in names:
            fields.append(field)
            continue
        fields.append(T.StructField(field.name, T.StringType(), True))
        if spans:
            fields.append(T.StructField(field.name + SPANS_SUFFIX, spark_type(_output_type("spans", with_text)), True))
        if category:
            fields.append(T.StructField(field.name + CATEGORY_SUFFIX, T.StringType(), True))
    out_names = [field.name for field in fields]
    duplicated = sorted({name for name in out_names if out_names.count(name) > 1})
    if duplicated:
        raise ValueError(
            f"pii_frames.spark.redact: output column(s) {duplicated} would appear twice; rename or drop the "
            "existing column(s), or do not ask for the span/category columns"
        )
    return T.StructType(fields)


def _redact_batches(batches: Iterable[pa.RecordBatch], names: list[str], model: Any, options: dict[str, Any],
                    spans: bool, category: bool) -> Iterator[pa.RecordBatch]:
    options, where = _task_options(options)
    offset = 0
    for batch in batches:
        with rows_named(where, offset):
            yield redact_table(batch, names, model=model, spans=spans, category=category, **options)
        offset += batch.num_rows


def redact(
    df: DataFrame,
    columns: str | Iterable[str] | None = None,
    *,
    model: Any = None,
    policy: Any = None,
    spans: bool = False,
    category: bool = False,
    **options: Any,
) -> DataFrame:
    """Return ``df`` with each listed column replaced by its redacted text (``mapInArrow``, lazy).

    ``columns=None`` means every string column. ``spans=True`` adds
    ``<column>_pii_spans`` and ``category=True`` adds ``<column>_pii_category``
    right after each column; other columns and the partitioning are kept.
    Options as in :func:`redact_col`. Spark runs one task per partition: a
    single-file input may be one partition, so ``df.repartition(n)`` it first
    to use ``n`` cores.

    >>> df = spark.createDataFrame([(1, "Reply to ann@example.com")], "id long, body string")
    >>> redact(df, ["body"], model="default", spans=True).columns
    ['id', 'body', 'body_pii_spans']
    >>> redact(df, ["body"], model="default").first()
    Row(id=1, body='Reply to <PRIVATE_EMAIL>')
    """
    where = "pii_frames.spark.redact"
    if not isinstance(df, DataFrame):
        raise TypeError(f"{where}: expected a pyspark DataFrame, got {type(df).__name__}")
    names = _text_columns(df, columns, where)
    shipped = worker_options(model, policy, options, where=where)
    schema = _table_schema(df.schema, names, spans, category, bool(shipped.get("with_text")))

    def pii_redact_partition(batches):
        return _redact_batches(batches, names, model, shipped, spans, category)

    return df.mapInArrow(pii_redact_partition, schema)


# SQL name -> field of the engine's detect struct (None for all of it); the names DuckDB registers too.
FUNCTION_NAMES: dict[str, str | None] = {
    "pii_redact": "redacted_text",
    "pii_spans": "spans",
    "pii_spans_with_text": "spans",
    "pii_category": "category",
    "pii_detect": None,
}


def register(spark: SparkSession, model: Any = None, *, with_text: bool = False, policy: Any = None,
             **options: Any) -> list[str]:
    """Register ``pii_redact``, ``pii_spans``, ``pii_category``, ``pii_detect`` (and ``pii_spans_with_text``) for SQL.

    ``SELECT pii_redact(body) FROM t`` then works in ``spark.sql``. NULL in
    gives NULL out; result types are :func:`spark_type` of the engine's
    schema. ``with_text=True`` makes ``pii_spans``/``pii_detect`` carry the
    raw span text too (``pii_spans_with_text`` always does: raw PII, never
    for a published table). Options as in :func:`redact_col`; the model loads
    on the executors at the first query. Returns the registered names.

    >>> register(spark, model="default")
    ['pii_redact', 'pii_spans', 'pii_spans_with_text', 'pii_category', 'pii_detect']
    >>> spark.sql("SELECT pii_redact('Reply to ann@example.com') AS body, pii_redact(NULL) AS nothing").first()
    Row(body='Reply to <PRIVATE_EMAIL>', nothing=None)
    """
    shipped = worker_options(model, policy, options, where="pii_frames.spark.register")
    for sql_name, field in FUNCTION_NAMES.items():
        function_options = dict(shipped)
        if sql_name == "pii_spans_with_text" or (with_text and field in ("spans", None)):
            function_options["with_text"] = True
        if field == "category":
            function_options.pop("policy", None)
        spark.udf.register(sql_name, _udf(field, model, function_options, f"argument of {sql_name}"))
    return list(FUNCTION_NAMES)
