"""Engine benchmark: pii_frames against transformers eager on the same full-size random weights.

Builds a full-size privacy-filter (vocab 200,064, 8 layers, 128 experts top-4,
hidden 640, 14/2 heads, band +-128) with realistic random weights (unit-scale
embeddings, so routing is balanced) and, in one process, on the same weights:

1. **the user path** (what ``pii.load(...).redact_many`` users get): Faker text
   (several locales, names, e-mails, addresses, phone numbers, lorem sentences)
   cut to exactly ``T`` tokens per text, through ``Detector.redact_many``
   (tokenize, model, Viterbi decode, redact) and ``Detector.token_logprobs``,
   result cache off. The transformers side is the same Detector with
   transformers' ``OpenAIPrivacyFilterForTokenClassification`` (eager, fp32) as
   its model, so batching, tokenizer, decoder and thread count are identical
   and only the network differs. Per thread setting (``default``: what the
   engine picks, then explicit counts), both engines run on that count. It
   prints the median time, the speed-up, the share of each stage and the
   agreement of redacted texts and token labels;
2. **the raw forward** (``model(ids)`` on the same token ids), per weight mode;
3. the peak resident memory of a fresh process loading the model from a saved
   checkpoint.

    python benchmarks/bench_engine.py                       # everything (~30 min on 2 cores, ~14 GB RAM)
    python benchmarks/bench_engine.py --quick               # small cases, fewer settings (~5 min)
    python benchmarks/bench_engine.py --cases 1x64 --threads 1 --modes fp32,fp16 --no-raw --no-memory

Needs the test extra (transformers). No timing is asserted anywhere; compare
ratios from one run only.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from pii_frames.model import read_config, save_opf_checkpoint
from pii_frames.model.checkpoint import model_from_tensors
from pii_frames.model.reference import EncoderOutput
from pii_frames.model.threads import torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_big_table import Stages  # noqa: E402  (the stage timer the table benchmark uses)

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
STAGES = ("tokenize", "model", "decode", "redact")


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
    return statistics.median(times), result


def parse_case(text: str) -> tuple[int, int]:
    batch, tokens = text.lower().split("x")
    return int(batch), int(tokens)


# ------------------------------------------------------------------ text
def case_texts(tokenizer, batch: int, tokens: int, seed: int) -> list[str]:
    """``batch`` Faker texts of exactly ``tokens`` tokens each (seeded; several locales and kinds of PII)."""
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT"])
    Faker.seed(seed)
    rng = random.Random(seed)
    pieces = [
        lambda: fake.sentence(nb_words=rng.randint(6, 18)),
        lambda: fake.paragraph(nb_sentences=3),
        lambda: f"{fake.name()} <{fake.email()}>",
        lambda: f"Call {fake.first_name()} on {fake.phone_number()} before {fake.date()}.",
        lambda: f"Ship to {fake.address().replace(chr(10), ', ')}.",
        lambda: f"{fake.company()}, {fake.job()}: see {fake.url()}",
        lambda: f"IBAN {fake.iban()}, ref {fake.bothify('??-#####')}.",
        lambda: fake.text(max_nb_chars=120),
    ]
    texts = []
    while len(texts) < batch:
        parts, count = [], 0
        while count < tokens + 8:
            part = rng.choice(pieces)()
            parts.append(part)
            count += len(tokenizer.encode(" " + part))
        text = " ".join(parts)
        ids = tokenizer.encode(text)
        cut = text[: int(tokenizer.token_offsets(text, ids).ends[tokens - 1])]
        if len(tokenizer.encode(cut)) == tokens:  # a cut inside a merge can re-tokenize differently: draw again
            texts.append(cut)
    return texts


# ------------------------------------------------------------- engines
class TransformersEngine(torch.nn.Module):
    """transformers' model behind the interface our runner drives (ids, mask -> EncoderOutput).

    The Detector then tokenizes, batches, decodes and redacts exactly as for our
    engine; only the network differs.
    """

    def __init__(self, reference, config):
        super().__init__()
        self.reference = reference
        self.config = config
        self.doc_head = None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask=None):
        mask = None if attention_mask is None else attention_mask.long()
        logits = self.reference(input_ids=input_ids, attention_mask=mask).logits
        return EncoderOutput(logits=logits, pooled=None, doc_logits=None)


def make_detector(model, tokenizer, label_space, threads: int | None):
    from pii_frames.engine.detector import Detector
    from pii_frames.engine.loading import LoadedModel

    shared = LoadedModel(model=model, tokenizer=tokenizer, label_space=label_space, calibration=None,
                         checkpoint_dir=Path("<bench>"), model_id="bench", device=torch.device("cpu"),
                         weight_dtype=torch.float32, lock=threading.RLock())
    return Detector(shared, cache_size=0, threads=threads, progress=False)


def resolved_threads(detector, tokens: int) -> int:
    """The torch thread count a Detector's model call uses for a forward of ``tokens`` tokens."""
    from pii_frames.model.threads import threads_for_call

    return threads_for_call(detector.model.device, detector.threads or "auto") or torch.get_num_threads()


