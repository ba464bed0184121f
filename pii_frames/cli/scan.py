"""``pii-frames scan``: the arguments; :mod:`pii_frames.discovery.command` runs the scan and prints the report.

>>> import argparse
>>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_parser(commands, [])
>>> commands.choices["scan"].parse_args(["warehouse.duckdb", "--fail-on", "any"]).fail_on
'any'
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_scan"]


def add_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``scan`` on the ``commands`` subparsers (``parents``: the model options)."""
    scan = commands.add_parser(
        "scan", parents=parents, help="find which tables and columns hold personal data",
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


def cmd_scan(args: argparse.Namespace) -> int:
    """Run ``pii-frames scan``; returns the exit status (3 when a ``--fail-on`` label was found)."""
    from pii_frames.discovery.command import run

    return run(args)
