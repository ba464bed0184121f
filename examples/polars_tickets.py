"""Clean the sample support tickets with Polars: redact, keep the spans, count PII per label.

    python examples/polars_tickets.py [OUT.parquet]

Uses the default model (set PII_FRAMES_MODEL to use another checkpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

import pii_frames as pii

TICKETS = Path(__file__).with_name("sample_customers.csv")


def main() -> None:
    tickets = pl.scan_csv(TICKETS)

    # One lazy query: the model runs when the frame is collected, in batches.
    # detect() gives every output in one pass; unnest() spreads it into columns.
    clean = (
        tickets.with_columns(pii.detect("body").alias("pii"))
        .unnest("pii")
        .with_columns(
            pl.col("redacted_text").alias("body"),
            pii.redact("customer"),  # a second column, redacted the simple way
        )
        .drop("redacted_text", "labels", "category")
        .rename({"spans": "body_pii_spans"})
    )
    result = clean.collect(engine="streaming")

    with pl.Config(fmt_str_lengths=100, tbl_width_chars=140):
        print(result.select("ticket_id", "customer", "body").head(5))

        per_label = (
            result.select(pl.col("body_pii_spans").explode().struct.field("label"))
            .drop_nulls()
            .group_by("label")
            .len()
            .sort("len", descending=True)
        )
        print(per_label)

    if len(sys.argv) > 1:
        result.write_parquet(sys.argv[1])
        print(f"wrote {result.height} rows to {sys.argv[1]}")


if __name__ == "__main__":
    main()
