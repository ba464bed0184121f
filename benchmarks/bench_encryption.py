"""Encrypt / reveal throughput of the ``"encrypt"`` operator on one core (no model involved).

Synthetic PII values from faker (names, emails, phone numbers, IBANs,
addresses; ``--distinct`` of them, cycled to ``--values``) are

* ``encrypt``        - turned into tokens with ``Policy("encrypt").replacement``
  (what the redaction step calls for each detected span);
* ``reveal tokens``  - restored one token per value with ``reveal_many``;
* ``reveal texts``   - restored inside sentences holding three tokens each
  (values/s counts tokens);
* ``reveal column``  - restored through the Polars ``reveal_expr`` on a column
  of those sentences (values/s counts tokens).

``reveal_many`` remembers the texts it has seen within one call, so the reveal
cases use distinct values by default (``--distinct`` equal to ``--values``)
to measure decryption rather than that cache.

The target is at least 50,000 values per second for encryption and for
revealing. The process is pinned to one CPU (``os.sched_setaffinity`` where
available) and the headline figure is values per CPU second of this process
(``time.process_time``), which other processes sharing the core do not
inflate; wall-clock values/s are printed beside it. Each figure is the best
of ``--repeats`` runs. No timing is asserted anywhere.

Usage::

    python benchmarks/bench_encryption.py                       # 100,000 values
    python benchmarks/bench_encryption.py --values 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time

TARGET = 50_000


def synthetic_values(count: int, seed: int = 7) -> list[tuple[str, str]]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    makers = (
        ("private_person", fake.name),
        ("private_email", fake.email),
        ("private_phone", fake.phone_number),
        ("account_number", fake.iban),
        ("private_address", lambda: fake.address().replace("\n", ", ")),
    )
    return [(makers[i % len(makers)][0], makers[i % len(makers)][1]()) for i in range(count)]


def best_of(repeats: int, function) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the fastest of ``repeats`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=100_000, help="values per run (default 100,000)")
    parser.add_argument("--distinct", type=int, default=None, help="distinct values among them (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case, best one reported (default 5)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import cryptography
    import polars as pl

    from pii_frames.polars import reveal_expr
    from pii_frames.redaction.encryption import KeyRing, reveal_many
    from pii_frames.redaction.policy import Policy

    key = "benchmark key 3f8a1c5e9b2d7f40a6c1e8b3d5f7092a"
    distinct = synthetic_values(args.distinct or args.values)
    pairs = [distinct[i % len(distinct)] for i in range(args.values)]
    policy = Policy("encrypt", key=key)
    ring = KeyRing(default=key)
    values = [value for _, value in pairs]

    tokens: list[str] = []

    def encrypt() -> None:
        tokens[:] = [policy.replacement(label, value) for label, value in pairs]

    encrypt_s = best_of(args.repeats, encrypt)
    assert reveal_many(tokens[:1000], keys=ring) == values[:1000]

    def reveal_tokens() -> None:
        assert reveal_many(tokens, keys=ring) == values

    sentences = [
        f"Ticket {i}: {tokens[i]} wrote from {tokens[(i + 1) % len(tokens)]} about {tokens[(i + 2) % len(tokens)]}."
        for i in range(0, len(tokens) - 2, 3)
    ]
    sentence_tokens = 3 * len(sentences)

    def reveal_texts() -> None:
        reveal_many(sentences, keys=ring)

    frame = pl.DataFrame({"body": sentences})

    def reveal_column() -> None:
        frame.select(reveal_expr("body", keys=ring))

    results = [
        ("encrypt", args.values, encrypt_s),
        ("reveal tokens", args.values, best_of(args.repeats, reveal_tokens)),
        ("reveal texts", sentence_tokens, best_of(args.repeats, reveal_texts)),
        ("reveal column", sentence_tokens, best_of(args.repeats, reveal_column)),
    ]
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"{platform.machine()}, one core; {args.values:,} values ({len(distinct):,} distinct), "
          f"best of {args.repeats}")
    print(f"{'case':<15} {'values':>9} {'CPU s':>7} {'values/CPU s':>13} {'values/s wall':>14}  target {TARGET:,}/s")
    for name, count, (cpu, wall) in results:
        rate = count / max(cpu, 1e-9)
        print(f"{name:<15} {count:>9,} {cpu:>7.3f} {rate:>13,.0f} {count / wall:>14,.0f}  "
              f"{'ok' if rate >= TARGET else 'BELOW'}")


if __name__ == "__main__":
    main()
