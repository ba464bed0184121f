"""pii_frames.ray on a local two-CPU Ray: Parquet in and out, equal to the engine, one model load per actor.

Actors reserve half a CPU each, so two of them leave a CPU for Ray's read and
write tasks (with ``num_cpus=1`` each, a 2-CPU Ray would wait for ever).
"""

from __future__ import annotations

import array
import signal
import warnings

import pytest

ray = pytest.importorskip("ray", reason="needs ray[data]: pip install 'pii_frames[ray]'")
pytest.importorskip("ray.data", reason="needs ray[data]: pip install 'pii_frames[ray]'")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import pii_frames  # noqa: E402
import pii_frames.ray as pii_ray  # noqa: E402
from pii_frames.arrow import detect_array  # noqa: E402
from pii_frames.engine.rows import RowError  # noqa: E402
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

COLUMNS = ["body", "subject"]
# Ray Data warns about its own DataContext fields each time it copies a context (every read does).
pytestmark = pytest.mark.filterwarnings("ignore:`use_push_based_shuffle` is deprecated:DeprecationWarning",
                                        "ignore:`use_polars` is deprecated:DeprecationWarning",
                                        "ignore:`use_arrow_tensor_v2` is deprecated:DeprecationWarning")
WORKERS = {"actors": 2, "num_cpus": 0.5}


@pytest.fixture(scope="module")
def load_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray-load-log") / "loads.jsonl"
    sigterm_before = signal.getsignal(signal.SIGTERM)
    with pytest.MonkeyPatch.context() as patch:
        # Read by the workers and by the driver at every execution (no usage reports, no metrics queries).
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={
                "worker_process_setup_hook": "distributed_support.install_load_counter",
                "env_vars": {LOG_VARIABLE: str(path), "PYTHONPATH": str(TESTS_DIR)},
            },
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield path
        finally:
            ray.shutdown()
            # ray.init installs a SIGTERM handler that outlives shutdown and kills the process on SIGTERM:
            # later tests of the same process install or expect the default one.
            signal.signal(signal.SIGTERM, sigterm_before)


@pytest.fixture()
def fresh_log(load_log):
    load_log.write_text("")
    return load_log


@pytest.fixture(scope="module")
def table():
    return build_table()


@pytest.fixture(scope="module")
def expected(table):
    return reference(table, COLUMNS)


def _to_arrow(ds) -> pa.Table:
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def _assert_same_rows(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    assert got.to_pylist() == approx_scores(want.to_pylist())


def _assert_one_load_per_actor_and_both_work(log) -> None:
    loads, body_rows = read_load_log(log)
    assert loads and all(len(each) == 1 for each in loads.values()), f"model loads per actor process: {loads}"
    # num_cpus=0.5 per actor: one torch thread each.
    assert {entry["threads"] for each in loads.values() for entry in each} == {1}
    working = {pid for pid, rows in body_rows.items() if rows > 0}
    assert len(working) == 2, f"rows of 'body' per actor: {body_rows}"
    assert working <= set(loads)


def test_parquet_in_and_out_equals_the_engine_row_for_row(table, expected, fresh_log, tmp_path):
    source = write_parquet_parts(table, tmp_path / "in")
    ds = ray.data.read_parquet(str(source))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pii_ray.redact(ds, COLUMNS, model="default", spans=True, category=True, batch_size=1000, **WORKERS)
    ours = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not ours, [str(w.message) for w in ours]
    out.write_parquet(str(tmp_path / "out"))

    written = pq.read_table(tmp_path / "out").sort_by("id")
    assert written.num_rows == N_ROWS
    _assert_same_rows(written.select(expected.column_names), expected)
    assert written.column("body").null_count == table.column("body").null_count
    _assert_one_load_per_actor_and_both_work(fresh_log)
    # Every row went through the engine exactly once (the warm-up row is not counted: no column).
    assert sum(read_load_log(fresh_log)[1].values()) == N_ROWS


def test_single_block_dataset_reaches_both_actors_and_keeps_order_on_request(table, expected, fresh_log):
    part = table.slice(0, 4000)
    ds = ray.data.from_arrow(part)
    assert ds.num_blocks() == 1
    out = pii_ray.redact(ds, "body", model="default", batch_size=500, preserve_order=True, **WORKERS)
    got = _to_arrow(out)
    assert got.column("id").to_pylist() == list(range(4000))  # preserve_order: no sort needed
    want = reference(part, ["body"], spans=False, category=False)
    assert got.column("body").to_pylist() == want.column("body").to_pylist()
    _assert_one_load_per_actor_and_both_work(fresh_log)
    assert ds.context.execution_options.preserve_order is False  # the input's own setting is untouched


def _invalid_utf8_row() -> pa.Array:
    good = [b"Mail ann@example.com", b"\xff\xfe not text", b"Call Bob Lee"]
    data = b"".join(good)
    offsets = [0]
    for value in good:
        offsets.append(offsets[-1] + len(value))
    return pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(array.array("i", offsets).tobytes()),
                                                  pa.py_buffer(data)])


