"""Where one pre-training step spends its time, per kind of op (torch.profiler, self CPU time).

    python benchmarks/profile_step.py --configs tiny:128,small:128 --batch 16 --threads 1

Each configuration runs the training loop's exact step (`benchmarks/pretrain_step.py`'s
`ours_step_fn`: masking inside the objective, forward, backward, clipping, AdamW) a few times to
warm up, then profiles `--steps` steps. Ops are grouped into the categories the speed issue
names (matmuls, attention, LayerNorm, GELU, dropout, embedding gathers, the generator head's
softmax/sampling, the optimizer, the rest) by their aten names, forward and backward together,
so every optimisation can point to a measured share of the step."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pretrain_step import make_config, ours_step_fn  # noqa: E402
from report import machine_meta, write_results  # noqa: E402

# first match wins; names are aten op names (backward ops included by their own names)
CATEGORIES = [
    ("LayerNorm", ("layer_norm",)),
    ("optimizer", ("_foreach", "adam", "clip_grad", "vector_norm", "lerp", "addcdiv", "addcmul")),
    ("attention (SDPA)", ("scaled_dot_product", "_flash_attention", "_efficient_attention", "softmax_backward",
                          "_softmax", "baddbmm", "bmm")),
    ("matmul (Linear)", ("addmm", "aten::mm", "aten::matmul", "aten::linear")),
    ("GELU", ("gelu",)),
    ("dropout", ("dropout", "bernoulli", "native_dropout")),
    ("embedding gathers", ("embedding", "index_select", "index_add", "scatter_add", "index_put", "gather")),
    ("loss / sampling", ("cross_entropy", "nll_loss", "log_softmax", "binary_cross_entropy", "logsigmoid",
                         "exponential", "log_", "argmax", "uniform", "topk")),
    ("elementwise & copies", ("add", "mul", "div", "sub", "copy_", "clone", "contiguous", "where",
                              "masked", "fill", "zero", "ones", "cat", "stack", "view", "reshape",
                              "transpose", "permute", "expand", "sum", "mean", "to", "_to_copy", "empty")),
]


def category(name: str) -> str:
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def profile_config(name: str, seq: int, batch: int, steps: int, overrides: list[str]) -> dict:
    cfg = make_config(name, seq, overrides)
    step, precision = ours_step_fn(cfg, batch, seq, torch.device("cpu"), "auto")
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    by_cat: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        by_cat[category(ev.key)] += ev.self_cpu_time_total
        top[ev.key] += ev.self_cpu_time_total
    total = sum(by_cat.values())
    return {
        "config": f"{name}:{seq}", "batch": batch, "steps": steps, "precision": precision,
        "overrides": overrides, "ms_per_step": total / steps / 1e3,
        "share": {k: v / total for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "top_ops": {k: v / total for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tiny:128,small:128")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--override", action="append", default=[], help="section.field=value for every config")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for spec in args.configs.split(","):
        name, seq = spec.split(":")
        r = profile_config(name, int(seq), args.batch, args.steps, args.override)
        results.append(r)
        print(f"{r['config']} batch {r['batch']} ({r['precision']}, {' '.join(r['overrides']) or 'defaults'}): "
              f"{r['ms_per_step']:.0f} ms/step (profiled, self CPU time)")
        for cat, share in r["share"].items():
            print(f"  {cat:22s} {100 * share:5.1f}%")
        print("  top ops: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in list(r["top_ops"].items())[:8]))
    write_results(args.out, machine_meta(), results)


if __name__ == "__main__":
    main()
