"""pii_frames.spark on a local[2] Spark: Parquet in and out, equal to the engine, one model load per Python worker.

The Python workers are forked by ``distributed_support`` run as PySpark's
daemon, which installs the load counter in each of them; workers are reused
across jobs, so the counter covers the whole module.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

pyspark = pytest.importorskip("pyspark", reason="needs pyspark: pip install 'pii_frames[spark]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime: apt-get install openjdk-17-jre-headless", allow_module_level=True)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

import pii_frames  # noqa: E402
import pii_frames.spark as pii_spark  # noqa: E402
from pii_frames.arrow import detect_array  # noqa: E402
from pii_frames.engine.schema import detect_type, spans_type  # noqa: E402

from distributed_support import (  # noqa: E402
    LOG_VARIABLE,
    N_ROWS,
    TESTS_DIR,
    approx_scores,
    build_table,
    read_load_log,
    reference,
    write_parquet_parts,
)
from shared_paths import ADAPTER_ROWS  # noqa: E402

COLUMNS = ["body", "subject"]
# PySpark warns on import paths it reaches with pandas 3; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="module")
def load_log(tmp_path_factory):
    return tmp_path_factory.mktemp("spark-load-log") / "loads.jsonl"


@pytest.fixture(scope="module")
def spark(load_log):
    with pytest.MonkeyPatch.context() as patch:
        # The JVM starts with this environment and hands it to the Python workers it forks.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
        patch.setenv(LOG_VARIABLE, str(load_log))
        session = (
            SparkSession.builder.master("local[2]")
            .appName("pii_frames-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.python.daemon.module", "distributed_support")
            # Several Arrow batches per partition, so row numbers across batches are exercised.
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield session
        finally:
            session.stop()


@pytest.fixture(scope="module")
def table():
    return build_table()


@pytest.fixture(scope="module")
def expected(table):
    return reference(table, COLUMNS)


def _to_arrow(df) -> pa.Table:
    return df.toArrow() if hasattr(df, "toArrow") else pa.Table.from_pandas(df.toPandas(), preserve_index=False)


def _assert_one_load_per_worker(load_log, since: int, *, workers: int = 2, rows: int | None = None) -> None:
    loads, body_rows = read_load_log(load_log, since)
    assert loads and all(len(each) == 1 for each in loads.values()), f"model loads per Python worker: {loads}"
    assert {entry["threads"] for each in loads.values() for entry in each} == {1}  # spark.task.cpus=1
    working = {pid for pid, count in body_rows.items() if count > 0}
    assert len(working) >= workers, f"rows of 'body' per Python worker: {body_rows}"
    assert working <= set(loads)
    if rows is not None:
        assert sum(body_rows.values()) == rows


def _position(load_log) -> int:
    return load_log.stat().st_size if load_log.exists() else 0


def test_redact_parquet_in_and_out_equals_the_engine_row_for_row(spark, table, expected, load_log, tmp_path):
    source = write_parquet_parts(table, tmp_path / "in")
    df = spark.read.parquet(str(source))
    assert df.rdd.getNumPartitions() >= 2
    since = _position(load_log)
    out = pii_spark.redact(df, COLUMNS, model="default", spans=True, category=True)
    assert out.schema == T.StructType([
        T.StructField("id", T.LongType(), True),
        T.StructField("body", T.StringType(), True),
        T.StructField("body_pii_spans", pii_spark.spark_type(spans_type()), True),
        T.StructField("body_pii_category", T.StringType(), True),
        T.StructField("subject", T.StringType(), True),
        T.StructField("subject_pii_spans", pii_spark.spark_type(spans_type()), True),
        T.StructField("subject_pii_category", T.StringType(), True),
    ])
    out.write.parquet(str(tmp_path / "out"))

    written = pq.read_table(tmp_path / "out").sort_by("id")
    assert written.num_rows == N_ROWS
    assert written.column_names == expected.column_names
    assert written.to_pylist() == approx_scores(expected.to_pylist())
    _assert_one_load_per_worker(load_log, since, rows=N_ROWS)


def test_column_functions_equal_the_engine_and_reuse_the_workers_model(spark, table, expected, load_log, tmp_path):
    source = write_parquet_parts(table, tmp_path / "in")
    since = _position(load_log)
    df = spark.read.parquet(str(source)).select(
        "id",
        pii_spark.redact_col("body", model="default"),
        pii_spark.spans_col("body", model="default"),
        pii_spark.category_col("body", model="default"),
        pii_spark.detect_col("subject", model="default"),
    )
    assert df.columns == ["id", "body", "body_pii_spans", "body_pii_category", "subject_pii"]
    assert df.schema["subject_pii"].dataType == pii_spark.spark_type(detect_type())
    got = _to_arrow(df).sort_by("id")
    want = expected.select(["id", "body", "body_pii_spans", "body_pii_category"]).to_pylist()
    assert got.select(["id", "body", "body_pii_spans", "body_pii_category"]).to_pylist() == approx_scores(want)
    subject = detect_array(table.column("subject"), model="default").to_pylist()
    assert got.column("subject_pii").to_pylist() == approx_scores(subject)
    # Three functions on 'body', each row once per function (the worker's result cache runs the model once).
    _assert_one_load_per_worker(load_log, since, rows=3 * N_ROWS)


def test_sql_functions_declared_types_and_null_in_null_out(spark):
    names = pii_spark.register(spark, model="default")
    assert names == ["pii_redact", "pii_spans", "pii_spans_with_text", "pii_category", "pii_detect"]
    rows = pa.table({"id": list(range(len(ADAPTER_ROWS))), "body": ADAPTER_ROWS})
    spark.createDataFrame(rows.to_pandas()).createOrReplaceTempView("tickets")
    result = spark.sql(
        "SELECT id, pii_redact(body) AS r, pii_spans(body) AS s, pii_spans_with_text(body) AS t, "
        "pii_category(body) AS c, pii_detect(body) AS d FROM tickets ORDER BY id"
    )
    assert [f.dataType for f in result.schema.fields[1:]] == [
        T.StringType(),
        pii_spark.spark_type(spans_type()),
        pii_spark.spark_type(spans_type(with_text=True)),
        T.StringType(),
        pii_spark.spark_type(detect_type()),
    ]
    got = _to_arrow(result)
    want = detect_array(pa.array(ADAPTER_ROWS), model="default")
    want_text = detect_array(pa.array(ADAPTER_ROWS), model="default", with_text=True)
    assert got.column("r").to_pylist() == want.field("redacted_text").to_pylist()
    assert got.column("s").to_pylist() == approx_scores(pa.compute.struct_field(want, "spans").to_pylist())
    assert got.column("t").to_pylist() == approx_scores(pa.compute.struct_field(want_text, "spans").to_pylist())
    assert got.column("d").to_pylist() == approx_scores(want.to_pylist())
    null_row = ADAPTER_ROWS.index(None)
    assert [got.column(name)[null_row].as_py() for name in "rstcd"] == [None] * 5


def test_pandas_udf_fallback_of_spark_35_gives_the_same_columns(spark, monkeypatch):
    monkeypatch.setattr(pii_spark, "_ARROW_UDF", None)
    df = spark.createDataFrame(pa.table({"id": list(range(len(ADAPTER_ROWS))), "body": ADAPTER_ROWS}).to_pandas())
    out = df.select("id", *(make("body", model="default") for make in (
        pii_spark.redact_col, pii_spark.spans_col, pii_spark.detect_col)))
    got = _to_arrow(out).sort_by("id")
    want = detect_array(pa.array(ADAPTER_ROWS), model="default")
    assert got.column("body").to_pylist() == want.field("redacted_text").to_pylist()
    assert got.column("body_pii_spans").to_pylist() == approx_scores(pa.compute.struct_field(want, "spans").to_pylist())
    detected = got.column("body_pii").to_pylist()
    null_row = ADAPTER_ROWS.index(None)
    # pandas cannot return a missing struct: a NULL input gives a struct of NULL fields (documented).
    assert detected[null_row] == {"redacted_text": None, "spans": None, "category": None, "labels": None}
    others = [row for i, row in enumerate(detected) if i != null_row]
    assert others == approx_scores([row for i, row in enumerate(want.to_pylist()) if i != null_row])


def _with_invalid_utf8(spark):
    # A binary cast to string is not validated by Spark, so the bad bytes reach the Python worker.
    return spark.range(3, numPartitions=1).select(
        "id",
        F.when(F.col("id") == 1, F.unhex(F.lit("FFFE41")).cast("string"))
        .otherwise(F.lit("Mail ann@example.com")).alias("body"),
    )


def test_bad_rows_follow_on_error(spark):
    df = _with_invalid_utf8(spark)
    nulled = [row.body for row in df.select(pii_spark.redact_col("body", model="default", on_error="null")).collect()]
    want = detect_array(pa.array(["Mail ann@example.com"]), model="default").field("redacted_text")[0].as_py()
    assert nulled == [want, None, want]
    with pytest.raises(Exception) as raised:
        pii_spark.redact(df, "body", model="default").collect()
    message = str(raised.value)
    assert "column 'body' (Spark partition 0), row 1" in message and "not valid UTF-8" in message


def test_arguments_are_checked_on_the_driver(spark):
    df = spark.createDataFrame([(1, "x", "y")], "id long, body string, body_pii_spans string")
    with pytest.raises(ValueError, match="literal key"):
        pii_spark.redact_col("body", policy={"operator": "encrypt", "key": "s3cret"})
    with pytest.raises(TypeError, match="ship its weights"):
        pii_spark.redact(df, "body", model=pii_frames.load("default"))
    with pytest.raises(KeyError, match="'note'"):
        pii_spark.redact(df, ["body", "note"])
    with pytest.raises(TypeError, match="'id' has type bigint"):
        pii_spark.redact(df, "id")
    with pytest.raises(ValueError, match="body_pii_spans"):
        pii_spark.redact(df, "body", spans=True)
    with pytest.raises(TypeError, match="column name or a pyspark Column"):
        pii_spark.redact_col(3)
    # By reference, only the variable's name travels; the plan is built without running anything.
    assert pii_spark.redact(df, ["body"], policy={"operator": "pseudonym", "key_env": "PII_KEY"}).columns == [
        "id", "body", "body_pii_spans"]