# ------------------------------------------------------------ user path
def time_user_path(detector, texts: list[str], repeats: int) -> dict:
    """Median seconds of redact_many(texts) and of token_logprobs per text, plus stage shares."""
    from pii_frames.engine.detector import Detector

    apply_module = importlib.import_module("pii_frames.redaction.apply")
    stages = Stages()
    originals = {(Detector, "_run_model"): Detector._run_model, (Detector, "_decode_many"): Detector._decode_many,
                 (apply_module, "build_result"): apply_module.build_result}
    tokenizer = detector.tokenizer
    stages.wrap(Detector, "_run_model", "model")
    stages.wrap(Detector, "_decode_many", "decode")
    stages.wrap(apply_module, "build_result", "redact")
    for name in ("encode_batch", "encode", "token_offsets"):
        stages.wrap(tokenizer, name, "tokenize")
    try:
        redact_s, results = timed(lambda: detector.redact_many(texts), 0)  # warm-up
        stages.seconds.clear()
        total = []
        for _ in range(repeats):
            start = time.perf_counter()
            detector.redact_many(texts)
            total.append(time.perf_counter() - start)
        shares = {name: stages.seconds.get(name, 0.0) / sum(total) for name in STAGES}
        shares["other"] = 1.0 - sum(shares.values())
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)
        for name in ("encode_batch", "encode", "token_offsets"):
            tokenizer.__dict__.pop(name, None)
    logprobs_s, logprobs = timed(lambda: [detector.token_logprobs(text)[1] for text in texts], repeats)
    return {"redact_s": statistics.median(total), "logprobs_s": logprobs_s, "shares": shares,
            "redacted": [r.redacted_text for r in results], "logprobs": logprobs}


