"""The ``pii-frames`` command line.

::

    pii-frames redact "Call Anna at 555-0100"          # text in, redacted text out
    pii-frames redact -f ticket.txt --json             # opf RedactionResult JSON (schema v1)
    cat tickets.txt | pii-frames redact                # one example per stdin line
    pii-frames table tickets.parquet --column body --out clean.parquet --spans
    pii-frames reveal -f clean.txt --key-env PII_KEY   # restore encrypt-policy tokens (no model)
    pii-frames reveal clean.parquet -c body -o restored.parquet --key-env PII_KEY
    pii-frames scan warehouse.duckdb --fail-on any     # which tables/columns hold PII (exit 3 if found)
    pii-frames info                                    # which model, where from, device, labels
    pii-frames bench                                   # a few seconds of tokens/s and rows/s
    pii-frames download openai/privacy-filter          # the only command that uses the network
    pii-frames eval data.jsonl / train data.jsonl --output-dir DIR / synth ...

Every command takes ``--model`` (checkpoint directory or name; default:
``PII_FRAMES_MODEL``, a local openai/privacy-filter, the embedded model),
``--device`` and ``--dtype``. Expected failures (a missing file, a bad
column, a corrupt checkpoint...) print one line on stderr and exit with
status 1 (2 for usage errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the CLI imports the engine lazily, per command
    from pii_frames.engine.counts import LabelCounts

__all__ = ["main", "build_parser", "CliError"]

PROG = "pii-frames"
EXIT_ERROR = 1
EXIT_USAGE = 2
QUIT_WORDS = {"exit", "quit", ":q", "/exit"}
FORMATS = ("parquet", "csv", "jsonl")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class CliError(Exception):
    """An expected failure, reported as one line on stderr with exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------- parser
def _model_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("model")
    group.add_argument("--model", help="checkpoint directory or model name (default: PII_FRAMES_MODEL, "
                       "a local openai/privacy-filter, then the embedded model)")
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    group.add_argument("--dtype", help="weight dtype: float32, float16, bfloat16 (default: float32 on CPU, bfloat16 on CUDA)")
    group.add_argument("--opf-compatible", action="store_true", default=None,
                       help="spans and redacted text exactly as the opf reference decodes them: no edge snapping, "
                       "no protection of placeholders already in the input, no pattern recognizers")
    group.add_argument("--no-recognizers", dest="recognizers", action="store_false", default=None,
                       help="the model's own spans only: no validated patterns (cards, IBANs, IDs, phones, "
                       "secrets) beside it; a --policy file's \"recognizers\" entry replaces the built-ins")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parent


