"""Distributed throughput: plain ``detect_arrow`` against Ray (1 and 2 actors) and Spark (1 and 2 cores).

One synthetic text column (``bench_table.synthetic_column``: Faker tickets,
token lengths log-normal between 5 and 800, 30% repeated rows) is written as
Parquet, one file per batch, and redacted, in one run, by:

* ``detect_arrow``: ``Detector.detect_arrow`` on the whole column, in this process;
* ``detect_arrow per batch``: the same, one call per ``--batch-size`` slice
  (the work every worker does, without any framework);
* ``ray``: ``pii_frames.ray.redact`` on ``ray.data.read_parquet``, 1 then 2
  actors, on a local Ray of ``--cpus`` CPUs;
* ``spark``: ``pii_frames.spark.redact`` (``mapInArrow``) on
  ``spark.read.parquet``, ``local[1]`` then ``local[2]``.

Every Detector runs one torch thread and starts with an empty result cache,
so each configuration does the same model work. Each configuration runs a
warm-up job (Ray: its task workers; Spark: its Python workers, which keep the
model, as on a long-lived cluster), then two timed jobs that read Parquet,
redact and write Parquet: one on the first ``--small-batches`` files, one on
all of them. The script prints the wall time and rows/s of the full job
(start-up included) and, from the difference of the two jobs, the steady
rows/s and the overhead per batch: what a batch costs a worker beyond the
plain per-batch loop on the same batches (fixed costs such as starting an
actor pool and loading the model cancel out; they are shown as start-up).
Nothing is asserted.

Usage::

    python benchmarks/bench_distributed.py                      # 3,000 rows, batches of 500
    python benchmarks/bench_distributed.py --rows 20000 --batch-size 2000 --cpus 8 --skip-spark
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_table import synthetic_column  # noqa: E402

import pii_frames as pii  # noqa: E402
from pii_frames.engine.loading import clear_model_cache  # noqa: E402


def write_batches(table: pa.Table, folder: Path, batch_size: int) -> list[Path]:
    """One Parquet file per batch: Ray reads one block and Spark one partition per file."""
    folder.mkdir(parents=True)
    paths = []
    for start in range(0, table.num_rows, batch_size):
        paths.append(folder / f"part-{len(paths):05d}.parquet")
        pq.write_table(table.slice(start, batch_size), paths[-1])
    return paths


def subset(paths: list[Path], folder: Path) -> Path:
    """A folder holding the first files only (hard links: no copy)."""
    folder.mkdir(parents=True)
    for path in paths:
        os.link(path, folder / path.name)
    return folder


def time_plain(table: pa.Table, model, batch_size: int, small_rows: int) -> tuple[float, float, float]:
    """(whole column, per-batch loop over all rows, per-batch loop over the first small_rows) seconds.

    Each on a fresh Detector (empty result cache), one thread.
    """
    column = table.column("body").combine_chunks()
    pii.load(model, threads=1).detect_arrow(pa.array(["warm-up: ann@example.com"]))
    start = time.perf_counter()
    pii.load(model, threads=1).detect_arrow(column, column="body")
    whole = time.perf_counter() - start

    def loop(rows: int) -> float:
        detector = pii.load(model, threads=1)
        start = time.perf_counter()
        for offset in range(0, rows, batch_size):
            detector.detect_arrow(column.slice(offset, min(batch_size, rows - offset)), column="body")
        return time.perf_counter() - start

    return whole, loop(len(column)), loop(small_rows)


def time_two_jobs(job, small: Path, full: Path, work: Path, name: str) -> tuple[float, float]:
    """(small job seconds, full job seconds); ``job(source, destination)`` runs one job."""
    times = []
    for label, source in (("small", small), ("full", full)):
        start = time.perf_counter()
        job(source, work / f"{name}-{label}")
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def time_ray(small: Path, full: Path, work: Path, model, batch_size: int, cpus: int) -> dict[int, tuple]:
    """{actors: (small job s, full job s)} on a local Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    import pii_frames.ray as pii_ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    results = {}
    try:
        for actors in (1, 2):
            # Leave a CPU for the read and write tasks (see pii_frames.ray.redact).
            num_cpus = min(1.0, max(0.25, (cpus - 1) / actors))

            def job(source: Path, destination: Path, actors=actors, num_cpus=num_cpus) -> None:
                ds = ray.data.read_parquet(str(source))
                pii_ray.redact(ds, "body", model=model, actors=actors, num_cpus=num_cpus,
                               batch_size=batch_size).write_parquet(str(destination))

            job(small, work / f"ray-{actors}-warm-up")  # starts Ray's task workers, untimed
            results[actors] = time_two_jobs(job, small, full, work, f"ray-{actors}")
    finally:
        ray.shutdown()
    return results