def run_user_path(reference, ours: dict, config, cases, thread_settings, repeats: int) -> list[dict]:
    from pii_frames.decode.labels import LabelSpace
    from pii_frames.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(vocab_size=config.vocab_size)
    labels = LabelSpace.from_names(config.label_names)
    baseline = TransformersEngine(reference, config)
    print(f"\n== user path: Detector.redact_many (and token_logprobs per text) on Faker text, cache off, "
          f"median of {repeats}; both engines on the same thread count")
    header = (f"{'case':>8} {'threads':>11} {'engine':>13} {'redact_many':>12} {'speed-up':>8} "
              f"{'logprobs':>10} {'speed-up':>8} {'texts =':>7} {'labels =':>8} {'max dlogp':>9}  "
              + " ".join(f"{s:>8}" for s in (*STAGES, "other")))
    print(header)
    rows = []
    for case in cases:
        batch, tokens = parse_case(case)
        texts = case_texts(tokenizer, batch, tokens, seed=batch * tokens)
        default = resolved_threads(make_detector(baseline, tokenizer, labels, None), batch * tokens)
        seen: set[int] = set()
        for setting in thread_settings:
            threads = None if setting == "default" else int(setting)
            reference_detector = make_detector(baseline, tokenizer, labels, threads)
            count = resolved_threads(reference_detector, batch * tokens)
            if count in seen:
                continue  # "default" resolved to a count already measured (or the other way round)
            seen.add(count)
            label = f"{count} (default)" if count == default else str(count)
            load = os.getloadavg()[0]
            with torch.inference_mode():
                ref = time_user_path(reference_detector, texts, repeats)
                ref_labels = [lp.argmax(-1) for lp in ref["logprobs"]]
                print(f"{case:>8} {label:>11} {'transformers':>13} {ref['redact_s'] * 1000:10.0f}ms {'':>8} "
                      f"{ref['logprobs_s'] * 1000:8.0f}ms {'':>8} {'':>7} {'':>8} {'':>9}  "
                      + " ".join(f"{ref['shares'][s] * 100:7.1f}%" for s in (*STAGES, "other")), flush=True)
                row = {"case": case, "threads": count, "label": label, "load": load,
                       "transformers": {k: ref[k] for k in ("redact_s", "logprobs_s", "shares")}}
                for mode, model in ours.items():
                    got = time_user_path(make_detector(model, tokenizer, labels, threads), texts, repeats)
                    same_texts = sum(a == b for a, b in zip(got["redacted"], ref["redacted"])) / len(texts)
                    got_labels = [lp.argmax(-1) for lp in got["logprobs"]]
                    same_labels = float(np.mean(np.concatenate([a == b for a, b in zip(got_labels, ref_labels)])))
                    dlogp = max(float(np.abs(a - b).max()) for a, b in zip(got["logprobs"], ref["logprobs"]))
                    speedup, lp_speedup = ref["redact_s"] / got["redact_s"], ref["logprobs_s"] / got["logprobs_s"]
                    print(f"{case:>8} {label:>11} {'ours ' + mode:>13} {got['redact_s'] * 1000:10.0f}ms "
                          f"{speedup:7.2f}x {got['logprobs_s'] * 1000:8.0f}ms {lp_speedup:7.2f}x "
                          f"{same_texts * 100:6.1f}% {same_labels * 100:7.2f}% {dlogp:9.1e}  "
                          + " ".join(f"{got['shares'][s] * 100:7.1f}%" for s in (*STAGES, "other")), flush=True)
                    row[mode] = {"redact_s": got["redact_s"], "logprobs_s": got["logprobs_s"],
                                 "speedup": speedup, "logprobs_speedup": lp_speedup, "texts_equal": same_texts,
                                 "labels_equal": same_labels, "max_dlogp": dlogp, "shares": got["shares"]}
            rows.append(row)
    _print_cross_thread(rows, list(ours))
    return rows


def _print_cross_thread(rows: list[dict], modes: list[str]) -> None:
    """transformers on its fastest measured thread count against our engine's default choice."""
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    lines = []
    for case, case_rows in by_case.items():
        defaults = [r for r in case_rows if "default" in r["label"]]
        if len(case_rows) < 2 or not defaults:
            continue
        best = min(case_rows, key=lambda r: r["transformers"]["redact_s"])
        ours = defaults[0]
        cells = " ".join(f"{m} {best['transformers']['redact_s'] / ours[m]['redact_s']:.2f}x" for m in modes)
        lines.append(f"{case:>8}: transformers on {best['threads']} thread(s) vs ours on its default "
                     f"({ours['threads']}): {cells}")
    if lines:
        print("\n== redact_many: transformers on its best thread count vs our default")
        print("\n".join(lines))


def run_thread_choice(ours: dict, config, cases, counts, repeats: int) -> list[dict]:
    """Our engine alone on each thread count per case (redact_many), and what its default picks."""
    from pii_frames.decode.labels import LabelSpace
    from pii_frames.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(vocab_size=config.vocab_size)
    labels = LabelSpace.from_names(config.label_names)
    print(f"\n== thread choice: our redact_many per thread count, median of {repeats} (same process)")
    print(f"{'case':>8} {'engine':>10} " + " ".join(f"{str(c) + ' thr':>10}" for c in counts)
          + f" {'best':>5} {'default':>8}")
    rows = []
    for case in cases:
        batch, tokens = parse_case(case)
        texts = case_texts(tokenizer, batch, tokens, seed=batch * tokens)
        for mode, model in ours.items():
            with torch.inference_mode():
                seconds = {c: time_user_path(make_detector(model, tokenizer, labels, c), texts, repeats)["redact_s"]
                           for c in counts}
            best = min(seconds, key=seconds.get)
            default = resolved_threads(make_detector(model, tokenizer, labels, None), batch * tokens)
            rows.append({"case": case, "mode": mode, "seconds": seconds, "best": best, "default": default})
            print(f"{case:>8} {mode:>10} " + " ".join(f"{seconds[c] * 1000:8.0f}ms" for c in counts)
                  + f" {best:>5} {default:>8}", flush=True)
    return rows


