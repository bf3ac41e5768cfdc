"""Autocast policy: fp32, bf16 or fp16 (+ GradScaler), chosen per device.

`auto` picks bf16 only where it is native (CUDA with bf16, or a CPU with AVX512-BF16/AMX):
on AVX2-only CPUs bf16 autocast is emulated and several times slower than fp32."""

from __future__ import annotations

import contextlib
import functools
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


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def describe(requested: str, resolved: str, device: torch.device) -> str:
    """Why this precision and how many threads, for the run's first log line: timings differ
    several-fold between CPUs with and without native bf16, so a run should say which it got."""
    if device.type != "cpu":
        return f"{resolved}" + (" (auto)" if requested == "auto" else "")
    cap = torch.backends.cpu.get_cpu_capability()
    why = (f" (auto: {cap} {'with' if cpu_has_native_bf16() else 'without'} native bf16)"
           if requested == "auto" else "")
    n = torch.get_num_threads()
    return f"{resolved}{why}, {n} thread{'' if n == 1 else 's'}"


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    device: torch.device

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
