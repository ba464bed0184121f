"""``pii-frames info``, ``bench`` and ``download``: which model would be used, how fast it runs, fetching one.

>>> import argparse
>>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_parsers(commands, [])
>>> commands.choices["bench"].parse_args(["--seconds", "1"]).seconds
1.0
"""

from __future__ import annotations

import argparse
import json
import time

from pii_frames.cli.common import EXIT_USAGE, CliError, load_detector

__all__ = ["add_parsers", "cmd_info", "cmd_bench", "cmd_download"]


def add_parsers(commands, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``info``, ``bench`` and ``download`` (``parents``: the model options; download takes none)."""
    info = commands.add_parser("info", parents=parents, help="show the model that would be used")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=cmd_info)

    bench = commands.add_parser("bench", parents=parents, help="quick speed check on synthetic text")
    bench.add_argument("--seconds", type=float, default=3.0, help="how long to measure (default 3)")
    bench.add_argument("--batch-rows", type=int, default=64, metavar="N", help="rows per call (default 64)")
    bench.add_argument("--words", type=int, default=40, metavar="N", help="about how many words per row (default 40)")
    bench.set_defaults(handler=cmd_bench)

    download = commands.add_parser(
        "download",
        help="download a checkpoint from the Hugging Face hub (needs network)",
        description="Fetch NAME's opf checkpoint (its original/ files, moved up one level like opf does) into "
        "DIR; openai/privacy-filter goes to ~/.opf/privacy_filter by default, other names to the Hugging Face cache.",
    )
    download.add_argument("name", metavar="NAME", help="hub repository, e.g. openai/privacy-filter")
    download.add_argument("--dir", help="target directory")
    download.add_argument("--revision", help="branch, tag or commit")
    download.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    download.set_defaults(handler=cmd_download)


# --------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    """Run ``pii-frames info``: the resolved model, its checkpoint, device, sizes and labels."""
    detector = load_detector(args)
    config = detector.config
    facts = {
        "model": detector.model_id,
        "checkpoint": str(detector.checkpoint_dir),
        "device": str(detector.device),
        "dtype": str(detector.dtype).replace("torch.", ""),
        "layout": getattr(config, "layout", None),
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "experts": f"{config.num_experts} (top {config.experts_per_token})",
        "vocab_size": config.vocab_size,
        "n_ctx": detector.n_ctx,
        "token_budget": detector.token_budget,
        "labels": detector.span_labels,
        "token_labels": len(detector.labels),
        "doc_classes": detector.doc_classes,
    }
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {'none' if value is None else value}")
    return 0


# --------------------------------------------------------------------- bench
def _synthetic_rows(count: int, words: int, seed: int) -> list[str]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rows = []
    for _ in range(count):
        parts = [
            f"Hi, this is {fake.name()} ({fake.email()}), account {fake.bban()}.",
            f"Please call me on {fake.phone_number()} or write to {fake.address().replace(chr(10), ', ')}.",
            f"My order from {fake.date()} never arrived; details at {fake.url()}.",
        ]
        text = " ".join(parts)
        while len(text.split()) < words:
            text += " " + fake.sentence(nb_words=12)
        rows.append(text)
    return rows


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``pii-frames bench``: rows/s and tokens/s on synthetic rows, without the result cache."""
    if args.seconds <= 0 or args.batch_rows <= 0 or args.words <= 0:
        raise CliError("--seconds, --batch-rows and --words must be positive", EXIT_USAGE)
    # No result cache: every row must really run through the model.
    detector = load_detector(args, cache_size=0, progress=False)
    tokenizer = detector.tokenizer
    detector.redact_many(_synthetic_rows(4, args.words, seed=0))  # warm-up: lazy init, allocator
    rows = tokens = 0
    batch_seed = 1
    elapsed = 0.0
    while elapsed < args.seconds:
        batch = _synthetic_rows(args.batch_rows, args.words, seed=batch_seed)
        batch_seed += 1
        batch_tokens = sum(len(ids) for ids in tokenizer.encode_batch(batch))
        started = time.perf_counter()
        detector.redact_many(batch)
        elapsed += time.perf_counter() - started
        rows += len(batch)
        tokens += batch_tokens
    facts = [
        ("model", detector.model_id), ("device", str(detector.device)),
        ("dtype", str(detector.dtype).replace("torch.", "")), ("rows", f"{rows:,}"),
        ("tokens", f"{tokens:,} ({tokens / rows:.0f}/row)"), ("seconds", f"{elapsed:.2f}"),
        ("rows/s", f"{rows / elapsed:,.1f}"), ("tokens/s", f"{tokens / elapsed:,.0f}"),
    ]
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"{key:<{width}}  {value}")
    return 0


# --------------------------------------------------------------------- download
def cmd_download(args: argparse.Namespace) -> int:
    """Run ``pii-frames download``: the only command that uses the network."""
    from pii_frames.download import DownloadError, download_checkpoint

    try:
        target, use_as = download_checkpoint(args.name, revision=args.revision, directory=args.dir)
    except DownloadError as error:
        raise CliError(str(error), EXIT_USAGE if error.usage else 1) from None
    print(f"downloaded {args.name.strip()} to {target}")
    print(f"use it with --model {use_as}")
    return 0