# ---------------------------------------------------------- raw forward
def case_ids(cases, config) -> dict[str, torch.Tensor]:
    """The token ids of each case's texts, [batch, tokens] (the raw forward runs on them)."""
    from pii_frames.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(vocab_size=config.vocab_size)
    out = {}
    for case in cases:
        batch, tokens = parse_case(case)
        texts = case_texts(tokenizer, batch, tokens, seed=batch * tokens)
        out[case] = torch.tensor([tokenizer.encode(text) for text in texts])
    return out


def run_raw_forward(reference, ours: dict, ids_of: dict, repeats: int, threads: int) -> list[dict]:
    """Time ``model(ids)`` for transformers and each of our weight modes; print one row per case."""
    print(f"\n== raw forward model(ids) on the cases' token ids, {threads} thread(s), median of {repeats}; "
          "label agreement vs transformers (reduced modes also vs our fp32)")
    print(f"{'case':>8} {'load':>5} {'transformers':>13} " + " ".join(f"{m:>30}" for m in ours))
    rows = []
    with torch.inference_mode():
        torch.set_num_threads(threads)
        for case, ids in ids_of.items():
            load = os.getloadavg()[0]
            t_ref, ref_out = timed(lambda ids=ids: reference(input_ids=ids).logits, repeats)
            ref_labels = ref_out.argmax(-1)
            ref_lp = torch.log_softmax(ref_out.float(), -1)
            cells, row = [], {"case": case, "transformers_s": t_ref, "load": load}
            fp32_labels = None
            for mode, model in ours.items():
                t_ours, out = timed(lambda model=model, ids=ids: model(ids).logits, repeats)
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
    print("max |log-prob diff| vs transformers:",
          {row["case"]: {m: f"{row[m]['max_dlogp']:.1e}" for m in ours} for row in rows})
    return rows


# --------------------------------------------------------- expert GEMMs
def expert_variants(reference) -> dict:
    """Layer 0's 128 experts prepared each way the CPU backend can hold them (plus MKL, the torch default)."""
    import dataclasses

    from pii_frames.model.cpu_experts import prepare_experts, probe_kernels

    experts = reference.model.layers[0].mlp.experts
    weights = (experts.gate_up_proj.detach(), experts.gate_up_proj_bias.detach(), experts.down_proj.detach(),
               experts.down_proj_bias.detach())
    kernels = probe_kernels()
    variants = {"fp32 packed": prepare_experts(*weights, "float32", kernels),
                "fp32 strided": prepare_experts(*weights, "float32", dataclasses.replace(kernels, onednn_packed=False)),
                "fp32 MKL": prepare_experts(*weights, "float32", dataclasses.replace(kernels, onednn=False,
                                                                                     onednn_packed=False))}
    for mode in ("float16",):
        variants[f"{mode} weights"] = prepare_experts(*weights, mode, kernels)
    return variants


def run_expert_gemms(reference, rows_list, repeats: int) -> list[dict]:
    """GFLOP/s of all 128 experts of a layer at ``rows`` rows each, one thread, as a forward runs them.

    Distinct experts one after the other, so weights come from memory as in a real
    forward (a layer's fp32 experts are 630 MB). Both GEMMs and the activation count;
    FLOPs are 2 * rows * H * 3I per expert.
    """
    from pii_frames.model.cpu import CpuBackend, run_expert_slabs

    variants = expert_variants(reference)
    groups = CpuBackend().groups
    config = reference.config
    hidden, inter, count = config.hidden_size, config.intermediate_size, config.num_local_experts
    print(f"\n== expert GEMMs: GFLOP/s over a layer's {count} experts at N rows each, 1 thread, median of {repeats} "
          "(gate/up and down GEMMs + activation, the backend's schedule for that size)")
    print(f"{'rows':>6} " + " ".join(f"{name:>14}" for name in variants))
    rows_out = []
    with torch.inference_mode(), torch_threads(1):
        for rows in rows_list:
            x = torch.randn(rows * count, hidden, generator=torch.Generator().manual_seed(rows))
            ends = torch.arange(1, count + 1) * rows
            flops = 2 * rows * hidden * 3 * inter * count
            cells, row = [], {"rows": rows}
            for name, experts in variants.items():
                def layer(x=x, ends=ends, experts=experts):
                    return run_expert_slabs(x, ends, experts, 7.0, 1.702, group=groups.get(experts.kind))

                seconds, _ = timed(layer, repeats)
                row[name] = flops / seconds / 1e9
                cells.append(f"{row[name]:9.1f} GF/s")
            rows_out.append(row)
            print(f"{rows:>6} " + " ".join(f"{c:>14}" for c in cells), flush=True)
    return rows_out


