"""Scan speed: a 1,000,000-row Parquet table, default sample size, the embedded default model.

Writes a synthetic table (id, timestamp, amount, status code, customer name,
email, free-text note with personal data in about a third of the rows, and an
all-null column) in row groups of 65,536 rows, then times ``pii.scan(path)``:

* ``cold``: a fresh process's first scan (loads the model, then samples and detects);
* ``warm``: a second scan with another seed on a Detector without result cache,
  so every sampled value really goes through the model again.

The sample, not the table, bounds the work: the time barely moves with the
row count (try ``--rows 100000``). Nothing is asserted; the target is under a
minute on a 2-vCPU machine.

Usage::

    python benchmarks/bench_scan.py                  # 1,000,000 rows, sample 1,000
    python benchmarks/bench_scan.py --rows 200000 --sample-rows 500 --keep /tmp/scan_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def build_table(rows: int, seed: int = 0) -> pa.Table:
    """The synthetic table: values drawn from Faker pools with numpy, so 1M rows take seconds."""
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    Faker.seed(seed)
    rng = np.random.default_rng(seed)
    names = [fake.name() for _ in range(20_000)]
    emails = [fake.email() for _ in range(20_000)]
    phones = [fake.phone_number() for _ in range(20_000)]
    sentences = [fake.sentence(nb_words=10) for _ in range(5_000)]
    templates = (
        "Customer {name} asked for a refund; reach them on {phone}.",
        "Please send the invoice to {email} before Friday.",
        "{name} ({email}) wants the order shipped to the new address.",
    )
    pick = lambda pool: rng.integers(0, len(pool), rows)  # noqa: E731
    name_i, email_i, phone_i, sentence_i = pick(names), pick(emails), pick(phones), pick(sentences)
    kind = rng.integers(0, 9, rows)  # 3 of 9 rows mention someone
    notes = [
        templates[k].format(name=names[n], email=emails[e], phone=phones[p]) if k < 3 else sentences[s]
        for k, n, e, p, s in zip(kind.tolist(), name_i.tolist(), email_i.tolist(), phone_i.tolist(), sentence_i.tolist())
    ]
    start = np.datetime64(dt.datetime(2024, 1, 1), "s")
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "created_at": pa.array(start + rng.integers(0, 3600 * 24 * 365, rows).astype("timedelta64[s]")),
        "amount": pa.array(rng.uniform(1, 900, rows).round(2)),
        "status": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 4, rows).astype(np.int32)),
                                                 pa.array(["open", "closed", "pending", "refunded"])).cast(pa.string()),
        "customer": pa.DictionaryArray.from_arrays(pa.array(name_i.astype(np.int32)), pa.array(names)).cast(pa.string()),
        "email": pa.DictionaryArray.from_arrays(pa.array(email_i.astype(np.int32)), pa.array(emails)).cast(pa.string()),
        "note": pa.array(notes, pa.string()),
        "legacy": pa.nulls(rows, pa.string()),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample-rows", type=int, default=1000)
    parser.add_argument("--keep", metavar="DIR", help="write the table here and keep it (default: a temp folder)")
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_scan_"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"table_{args.rows}.parquet"
    if not path.exists():
        started = time.perf_counter()
        table = build_table(args.rows)
        pq.write_table(table, path, row_group_size=65_536)
        print(f"wrote {args.rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB, "
              f"{pq.ParquetFile(path).num_row_groups} row groups) in {time.perf_counter() - started:.1f} s")
        del table

    import pii_frames as pii

    started = time.perf_counter()
    report = pii.scan(path, sample_rows=args.sample_rows, progress=False)
    cold = time.perf_counter() - started
    detector = pii.load(cache_size=0, progress=False)
    started = time.perf_counter()
    pii.scan(path, sample_rows=args.sample_rows, seed=1, model=detector, progress=False)
    warm = time.perf_counter() - started

    print(report)
    scanned = [c for c in report.columns if c.verdict != "skipped"]
    print(f"model {report.model}, torch threads {os.environ.get('PII_FRAMES_THREADS', 'default')}")
    print(f"{args.rows:,} rows, {len(scanned)} text columns x {args.sample_rows:,} sampled rows: "
          f"cold {cold:.1f} s (model load included), warm {warm:.1f} s -> "
          f"{'under' if cold < 60 else 'OVER'} a minute")


if __name__ == "__main__":
    main()
