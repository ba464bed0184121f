"""Memory of `pii-frames table` on a big generated CSV: peak, the curve over time, first batch, rows/s, where it goes.

Issue 16's acceptance check: ``/usr/bin/time -v pii-frames table big.csv ...`` on
a generated CSV, peak RSS under 1.5 GB and flat after the first minute, the
first output batch within 10 s. Two parts:

1. **The command** (the CSV generator and the runner of
   ``bench_big_table.py``: ``/usr/bin/time -v``, the resident size read from
   ``/proc/<pid>/status`` every 0.5 s, the moment the first row group reaches
   the temporary output). Printed: peak RSS, RSS at 1 min and at the end, the
   highest RSS of each minute (flat or growing?), the growth after the first
   minute, the first batch, rows/s, and each target met or not.
   ``--timeout S`` stops the command with SIGTERM after S seconds (it removes
   its partial output), so a 300 MB file can be sampled without waiting hours.
2. **Where the memory goes** (``--probe N``): the same table path in this
   process for N batches, one line per model call (at most
   ``MODEL_CALL_BYTES`` of text): the peak resident size during the call
   (``VmHWM``, reset before it), the size after it and after the trim, glibc's
   heap in use and free inside its arenas (``mallinfo2``: a growing *free*
   with a flat *in use* is fragmentation), the result cache and Arrow's pool.

::

    python benchmarks/bench_memory.py --mb 20 --timeout 300                  # CLI run, ~100k rows
    nice python benchmarks/bench_memory.py --mb 300 --timeout 900 --json m.json
    python benchmarks/bench_memory.py --mb 20 --probe 12 --no-command        # in-process, per model call
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 LRU_CACHE_CAPACITY=1024 python benchmarks/bench_memory.py --mb 20 --probe 8 --no-command

(the last: torch's default kernel caches, i.e. before ``pii_frames.io.memory.bound_native_caches``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_big_table import generate_csv, profile_stages, run_command  # noqa: E402

PEAK_TARGET_MB = 1500
FIRST_BATCH_TARGET_S = 10
#: "Flat": no minute after the first peaks more than this much above the highest of the first minute.
FLAT_TOLERANCE = 0.05


# ------------------------------------------------------------------ the command
def memory_curve(samples: list[tuple[float, float]]) -> dict:
    """Figures of (seconds, RSS MB) samples: RSS at 1 min and at the end, per-minute maxima, growth after 1 min.

    >>> curve = memory_curve([(0, 100), (30, 500), (60, 600), (90, 620), (130, 610)])
    >>> curve["rss_60s_mb"], curve["per_minute_max_mb"], curve["growth_after_1min_mb"]
    (600, [600, 620, 610], 20)
    """
    if not samples:
        return {}
    by_minute: dict[int, float] = {}
    for seconds, rss in samples:
        minute = max(0, int((seconds - 1e-9) // 60))
        by_minute[minute] = max(by_minute.get(minute, 0), rss)
    at_60 = [rss for seconds, rss in samples if seconds <= 60]
    maxima = [by_minute[m] for m in sorted(by_minute)]
    return {
        "rss_60s_mb": at_60[-1] if samples[-1][0] >= 60 else None,
        "rss_end_mb": samples[-1][1],
        "per_minute_max_mb": maxima,
        "growth_after_1min_mb": (max(maxima[1:]) - maxima[0]) if len(maxima) > 1 else None,
    }


def report_command(command: dict) -> dict:
    curve = memory_curve([tuple(sample) for sample in command["rss_samples_mb"]])
    peak = command["peak_rss_mb"]
    first = command["first_batch_s"]
    maxima = curve.get("per_minute_max_mb", [])
    flat = None if len(maxima) < 2 else curve["growth_after_1min_mb"] <= FLAT_TOLERANCE * maxima[0]
    print(f"command: exit {command['returncode']}{' (stopped by --timeout)' if command['stopped_by_timeout'] else ''}, "
          f"{command['wall_s']} s, {command['rows_done']:,} rows, {command['rows_per_s']} rows/s")
    print(f"  peak RSS {peak} MB; RSS at 1 min {curve.get('rss_60s_mb')} MB, at the end {curve.get('rss_end_mb')} MB")
    print(f"  highest RSS per minute (MB): {', '.join(f'{m:.0f}' for m in maxima)}")
    print(f"  output opened after {command['output_opened_s']} s, first batch written after {first} s")
    verdicts = {
        f"peak RSS < {PEAK_TARGET_MB} MB": None if peak is None else peak < PEAK_TARGET_MB,
        "flat after the first minute": flat,
        f"first batch within {FIRST_BATCH_TARGET_S} s": None if first is None else first <= FIRST_BATCH_TARGET_S,
    }
    for name, met in verdicts.items():
        print(f"  {name}: {'yes' if met else 'NO' if met is not None else 'not measured (run longer)'}")
    return {**curve, "targets_met": verdicts}


# ------------------------------------------------------------------ the probe
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _heap_mb() -> tuple[float, float] | None:
    """glibc heap (in use, free inside the arenas) in MB, or None without glibc's mallinfo2."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks / 2**20, info.fordblks / 2**20


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # "5" resets VmHWM to the current RSS
        handle.write("5")


