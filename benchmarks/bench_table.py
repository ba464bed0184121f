"""Table throughput: the engine path against a per-row loop and fixed-size padded batching.

A synthetic text column (token lengths log-normal between 5 and 800, 30% of
rows repeating earlier values) goes through, in one process and on the same
model:

* ``engine``  - ``Detector.detect_arrow``: dedup, length sort, token-budget
  packing, windows, Viterbi, policy;
* ``per-row`` - ``Detector.redact`` called row by row (no cache), what a
  ``map_elements`` user gets; timed on a random sample, reported as rows/s;
* ``padded``  - fixed batches of ``--batch-rows`` rows in input order, padded
  to the longest row of the batch, no dedup; same tokenizer and decoder.

Usage::

    python benchmarks/bench_table.py                 # 20,000 rows, default model
    python benchmarks/bench_table.py --rows 2000 --model /path/to/checkpoint
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
import pyarrow as pa
import torch
from faker import Faker

import pii_frames as pii
from pii_frames.decode.spans import decode_spans
from pii_frames.redaction.apply import build_result


def synthetic_column(tokenizer, n_rows: int, *, seed: int = 0, repeat_share: float = 0.3) -> list[str]:
    """Realistic-looking rows whose token lengths are log-normal, clipped to [5, 800]."""
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    Faker.seed(seed)
    rng = random.Random(seed)
    pieces = [
        lambda: f"Customer {fake.name()} wrote from {fake.email()}.",
        lambda: f"Call back on {fake.phone_number()} before {fake.date()}.",
        lambda: f"Ship to {fake.address().replace(chr(10), ', ')}.",
        lambda: f"See {fake.url()} for the ticket.",
        lambda: f"Account {fake.iban()} was charged twice.",
        lambda: f"api_key=sk_live_{fake.sha1()[:24]}",
        lambda: fake.sentence(nb_words=12),
        lambda: fake.paragraph(nb_sentences=3),
    ]
    rows: list[str] = []
    for _ in range(n_rows):
        if rows and rng.random() < repeat_share:
            rows.append(rng.choice(rows))
            continue
        target = int(min(800, max(5, rng.lognormvariate(math.log(60), 1.0))))
        parts, n_tokens = [], 0
        while n_tokens < target:
            part = rng.choice(pieces)()
            parts.append(part)
            n_tokens += len(tokenizer.encode(part)) + 1
        ids = tokenizer.encode(" ".join(parts))[:target]
        rows.append(tokenizer.decode(ids) if hasattr(tokenizer, "decode") else " ".join(parts))
    return rows


def run_padded(detector, rows: list[str], batch_rows: int) -> list:
    """Fixed-size padded batches in input order: the usual hand-written baseline."""
    model, tokenizer = detector.model, detector.tokenizer
    label_space = detector.label_space
    pad = model.config.pad_token_id
    results = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_rows):
            batch = rows[start:start + batch_rows]
            ids = tokenizer.encode_batch(batch)
            width = max(1, max(len(x) for x in ids))
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for i, seq in enumerate(ids):
                input_ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                mask[i, : len(seq)] = True
            logprobs = torch.log_softmax(model(input_ids, mask).logits.float(), dim=-1).numpy()
            for i, (text, seq) in enumerate(zip(batch, ids)):
                offsets = tokenizer.token_offsets(text, seq)
                spans = decode_spans(logprobs[i, : len(seq)], offsets, label_space)
                results.append(build_result(offsets.decoded_text, spans))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--per-row-sample", type=int, default=1_000, help="rows timed for the per-row loop")
    parser.add_argument("--padded-sample", type=int, default=5_000, help="rows timed for padded batching")
    parser.add_argument("--batch-rows", type=int, default=32)
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded default model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every path (1 is fastest on small shared CPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    detector = pii.load(args.model or "default", device="cpu", cache_size=0, threads=args.threads)
    print(f"model: {detector.model_id}  threads: {torch.get_num_threads()}")
    rows = synthetic_column(detector.tokenizer, args.rows, seed=args.seed)
    lengths = np.array([len(x) for x in detector.tokenizer.encode_batch(rows)])
    print(
        f"rows: {len(rows):,}  unique: {len(set(rows)):,}  tokens: {lengths.sum():,}  "
        f"token length p50/p90/max: {int(np.median(lengths))}/{int(np.percentile(lengths, 90))}/{lengths.max()}"
    )
    detector.redact_many(rows[:8])  # warm-up

    t0 = time.perf_counter()
    out = detector.detect_arrow(pa.array(rows))
    engine_s = time.perf_counter() - t0
    engine_rps = len(rows) / engine_s

    rng = random.Random(args.seed + 1)
    sample = rng.sample(rows, min(args.per_row_sample, len(rows)))
    t0 = time.perf_counter()
    per_row = [detector.redact(text) for text in sample]
    per_row_rps = len(sample) / (time.perf_counter() - t0)

    padded_rows = rows[: min(args.padded_sample, len(rows))]
    t0 = time.perf_counter()
    padded = run_padded(detector, padded_rows, args.batch_rows)
    padded_rps = len(padded_rows) / (time.perf_counter() - t0)

    agree = sum(
        out[rows.index(text)]["redacted_text"].as_py() == res.redacted_text for text, res in zip(sample[:200], per_row)
    )
    agree_padded = sum(out[i]["redacted_text"].as_py() == res.redacted_text for i, res in enumerate(padded[:500]))
    print(f"{'path':<10}{'rows/s':>10}{'ratio':>10}")
    print(f"{'engine':<10}{engine_rps:>10.1f}{1.0:>10.2f}   ({engine_s:.1f} s for {len(rows):,} rows)")
    print(f"{'per-row':<10}{per_row_rps:>10.1f}{engine_rps / per_row_rps:>10.2f}x  engine speed-up")
    print(f"{'padded':<10}{padded_rps:>10.1f}{engine_rps / padded_rps:>10.2f}x  engine speed-up")
    print(f"same redacted text as per-row on {agree}/{min(200, len(sample))} sampled rows, "
          f"as padded on {agree_padded}/{min(500, len(padded))}")

    # The pattern layer (on by default) against the model alone, same rows, same process.
    model_only = pii.load(args.model or "default", device="cpu", cache_size=0, threads=args.threads,
                          recognizers=None)
    t0 = time.perf_counter()
    model_only.detect_arrow(pa.array(rows))
    model_only_s = time.perf_counter() - t0
    print(f"recognizers: {engine_s:.1f} s with, {model_only_s:.1f} s without "
          f"(+{100 * (engine_s / model_only_s - 1):.1f}% for the pattern layer)")


if __name__ == "__main__":
    main()
