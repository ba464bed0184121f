"""What several ``pii-frames`` commands share: exit statuses, model and redaction options, text and table input.

Nothing here imports the engine or pyarrow at import time, so building the
parser (``--help``) stays cheap; each helper imports what it needs when called.

>>> detect_options().parse_args(["--mode", "redacted"]).mode
'redacted'
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PROG",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "FORMATS",
    "CliError",
    "model_options",
    "detect_options",
    "load_detector",
    "detect_kwargs",
    "decode",
    "read_file",
    "format_of",
    "open_source",
    "open_sink",
    "one_line",
]

PROG = "pii-frames"
EXIT_ERROR = 1
EXIT_USAGE = 2
# The same choices as pii_frames.io.files.FORMATS, written out because that module imports pyarrow
# and the parser is built without it.
FORMATS = ("parquet", "csv", "jsonl")


class CliError(Exception):
    """An expected failure, reported as one line on stderr with exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------- parser parents
def model_options() -> argparse.ArgumentParser:
    """Parent parser of the options that pick and configure the model (``--model``, ``--device``, ...)."""
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
    group.add_argument("--no-rescan", dest="rescan", action="store_false", default=None,
                       help="one pass only: do not read redacted texts again for what their redacted form "
                       "reveals (a second run over the output may then still find names)")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parent


def detect_options() -> argparse.ArgumentParser:
    """Parent parser of the options that shape the redaction (``--mode``, ``--policy``, ``--key-env``, ...)."""
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


# --------------------------------------------------------------------- model and policy
def load_detector(args: argparse.Namespace, **options: Any):
    """The Detector the model options of ``args`` name (``options`` added), through :func:`pii_frames.load`."""
    from pii_frames.engine.loading import load

    kwargs: dict[str, Any] = dict(options)
    if getattr(args, "opf_compatible", None):
        kwargs["opf_compatible"] = True
    if getattr(args, "recognizers", None) is False:
        kwargs["recognizers"] = None
    if getattr(args, "rescan", None) is False:
        kwargs["rescan"] = False
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


def detect_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call detection options from the redaction options of ``args`` (policy, output and decode mode)."""
    options: dict[str, Any] = {}
    policy = _policy(args)
    if policy is not None:
        options["policy"] = policy
    if args.mode:
        options["output_mode"] = args.mode
    if args.decode_mode:
        options["decode_mode"] = args.decode_mode
    return options


# --------------------------------------------------------------------- text input
def decode(data: bytes, encoding: str, source: str) -> str:
    """``data`` decoded, or a CliError naming ``source`` and the bad byte."""
    from pii_frames.io.files import TableIOError, decode_bytes

    try:
        return decode_bytes(data, encoding, source)
    except TableIOError as error:
        raise CliError(str(error)) from None


def read_file(path: str, encoding: str) -> str:
    """The whole text of ``path``, or a CliError saying why it cannot be read."""
    try:
        data = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise CliError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory; pass a text file") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    return decode(data, encoding, path)


# --------------------------------------------------------------------- tables
def format_of(path: str, explicit: str | None, what: str) -> str:
    """The table format of ``path`` (``explicit`` wins), as a CliError when it cannot be told."""
    from pii_frames.io.files import TableIOError
    from pii_frames.io.files import format_of as file_format

    try:
        return file_format(path, explicit, what)
    except TableIOError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else EXIT_ERROR) from None


# The readers and the atomic writer are pii_frames.io.files.FileSource / FileSink, shared with
# the Airflow job; imported when used, so `pii-frames redact` starts without pyarrow.
def open_source(path: str, fmt: str, columns: Sequence[str], batch_rows: int, encoding: str, **options: Any):
    """A :class:`~pii_frames.io.files.FileSource`, its errors as CliErrors."""
    from pii_frames.io.files import FileSource, TableIOError

    try:
        return FileSource(path, fmt, columns, batch_rows, encoding, **options)
    except TableIOError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else EXIT_ERROR) from None


def open_sink(path: str, fmt: str):
    """A :class:`~pii_frames.io.files.FileSink` (atomic writer) for ``path``."""
    from pii_frames.io.files import FileSink

    return FileSink(path, fmt)


def one_line(error: BaseException) -> str:
    """An exception's message on one line.

    >>> one_line(ValueError("a\\n  b"))
    'a b'
    """
    return " ".join(str(error).split())
