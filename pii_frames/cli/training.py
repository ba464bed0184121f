"""``pii-frames eval``, ``pii-frames train`` and ``pii-frames synth``: arguments and runs.

:mod:`pii_frames.cli.app` imports this module only when one of these commands runs, builds a parser per
command with ``add_<name>_arguments(parser)`` and runs ``run_<name>(args)``, which returns the exit status.
Errors are raised (``ValueError``/``FileNotFoundError`` subclasses with a message that names the file and
the fix); the CLI prints them.

    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="pii-frames synth")
    >>> add_synth_arguments(parser)
    >>> args = parser.parse_args(["--n", "3", "--out", "/tmp/synth.jsonl", "--seed", "1"])
    >>> run_synth(args)          # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = [
    "add_eval_arguments",
    "run_eval",
    "add_calibrate_arguments",
    "run_calibrate",
    "add_train_arguments",
    "run_train",
    "add_synth_arguments",
    "run_synth",
]


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# --------------------------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------------------------

def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pii-frames eval DATA.jsonl``."""
    parser.description = ("Score a model on labelled examples in the opf format (JSONL/JSON, optionally .gz; "
                          "'spans' or 'label' form): span precision/recall/F1 per label, token detection, loss.")
    parser.add_argument("dataset", metavar="DATA", help="labelled data: a .jsonl/.json/.gz file, folder or glob")
    parser.add_argument("--model", "-m", default=None,
                        help="checkpoint folder or model name (default: PII_FRAMES_MODEL, local "
                             "openai/privacy-filter, else the embedded default model)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    parser.add_argument("--mode", "--eval-mode", dest="mode", choices=("typed", "untyped"), default="typed",
                        help="typed: labels must match; untyped: any label matches (default typed)")
    parser.add_argument("--decode-mode", choices=("viterbi", "argmax"), default=None,
                        help="span decoding (default: viterbi)")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N", help="score only the first N")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON instead of a table")
    parser.add_argument("--report", type=Path, default=None, metavar="OUT",
                        help="also save the report: OUT.html (table + chart) or OUT.png (chart)")
    parser.add_argument("--predictions-out", type=Path, default=None, metavar="FILE",
                        help="write gold and predicted spans per example as JSONL")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    parser.add_argument("--by-source", action=argparse.BooleanOptionalAction, default=None,
                        help="also print a table per info.source of the records (default: when records have one)")
    parser.add_argument("--source-label", default=None, metavar="LABEL",
                        help="per-source table for this span label only (e.g. private_person; default all labels)")
    parser.add_argument("--confusion", action=argparse.BooleanOptionalAction, default=True,
                        help="also print what was predicted for each missed gold span (default on)")