def _detect_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("redaction")
    group.add_argument("--mode", choices=("typed", "redacted"), help="typed placeholders (<PRIVATE_EMAIL>, the "
                       "default) or one <REDACTED> for every label")
    group.add_argument("--decode-mode", choices=("viterbi", "argmax"), help="span decoder (default viterbi)")
    group.add_argument("--policy", help="redaction policy: a .json/.toml file or inline JSON, e.g. "
                       "'{\"operator\": \"mask\", \"labels\": [\"private_email\"]}'")
    group.add_argument("--key-env", metavar="VAR", help="environment variable holding the pseudonym key "
                       "(keys are never taken from the command line)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``pii-frames`` (exposed for documentation tools and tests).

    >>> build_parser().parse_args(["redact", "hello"]).text
    'hello'
    """
    model, detect = _model_options(), _detect_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find and remove personal data (PII) in text and tables with a local privacy-filter model.",
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    redact = commands.add_parser(
        "redact", parents=[model, detect], help="redact text given as an argument, files, stdin or interactively",
        description="Redact TEXT, or each -f FILE (one example per file), or stdin (one example per line; "
        "--whole for one example), or prompt interactively when stdin is a terminal.",
    )
    redact.add_argument("text", nargs="?", help="the text to redact")
    redact.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                        help="read one example from FILE (repeatable)")
    redact.add_argument("--whole", action="store_true", help="treat all of stdin as one example")
    redact.add_argument("--json", action="store_true", help="print the RedactionResult as JSON (opf schema v1)")
    redact.add_argument("--json-indent", type=int, default=2, metavar="N", help="JSON indent; 0 for one line per result")
    redact.add_argument("--encoding", default="utf-8", help="encoding of files and stdin (default utf-8)")
    redact.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="highlight spans (auto: when stdout is a terminal)")
    redact.set_defaults(handler=cmd_redact)

    table = commands.add_parser(
        "table", parents=[model, detect], help="redact text columns of a Parquet, CSV or JSONL file",
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
    table.add_argument("--batch-rows", type=int, default=8192, metavar="N", help="rows per batch (default 8192)")
    table.add_argument("--encoding", default="utf-8", help="encoding of CSV/JSONL input (default utf-8)")
    table.add_argument("--on-error", choices=("raise", "null"), default="raise",
                       help="a cell that cannot be read or redacted (e.g. bytes that are not valid in --encoding): "
                       "stop with an error naming its column and row (raise, the default), or write null for "
                       "that cell, warn, and keep every other row (null)")
    table.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: when stderr is a terminal)")
    table.set_defaults(handler=cmd_table)

    reveal = commands.add_parser(
        "reveal", help="restore the tokens of an encrypt policy in text or table columns (needs the key, no model)",
        description="Restore every <LABEL:v1:KEYID:...> token written by the 'encrypt' policy operator: in TEXT, "
        "each -f FILE, or stdin (line by line); or, with --column, in those columns of the table IN, written to "
        "--out atomically. Keys are read only from environment variables. The model is never loaded.",
    )
    reveal.add_argument("text", nargs="?", metavar="TEXT|IN", help="the text to reveal, or the input table with --column")
    reveal.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                        help="reveal the whole of FILE (repeatable)")
    reveal.add_argument("--key-env", action="append", required=True, metavar="[KEYID=]VAR",
                        help="environment variable holding a key; repeat for several keys (rotation); "
                        "KEYID=VAR files the key under that key id, a bare VAR under its fingerprint "
                        "(a single bare VAR opens tokens of any key id)")
    reveal.add_argument("--on-error", choices=("raise", "null"), default="raise",
                        help="a token that does not open: stop with an error (default), or write an empty "
                        "value (text: an empty line; tables: null) and warn")
    reveal.add_argument("--encoding", default="utf-8", help="encoding of files, stdin and CSV/JSONL input")
    reveal.add_argument("--column", "-c", action="append", default=[], metavar="C",
                        help="reveal this column of the table IN (repeatable)")
    reveal.add_argument("--out", "-o", metavar="OUT", help="output table (with --column)")
    reveal.add_argument("--format", choices=FORMATS, help="input table format (default: from the extension)")
    reveal.add_argument("--out-format", choices=FORMATS, help="output table format (default: from the extension)")
    reveal.add_argument("--batch-rows", type=int, default=8192, metavar="N", help="rows per batch (default 8192)")
    reveal.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    reveal.set_defaults(handler=cmd_reveal)

    scan = commands.add_parser(
        "scan", parents=[model], help="find which tables and columns hold personal data",
        description="Scan a random sample of every text column of SOURCE (Parquet file or folder, CSV, JSONL, "
        ".duckdb file or duckdb:///file.duckdb::schema.table) and report per column whether it holds PII.",
    )
    scan.add_argument("source", metavar="SOURCE", help="file, folder or duckdb:// location to scan")
    scan.add_argument("--column", "-c", action="append", default=[], metavar="C",
                      help="scan only this column (repeatable; 'table.column' for databases)")
    scan.add_argument("--sample-rows", type=int, default=1000, metavar="N", help="rows sampled per table (default 1000)")
    scan.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the random sample (default 0)")
    scan.add_argument("--min-share", type=float, default=0.05, metavar="F",
                      help="a label counts when at least this share of sampled rows has it (default 0.05)")
    scan.add_argument("--min-score", type=float, default=0.5, metavar="F", help="ignore spans scored below (default 0.5)")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.add_argument("--html", metavar="PATH", help="also write the report as an HTML page")
    scan.add_argument("--fail-on", metavar="LABELS", help="exit with status 3 when any of these comma-separated "
                      "labels (or 'any') is found")
    scan.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress bar across columns (default: when stderr is a terminal)")
    scan.set_defaults(handler=cmd_scan)

    info = commands.add_parser("info", parents=[model], help="show the model that would be used")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=cmd_info)

    bench = commands.add_parser("bench", parents=[model], help="quick speed check on synthetic text")
    bench.add_argument("--seconds", type=float, default=3.0, help="how long to measure (default 3)")
    bench.add_argument("--batch-rows", type=int, default=64, metavar="N", help="rows per call (default 64)")
    bench.add_argument("--words", type=int, default=40, metavar="N", help="about how many words per row (default 40)")
    bench.set_defaults(handler=cmd_bench)

    download = commands.add_parser(
        "download",
        help="download a checkpoint from the Hugging Face hub (needs network)",
        description="Fetch NAME's opf checkpoint (its original/ files, moved up one level like opf does) into "
        "DIR; openai/privacy-filter goes to ~/.opf/privacy_filter by default, other names to the Hugging Face cache.",
    )
    download.add_argument("name", metavar="NAME", help="hub repository, e.g. openai/privacy-filter")
    download.add_argument("--dir", help="target directory")
    download.add_argument("--revision", help="branch, tag or commit")
    download.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    download.set_defaults(handler=cmd_download)

    for name, text in (
        ("eval", "evaluate a model on labelled JSONL data (span and token metrics)"),
        ("train", "fine-tune a checkpoint on labelled JSONL data"),
        ("synth", "generate synthetic labelled PII data"),
    ):
        # Arguments belong to pii_frames.train.commands, imported only when the
        # command runs, so a problem there cannot break the other commands.
        sub = commands.add_parser(name, add_help=False, help=text)
        sub.set_defaults(handler=_train_command(name), delegated=True)
    return parser


# ------------------------------------------------------------------ helpers
def _version() -> str:
    from pii_frames import __version__

    return __version__


def _load_detector(args: argparse.Namespace, **options: Any):
    from pii_frames.engine.loading import load

    kwargs: dict[str, Any] = dict(options)
    if getattr(args, "opf_compatible", None):
        kwargs["opf_compatible"] = True
    if getattr(args, "recognizers", None) is False:
        kwargs["recognizers"] = None
    if getattr(args, "device", None):
        kwargs["device"] = args.device
    if getattr(args, "dtype", None):
        kwargs["dtype"] = args.dtype
    return load(getattr(args, "model", None), **kwargs)


def _read_policy_spec(spec: str) -> dict[str, Any]:
    if spec.lstrip().startswith("{"):
        try:
            data = json.loads(spec)
        except json.JSONDecodeError as error:
            raise CliError(f"--policy is not valid JSON: {error}") from None
        if "key" in data:
            raise CliError("--policy must not contain the pseudonym key (it would end up in shell history); "
                           "put the key in an environment variable and pass --key-env NAME")
        return data
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CliError(f"--policy {spec!r} is neither inline JSON nor an existing file")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            with path.open("rb") as handle:
                data = tomllib.load(handle)
            data = data.get("policy", data)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CliError(f"cannot parse policy file {path}: {error}") from None
    if not isinstance(data, dict):
        raise CliError(f"policy file {path} must hold an object/table of Policy arguments")
    return data


def _policy(args: argparse.Namespace):
    if not args.policy and not args.key_env:
        return None
    spec = _read_policy_spec(args.policy) if args.policy else {}
    if args.key_env:
        key = os.environ.get(args.key_env)
        if not key:
            raise CliError(f"--key-env {args.key_env}: the environment variable {args.key_env} is not set or empty")
        spec["key"] = key
    from pii_frames.redaction.policy import policy_from_dict

    try:
        return policy_from_dict(spec)
    except ValueError as error:
        raise CliError(f"invalid --policy: {error}") from None


def _detect_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    policy = _policy(args)
    if policy is not None:
        options["policy"] = policy
    if args.mode:
        options["output_mode"] = args.mode
    if args.decode_mode:
        options["decode_mode"] = args.decode_mode
    return options


def _decode(data: bytes, encoding: str, source: str) -> str:
    from pii_frames.io.files import TableIOError, decode_bytes

    try:
        return decode_bytes(data, encoding, source)
    except TableIOError as error:
        raise CliError(str(error)) from None


def _read_file(path: str, encoding: str) -> str:
    try:
        data = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise CliError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory; pass a text file") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    return _decode(data, encoding, path)


# ------------------------------------------------------------------- redact
def _highlighted(result) -> Any:
    from rich.text import Text

    from pii_frames._html import label_color

    text = Text(result.text)
    for span in result.detected_spans:
        text.stylize(f"#111111 on {label_color(span.label)}", span.start, span.end)
    # Label tags go after each span, inserted from the end so offsets stay valid.
    for span in sorted(result.detected_spans, key=lambda s: s.start, reverse=True):
        tag = Text(f"[{span.label}]", style=f"dim {label_color(span.label)}")
        text = Text.assemble(text[: span.end], tag, text[span.end :])
    return text


class _Printer:
    """Writes one result in the chosen format (stdout carries only the data)."""

    def __init__(self, args: argparse.Namespace, *, interactive: bool = False):
        self.json = args.json
        self.indent = args.json_indent if args.json_indent > 0 else None
        color = args.color == "always" or (args.color == "auto" and (sys.stdout.isatty() or interactive))
        self.console = None
        if color:
            from rich.console import Console

            self.console = Console(highlight=False, soft_wrap=True, force_terminal=args.color == "always" or None)

    def blank(self) -> None:
        if not self.json:
            print()

    def emit(self, result) -> None:
        if self.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False, indent=self.indent))
        elif self.console is not None:
            self.console.print(_highlighted(result))
            self.console.print(f"[bold]→[/bold] {_escape(result.redacted_text)}")
            counts: dict[str, int] = {}
            for span in result.detected_spans:
                counts[span.label] = counts.get(span.label, 0) + 1
            found = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items())) or "no PII found"
            self.console.print(f"[dim]{found}[/dim]")
        else:
            print(result.redacted_text)
        sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _stdin_lines(encoding: str) -> Iterator[str]:
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        yield _decode(raw, encoding, f"stdin line {number}").rstrip("\r\n")


def _batched(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_redact(args: argparse.Namespace) -> int:
    if args.text is not None and args.file:
        raise CliError("give TEXT or -f FILE, not both", EXIT_USAGE)
    examples = [args.text] if args.text is not None else [_read_file(f, args.encoding) for f in args.file]
    interactive = not examples and sys.stdin.isatty()
    stdin_text = None
    if not examples and not interactive and args.whole:
        stdin_text = _decode(sys.stdin.buffer.read(), args.encoding, "stdin")
    options = _detect_kwargs(args)
    detector = _load_detector(args)
    printer = _Printer(args, interactive=interactive)

    if examples or stdin_text is not None:
        for result in detector.redact_many(examples or [stdin_text], **options):
            printer.emit(result)
        return 0
    if interactive:
        return _interactive(detector, printer, options)
    # One example per line, in small batches so output streams; empty lines stay
    # empty in text output (line numbers line up) and are skipped in JSON.
    for lines in _batched(_stdin_lines(args.encoding), 64):
        texts = [line for line in lines if line.strip()]
        results = iter(detector.redact_many(texts, **options)) if texts else iter(())
        for line in lines:
            if line.strip():
                printer.emit(next(results))
            else:
                printer.blank()
    return 0


def _interactive(detector, printer: _Printer, options: dict[str, Any]) -> int:
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    console.print(f"[dim]{PROG} · model {detector.model_id} · device {detector.device} · "
                  "type text, or exit to quit[/dim]")
    while True:
        try:
            text = input("text> ")
        except EOFError:
            print()
            return 0
        if text.strip() in QUIT_WORDS:
            return 0
        if text.strip():
            printer.emit(detector.redact(text, **options))


# -------------------------------------------------------------------- table
def _format_of(path: str, explicit: str | None, what: str) -> str:
    from pii_frames.io.files import TableIOError, format_of

    try:
        return format_of(path, explicit, what)
    except TableIOError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else EXIT_ERROR) from None


# The readers and the atomic writer are pii_frames.io.files.FileSource / FileSink, shared with
# the Airflow job; imported when used, so `pii-frames redact` starts without pyarrow.
def _Source(path: str, fmt: str, columns: Sequence[str], batch_rows: int, encoding: str, **options: Any):
    from pii_frames.io.files import FileSource, TableIOError

    try:
        return FileSource(path, fmt, columns, batch_rows, encoding, **options)
    except TableIOError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else EXIT_ERROR) from None


def _Sink(path: str, fmt: str):
    from pii_frames.io.files import FileSink

    return FileSink(path, fmt)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def cmd_table(args: argparse.Namespace) -> int:
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

    from pii_frames.arrow import apply_detections
    from pii_frames.engine.counts import LabelCounts
    from pii_frames.io.files import FileSink, FileSource, check_output_path, format_of
    from pii_frames.io.memory import release_memory

    if args.batch_rows <= 0:
        raise CliError("--batch-rows must be positive", EXIT_USAGE)
    in_fmt = format_of(args.input, args.format, "input")
    out_fmt = format_of(args.out, args.out_format, "output")
    check_output_path(args.out, [args.input])
    columns = list(dict.fromkeys(args.column))
    source = FileSource(args.input, in_fmt, columns, args.batch_rows, args.encoding, on_error=args.on_error)
    options = _detect_kwargs(args)
    options["on_error"] = args.on_error
    if args.spans_with_text:
        args.spans = True
        options["with_text"] = True
    detector = _load_detector(args)
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
            for table in source:
                detected = _detect_bounded(table, columns, detector, options)
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


def _detect_bounded(table, columns: Sequence[str], detector, options: dict[str, Any]) -> dict[str, Any]:
    """``detect_table`` in slices of at most MODEL_CALL_BYTES of text, so the engine's memory stays bounded.

    The result cache still dedups values repeated across slices; memory is
    handed back to the OS after each slice.
    """
    import pyarrow as pa

    from pii_frames.arrow import detect_table
    from pii_frames.io.memory import release_memory
    from pii_frames.io.text import MODEL_CALL_BYTES, text_slices

    found: dict[str, Any] = {}
    for column in columns:
        slices = text_slices(table.column(column), MODEL_CALL_BYTES)
        if len(slices) <= 1:
            found[column] = detect_table(table, [column], model=detector, progress=False, **options)[column]
            continue
        parts = []
        for start, stop in slices:
            part = detect_table(table.slice(start, stop - start), [column], model=detector, progress=False,
                                **options)[column]
            parts.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
            release_memory()
        found[column] = pa.chunked_array(parts)
    return found


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


def _empty_output(source: _Source, columns: Sequence[str], args: argparse.Namespace):
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


# ------------------------------------------------------------------- reveal
def _reveal_keys(specs: Sequence[str]):
    """A KeyRing from ``--key-env [KEYID=]VAR`` options (values read from the environment only)."""
    from pii_frames.redaction.encryption import EncryptionKey, KeyRing

    by_id: dict[str, Any] = {}
    bare: list[Any] = []
    for spec in specs:
        key_id, _, variable = spec.rpartition("=")
        value = os.environ.get(variable)
        if not variable or not value:
            raise CliError(f"--key-env {spec}: the environment variable {variable or '(none)'} is not set or empty")
        try:
            if key_id:
                by_id[key_id] = EncryptionKey(value, key_id=key_id)
            else:
                bare.append(EncryptionKey(value))
        except ValueError as error:
            raise CliError(f"--key-env {spec}: {error}") from None
    if len(bare) == 1:
        return KeyRing(by_id, default=bare[0])
    for key in bare:
        by_id.setdefault(key.key_id, key)
    return KeyRing(by_id)


def _revealed(ring, text: str, on_error: str, where: str) -> str | None:
    from pii_frames.redaction.encryption import RevealError

    try:
        return ring.reveal(text)
    except RevealError as error:
        if on_error == "raise":
            raise CliError(f"{where}: {error} (pass --on-error null to write an empty value and go on)") from None
        print(f"{PROG}: warning: {where} could not be revealed and is left empty: {error}", file=sys.stderr)
        return None


def cmd_reveal(args: argparse.Namespace) -> int:
    ring = _reveal_keys(args.key_env)
    if args.column:
        return _reveal_table(args, ring)
    if args.out or args.format or args.out_format:
        raise CliError("--out, --format and --out-format need --column (table mode)", EXIT_USAGE)
    if args.text is not None and args.file:
        raise CliError("give TEXT or -f FILE, not both", EXIT_USAGE)
    if args.text is not None:
        print(_revealed(ring, args.text, args.on_error, "TEXT") or "")
        return 0
    if args.file:
        for path in args.file:
            # The file is written back byte for byte apart from the tokens (no added newline).
            sys.stdout.write(_revealed(ring, _read_file(path, args.encoding), args.on_error, path) or "")
        sys.stdout.flush()
        return 0
    if sys.stdin.isatty():
        raise CliError("give TEXT, -f FILE or pipe text into stdin", EXIT_USAGE)
    # Line by line, line endings kept, so the output streams and lines up with the input.
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        line = _decode(raw, args.encoding, f"stdin line {number}")
        body = line.rstrip("\r\n")
        sys.stdout.write((_revealed(ring, body, args.on_error, f"stdin line {number}") or "") + line[len(body):])
    sys.stdout.flush()
    return 0


def _reveal_table(args: argparse.Namespace, ring) -> int:
    import pyarrow as pa

    from pii_frames.redaction.encryption import RevealError, reveal_arrow

    if args.file:
        raise CliError("-f FILE reveals text files; for a table give IN with --column", EXIT_USAGE)
    if args.text is None or not args.out:
        raise CliError("table mode needs IN and --out: pii-frames reveal IN --column C --out OUT --key-env VAR",
                       EXIT_USAGE)
    if args.batch_rows <= 0:
        raise CliError("--batch-rows must be positive", EXIT_USAGE)
    in_fmt = _format_of(args.text, args.format, "input")
    out_fmt = _format_of(args.out, args.out_format, "output")
    columns = list(dict.fromkeys(args.column))
    source = _Source(args.text, in_fmt, columns, args.batch_rows, args.encoding, on_error=args.on_error)
    sink = _Sink(args.out, out_fmt)
    last_schema = None
    rows = 0
    try:
        for table in source:
            for column in columns:
                try:
                    revealed = reveal_arrow(table.column(column), keys=ring, on_error=args.on_error,
                                            name=column, first_row=rows)
                except RevealError as error:
                    raise CliError(f"{args.text}: {error}") from None
                table = table.set_column(table.column_names.index(column), pa.field(column, pa.string()), revealed)
            sink.write(table)
            last_schema = table.schema
            rows += table.num_rows
        if last_schema is None:
            last_schema = _reveal_empty_schema(source, columns)
        sink.commit(last_schema)
    except BaseException:
        sink.abort()
        raise
    print(f"{rows:,} rows → {args.out}", file=sys.stderr)
    return 0


def _reveal_empty_schema(source: _Source, columns: Sequence[str]):
    """The output schema for an input without rows: the input's, revealed columns as string."""
    import pyarrow as pa

    schema = source.schema
    for column in columns:
        schema = schema.set(schema.get_field_index(column), pa.field(column, pa.string()))
    return schema


# --------------------------------------------------------------------- scan
def cmd_scan(args: argparse.Namespace) -> int:
    from pii_frames.discovery.command import run

    return run(args)


# --------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    detector = _load_detector(args)
    config = detector.config
    facts = {
        "model": detector.model_id,
        "checkpoint": str(detector.checkpoint_dir),
        "device": str(detector.device),
        "dtype": str(detector.dtype).replace("torch.", ""),
        "layout": getattr(config, "layout", None),
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "experts": f"{config.num_experts} (top {config.experts_per_token})",
        "vocab_size": config.vocab_size,
        "n_ctx": detector.n_ctx,
        "token_budget": detector.token_budget,
        "labels": detector.span_labels,
        "token_labels": len(detector.labels),
        "doc_classes": detector.doc_classes,
    }
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {'none' if value is None else value}")
    return 0


# -------------------------------------------------------------------- bench
def _synthetic_rows(count: int, words: int, seed: int) -> list[str]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rows = []
    for _ in range(count):
        parts = [
            f"Hi, this is {fake.name()} ({fake.email()}), account {fake.bban()}.",
            f"Please call me on {fake.phone_number()} or write to {fake.address().replace(chr(10), ', ')}.",
            f"My order from {fake.date()} never arrived; details at {fake.url()}.",
        ]
        text = " ".join(parts)
        while len(text.split()) < words:
            text += " " + fake.sentence(nb_words=12)
        rows.append(text)
    return rows


def cmd_bench(args: argparse.Namespace) -> int:
    if args.seconds <= 0 or args.batch_rows <= 0 or args.words <= 0:
        raise CliError("--seconds, --batch-rows and --words must be positive", EXIT_USAGE)
    # No result cache: every row must really run through the model.
    detector = _load_detector(args, cache_size=0, progress=False)
    tokenizer = detector.tokenizer
    detector.redact_many(_synthetic_rows(4, args.words, seed=0))  # warm-up: lazy init, allocator
    rows = tokens = 0
    batch_seed = 1
    elapsed = 0.0
    while elapsed < args.seconds:
        batch = _synthetic_rows(args.batch_rows, args.words, seed=batch_seed)
        batch_seed += 1
        batch_tokens = sum(len(ids) for ids in tokenizer.encode_batch(batch))
        started = time.perf_counter()
        detector.redact_many(batch)
        elapsed += time.perf_counter() - started
        rows += len(batch)
        tokens += batch_tokens
    facts = [
        ("model", detector.model_id), ("device", str(detector.device)),
        ("dtype", str(detector.dtype).replace("torch.", "")), ("rows", f"{rows:,}"),
        ("tokens", f"{tokens:,} ({tokens / rows:.0f}/row)"), ("seconds", f"{elapsed:.2f}"),
        ("rows/s", f"{rows / elapsed:,.1f}"), ("tokens/s", f"{tokens / elapsed:,.0f}"),
    ]
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"{key:<{width}}  {value}")
    return 0


