"""One AdamW update of a preset's parameters: torch's fused kernel (the default on CPU and GPU) vs
its foreach and single-tensor paths, same process, interleaved rounds, best of each.

    python benchmarks/optimizer_step.py --configs tiny,small --threads 1 --out benchmarks/results/optimizer_step.json

The update touches every parameter and both moment buffers once per step; what differs is how
many kernels that takes, which is host overhead a small model's step cannot hide."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import best_interleaved, ratio_parser, ratio_rows, run_configs  # noqa: E402

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
    return ratio_rows(best, "foreach", "path", f"{name:6s} {n / 1e6:5.1f}M params ", config=name, parameters=n)


def main() -> None:
    args = ratio_parser(__doc__).parse_args()
    run_configs(args, lambda name: bench(name, args.rounds))


if __name__ == "__main__":
    main()