# --------------------------------------------------------------- memory
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


def run_memory(model, modes, save_dtype: str) -> None:
    with tempfile.TemporaryDirectory(dir=str(Path(__file__).parent)) as tmp:
        start = time.perf_counter()
        save_opf_checkpoint(model, tmp, param_dtype=save_dtype)
        size = sum(p.stat().st_size for p in Path(tmp).glob("*")) / 1e9
        print(f"\nsaved opf checkpoint ({save_dtype}, {size:.2f} GB) in {time.perf_counter() - start:.0f}s")
        for mode in ["fp32"] + [m for m in modes if m != "fp32"]:
            start = time.perf_counter()
            rss = peak_rss_of_load(Path(tmp), mode)
            print(f"peak RSS loading full model ({mode} weights): {rss:.2f} GB "
                  f"({time.perf_counter() - start:.0f}s incl. interpreter start)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=None, help="BATCHxTOKENS list (default 1x64,1x512,16x128,1x4096; "
                                                      "--quick: 1x64,1x256,4x128)")
    parser.add_argument("--modes", default="fp32,fp16",
                        help="our weight modes: fp32 (parity tier) and reduced ones: fp16 (fast), bf16 (memory)")
    parser.add_argument("--threads", default="default,1,2",
                        help="thread settings of the user path, both engines on each: 'default' (what the "
                             "engine picks for the case) and explicit counts")
    parser.add_argument("--raw-threads", type=int, default=1, help="torch threads of the raw forward (both engines)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement after a warm-up (>= 5)")
    parser.add_argument("--quick", action="store_true", help="small cases, no 1x4096, no memory test")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw forward")
    parser.add_argument("--no-user", action="store_true", help="skip the user path")
    parser.add_argument("--thread-table", default="",
                        help="thread counts (e.g. 1,2) for a table of our engine alone per case and count")
    parser.add_argument("--gemm-rows", default="2,8,16,32,64,128,256",
                        help="rows per expert for the expert GEMM table ('' skips it)")
    parser.add_argument("--fp32-weights", action="store_true",
                        help="keep full fp32 random weights (default: round them to bf16 values, like the "
                             "released checkpoint, so every weight mode sees the same numbers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the load-from-checkpoint memory test")
    parser.add_argument("--save-dtype", default="bfloat16", help="dtype of the saved checkpoint (memory test)")
    args = parser.parse_args()
    cases = [c for c in (args.cases or ("1x64,1x256,4x128" if args.quick else "1x64,1x512,16x128,1x4096"))
             .split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    thread_settings = [t for t in args.threads.split(",") if t]
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, cases {cases}, modes {modes}, "
          f"user-path threads {thread_settings}, raw-forward threads {args.raw_threads}, load {os.getloadavg()[0]:.1f}")

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
    del state

    ids_of = case_ids(cases, config)
    print("experts hit per layer at 1 x 64 tokens of text:",
          experts_hit_per_layer(reference, ids_of.get("1x64", next(iter(ids_of.values())))[:1, :64]))
    gemm_rows = [int(r) for r in args.gemm_rows.split(",") if r]
    if gemm_rows:
        run_expert_gemms(reference, gemm_rows[:4] if args.quick else gemm_rows, args.repeats)
    if not args.no_user:
        run_user_path(reference, ours, config, cases, thread_settings, args.repeats)
    if args.thread_table:
        run_thread_choice(ours, config, cases, [int(c) for c in args.thread_table.split(",")], args.repeats)
    if not args.no_raw:
        run_raw_forward(reference, ours, ids_of, args.repeats, args.raw_threads)
    if not (args.no_memory or args.quick):
        model = ours.get("fp32") or next(iter(ours.values()))
        del reference
        gc.collect()
        run_memory(model, modes, args.save_dtype)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