def run_eval(args: argparse.Namespace) -> int:
    """Run ``pii-frames eval``; prints a rich table (or JSON) and returns 0."""
    from pii_frames.engine.loading import load
    from pii_frames.evaluation.evaluate import evaluate

    report_path = args.report
    if report_path is not None and report_path.suffix.lower() not in (".html", ".htm", ".png"):
        raise ValueError(f"--report {report_path}: use a .html or .png file name")
    detector = load(args.model, device=args.device)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = evaluate(detector, args.dataset, mode=args.mode, decode_mode=args.decode_mode,
                      max_examples=args.max_examples, progress=progress)
    report.config["dataset"] = str(args.dataset)
    source_label = getattr(args, "source_label", None)
    if source_label is not None and source_label not in report.accumulator.span_labels:
        raise ValueError(f"--source-label {source_label!r} is not a span label of the model; choose from "
                         f"{', '.join(report.accumulator.span_labels)}")
    if args.json:
        print(report.to_json())
    else:
        from rich.console import Console

        console = Console()
        console.print(report.table())
        by_source = getattr(args, "by_source", None)
        if by_source or (by_source is None and report.sources != ["-"]):
            console.print(report.source_table(source_label))
        if getattr(args, "confusion", True) and report.confusion:
            console.print(report.confusion_table())
    if report_path is not None:
        saved = report.save_png(report_path) if report_path.suffix.lower() == ".png" else report.save_html(report_path)
        print(f"report written to {saved}", file=sys.stderr)
    if args.predictions_out is not None:
        from pii_frames.synthetic import write_jsonl

        write_jsonl(args.predictions_out, report.predictions)
        print(f"predictions written to {args.predictions_out}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------------
# calibrate
# --------------------------------------------------------------------------------------------------------------

def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pii-frames calibrate DATA.jsonl --model DIR``."""
    parser.description = ("Choose a checkpoint's Viterbi operating point on labelled examples (opf format): the "
                          "model runs once, each candidate bias setting re-decodes, and the one with the highest "
                          "recall among those within one standard error of the best F1 is chosen.")
    parser.add_argument("dataset", metavar="DATA", help="labelled data: a .jsonl/.json/.gz file, folder or glob")
    parser.add_argument("--model", "-m", default=None,
                        help="checkpoint folder or model name (default: what pii_frames.load() resolves)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    parser.add_argument("--label", default=None, help="score only this span label (default: all labels)")
    parser.add_argument("--inside-to-continue", type=_floats, default=None, metavar="V,V,...",
                        help="values of transition_bias_inside_to_continue to try (default 0,0.5,...,4)")
    parser.add_argument("--background-stay", type=_floats, default=None, metavar="V,V,...",
                        help="values of transition_bias_background_stay to try (default 0,-0.5)")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N", help="use only the first N")
    parser.add_argument("--write", action="store_true",
                        help="store the chosen biases in the checkpoint's viterbi_calibration.json")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")


def _floats(value: str) -> list[float]:
    try:
        values = [float(item) for item in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``pii-frames calibrate``; prints the candidates (table or JSON), optionally writes the choice."""
    import json

    from pii_frames.engine.loading import EMBEDDED_MODEL_DIR, load
    from pii_frames.evaluation.calibrate import DEFAULT_AXES, bias_grid, calibrate

    detector = load(args.model, device=args.device)
    target = detector.checkpoint_dir
    if args.write and (target is None or Path(target).resolve() == EMBEDDED_MODEL_DIR.resolve()):
        raise ValueError("--write would change the model installed with pii_frames; copy the model folder "
                         "(e.g. `cp -r` the path `pii-frames info` prints) and pass the copy as --model")
    given = {"inside_to_continue": args.inside_to_continue, "background_stay": args.background_stay}
    axes = {**DEFAULT_AXES, **{name: values for name, values in given.items() if values is not None}}
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = calibrate(detector, args.dataset, label=args.label, candidates=bias_grid(**axes),
                       max_examples=args.max_examples, progress=progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.table())
        print(f"\nchosen: {result.chosen.describe()} (F1 {result.chosen.f1:.3f}, recall {result.chosen.recall:.3f}); "
              f"best F1 {result.best.f1:.3f} at {result.best.describe()}; standard error {result.f1_standard_error:.3f}; "
              f"{result.examples} examples")
    if args.write:
        path = result.write(target)
        print(f"calibration written to {path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------------------

def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pii-frames train DATA.jsonl --output-dir DIR`` (opf train's names)."""
    parser.description = ("Fine-tune a privacy-filter checkpoint on labelled examples (opf format) and write an "
                          "opf-layout checkpoint that pii_frames.load() and opf read.")
    parser.add_argument("dataset", metavar="DATA", help="training data: a .jsonl/.json/.gz file, folder or glob")
    parser.add_argument("--output-dir", required=True, type=Path, metavar="DIR", help="where the checkpoint goes")
    parser.add_argument("--validation-dataset", default=None, metavar="FILE",
                        help="validation data (default: --validation-split of the training data)")
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="share of training examples held out when no validation file is given (default 0.1)")
    parser.add_argument("--label-space-json", default=None, metavar="FILE",
                        help='custom labels: {"category_version": ..., "span_class_names": ["O", ...]}')
    parser.add_argument("--base", "--checkpoint", dest="base", default=None, metavar="MODEL",
                        help="checkpoint to start from (default: what pii_frames.load() resolves; "
                             "'scratch' for a fresh compact model)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4, help="windows per micro-batch (default 4)")
    parser.add_argument("--grad-accum-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="<= 0 disables clipping")
    parser.add_argument("--n-ctx", type=int, default=None, help="window length (default 4096 on CPU)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    parser.add_argument("--seed", "--shuffle-seed", dest="seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-validation-examples", type=int, default=None)
    parser.add_argument("--output-param-dtype", choices=("inherit", "float32", "bfloat16", "float16", "fp32", "bf16",
                                                         "fp16"), default="inherit")
    parser.add_argument("--overwrite-output", action="store_true", help="allow a non-empty --output-dir")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")


_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def run_train(args: argparse.Namespace) -> int:
    """Run ``pii-frames train``; prints where the checkpoint went and the best epoch, returns 0."""
    from pii_frames.training.finetune import finetune

    base = args.base
    if base is None:
        from pii_frames.engine.loading import resolve_checkpoint

        base = str(resolve_checkpoint(None)[0])
    elif base == "scratch":
        base = None
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = finetune(
        args.dataset, args.output_dir, base=base, validation_path=args.validation_dataset,
        label_space=args.label_space_json, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.learning_rate, n_ctx=args.n_ctx, device=args.device, seed=args.seed, max_steps=args.max_steps,
        overwrite=args.overwrite_output, progress=progress, weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm, grad_accum_steps=args.grad_accum_steps,
        validation_split=args.validation_split, max_train_examples=args.max_train_examples,
        max_validation_examples=args.max_validation_examples,
        output_param_dtype=_DTYPE_NAMES.get(args.output_param_dtype, args.output_param_dtype),
    )
    best = result.summary["best_metric"]
    print(f"checkpoint written to {result.output_dir} (best epoch {result.best_epoch}, "
          f"{best['name']} {best['value']:.4f}, {result.summary['elapsed_s']:.0f}s)")
    return 0


# --------------------------------------------------------------------------------------------------------------
# synth
# --------------------------------------------------------------------------------------------------------------

def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pii-frames synth --n N --out F.jsonl``."""
    from pii_frames.synthetic import KINDS, LOCALES

    parser.description = ("Generate synthetic documents with exact PII spans (opf JSONL format). Held-out "
                          "templates (--templates heldout) never appear in --templates train data.")
    parser.add_argument("--n", type=int, required=True, help="number of documents")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output .jsonl (written atomically)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--templates", choices=("train", "heldout", "all"), default="train")
    parser.add_argument("--locales", type=_csv, default=None, metavar="L1,L2",
                        help=f"faker locales (default: {','.join(LOCALES)})")
    parser.add_argument("--kinds", type=_csv, default=None, metavar="K1,K2",
                        help=f"document kinds (default: {','.join(KINDS)})")


def run_synth(args: argparse.Namespace) -> int:
    """Run ``pii-frames synth``; writes the JSONL file and returns 0."""
    from pii_frames.synthetic import generate, write_jsonl

    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    records = generate(args.n, seed=args.seed, locales=args.locales, kinds=args.kinds, templates=args.templates)
    write_jsonl(args.out, records)
    spans = sum(len(offsets) for record in records for offsets in record["spans"].values())
    print(f"wrote {len(records)} documents with {spans} spans to {args.out}", file=sys.stderr)
    return 0
