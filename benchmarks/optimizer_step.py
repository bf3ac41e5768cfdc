"""One AdamW update of a preset's parameters: torch's fused kernel (the default on CPU and GPU) vs
its foreach and single-tensor paths, same process, interleaved rounds, best of each.

    python benchmarks/optimizer_step.py --configs tiny,small --threads 1 --out benchmarks/results/optimizer_step.json

The update touches every parameter and both moment buffers once per step; what differs is how
many kernels that takes, which is host overhead a small model's step cannot hide."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import best_interleaved, machine_meta, write_results  # noqa: E402

from electra.config import preset  # noqa: E402
from electra.objective import TokenIds, build_objective  # noqa: E402
from electra.train.optim import param_groups  # noqa: E402

PATHS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}


def bench(name: str, rounds: int) -> list[dict]:
    model = build_objective(preset(name), TokenIds.standard())
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opts = {k: torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, eps=1e-6, **kw) for k, kw in PATHS.items()}
    for o in opts.values():
        o.step()  # allocate the moment buffers
    best = best_interleaved({k: o.step for k, o in opts.items()}, rounds)
    n = sum(p.numel() for p in model.parameters())
    rows = [{"config": name, "parameters": n, "path": k, "ms_per_step": 1e3 * s,
             "speedup_vs_foreach": best["foreach"] / s} for k, s in best.items()]
    for r in rows:
        print(f"{name:6s} {n / 1e6:5.1f}M params  {r['path']:8s} {r['ms_per_step']:7.1f} ms  "
              f"x{r['speedup_vs_foreach']:.2f} vs foreach", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="tiny,small")
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for name in args.configs.split(",") for r in bench(name, args.rounds)]
    write_results(args.out, machine_meta(), rows)


if __name__ == "__main__":
    main()
