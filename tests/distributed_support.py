"""Shared by test_ray.py and test_spark.py: the 20,000-row table and a model-load counter for workers.

The counter runs inside Ray actors and Spark Python workers, which the test
process cannot inspect. When ``PII_TEST_LOAD_LOG`` names a file,
:func:`install_load_counter` wraps ``pii_frames.engine.loading.load`` (every
model load goes through it) and ``Detector.detect_arrow`` so that each call
appends one JSON line ``{"pid", "event", "rows", "column"}`` to that file. It
hooks the modules when they are first imported, so processes that never load
a model (Ray's read tasks, its internal actors) never import torch for it.

Run as a module (``python -m distributed_support``) it is a PySpark daemon
(``spark.python.daemon.module``) that installs the counter in every forked
Python worker, after the fork, as PySpark requires.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from pathlib import Path

LOG_VARIABLE = "PII_TEST_LOAD_LOG"
TESTS_DIR = Path(__file__).resolve().parent
N_ROWS = 20_000


def _record(event: str, **fields) -> None:
    line = json.dumps({"pid": os.getpid(), "event": event, **fields}) + "\n"
    # One write per line on an O_APPEND descriptor: lines from concurrent workers do not interleave.
    fd = os.open(os.environ[LOG_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _patch_loading(module) -> None:
    if getattr(module.load, "_counted", False):
        return
    original = module.load

    def load(*args, **kwargs):
        _record("load", threads=kwargs.get("threads"), device=str(kwargs.get("device", "auto")))
        return original(*args, **kwargs)

    load._counted = True
    module.load = load


def _patch_detector(module) -> None:
    cls = module.Detector
    if getattr(cls.detect_arrow, "_counted", False):
        return
    original = cls.detect_arrow

    def detect_arrow(self, array, **kwargs):
        _record("detect", rows=len(array), column=kwargs.get("column"))
        return original(self, array, **kwargs)

    detect_arrow._counted = True
    cls.detect_arrow = detect_arrow


_PATCHES = {"pii_frames.engine.loading": _patch_loading, "pii_frames.engine.detector": _patch_detector}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a watched module right after it executes, whoever imports it."""

    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def install_load_counter() -> None:
    """Count model loads and detect calls of this process into ``$PII_TEST_LOAD_LOG`` (no-op when unset)."""
    if not os.environ.get(LOG_VARIABLE):
        return
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def read_load_log(path: Path, since: int = 0) -> tuple[dict[int, list[dict]], dict[int, int]]:
    """({pid: its model loads}, {pid: rows of column 'body' detected}) from a counter file.

    Loads are read from the whole file; rows only from byte ``since`` on (one job's share).
    """
    loads: dict[int, list[dict]] = {}
    body_rows: dict[int, int] = {}
    if not path.exists():
        return loads, body_rows
    data = path.read_bytes()
    for offset, line in _lines_with_offsets(data):
        entry = json.loads(line)
        if entry["event"] == "load":
            loads.setdefault(entry["pid"], []).append(entry)
        elif entry.get("column") == "body" and offset >= since:
            body_rows[entry["pid"]] = body_rows.get(entry["pid"], 0) + entry["rows"]
    return loads, body_rows


def _lines_with_offsets(data: bytes):
    offset = 0
    for line in data.splitlines(keepends=True):
        yield offset, line
        offset += len(line)


def build_table(n_rows: int = N_ROWS, seed: int = 20):
    """``id``, ``body`` (nulls, empties, duplicates, long texts, unicode) and a short ``subject``.

    About 300 distinct bodies over 20,000 rows keep the model's work small
    while every batch still mixes all the cases; three long documents (one
    beyond the CPU context window of 4,096 tokens) appear a few times each.
    """
    import random

    import pyarrow as pa
    from faker import Faker

    from shared_paths import ADAPTER_ROWS

    rng = random.Random(seed)
    fake = Faker(["en_US", "de_DE", "fr_FR"])
    Faker.seed(seed)
    makers = [
        lambda: f"Customer {fake.name()} wrote from {fake.email()} about order {rng.randint(1000, 99999)}.",
        lambda: f"Call back {fake.name()} on {fake.phone_number()} before {fake.date()}.",
        lambda: f"Ship to {fake.address().replace(chr(10), ', ')}, attention {fake.first_name()}.",
        lambda: f"Refund to IBAN {fake.iban()} approved; see {fake.url()} for the ticket.",
        lambda: fake.sentence(nb_words=10),
        lambda: f"Lösung für {fake.name()}: Rückruf unter {fake.phone_number()} — merci, à bientôt 🎉",
    ]
    pool = [value for value in ADAPTER_ROWS if value] + [rng.choice(makers)() for _ in range(290)]

    def document(n_parts: int) -> str:
        return " ".join(rng.choice(makers)() for _ in range(n_parts))

    long_docs = [document(220), document(90), document(55)]  # ~6,000, ~2,500 and ~1,500 tokens
    subjects = [f"Re: ticket {n} from {fake.first_name()}" for n in range(40)] + [None, ""]

    bodies: list = []
    for row in range(n_rows):
        draw = rng.random()
        if draw < 0.05:
            bodies.append(None)
        elif draw < 0.08:
            bodies.append("")
        elif row % 2500 == 7:
            bodies.append(long_docs[(row // 2500) % len(long_docs)])
        else:
            bodies.append(rng.choice(pool))
    return pa.table({
        "id": pa.array(range(n_rows), pa.int64()),
        "body": pa.array(bodies, pa.string()),
        "subject": pa.array([rng.choice(subjects) for _ in range(n_rows)], pa.string()),
    })


def write_parquet_parts(table, folder: Path, parts: int = 4) -> Path:
    """Write ``table`` as ``parts`` Parquet files (so readers get several blocks/partitions)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // parts)
    for part in range(parts):
        pq.write_table(table.slice(part * step, step), folder / f"part-{part}.parquet")
    return folder


def reference(table, columns, *, spans=True, category=True, **options):
    """What the engine gives for ``table`` in this process: the expected result, row for row."""
    from pii_frames.arrow import redact_table

    return redact_table(table, columns, model="default", spans=spans, category=category, **options)


def approx_scores(value, tolerance: float = 1e-6):
    """``value`` (rows, structs, lists) with every span ``score`` wrapped in ``pytest.approx``.

    Everything else compares exactly; scores may differ in their last bits,
    since the engine packs batches (and so shapes its matrix products)
    differently on a worker than in this process.
    """
    import pytest

    if isinstance(value, dict):
        return {key: (pytest.approx(item, abs=tolerance) if key == "score" and isinstance(item, float)
                      else approx_scores(item, tolerance)) for key, item in value.items()}
    if isinstance(value, list):
        return [approx_scores(item, tolerance) for item in value]
    return value


if __name__ == "__main__":
    # spark.python.daemon.module: PySpark's daemon, with the counter installed in each forked worker.
    import pyspark.daemon as daemon

    fork_worker = daemon.worker

    def worker(sock, authenticated):
        install_load_counter()
        return fork_worker(sock, authenticated)

    daemon.worker = worker
    daemon.manager()
