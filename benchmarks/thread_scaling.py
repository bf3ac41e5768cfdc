"""How each implementation's step scales from one thread to two: ours vs the HF reference loop.

    python benchmarks/thread_scaling.py --configs small,tiny --threads 1,2 --rounds 2 \
        --out benchmarks/results/thread_scaling.json

A ratio to the reference measured at one thread count says little about another when the two
step functions spend their time on different work: this runs every (config, implementation,
thread count) in a fresh process, `--rounds` times in turn, and reports tokens/s (median of the
measured steps) and each implementation's scaling."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import hf_step_fn, make_config, median_step_seconds, ours_step_fn  # noqa: E402
from report import machine_meta, run_child, write_results  # noqa: E402

BATCH, SEQ = 16, 128


def measure(impl: str, name: str, threads: int, steps: int) -> float:
    """Tokens/s of one implementation in this (fresh) process."""
    overrides = [f"train.threads={threads}"] + (["train.allocator=system"] if impl == "hf" else [])
    cfg = make_config(name, SEQ, overrides)
    torch.set_num_threads(threads)  # the reference has no config; ours sets the same from train.threads
    cpu = torch.device("cpu")
    step, _ = (ours_step_fn if impl == "ours" else hf_step_fn)(cfg, BATCH, SEQ, cpu, "auto")
    return BATCH * SEQ / median_step_seconds(step, 3, steps, cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="small,tiny")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--out")
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child: impl config threads
    args = p.parse_args()
    if args.one:
        impl, name, threads = args.one
        print(json.dumps(measure(impl, name, int(threads), args.steps)))
        return
    counts = [int(t) for t in args.threads.split(",")]
    rows = []
    for rnd in range(1, args.rounds + 1):
        for name in args.configs.split(","):
            tok = {}
            for impl in ("hf", "ours"):
                for t in counts:
                    cmd = [sys.executable, __file__, "--steps", str(args.steps), "--one", impl, name, str(t)]
                    tok[impl, t] = run_child(cmd, f"{impl} {name} at {t} threads")
            for t in counts:
                row = {"round": rnd, "config": name, "threads": t, "hf_tokens_per_s": tok["hf", t],
                       "ours_tokens_per_s": tok["ours", t], "ratio": tok["ours", t] / tok["hf", t],
                       "hf_scaling": tok["hf", t] / tok["hf", counts[0]],
                       "ours_scaling": tok["ours", t] / tok["ours", counts[0]]}
                rows.append(row)
                print(f"round {rnd} {name:6s} {t} threads: HF {row['hf_tokens_per_s']:7.0f} tok/s "
                      f"(x{row['hf_scaling']:.2f}), ours {row['ours_tokens_per_s']:7.0f} tok/s "
                      f"(x{row['ours_scaling']:.2f}), ratio x{row['ratio']:.2f}", flush=True)
    write_results(args.out, machine_meta(batch=BATCH, seq=SEQ, steps=args.steps), rows)


if __name__ == "__main__":
    main()
