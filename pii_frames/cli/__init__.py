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

One module per command group, each holding its arguments and its run:

- :mod:`pii_frames.cli.app`: the parser and :func:`main` (exit statuses, one-line errors);
- :mod:`pii_frames.cli.common`: what several commands share (model and redaction options,
  the policy from ``--policy``/``--key-env``, reading text files, table formats);
- :mod:`pii_frames.cli.redact`, :mod:`~pii_frames.cli.table`, :mod:`~pii_frames.cli.reveal`,
  :mod:`~pii_frames.cli.scan`, :mod:`~pii_frames.cli.model` (``info``, ``bench``, ``download``);
- :mod:`pii_frames.cli.training`: ``eval``, ``train`` and ``synth``, imported only when one of
  them runs.

Importing this package loads neither the model nor a dataframe library; each
command imports what it needs when it runs.

>>> build_parser().parse_args(["info"]).command
'info'
"""

from __future__ import annotations

from pii_frames.cli.app import build_parser, main
from pii_frames.cli.common import EXIT_ERROR, EXIT_USAGE, PROG, CliError

__all__ = ["main", "build_parser", "CliError", "PROG", "EXIT_ERROR", "EXIT_USAGE"]
