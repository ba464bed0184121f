"""``pii-frames scan SOURCE``: the command line of :func:`pii_frames.scan`.

The parser lives in :mod:`pii_frames.cli` (so ``--help`` stays cheap); this
module runs the command: scan, print the report (a rich table, or JSON with
``--json``), write ``--html``, and exit with :data:`EXIT_PII_FOUND` (3) when
a ``--fail-on`` label was found, so the command can gate a pipeline::

    pii-frames scan warehouse.duckdb --fail-on private_email,private_phone || echo "PII found"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["EXIT_PII_FOUND", "run"]

#: Exit status when ``--fail-on`` labels were found.
EXIT_PII_FOUND = 3


def run(args: argparse.Namespace) -> int:
    """Run ``pii-frames scan`` with parsed ``args``; returns the exit status."""
    from pii_frames.cli import EXIT_USAGE, CliError
    from pii_frames.discovery import ScanError, scan
    from pii_frames.discovery.gate import check_labels, describe_hits, offending_columns, parse_fail_on

    if args.sample_rows <= 0:
        raise CliError("--sample-rows must be a positive integer", EXIT_USAGE)
    if args.seed < 0:
        raise CliError("--seed must be an integer >= 0", EXIT_USAGE)
    for name in ("min_share", "min_score"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise CliError(f"--{name.replace('_', '-')} must be between 0 and 1", EXIT_USAGE)
    try:
        fail_on = parse_fail_on(args.fail_on)
    except (TypeError, ValueError) as error:
        raise CliError(f"--fail-on: {error}", EXIT_USAGE) from None
    html_path = Path(args.html).expanduser() if args.html else None
    if html_path is not None and not html_path.parent.is_dir():
        raise CliError(f"--html {args.html}: the folder {html_path.parent} does not exist")
    load_options = {key: getattr(args, key) for key in ("device", "dtype") if getattr(args, key, None)}
    try:
        report = scan(
            args.source,
            columns=args.column or None,
            sample_rows=args.sample_rows,
            seed=args.seed,
            model=args.model or None,
            progress=args.progress,
            min_share=args.min_share,
            min_score=args.min_score,
            **load_options,
        )
    except ScanError as error:
        raise CliError(str(error)) from None

    try:
        check_labels(fail_on, report.labels)
    except ValueError as error:
        raise CliError(str(error).replace("fail_on", "--fail-on", 1), EXIT_USAGE) from None

    if args.json:
        print(report.to_json(indent=2))
    else:
        from rich.console import Console

        report.print(Console(highlight=False))
    if html_path is not None:
        _write_atomically(html_path, report.to_html())
        print(f"wrote {html_path}", file=sys.stderr)

    hits = offending_columns(report, fail_on)
    if hits:
        print(f"pii-frames: {describe_hits(hits, fail_on)}", file=sys.stderr)
        return EXIT_PII_FOUND
    return 0


def _write_atomically(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise whoever opens the report
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
