"""``pii-frames reveal``: restore the tokens of an ``encrypt`` policy in text or table columns (key needed, no model).

Keys are read only from environment variables (``--key-env [KEYID=]VAR``); the
model is never loaded.

>>> import argparse
>>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_parser(commands)
>>> commands.choices["reveal"].parse_args(["--key-env", "PII_KEY", "text"]).key_env
['PII_KEY']
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pii_frames.cli.common import (
    EXIT_USAGE,
    FORMATS,
    PROG,
    CliError,
    decode,
    format_of,
    open_sink,
    open_source,
    read_file,
)

if TYPE_CHECKING:
    from pii_frames.io.files import FileSource

__all__ = ["add_parser", "cmd_reveal"]


def add_parser(commands) -> None:
    """Register ``reveal`` on the ``commands`` subparsers (no model options: it never loads one)."""
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
    """Run ``pii-frames reveal``; returns the exit status."""
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
            sys.stdout.write(_revealed(ring, read_file(path, args.encoding), args.on_error, path) or "")
        sys.stdout.flush()
        return 0
    if sys.stdin.isatty():
        raise CliError("give TEXT, -f FILE or pipe text into stdin", EXIT_USAGE)
    # Line by line, line endings kept, so the output streams and lines up with the input.
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        line = decode(raw, args.encoding, f"stdin line {number}")
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
    in_fmt = format_of(args.text, args.format, "input")
    out_fmt = format_of(args.out, args.out_format, "output")
    columns = list(dict.fromkeys(args.column))
    source = open_source(args.text, in_fmt, columns, args.batch_rows, args.encoding, on_error=args.on_error)
    sink = open_sink(args.out, out_fmt)
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


def _reveal_empty_schema(source: FileSource, columns: Sequence[str]):
    """The output schema for an input without rows: the input's, revealed columns as string."""
    import pyarrow as pa

    schema = source.schema
    for column in columns:
        schema = schema.set(schema.get_field_index(column), pa.field(column, pa.string()))
    return schema
