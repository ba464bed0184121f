"""`pii-frames table` on a big generated CSV: peak memory, its shape over time, first batch, rows/s, stages.

Two measurements:

1. **The real command** under ``/usr/bin/time -v``: peak RSS (``Maximum resident
   set size``), the resident size sampled every half second from ``/proc``
   (flat or growing?), the time until the first output batch reaches the
   temporary output file (since start, and since the file was opened, i.e.
   after model loading), and rows/s. ``--timeout`` stops the command with
   SIGTERM after that many seconds (it then removes its temporary output, as
   it would for a scheduler), so a big file can be sampled without waiting
   hours; rows/s then comes from the progress bar.
2. **A stage breakdown** of the same path in this process, on the first
   ``--profile-rows`` rows: read (CSV reader, UTF-8 checks), tokenize, model,
   decode (Viterbi), redact (policy, result building, Arrow assembly), write
   (Parquet writer), trim (handing memory back, ``malloc_trim``), other (engine
   bookkeeping, Arrow conversions). Each stage is timed by
   wrapping the function that does it; the wrappers cost microseconds.

The CSV has an id, a unique ticket text per row (Faker fragments plus the row
number, so the result cache never hits) and a category column::

    python benchmarks/bench_big_table.py                         # 300 MB, the embedded model
    python benchmarks/bench_big_table.py --size-mb 20 --timeout 120 --batch-rows 512
    python benchmarks/bench_big_table.py --model /path/to/checkpoint --json figures.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ data
def generate_csv(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write about ``size_mb`` MB of ticket rows; returns the row count."""
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE"])
    Faker.seed(seed)
    rng = random.Random(seed)
    # A pool of Faker fragments, recombined per row: Faker itself would take minutes for 300 MB.
    makers = [
        lambda: f"Customer {fake.name()} wrote from {fake.email()}.",
        lambda: f"Please call back on {fake.phone_number()} before {fake.date()}.",
        lambda: f"Ship the replacement to {fake.address().replace(chr(10), ', ')}.",
        lambda: f"Account {fake.iban()} was charged twice for order {fake.ean8()}.",
        lambda: f"The portal {fake.url()} keeps logging me out.",
        lambda: fake.sentence(nb_words=14),
    ]
    pool = [rng.choice(makers)() for _ in range(5000)]
    categories = ["billing", "shipping", "account", "other"]
    target = int(size_mb * 1_000_000)
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("id,body,category\n")
        written = 0
        while written < target:
            text = f"Ticket {rows}: " + " ".join(rng.choice(pool) for _ in range(rng.randint(1, 4)))
            line = f'{rows},"{text.replace(chr(34), chr(39))}",{rng.choice(categories)}\n'
            handle.write(line)
            written += len(line.encode("utf-8"))
            rows += 1
    return rows


# --------------------------------------------------------- the real command
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(x) for x in handle.read().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_command(csv_path: Path, out_dir: Path, args: argparse.Namespace) -> dict:
    out = out_dir / "clean.parquet"
    command = [sys.executable, "-m", "pii_frames.cli", "table", str(csv_path), "-c", "body", "-o", str(out),
               "--batch-rows", str(args.batch_rows), "--progress"]
    if args.model:
        command += ["--model", args.model]
    timer = os.path.exists("/usr/bin/time")  # GNU time; without it, peak RSS comes from the /proc samples
    if timer:
        command = ["/usr/bin/time", "-v", *command]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.extend(iter(lambda: process.stderr.read(4096), b"")),
                              daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []
    opened_at = first_batch_at = None
    cli_pid = None
    stopped = False
    while process.poll() is None:
        now = time.monotonic() - started
        if cli_pid is None:
            kids = _children(process.pid) if timer else [process.pid]
            cli_pid = kids[0] if kids else None
        if cli_pid is not None:
            rss = _rss_mb(cli_pid)
            if rss is not None:
                samples.append((now, rss))
        temporaries = [p for p in out_dir.iterdir() if p.name.startswith(".clean.parquet.pii-tmp-")]
        if temporaries and opened_at is None:
            opened_at = now
        if temporaries and first_batch_at is None:
            try:
                if temporaries[0].stat().st_size > 4:  # past the "PAR1" header: a row group is out
                    first_batch_at = now
            except FileNotFoundError:
                pass
        if args.timeout and now > args.timeout and not stopped and cli_pid is not None:
            os.kill(cli_pid, signal.SIGTERM)
            stopped = True
        time.sleep(0.5)
    reader.join(10)
    elapsed = time.monotonic() - started
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    done = re.search(r"([\d,]+) rows → .* in ([\d.]+) s \(([\d,]+) rows/s\)", stderr)
    progress = re.findall(r"(\d+)row \[", stderr.replace("\r", "\n"))
    rows_done = int(done.group(1).replace(",", "")) if done else (int(progress[-1]) if progress else 0)
    return {
        "returncode": process.returncode,
        "stopped_by_timeout": stopped,
        "wall_s": round(elapsed, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024, 1) if peak else max((r for _, r in samples), default=None),
        "rss_samples_mb": [(round(t, 1), round(r, 1)) for t, r in samples],
        "output_opened_s": None if opened_at is None else round(opened_at, 1),
        "first_batch_s": None if first_batch_at is None else round(first_batch_at, 1),
        "rows_done": rows_done,
        "rows_per_s": (round(float(done.group(3).replace(",", "")), 1) if done else
                       round(rows_done / max(elapsed - (opened_at or 0), 1e-9), 1)),
        "stderr_tail": stderr[-1500:],
    }


