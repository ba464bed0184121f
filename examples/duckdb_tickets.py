"""Run examples/duckdb_tickets.sql with the pii_* SQL functions registered.

    python examples/duckdb_tickets.py

Uses the default model (set PII_FRAMES_MODEL to use another checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

import pii_frames.duckdb

HERE = Path(__file__).parent


def statements(sql: str) -> list[str]:
    """Split the script on ';' at line ends (the script has no ';' inside strings)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def main() -> None:
    os.chdir(HERE)  # the script reads sample_customers.csv by relative path
    con = duckdb.connect()
    try:
        pii_frames.duckdb.register(con)
        for statement in statements((HERE / "duckdb_tickets.sql").read_text()):
            relation = con.sql(statement)
            if relation is not None:  # SELECTs return a relation; CREATE returns None
                relation.show(max_width=160)
    finally:
        con.close()


if __name__ == "__main__":
    main()
