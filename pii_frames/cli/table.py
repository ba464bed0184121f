"""``pii-frames table``: redact text columns of a Parquet, CSV or JSONL file, streamed batch by batch.

The output is written atomically (a temporary file next to OUT, renamed at the
end); the per-column, per-label counts are printed (and written with
``--summary-json``), never a detected value.

>>> import argparse
>>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_parser(commands, [])
>>> commands.choices["table"].parse_args(["in.csv", "-c", "body", "-o", "out.csv"]).column
['body']
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pii_frames.cli.common import EXIT_ERROR, EXIT_USAGE, FORMATS, PROG, CliError, detect_kwargs, load_detector

if TYPE_CHECKING:  # annotations only: the CLI imports the engine lazily, per command
    from pii_frames.engine.counts import LabelCounts
    from pii_frames.io.files import FileSource

__all__ = ["add_parser", "cmd_table"]


def add_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``table`` on the ``commands`` subparsers (``parents``: model and redaction options)."""
    table = commands.add_parser(
        "table", parents=parents, help="redact text columns of a Parquet, CSV or JSONL file",
        description="Stream IN batch by batch, replace each --column by its redacted text and write OUT "
        "atomically (a temporary file next to OUT, renamed at the end).",
    )
    table.add_argument("input", metavar="IN", help="input file (or folder of Parquet files)")
    table.add_argument("--column", "-c", action="append", required=True, metavar="C", help="text column to redact (repeatable)")
    table.add_argument("--out", "-o", required=True, metavar="OUT", help="output file")
    table.add_argument("--format", choices=FORMATS, help="input format (default: from the extension)")
    table.add_argument("--out-format", choices=FORMATS, help="output format (default: from the extension)")
    table.add_argument("--spans", action="store_true", help="add <column>_pii_spans: label, start, end, score and "
                       "source of each detected span (no raw values)")
    table.add_argument("--spans-with-text", action="store_true",
                       help="like --spans, plus each span's matched text: this WRITES RAW PII into the output "
                       "(for inspecting detections, never for a table you share)")
    table.add_argument("--summary-json", metavar="PATH",
                       help="also write the per-column, per-label span and row counts as JSON to PATH (atomically)")
    table.add_argument("--category", action="store_true", help="add <column>_pii_category (multitask models)")
    table.add_argument("--batch-rows", type=int, default=8192, metavar="N", help="rows per batch (default 8192; the first batches are smaller, from 1,024 rows up, so output starts early)")
    table.add_argument("--encoding", default="utf-8", help="encoding of CSV/JSONL input (default utf-8)")
    table.add_argument("--on-error", choices=("raise", "null"), default="raise",
                       help="a cell that cannot be read or redacted (e.g. bytes that are not valid in --encoding): "
                       "stop with an error naming its column and row (raise, the default), or write null for "
                       "that cell, warn, and keep every other row (null)")
    table.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: when stderr is a terminal)")
    table.set_defaults(handler=cmd_table)


def cmd_table(args: argparse.Namespace) -> int:
    """Run ``pii-frames table``; returns the exit status (128 + signal when stopped by SIGTERM/SIGHUP)."""
    from pii_frames.io.atomic import Terminated, terminate_on_signals
    from pii_frames.io.files import TableIOError

    try:
        # SIGTERM/SIGHUP (a scheduler's timeout, a closed terminal) remove the temporary output
        # like an error does; after kill -9 the next run sweeps it.
        with terminate_on_signals():
            return _table(args)
    except TableIOError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else EXIT_ERROR) from None
    except Terminated as stop:
        print(f"{PROG}: {stop}; the partial output was removed and {args.out} is unchanged", file=sys.stderr)
        return 128 + stop.signum


