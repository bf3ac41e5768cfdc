"""What every benchmark records about the machine, and how it writes its JSON.

One place so that all results in `benchmarks/results/` carry the same machine fields (CPU, its
vector capability, which decides bf16 vs fp32, threads, torch version, date) and can be compared
across scripts. A run restricted to a narrower instruction set on a wider CPU (e.g. AVX2 code
paths on an AVX-512 machine: `MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2`) records those variables, so its numbers are never read as the wider
machine's."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ISA_LIMITS = ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def machine_meta(**extra) -> dict:
    limits = {k: os.environ[k] for k in ISA_LIMITS if k in os.environ}
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            **({"isa_limits": limits} if limits else {}), **extra}


def write_results(path: str | None, meta: dict, rows: list[dict]) -> None:
    if path:
        Path(path).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


def best_interleaved(fns: dict[str, Callable[[], None]], rounds: int, reps: int = 5) -> dict[str, float]:
    """Seconds per call of each function, the best of `rounds`; the functions take turns within
    each round, so drift in a shared machine's speed reaches every one of them alike."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / reps)
    return best


def median_interleaved(fns: dict[str, Callable[[], None]], rounds: int, reps: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, taking turns each round as `best_interleaved`
    does; each turn's first call is not timed. For whole training steps whose variants differ in
    buffer sizes: the allocator's first reuse after a switch is not what a run sees."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            fn()
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def ratio_parser(doc: str) -> argparse.ArgumentParser:
    """The options every same-process ratio benchmark takes (configs, threads, rounds, out)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--configs", default="tiny,small")
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    return p


def run_configs(args: argparse.Namespace, bench: Callable[[str], list[dict]], **meta) -> None:
    """Set the thread count, run `bench` for each of --configs, write the rows to --out."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for name in args.configs.split(",") for r in bench(name)]
    write_results(args.out, machine_meta(**meta), rows)


def run_step_benchmark(doc: str, bench: Callable[[str, int, int], list[dict]], configs: str = "small") -> None:
    """The command line of a ratio benchmark over training steps: `bench(config, batch, rounds)`
    for each of --configs, rows to --out."""
    p = ratio_parser(doc)
    p.set_defaults(configs=configs)
    p.add_argument("--batch", type=int, default=16, help="sequences of 128 tokens per step")
    args = p.parse_args()
    run_configs(args, lambda name: bench(name, args.batch, args.rounds), rounds=args.rounds, batch=args.batch)


def ratio_rows(best: dict[str, float], baseline: str, key: str, prefix: str, **fields) -> list[dict]:
    """One result row per timed function (ms per call, speed-up over `baseline`), each printed
    as it is made; `fields` go into every row."""
    rows = []
    for name, sec in best.items():
        ratio = best[baseline] / sec
        rows.append({**fields, key: name, "ms_per_step": 1e3 * sec, f"speedup_vs_{baseline}": ratio})
        print(f"{prefix} {name:17s} {1e3 * sec:8.1f} ms  x{ratio:.2f} vs {baseline}", flush=True)
    return rows


def run_child(cmd: list[str], what: str) -> Any:
    """Run one measurement in a fresh process and return the JSON of its last stdout line; a
    failed child ends the benchmark with its stderr's tail, not a parse error."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        print(res.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{what} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])
