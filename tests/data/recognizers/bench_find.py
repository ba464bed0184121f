"""Throughput of RecognizerSet.find on short realistic texts (support tickets, log lines, CRM notes).

Run: ``python tests/data/recognizers/bench_find.py [N]`` (default 20,000 texts). Prints texts/s.
"""

from __future__ import annotations

import random
import sys
import time

from faker import Faker

from pii_frames.recognizers import RecognizerSet


def texts(n: int, seed: int = 0) -> list[str]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    makers = [
        lambda: fake.sentence(nb_words=12),
        lambda: f"{fake.name()} called about order {rng.randint(1000, 99999)}; {fake.sentence()}",
        lambda: f"Customer {fake.name()} ({fake.email()}) asked for a refund of ${rng.randint(5, 500)}.",
        lambda: f"{fake.date_time().isoformat()} INFO user={fake.user_name()} path=/api/v1/items/{rng.randint(1, 9999)} 200",
        lambda: f"Call back on {fake.phone_number()} before {fake.time()}.",
        lambda: f"Shipping to {fake.address()}".replace("\n", ", "),
        lambda: f"{fake.catch_phrase()}. {fake.bs()}.",
        lambda: f"Paid with {fake.credit_card_number()} on {fake.date()}.",
    ]
    weights = [30, 10, 10, 15, 8, 10, 12, 5]
    return [rng.choices(makers, weights)[0]() for _ in range(n)]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    sample = texts(n)
    rs = RecognizerSet.default()
    rs.find("warm up 415-555-2671")
    t0, c0 = time.perf_counter(), time.process_time()
    found = sum(len(rs.find(t)) for t in sample)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    chars = sum(map(len, sample)) / n
    # CPU time as well: on a shared machine the wall clock also counts other processes.
    print(f"{n} texts (mean {chars:.0f} chars), {len(rs)} recognizers, {found} spans: "
          f"{n / elapsed:,.0f} texts/s wall ({elapsed:.2f} s), {n / cpu:,.0f} texts/s CPU ({cpu:.2f} s)")


if __name__ == "__main__":
    main()
