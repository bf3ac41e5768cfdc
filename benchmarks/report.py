"""What every benchmark records about the machine, and how it writes its JSON.

One place so that all results in `benchmarks/results/` carry the same machine fields (CPU, its
vector capability, which decides bf16 vs fp32, threads, torch version, date) and can be compared
across scripts."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch


def machine_meta(**extra) -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), **extra}


def write_results(path: str | None, meta: dict, rows: list[dict]) -> None:
    if path:
        Path(path).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