def test_detect_keeps_types_for_empty_and_all_null_blocks_and_nulls_bad_rows(load_log):
    blocks = [
        pa.table({"id": pa.array([1, 2, 3], pa.int64()), "body": _invalid_utf8_row()}),
        pa.table({"id": pa.array([], pa.int64()), "body": pa.array([], pa.string())}),
        pa.table({"id": pa.array([4, 5], pa.int64()), "body": pa.nulls(2)}),  # what pandas gives an all-None chunk
    ]
    ds = ray.data.from_arrow(blocks)
    out = pii_ray.detect(ds, "body", into="found", model="default", on_error="null")
    out = _to_arrow(out).sort_by("id")  # concat_tables: every block came back with one schema
    assert out.schema.names == ["id", "body", "found"]
    assert out.schema.field("found").type == detect_type()
    found = out.column("found").to_pylist()
    want = detect_array(pa.array(["Mail ann@example.com", "Call Bob Lee"]), model="default").to_pylist()
    assert [found[0], found[2]] == approx_scores(want)
    assert found[1] is None and found[3] is None and found[4] is None  # bad row nulled; nulls stay null


def test_every_batch_comes_out_with_the_declared_types():
    # Ray skips the function for an empty dataset (and then reports no schema at all), so the
    # actor class is called directly here, as an actor would call it.
    actor = pii_ray._PiiBatches("redact", ["body"], "default", {}, spans=True, category=True, into=None)
    want = pa.schema([("id", pa.int64()), ("body", pa.string()), ("body_pii_spans", spans_type()),
                      ("body_pii_category", pa.string())])
    for body in (pa.array([], pa.string()), pa.nulls(0), pa.nulls(3), pa.array([None, None], pa.large_string())):
        batch = pa.table({"id": pa.array(range(len(body)), pa.int64()), "body": body})
        assert actor(batch).schema == want, body.type


def test_bad_row_raises_naming_column_and_batch(load_log):
    ds = ray.data.from_arrow(pa.table({"body": _invalid_utf8_row()}))
    with pytest.raises(Exception) as raised:
        pii_ray.redact(ds, "body", model="default").take_all()
    message = str(raised.value)
    assert "column 'body'" in message and "row 1" in message and "3-row Ray batch" in message
    assert "on_error='null'" in message
    assert isinstance(raised.value, RowError) or "RowError" in message


def test_arguments_are_checked_before_any_actor_starts(load_log):
    ds = ray.data.from_arrow(pa.table({"id": [1], "body": ["x"]}))
    with pytest.raises(ValueError, match="literal key"):
        pii_ray.redact(ds, "body", policy={"operator": "pseudonym", "key": "s3cret"})
    with pytest.raises(TypeError, match="ship its weights"):
        pii_ray.redact(ds, "body", model=pii_frames.load("default"))
    with pytest.raises(KeyError, match="'note'"):
        pii_ray.redact(ds, ["body", "note"])
    with pytest.raises(TypeError, match="'id' has type int64"):
        pii_ray.redact(ds, "id")
    with pytest.raises(ValueError, match="min <= max"):
        pii_ray.redact(ds, "body", actors=(3, 2))
    with pytest.raises(ValueError, match="already exists"):
        pii_ray.detect(ds, "body", into="id")
    with pytest.warns(RuntimeWarning, match="reserve all 2 CPUs"):
        pii_ray.redact(ds, "body", actors=2, num_cpus=1)
    # A key by reference is fine: only the variable's name travels (the dataset stays lazy here).
    lazy = pii_ray.redact(ds, "body", policy={"operator": "pseudonym", "key_env": "PII_KEY"})
    assert isinstance(lazy, ray.data.Dataset)
