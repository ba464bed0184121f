#!/usr/bin/env python
"""Train the compact default model shipped in pii_frames/assets/default_model/.

Reproducible: synthetic data, initialisation and batch order all derive from --seed, and the run stops
after a fixed number of optimizer steps, so the same command gives the same weights on the same
torch/faker versions (CPU). Progress goes to stderr; the figures go to MODEL_CARD.md in the output folder.

    python scripts/train_default_model.py                      # full recipe (about 25 minutes on one CPU thread)
    python scripts/train_default_model.py --steps 50 --out /tmp/quick --eval-examples 200   # smoke run

Recipe: a fresh privacy-filter-family model (init_compact_model) is trained with pii_frames.train.finetune on
synthetic documents from the *training* templates of pii_frames.train.synthetic (seven locales, eight document
kinds), jointly with a document head over the document kinds, then stored as float16. It is evaluated on
documents from the *held-out* templates (never seen in training) and on opf's five sample examples.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pii_frames.train.synthetic import KINDS, LOCALES, generate  # noqa: E402

DEFAULT_OUT = REPO / "pii_frames" / "assets" / "default_model"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OPF_SAMPLE = SHARED_DATA / "opf-examples" / "sample_eval_five_examples.jsonl"
REAL_NER = SHARED_DATA / "real-ner"
SHIPPED_FILES = ("config.json", "model.safetensors", "viterbi_calibration.json")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the package asset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3200, help="optimizer steps (one pass over fresh data)")
    parser.add_argument("--batch-size", type=int, default=48, help="documents per step")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=150)
    parser.add_argument("--composed", type=float, default=0.75,
                        help="share of training documents composed from clause frames (see synthetic.generate)")
    parser.add_argument("--gaps", type=float, default=0.15,
                        help="share of synthetic training documents aimed at real-text gaps (see synthetic.generate)")
    parser.add_argument("--validation-examples", type=int, default=600)
    parser.add_argument("--eval-examples", type=int, default=2000, help="held-out-template documents to score")
    parser.add_argument("--opf-sample", type=Path, default=OPF_SAMPLE,
                        help="opf's sample_eval_five_examples.jsonl (skipped when missing)")
    parser.add_argument("--real-ner", type=Path, default=REAL_NER,
                        help="folder with real-ner's train.jsonl and validation.jsonl (read in place, never copied); "
                             "'none' trains on synthetic documents only")
    parser.add_argument("--real-repeats", type=int, default=3,
                        help="passes over real-ner train.jsonl inside the one pass over the mixed stream")
    parser.add_argument("--hidden-size", type=int, default=160)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--experts-per-token", type=int, default=2)
    parser.add_argument("--context", type=int, default=48, help="attention band half width (tokens)")
    parser.add_argument("--vocab-size", type=int, default=32768, help="first N o200k ranks kept")
    # One thread: the model's matrices are small, and on a shared 2-core machine a second thread mostly waits.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    return parser.parse_args(argv)


def architecture_of(args: argparse.Namespace) -> dict:
    """init_compact_model keyword arguments from the command line (head size 32, grouped-query heads)."""
    heads = max(2, args.hidden_size // 40)
    return dict(hidden_size=args.hidden_size, num_hidden_layers=args.layers, num_experts=args.experts,
                experts_per_token=args.experts_per_token, head_dim=32, num_attention_heads=heads,
                num_key_value_heads=max(1, heads // 2), context=args.context, vocab_size=args.vocab_size)


def read_real_ner(folder: Path, split: str) -> list[dict]:
    """The records of real-ner's ``<split>.jsonl`` in file order (the data stays where it is)."""
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: point --real-ner at the real-ner folder (../shared/data/real-ner "
                         "next to the repository) or pass --real-ner none for a synthetic-only model")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.real_ner is not None and str(args.real_ner).lower() == "none":
        args.real_ner = None
    import torch

    from pii_frames.engine.loading import clear_model_cache, load
    from pii_frames.train.evaluate import evaluate
    from pii_frames.train.finetune import finetune, init_compact_model

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    architecture = architecture_of(args)
    real_train = read_real_ner(args.real_ner, "train") if args.real_ner is not None else []
    real_records = real_train * args.real_repeats
    n_train = args.steps * args.batch_size
    n_synthetic = n_train - len(real_records)
    if n_synthetic < 0:
        raise SystemExit(f"--steps {args.steps} x --batch-size {args.batch_size} holds fewer documents than "
                         f"{args.real_repeats} passes over {len(real_train)} real-ner windows; raise --steps or "
                         "lower --real-repeats")
    log(f"generating {n_synthetic} synthetic training documents (+ {len(real_train)} real-ner windows x "
        f"{args.real_repeats}), {args.validation_examples} validation and {args.eval_examples} held-out documents")
    train = generate(n_synthetic, seed=args.seed, templates="train", composed=args.composed,
                     gaps=args.gaps) + real_records
    validation = generate(args.validation_examples, seed=args.seed + 1, templates="train", composed=args.composed,
                          gaps=args.gaps)
    heldout = generate(args.eval_examples, seed=args.seed + 2, templates="heldout")
    real_validation = (read_real_ner(args.real_ner, "validation")
                       if args.real_ner is not None and (args.real_ner / "validation.jsonl").is_file() else None)

    model = init_compact_model(**architecture, doc_class_names=KINDS, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, {architecture}")

    work = Path(tempfile.mkdtemp(prefix="pii-frames-default-model-"))
    try:
        result = finetune(
            train, work / "checkpoint", base=model, validation_path=validation, epochs=1,
            batch_size=args.batch_size, lr=args.learning_rate, lr_schedule="cosine", warmup_steps=args.warmup_steps,
            n_ctx=256, device="cpu", seed=args.seed, doc_classes=KINDS, doc_loss_weight=0.5,
            output_param_dtype="float16", overwrite=True, progress=True,
            on_epoch_end=lambda record: log(f"epoch {record['epoch']}: {json.dumps(record)}"),
        )
        train_seconds = result.summary["elapsed_s"]
        log(f"trained in {train_seconds:.0f}s")

        clear_model_cache()
        detector = load(str(work / "checkpoint"), device="cpu")
        heldout_report = evaluate(detector, heldout, progress=True)
        log(f"held-out templates: span F1 {_fmt(heldout_report.span.f1)} (P {_fmt(heldout_report.span.precision)}, "
            f"R {_fmt(heldout_report.span.recall)}); document accuracy {_fmt(heldout_report.document_accuracy)}")
        sample_report = None
        if args.opf_sample.is_file():
            sample_report = evaluate(detector, args.opf_sample, progress=False)
            log(f"opf sample: span F1 {_fmt(sample_report.span.f1)} (P {_fmt(sample_report.span.precision)}, "
                f"R {_fmt(sample_report.span.recall)})")
            for item in sample_report.predictions:
                log(f"  {item['text']!r}\n      predicted: "
                    + ", ".join(f"{s['label']}={s['text']!r}" for s in item["predicted_spans"]))

        real_report = None
        if real_validation is not None:
            real_report = evaluate(detector, real_validation, progress=True)
            person = real_report.per_label["private_person"]
            log(f"real-ner validation: span F1 {_fmt(real_report.span.f1)}; private_person "
                f"P {_fmt(person.precision)} R {_fmt(person.recall)} F1 {_fmt(person.f1)}")

        args.out.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_FILES:
            shutil.copyfile(work / "checkpoint" / name, args.out / name)
        figures = {
            "parameters": n_params,
            "architecture": architecture,
            "train_examples": n_train,
            "synthetic_examples": n_synthetic,
            "real_ner_windows": len(real_train),
            "real_repeats": args.real_repeats,
            "train_tokens": result.summary["dataset"]["train_tokens"],
            "steps": result.summary["steps"],
            "train_seconds": train_seconds,
            "final": result.epochs[-1],
            "heldout": heldout_report.to_dict(),
            "opf_sample": sample_report.to_dict() if sample_report is not None else None,
            "real_ner_validation": real_report.to_dict() if real_report is not None else None,
            "size_bytes": (args.out / "model.safetensors").stat().st_size,
            "torch_version": torch.__version__,
        }
        (args.out / "training_figures.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
        (args.out / "MODEL_CARD.md").write_text(model_card(args, figures, heldout_report, sample_report),
                                                encoding="utf-8")
        log(f"wrote {args.out} ({figures['size_bytes'] / 1e6:.1f} MB weights) in "
            f"{time.perf_counter() - started:.0f}s total")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _per_label_table(report) -> str:
    lines = ["| label | gold | predicted | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|"]
    for label, counts in sorted(report.per_label.items()) + [("**overall**", report.span)]:
        lines.append(f"| {label} | {counts.gold} | {counts.predicted} | {_fmt(counts.precision)} | "
                     f"{_fmt(counts.recall)} | {_fmt(counts.f1)} |")
    return "\n".join(lines)


def model_card(args, figures: dict, heldout, sample) -> str:
    arch = figures["architecture"]
    sample_section = "opf's sample file was not available when this model was trained.\n"
    if sample is not None:
        rows = []
        for item in sample.predictions:
            found = ", ".join(f"{s['label']}: `{s['text']}`" for s in item["predicted_spans"]) or "(none)"
            rows.append(f"| {item['text']} | {found} |")
        sample_section = (
            f"Typed span F1 **{_fmt(sample.span.f1)}** (precision {_fmt(sample.span.precision)}, recall "
            f"{_fmt(sample.span.recall)}) on opf's `sample_eval_five_examples.jsonl` "
            f"({sample.span.gold} gold spans).\n\n" + _per_label_table(sample)
            + "\n\n| text | predicted spans |\n|---|---|\n" + "\n".join(rows) + "\n")
    return f"""# pii_frames default model (compact, synthetic-data trained)

The model `pii_frames.load()` falls back to when neither `PII_FRAMES_MODEL` nor a local
`openai/privacy-filter` checkpoint is available. It has the architecture of OpenAI's privacy-filter
(banded bidirectional attention with sinks and YaRN RoPE, top-k mixture-of-experts with clamped SwiGLU,
33 BIOES labels over 8 PII classes) at a fraction of the size, plus a document head over the synthetic
document kinds. It is meant for demos, tests and pipelines that must run anywhere; for real data use
`openai/privacy-filter` (`pii-frames download openai/privacy-filter`).

## Architecture

| | value |
|---|---|
| parameters | {figures['parameters'] / 1e6:.2f} M ({figures['size_bytes'] / 1e6:.1f} MB as float16 safetensors) |
| layers / hidden / per-expert intermediate | {arch['num_hidden_layers']} / {arch['hidden_size']} / {arch['hidden_size']} |
| experts | {arch['num_experts']}, top-{arch['experts_per_token']} |
| attention | {arch['num_attention_heads']} query heads, {arch['num_key_value_heads']} key/value heads, head dim {arch['head_dim']}, band ±{arch['context']} tokens |
| vocabulary | first {arch['vocab_size']} ranks of o200k_base (a valid BPE; ids unchanged) |
| labels | O + B/I/E/S × account_number, private_address, private_date, private_email, private_person, private_phone, private_url, secret |
| document classes | {', '.join(KINDS)} |

## Recipe

Reproduce with `python scripts/train_default_model.py --seed {args.seed} --steps {args.steps} --batch-size {args.batch_size} --composed {args.composed}`.

* Data: `pii_frames.train.synthetic.generate({figures['train_examples']}, seed={args.seed}, templates="train",
  composed={args.composed})`: faker values in {', '.join(LOCALES)} inside hand-written templates of {len(KINDS)}
  document kinds (support tickets, chats, emails, HR notes, medical notes, invoices, logs with credentials,
  PII-free public text), {args.composed:.0%} of the documents instead assembled from short clause frames, fillers
  and openers (varied contexts, so the model cannot just memorise template positions); half of those put
  unrelated words of the locale's language and non-personal numbers (quantities, codes, versions, ids) around
  the values, and some log lines are JSON; a quarter of the
  templates, frames and fillers are held out of training. {figures['train_tokens']:,} training tokens.
* Model: `init_compact_model(...)` (seed {args.seed}), trained with `pii_frames.train.finetune`: fp32 AdamW
  (weight decay 0.01, gradient clipping 1.0), learning rate {args.learning_rate} with {args.warmup_steps} warm-up steps
  and cosine decay, {figures['steps']} steps of {args.batch_size} documents (one pass, n_ctx 256), token
  cross-entropy + 0.5 × document-kind cross-entropy; stored as float16.
* Training time: {figures['train_seconds'] / 60:.1f} minutes on CPU (torch {figures['torch_version']}).
  Final validation loss {figures['final'].get('validation_loss', float('nan')):.4f}, token accuracy
  {figures['final'].get('validation_token_accuracy', float('nan')):.4f}.

## Results

Held-out templates ({heldout.examples} synthetic documents from templates never used in training, all locales):
typed span F1 **{_fmt(heldout.span.f1)}** (precision {_fmt(heldout.span.precision)}, recall {_fmt(heldout.span.recall)});
token detection F1 {_fmt(heldout.detection.f1)}; document-kind accuracy {_fmt(heldout.document_accuracy)}.
Spans are matched as opf does (character space, whitespace-trimmed, containment).

{_per_label_table(heldout)}

{sample_section}
## Limits

* Trained only on synthetic, mostly English text with European-locale names, addresses and numbers;
  expect lower quality on real, messy or non-English data.
* Identifiers tied to one person (bank accounts, IBANs, cards, national, tax, customer, employee, patient and
  policy numbers) are tagged `account_number`; IP addresses, ticket/order/invoice numbers, commit hashes and
  request ids are deliberately left untagged, as are log timestamps.
* Calibration: all six Viterbi biases are 0 (like the official checkpoint).
"""


if __name__ == "__main__":
    raise SystemExit(main())
