"""Engine benchmark: pii_frames.model vs transformers eager on the same full-size random weights.

Builds a full-size privacy-filter (vocab 200,064, 8 layers, 128 experts top-4,
hidden 640, 14/2 heads, band +-128) with realistic random weights (unit-scale
embeddings, so routing is balanced), runs transformers'
OpenAIPrivacyFilterForTokenClassification (eager, fp32) and our engine on the
same weights and inputs in one process, and prints time, speed-up and label
agreement per case; then the same for a reduced-precision weight mode; then
the peak resident memory of a fresh process loading the model from a saved
checkpoint.

    python benchmarks/bench_engine.py                       # everything (several minutes, ~12 GB RAM)
    python benchmarks/bench_engine.py --cases 1x64 --no-memory
    python benchmarks/bench_engine.py --modes fp32,bf16,fp16 --threads 1   # one core each

Needs the test extra (transformers). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pii_frames.model import load_model, read_config, save_opf_checkpoint
from pii_frames.model.checkpoint import model_from_tensors

FULL_SIZE = dict(
    num_hidden_layers=8,
    num_local_experts=128,
    num_experts_per_tok=4,
    vocab_size=200064,
    hidden_size=640,
    intermediate_size=640,
    head_dim=64,
    num_attention_heads=14,
    num_key_value_heads=2,
    sliding_window=128,
)


def build_reference(seed: int, bf16_values: bool = True):
    """transformers model at full size with realistic-scale random weights (fp32, eager).

    With ``bf16_values`` every projection weight is rounded to a bf16-representable
    value (kept in fp32), as in the released bf16 checkpoint.
    """
    from transformers import OpenAIPrivacyFilterConfig, OpenAIPrivacyFilterForTokenClassification

    config = OpenAIPrivacyFilterConfig(**FULL_SIZE)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = OpenAIPrivacyFilterForTokenClassification(config)
    gen = torch.Generator().manual_seed(seed)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = param.shape
            if name.endswith("embed_tokens.weight"):
                param.normal_(0.0, 1.0, generator=gen)  # unit scale -> balanced routing
            elif name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                param.normal_(1.0, 0.1, generator=gen)
            elif name.endswith("sinks"):
                param.normal_(0.0, 1.0, generator=gen)
            elif name.endswith("router.weight"):
                param.normal_(0.0, 1.0 / math.sqrt(shape[-1]), generator=gen)
            elif name.endswith("gate_up_proj") or name.endswith("down_proj"):
                param.normal_(0.0, 1.0 / math.sqrt(shape[-2]), generator=gen)
            elif name.endswith("score.bias"):
                param.zero_()
            elif name.endswith("bias"):
                # Small biases: large shared offsets would make all tokens route alike.
                param.normal_(0.0, 0.02, generator=gen)
            else:
                param.normal_(0.0, 1.0 / math.sqrt(shape[-1]), generator=gen)
            if bf16_values and not name.endswith(("sinks", "norm.weight", "layernorm.weight")):
                param.copy_(param.to(torch.bfloat16))
    model.model.rotary_emb = type(model.model.rotary_emb)(config)  # buffers were on meta
    return model.eval()


def experts_hit_per_layer(reference, ids: torch.Tensor) -> list[int]:
    hit: list[int] = []
    hooks = [
        layer.mlp.router.register_forward_hook(lambda _m, _i, out: hit.append(int(out[2].unique().numel())))
        for layer in reference.model.layers
    ]
    with torch.inference_mode():
        reference(input_ids=ids)
    for hook in hooks:
        hook.remove()
    return hit


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median seconds over ``repeats`` runs after one warm-up (the warm-up itself when repeats == 0)."""
    start = time.perf_counter()
    result = fn()  # warm-up (also the result we compare)
    if repeats == 0:
        return time.perf_counter() - start, result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) if times else float("nan"), result


def parse_case(text: str) -> tuple[int, int]:
    batch, tokens = text.lower().split("x")
    return int(batch), int(tokens)


