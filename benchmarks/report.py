"""What every benchmark records about the machine, and how it writes its JSON.

One place so that all results in `benchmarks/results/` carry the same machine fields (CPU, its
vector capability, which decides bf16 vs fp32, threads, torch version, date) and can be compared
across scripts."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch


def machine_meta(**extra) -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), **extra}


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