def probe(csv_path: Path, args: argparse.Namespace) -> dict:
    import pyarrow as pa

    import pii_frames
    from pii_frames.arrow import detect_table
    from pii_frames.io.files import FileSource
    from pii_frames.io.memory import release_memory
    from pii_frames.io.text import MODEL_CALL_BYTES, text_slices

    detector = pii_frames.load(args.model) if args.model else pii_frames.load()
    print(f"probe: model {detector.model_id}, kernel caches ONEDNN_PRIMITIVE_CACHE_CAPACITY="
          f"{os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY')} LRU_CACHE_CAPACITY={os.environ.get('LRU_CACHE_CAPACITY')}; "
          f"RSS after loading {_status_mb('VmRSS'):.0f} MB")
    print(f"  {'batch':>5} {'rows':>5} {'peak':>6} {'after':>6} {'trimmed':>7} {'heap used':>9} {'heap free':>9} "
          f"{'cache':>7} {'arrow':>6} {'cpu s':>6}   (MB)")
    calls = []
    cpu_started = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    for number, table in enumerate(FileSource(str(csv_path), "csv", ["body"], args.batch_rows)):
        if number >= args.probe:
            break
        for start, stop in text_slices(table.column("body"), MODEL_CALL_BYTES):
            _reset_peak()
            part = detect_table(table.slice(start, stop - start), ["body"], model=detector, progress=False)
            peak, after, heap = _status_mb("VmHWM"), _status_mb("VmRSS"), _heap_mb()
            del part
            release_memory()
            call = {"batch": number, "rows": stop - start, "peak_mb": peak, "after_mb": after,
                    "trimmed_mb": _status_mb("VmRSS"), "heap_used_mb": heap and heap[0],
                    "heap_free_mb": heap and heap[1], "cache_mb": detector._cache_used_bytes / 2**20,
                    "arrow_mb": pa.total_allocated_bytes() / 2**20,
                    "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_started}
            calls.append(call)
            print(f"  {number:>5} {call['rows']:>5} {peak:>6.0f} {after:>6.0f} {call['trimmed_mb']:>7.0f} "
                  f"{call['heap_used_mb'] or 0:>9.0f} {call['heap_free_mb'] or 0:>9.0f} {call['cache_mb']:>7.1f} "
                  f"{call['arrow_mb']:>6.1f} {call['cpu_s']:>6.1f}", flush=True)
    quarter = max(1, len(calls) // 4)
    peaks = [max(c["peak_mb"] for c in calls[i:i + quarter]) for i in range(0, len(calls), quarter)]
    rows = sum(c["rows"] for c in calls)
    print(f"  highest peak per quarter of the calls (MB): {', '.join(f'{p:.0f}' for p in peaks)}; "
          f"{rows:,} rows in {calls[-1]['cpu_s']:.1f} CPU s ({rows / max(calls[-1]['cpu_s'], 1e-9):.0f} rows per CPU s)")
    return {"calls": calls, "peak_per_quarter_mb": peaks}


# --------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=300.0, help="CSV size to generate in MB (default 300)")
    parser.add_argument("--batch-rows", type=int, default=8192, help="--batch-rows for the command (default 8192, the CLI's)")
    parser.add_argument("--model", help="checkpoint (default: what pii-frames would use: the embedded model)")
    parser.add_argument("--timeout", type=float, help="stop the command with SIGTERM after this many seconds")
    parser.add_argument("--no-command", action="store_true", help="skip the command (e.g. to probe only)")
    parser.add_argument("--probe", type=int, default=0, metavar="N", help="probe N batches in-process (default 0)")
    parser.add_argument("--profile-rows", type=int, default=0, help="stage breakdown on this many rows (default 0)")
    parser.add_argument("--csv", type=Path, help="reuse this CSV instead of generating one")
    parser.add_argument("--work-dir", type=Path, help="where the CSV and outputs go (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pii_bench_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = args.csv or work / "big.csv"
    figures: dict = {"mb": args.mb, "batch_rows": args.batch_rows}
    if args.csv is None:
        started = time.perf_counter()
        figures["csv_rows"] = generate_csv(csv_path, args.mb)
        figures["generate_s"] = round(time.perf_counter() - started, 1)
    figures["csv_bytes"] = csv_path.stat().st_size
    print(f"CSV {csv_path}: {figures['csv_bytes'] / 1e6:.1f} MB, {figures.get('csv_rows', '?')} rows", flush=True)
    try:
        if not args.no_command:
            command = run_command(csv_path, work, args)
            figures["command"] = {k: v for k, v in command.items() if k != "stderr_tail"}
            figures["command"].update(report_command(command))
            if command["returncode"] not in (0, 143):
                print(command["stderr_tail"])
        if args.probe > 0:
            figures["probe"] = probe(csv_path, args)
        if args.profile_rows > 0:
            profile = figures["profile"] = profile_stages(csv_path, work, args)
            print(f"stages on {profile['rows']:,} rows ({profile['rows_per_s']} rows/s):")
            for name, seconds in profile["stages_s"].items():
                print(f"  {name:<9} {seconds:8.3f} s  {100 * seconds / max(profile['total_s'], 1e-9):5.1f}%")
    finally:
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