# ---------------------------------------------------------- stage breakdown
class Stages:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.active: str | None = None

    @contextmanager
    def stage(self, name: str):
        outer, self.active = self.active, name
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self.seconds[name] += spent
            if outer is not None:
                self.seconds[outer] -= spent  # nested stages count once, in the innermost
            self.active = outer

    def wrap(self, owner, attribute: str, name: str) -> bool:
        original = getattr(owner, attribute, None)
        if original is None:
            return False
        stages = self

        def timed(*a, **k):
            with stages.stage(name):
                return original(*a, **k)

        try:
            setattr(owner, attribute, timed)
        except (AttributeError, TypeError):
            return False
        return True


def profile_stages(csv_path: Path, out_dir: Path, args: argparse.Namespace) -> dict:
    import importlib

    import pyarrow as pa

    import pii_frames
    import pii_frames.io.memory as memory_module
    from pii_frames.arrow import apply_detections, detect_table
    from pii_frames.engine.detector import Detector
    from pii_frames.io.files import FileSink, FileSource
    from pii_frames.io.text import MODEL_CALL_BYTES

    apply_module = importlib.import_module("pii_frames.redaction.apply")  # pii_frames.redact is also a function
    detector = pii_frames.load(args.model) if args.model else pii_frames.load()
    stages = Stages()
    hooked = {
        "model": stages.wrap(Detector, "_run_model", "model"),
        "decode": stages.wrap(Detector, "_decode_many", "decode"),
        "redact": stages.wrap(apply_module, "build_result", "redact"),
        "trim": stages.wrap(memory_module, "release_memory", "trim"),
    }
    tokenizer = detector._shared.tokenizer
    hooked["tokenize"] = all(
        [stages.wrap(tokenizer, name, "tokenize") for name in ("encode_batch", "encode", "token_offsets")]
    )
    source = FileSource(str(csv_path), "csv", ["body"], args.batch_rows)
    sink = FileSink(str(out_dir / "profile.parquet"), "parquet")
    rows = 0
    started = time.perf_counter()
    batches = iter(source)
    try:
        while rows < args.profile_rows:
            with stages.stage("read"):
                table = next(batches, None)
            if table is None:
                break
            with stages.stage("other"):
                # what `pii-frames table` does per batch
                detected = detect_table(table, ["body"], model=detector, progress=False, max_call_bytes=MODEL_CALL_BYTES)
            with stages.stage("redact"):
                out = apply_detections(table, detected)
            with stages.stage("write"):
                sink.write(out)
            rows += table.num_rows
        sink.commit(out.schema if rows else pa.schema([]))
    finally:
        sink.abort()
    total = time.perf_counter() - started
    return {
        "rows": rows,
        "total_s": round(total, 2),
        "rows_per_s": round(rows / total, 1),
        "stages_s": {name: round(stages.seconds.get(name, 0.0), 3)
                     for name in ("read", "tokenize", "model", "decode", "redact", "write", "trim", "other")},
        "not_hooked": sorted(name for name, ok in hooked.items() if not ok),
        "model": detector.model_id,
        "device": str(detector.device),
    }


# --------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=300.0, help="CSV size to generate (default 300)")
    parser.add_argument("--batch-rows", type=int, default=8192, help="--batch-rows for the command (default 8192, the CLI's)")
    parser.add_argument("--model", help="checkpoint (default: what pii-frames would use: the embedded model)")
    parser.add_argument("--timeout", type=float, help="stop the command with SIGTERM after this many seconds")
    parser.add_argument("--profile-rows", type=int, default=4096, help="rows for the stage breakdown (0: skip)")
    parser.add_argument("--csv", type=Path, help="reuse this CSV instead of generating one")
    parser.add_argument("--work-dir", type=Path, help="where the CSV and outputs go (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pii_bench_big_"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = args.csv or work / "big.csv"
    figures: dict = {"size_mb": args.size_mb, "batch_rows": args.batch_rows}
    if args.csv is None:
        started = time.perf_counter()
        figures["csv_rows"] = generate_csv(csv_path, args.size_mb)
        figures["generate_s"] = round(time.perf_counter() - started, 1)
    figures["csv_bytes"] = csv_path.stat().st_size
    print(f"CSV {csv_path}: {figures['csv_bytes'] / 1e6:.1f} MB, {figures.get('csv_rows', '?')} rows", flush=True)

    command = run_command(csv_path, work, args)
    figures["command"] = {k: v for k, v in command.items() if k != "stderr_tail"}
    samples = command["rss_samples_mb"]
    marks = {}
    for mark in (10, 30, 60, 120, 300, 600):
        at = [r for t, r in samples if t <= mark]
        if at and samples[-1][0] >= mark:
            marks[f"{mark}s"] = at[-1]
    print(f"command: exit {command['returncode']}{' (stopped by --timeout)' if command['stopped_by_timeout'] else ''}, "
          f"{command['wall_s']} s, {command['rows_done']:,} rows, {command['rows_per_s']} rows/s")
    print(f"  peak RSS {command['peak_rss_mb']} MB; RSS at {marks}; last {samples[-1][1] if samples else '?'} MB")
    print(f"  output opened after {command['output_opened_s']} s, first batch written after {command['first_batch_s']} s")
    if command["returncode"] not in (0, 143):
        print(command["stderr_tail"])

    if args.profile_rows > 0:
        profile = profile_stages(csv_path, work, args)
        figures["profile"] = profile
        print(f"stages on {profile['rows']:,} rows ({profile['rows_per_s']} rows/s, model {profile['model']} "
              f"on {profile['device']}):")
        for name, seconds in profile["stages_s"].items():
            print(f"  {name:<9} {seconds:8.3f} s  {100 * seconds / max(profile['total_s'], 1e-9):5.1f}%")
        if profile["not_hooked"]:
            print(f"  (not timed separately, counted in other: {', '.join(profile['not_hooked'])})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
