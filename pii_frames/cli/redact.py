"""``pii-frames redact``: text given as an argument, files, stdin line by line, or an interactive prompt.

>>> import argparse
>>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_parser(commands, [])
>>> commands.choices["redact"].parse_args(["--json", "hello"]).json
True
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

from pii_frames.cli.common import EXIT_USAGE, PROG, CliError, decode, detect_kwargs, load_detector, read_file

__all__ = ["add_parser", "cmd_redact"]

QUIT_WORDS = {"exit", "quit", ":q", "/exit"}


def add_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``redact`` on the ``commands`` subparsers (``parents``: model and redaction options)."""
    redact = commands.add_parser(
        "redact", parents=parents, help="redact text given as an argument, files, stdin or interactively",
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
        yield decode(raw, encoding, f"stdin line {number}").rstrip("\r\n")


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
    """Run ``pii-frames redact``; returns the exit status."""
    if args.text is not None and args.file:
        raise CliError("give TEXT or -f FILE, not both", EXIT_USAGE)
    examples = [args.text] if args.text is not None else [read_file(f, args.encoding) for f in args.file]
    interactive = not examples and sys.stdin.isatty()
    stdin_text = None
    if not examples and not interactive and args.whole:
        stdin_text = decode(sys.stdin.buffer.read(), args.encoding, "stdin")
    options = detect_kwargs(args)
    detector = load_detector(args)
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