# ----------------------------------------------------------------- download
def cmd_download(args: argparse.Namespace) -> int:
    from pii_frames.download import DownloadError, download_checkpoint

    try:
        target, use_as = download_checkpoint(args.name, revision=args.revision, directory=args.dir)
    except DownloadError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else 1) from None
    print(f"downloaded {args.name.strip()} to {target}")
    print(f"use it with --model {use_as}")
    return 0


# ------------------------------------------------------------ eval / train
def _train_command(name: str):
    def run(args: argparse.Namespace, rest: list[str]) -> int:
        try:
            from pii_frames.train import commands
        except ImportError as error:
            raise CliError(f"`{PROG} {name}` is unavailable: pii_frames.train.commands cannot be imported "
                           f"({_one_line(error)})") from None
        parser = argparse.ArgumentParser(prog=f"{PROG} {name}")
        getattr(commands, f"add_{name}_arguments")(parser)
        sub_args = parser.parse_args(rest)
        status = getattr(commands, f"run_{name}")(sub_args)
        return int(status or 0)

    return run


# --------------------------------------------------------------------- main
def _error_message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    message = _one_line(error)
    known = (CliError, FileNotFoundError, ValueError, TypeError, KeyError, RuntimeError, PermissionError)
    return message if isinstance(error, known) and message else f"{type(error).__name__}: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pii-frames`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    >>> main(["--help"])  # doctest: +SKIP
    """
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "delegated", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    debug = getattr(args, "debug", False) or "--debug" in (rest or [])
    try:
        if getattr(args, "delegated", False):
            return args.handler(args, [r for r in rest if r != "--debug"])
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, like other Unix tools.
        sys.stderr.close()
        return 0
    except SystemExit:
        raise
    except BaseException as error:
        if debug or getattr(args, "debug", False):
            raise
        code = error.code if isinstance(error, CliError) else EXIT_ERROR
        print(f"{PROG}: error: {_error_message(error)} (run with --debug for the traceback)"
              if not isinstance(error, CliError) else f"{PROG}: error: {error}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