def _table(args: argparse.Namespace) -> int:
    import warnings

    from pii_frames.arrow import apply_detections, detect_table
    from pii_frames.engine.counts import LabelCounts
    from pii_frames.io.files import FileSink, FileSource, check_output_path, format_of, ramp_up
    from pii_frames.io.memory import release_memory
    from pii_frames.io.text import MODEL_CALL_BYTES

    if args.batch_rows <= 0:
        raise CliError("--batch-rows must be positive", EXIT_USAGE)
    in_fmt = format_of(args.input, args.format, "input")
    out_fmt = format_of(args.out, args.out_format, "output")
    check_output_path(args.out, [args.input])
    columns = list(dict.fromkeys(args.column))
    source = FileSource(args.input, in_fmt, columns, args.batch_rows, args.encoding, on_error=args.on_error)
    options = detect_kwargs(args)
    options["on_error"] = args.on_error
    if args.spans_with_text:
        args.spans = True
        options["with_text"] = True
    detector = load_detector(args)
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()

    from tqdm.auto import tqdm

    counters = {column: LabelCounts() for column in columns}
    started = time.perf_counter()
    sink = FileSink(args.out, out_fmt)
    for path in sink.swept:
        print(f"{PROG}: removed {path}, a temporary file an interrupted earlier run left behind", file=sys.stderr)
    last_schema = None
    try:
        with tqdm(total=source.total_rows, unit="row", desc=PROG, disable=not show_progress, file=sys.stderr,
                  dynamic_ncols=True) as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            # Small first batches: the first rows reach the output within seconds, whatever --batch-rows is.
            for table in ramp_up(source, args.batch_rows):
                # At most MODEL_CALL_BYTES of text per model call, so the engine's memory stays bounded.
                detected = detect_table(table, columns, model=detector, progress=False,
                                        max_call_bytes=MODEL_CALL_BYTES, **options)
                for column in columns:
                    counters[column].add(detected[column])
                out = apply_detections(table, detected, spans=args.spans, category=args.category)
                sink.write(out)
                last_schema = out.schema
                bar.update(table.num_rows)
                for warning in caught:
                    bar.write(f"{PROG}: warning: {warning.message}", file=sys.stderr)
                caught.clear()
                # Each batch frees what the previous one allocated; glibc keeps such memory unless asked.
                del table, detected, out
                release_memory()
        if last_schema is None:
            last_schema = _empty_output(source, columns, args).schema
        sink.commit(last_schema)
    except BaseException:
        sink.abort()
        raise
    seconds = time.perf_counter() - started
    _print_summary(args, counters, sink.rows, seconds, detector)
    if args.summary_json:
        _write_summary_json(args, counters, sink.rows, seconds, detector)
    return 0


def _summary_dict(args, counters: dict[str, LabelCounts], rows: int, seconds: float, detector) -> dict[str, Any]:
    return {
        "input": str(args.input),
        "output": str(args.out),
        "rows": rows,
        "seconds": round(seconds, 3),
        "model": detector.model_id,
        "columns": {column: counter.to_dict() for column, counter in counters.items()},
    }


def _write_summary_json(args, counters: dict[str, LabelCounts], rows: int, seconds: float, detector) -> None:
    """Counts only (never a detected value), written atomically."""
    from pii_frames.io.atomic import atomic_write_json

    atomic_write_json(args.summary_json, _summary_dict(args, counters, rows, seconds, detector))


def _empty_output(source: FileSource, columns: Sequence[str], args: argparse.Namespace):
    """The output schema for an input without rows."""
    import pyarrow as pa

    from pii_frames.arrow import apply_detections
    from pii_frames.engine.schema import detect_type

    empty = source.schema.empty_table()
    found = {c: pa.array([], type=detect_type(bool(args.spans_with_text))) for c in columns}
    return apply_detections(empty, found, spans=args.spans, category=args.category)


def _print_summary(args, counters: dict[str, LabelCounts], rows: int, seconds: float, detector) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"{rows:,} rows → {args.out} in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")
    table = Table()
    table.add_column("column")
    table.add_column("label")
    table.add_column("spans", justify="right")
    table.add_column("rows", justify="right")
    for column, counter in counters.items():
        for label in sorted(counter.spans):
            table.add_row(column, label, f"{counter.spans[label]:,}", f"{counter.rows.get(label, 0):,}")
        table.add_row(column, "[bold]any[/bold]", f"{sum(counter.spans.values()):,}", f"{counter.rows_with_pii:,}",
                      end_section=True)
    console.print(table)
    console.print(f"[dim]model {detector.model_id} on {detector.device}[/dim]")
