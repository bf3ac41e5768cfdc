"""Autocast policy: fp32, bf16 or fp16 (+ GradScaler), chosen per device.

`auto` picks bf16 on CUDA with bf16, and on a CPU only where bf16 matmuls are measured faster
than fp32. CPU flags alone do not say it: on AVX2 bf16 is emulated (several times slower), an
Intel AVX512-BF16 CPU without usable AMX tiles ran bf16 matmuls at half its fp32 rate, an AMD
EPYC with the same flags at twice it (BENCHMARKS.md 0g), and AMX runs them several times faster."""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@functools.cache
def cpu_has_native_bf16() -> bool:
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _matmul_seconds(dtype: torch.dtype, n: int, reps: int) -> float:
    # its own generator: the probe runs once per process, on the first run that resolves `auto`,
    # and drawing from the global one shifted that run's dropout and masks against every later run
    # (a seed fine-tuned first in a process scored differently from the same seed fine-tuned second)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dtype) for _ in range(2))
    a @ b  # first call pays for kernel selection
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - start)
    return best


# bf16 autocast adds casts around every matmul and keeps fp32 elsewhere, so a bare matmul
# speed-up below this does not survive a whole training step.
BF16_MIN_SPEEDUP = 1.3


@functools.cache
def cpu_bf16_speedup() -> float:
    """bf16 over fp32 matmul throughput on this CPU (about 0.1 s, once per process); 0.0 where
    bf16 is not native, so no probe runs on AVX2 machines."""
    if not cpu_has_native_bf16():
        return 0.0
    return _matmul_seconds(torch.float32, 512, 8) / _matmul_seconds(torch.bfloat16, 512, 8)


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_speedup() >= BF16_MIN_SPEEDUP else "fp32"


def describe(requested: str, resolved: str, device: torch.device) -> str:
    """Why this precision and how many threads, for the run's first log line: timings differ
    several-fold between CPUs with and without native bf16, so a run should say which it got."""
    if device.type != "cpu":
        return f"{resolved}" + (" (auto)" if requested == "auto" else "")
    cap = torch.backends.cpu.get_cpu_capability()
    why = ""
    if requested == "auto":
        why = (f" (auto: {cap} with native bf16, bf16 matmuls measured x{cpu_bf16_speedup():.2f} fp32)"
               if cpu_has_native_bf16() else f" (auto: {cap} without native bf16)")
    n = torch.get_num_threads()
    return f"{resolved}{why}, {n} thread{'' if n == 1 else 's'}"


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    device: torch.device

    @classmethod
    def resolve(cls, requested: str, device: torch.device) -> Precision:
        """The precision a run asked for (`auto` included), resolved for `device`."""
        return cls(resolve_precision(requested, device), device)

    def __post_init__(self) -> None:
        enabled = self.name == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=enabled)

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)