def run_cases(reference, ours: dict, cases, repeats_for, hf_threads: int, threads: int) -> list[dict]:
    """Time every case for transformers and each of our weight modes; print one row per case."""
    print("\n== time per forward (median), speed-up vs transformers eager fp32, label agreement "
          "(vs transformers; reduced modes also vs our fp32)")
    print(f"{'case':>8} {'load':>5} {'transformers':>13} " + " ".join(f"{m:>30}" for m in ours))
    rows = []
    for case in cases:
        batch, tokens = parse_case(case)
        ids = torch.randint(0, 200000, (batch, tokens), generator=torch.Generator().manual_seed(batch * tokens))
        repeats = repeats_for(batch * tokens)
        load = os.getloadavg()[0]
        with torch.inference_mode():
            torch.set_num_threads(hf_threads)
            t_ref, ref_out = timed(lambda: reference(input_ids=ids).logits, repeats)
            torch.set_num_threads(threads)
            ref_labels = ref_out.argmax(-1)
            ref_lp = torch.log_softmax(ref_out.float(), -1)
            cells, row = [], {"case": case, "transformers_s": t_ref, "load": load}
            fp32_labels = None
            for mode, model in ours.items():
                t_ours, out = timed(lambda: model(ids).logits, repeats)
                labels = out.argmax(-1)
                agree = (labels == ref_labels).float().mean().item()
                diff = (torch.log_softmax(out.float(), -1) - ref_lp).abs().max().item()
                if mode == "fp32":
                    fp32_labels = labels
                cell = f"{t_ours * 1000:7.0f}ms {t_ref / t_ours:5.2f}x {agree * 100:6.2f}%"
                if mode != "fp32" and fp32_labels is not None:
                    cell += f" ({(labels == fp32_labels).float().mean().item() * 100:.2f}%)"
                cells.append(cell)
                row[mode] = {"seconds": t_ours, "speedup": t_ref / t_ours, "agreement": agree, "max_dlogp": diff}
        rows.append(row)
        print(f"{case:>8} {load:5.1f} {t_ref * 1000:11.0f}ms " + " ".join(f"{c:>30}" for c in cells), flush=True)
    return rows


def peak_rss_of_load(checkpoint: Path, mode: str) -> float:
    """Peak resident memory (GB, VmHWM) of a fresh interpreter that loads the checkpoint.

    VmHWM belongs to the new process image, unlike ru_maxrss, which a child
    inherits from this (large) benchmark process across fork/exec.
    """
    code = (
        "from pii_frames.model import load_model; "
        f"m = load_model({str(checkpoint)!r}, weight_dtype={mode!r}); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(int(hwm.split()[1]) / 1024 / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="1x64,1x512,16x128,1x4096")
    parser.add_argument("--modes", default="fp32,fp16",
                        help="our weight modes: fp32 (parity tier) and reduced ones: fp16 (fast), bf16 (memory)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads for both engines (default: every core; use 1 when another job "
                             "holds a core, since OpenMP teams stall on a busy core)")
    parser.add_argument("--fp32-weights", action="store_true",
                        help="keep full fp32 random weights (default: round them to bf16 values, like the "
                             "released checkpoint, so every weight mode sees the same numbers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the load-from-checkpoint memory test")
    parser.add_argument("--save-dtype", default="bfloat16", help="dtype of the saved checkpoint (memory test)")
    parser.add_argument("--hf-threads", type=int, default=None, help="torch threads for transformers (default: --threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [c for c in args.cases.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cases {cases}, modes {modes}")

    start = time.perf_counter()
    reference = build_reference(args.seed, bf16_values=not args.fp32_weights)
    print(f"built full-size random weights in {time.perf_counter() - start:.0f}s")
    with tempfile.TemporaryDirectory() as tmp:
        reference.config.save_pretrained(tmp)
        config = read_config(tmp)
    state = reference.state_dict()
    ours = {}
    for mode in modes:
        start = time.perf_counter()
        ours[mode] = model_from_tensors(config, state, weight_dtype=mode)
        print(f"our model ({mode}) built in {time.perf_counter() - start:.1f}s")

    probe = torch.randint(0, 200000, (1, 64), generator=torch.Generator().manual_seed(1))
    print("experts hit per layer at 1 x 64 tokens:", experts_hit_per_layer(reference, probe))

    def repeats_for(tokens: int) -> int:
        return 7 if tokens <= 600 else (1 if tokens <= 2100 else 0)

    rows = run_cases(reference, ours, cases, repeats_for, args.hf_threads or args.threads, args.threads)
    print("max |log-prob diff| vs transformers:",
          {row["case"]: {m: f"{row[m]['max_dlogp']:.1e}" for m in ours} for row in rows})

    if not args.no_memory:
        del state
        reference_model = ours.get("fp32") or next(iter(ours.values()))
        with tempfile.TemporaryDirectory(dir=str(Path(__file__).parent)) as tmp:
            start = time.perf_counter()
            save_opf_checkpoint(reference_model, tmp, param_dtype=args.save_dtype)
            size = sum(p.stat().st_size for p in Path(tmp).glob("*")) / 1e9
            print(f"\nsaved opf checkpoint ({args.save_dtype}, {size:.2f} GB) in {time.perf_counter() - start:.0f}s")
            del reference, ours, reference_model
            gc.collect()
            for mode in ["fp32"] + [m for m in modes if m != "fp32"]:
                start = time.perf_counter()
                rss = peak_rss_of_load(Path(tmp), mode)
                print(f"peak RSS loading full model ({mode} weights): {rss:.2f} GB "
                      f"({time.perf_counter() - start:.0f}s incl. interpreter start)")
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
