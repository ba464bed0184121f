"""The ``pii-frames`` parser and :func:`main`: which module runs each command, exit statuses, one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pii_frames.cli import model, redact, reveal, scan, table
from pii_frames.cli.common import EXIT_ERROR, PROG, CliError, detect_options, model_options, one_line

__all__ = ["main", "build_parser"]

# Commands whose arguments belong to pii_frames.cli.training, imported only when one of them runs.
TRAINING_COMMANDS = (
    ("eval", "evaluate a model on labelled JSONL data (span and token metrics)"),
    ("calibrate", "choose a checkpoint's Viterbi operating point (recall/precision) on labelled data"),
    ("train", "fine-tune a checkpoint on labelled JSONL data"),
    ("synth", "generate synthetic labelled PII data"),
)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``pii-frames`` (exposed for documentation tools and tests).

    >>> build_parser().parse_args(["redact", "hello"]).text
    'hello'
    """
    models, detect = model_options(), detect_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find and remove personal data (PII) in text and tables with a local privacy-filter model.",
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    redact.add_parser(commands, [models, detect])
    table.add_parser(commands, [models, detect])
    reveal.add_parser(commands)
    scan.add_parser(commands, [models])
    model.add_parsers(commands, [models])
    for name, text in TRAINING_COMMANDS:
        # Imported only when the command runs, so a problem there cannot break the other commands.
        sub = commands.add_parser(name, add_help=False, help=text)
        sub.set_defaults(handler=_training_command(name), delegated=True)
    return parser


def _version() -> str:
    from pii_frames import __version__

    return __version__


def _training_command(name: str):
    def run(args: argparse.Namespace, rest: list[str]) -> int:
        try:
            from pii_frames.cli import training
        except ImportError as error:
            raise CliError(f"`{PROG} {name}` is unavailable: pii_frames.cli.training cannot be imported "
                           f"({one_line(error)})") from None
        parser = argparse.ArgumentParser(prog=f"{PROG} {name}")
        getattr(training, f"add_{name}_arguments")(parser)
        sub_args = parser.parse_args(rest)
        status = getattr(training, f"run_{name}")(sub_args)
        return int(status or 0)

    return run


def _error_message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    message = one_line(error)
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