def time_spark(small: Path, full: Path, work: Path, model, batch_size: int) -> dict[int, tuple]:
    """{cores: (small job s, full job s)} on local[cores], one session each."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    import pii_frames.spark as pii_spark

    results = {}
    for cores in (1, 2):
        spark = (
            SparkSession.builder.master(f"local[{cores}]").appName("bench_distributed")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            # One tiny partition per core: every Python worker forks and loads the model here.
            rows = [(f"start-up row {i}: ann@example.com",) for i in range(cores)]
            pii_spark.redact(spark.createDataFrame(rows, "body string").repartition(cores), "body",
                             model=model).collect()

            def job(source: Path, destination: Path, session=spark) -> None:
                pii_spark.redact(session.read.parquet(str(source)), "body", model=model).write.parquet(
                    str(destination))

            results[cores] = time_two_jobs(job, small, full, work, f"spark-{cores}")
        finally:
            spark.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--model", default="default", help="checkpoint or name (default: the embedded model)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--small-batches", type=int, default=2, help="batches of the small timed job")
    args = parser.parse_args()

    tokenizer = pii.load(args.model).tokenizer
    rows = synthetic_column(tokenizer, args.rows, seed=args.seed)
    table = pa.table({"id": pa.array(range(len(rows)), pa.int64()), "body": pa.array(rows, pa.string())})
    clear_model_cache()
    work = Path(tempfile.mkdtemp(prefix="bench_distributed-"))
    try:
        paths = write_batches(table, work / "in", args.batch_size)
        n_batches, k = len(paths), min(args.small_batches, len(paths) - 1)
        small, full = subset(paths[:k], work / "small"), work / "in"
        small_rows = sum(pq.read_metadata(path).num_rows for path in paths[:k])
        print(f"{args.rows:,} rows, {n_batches} batches of {args.batch_size} (small job: {k}), "
              f"{len(set(rows)):,} unique; load average {os.getloadavg()[0]:.1f}")
        whole, batched, batched_small = time_plain(table, args.model, args.batch_size, small_rows)
        timed = {}
        if not args.skip_ray:
            for actors, pair in time_ray(small, full, work, args.model, args.batch_size, args.cpus).items():
                timed[(f"ray, {actors} actor(s)", actors)] = pair
        if not args.skip_spark:
            for cores, pair in time_spark(small, full, work, args.model, args.batch_size).items():
                timed[(f"spark local[{cores}]", cores)] = pair

        print(f"{'path':<24} {'workers':>7} {'job s':>7} {'rows/s':>8} {'steady rows/s':>13} "
              f"{'start-up s':>10} {'overhead/batch ms':>18}")
        print(f"{'detect_arrow':<24} {1:>7} {whole:>7.1f} {args.rows / whole:>8,.0f}")
        print(f"{'detect_arrow per batch':<24} {1:>7} {batched:>7.1f} {args.rows / batched:>8,.0f}")
        plain_extra = batched - batched_small  # the plain loop's time for the batches the full job adds
        for (name, workers), (t_small, t_full) in timed.items():
            extra = t_full - t_small
            overhead = (extra * workers - plain_extra) / (n_batches - k)
            startup = t_small - (batched_small + k * overhead) / workers
            print(f"{name:<24} {workers:>7} {t_full:>7.1f} {args.rows / t_full:>8,.0f} "
                  f"{(args.rows - small_rows) / extra:>13,.0f} {startup:>10.1f} {overhead * 1000:>18,.0f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
