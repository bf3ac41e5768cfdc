"""Run logging: one console line per interval, `metrics.jsonl`, TensorBoard when installed, and
the on-device `Meter` that the training loop reads only when it logs.

Only the main process writes. Every record is a flat JSON object with `kind` ("train",
"valid", ...) and `step`, so metrics.jsonl can be read back with one json.loads per line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("electra")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_count(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


class MetricsLogger:
    def __init__(self, run_dir: Path | None, enabled: bool = True) -> None:
        self.enabled = enabled and run_dir is not None
        self._file = None
        self._tb = None
        if not self.enabled:
            return
        self._file = open(run_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115 - kept open
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, kind: str, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **metrics}
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


class Meter:
    """On-device running sums of the loss, an objective's statistics and the tokens seen, read
    (one host sync, summed over processes) only when a log line is due."""

    def __init__(self, stat_names: tuple[str, ...], device: torch.device) -> None:
        self.names = ("loss", *stat_names, "tokens")
        self.sums = torch.zeros(len(self.names), device=device)
        self.micro_batches = 0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, stats: torch.Tensor, attention_mask: torch.Tensor,
            grad_accum: int) -> None:
        # loss: scalar; stats: [K]; attention_mask: [B, T]
        self.sums += torch.cat([(loss.detach() / grad_accum)[None], stats,
                                attention_mask.sum().float()[None]])
        self.micro_batches += 1

    def read(self, all_reduce: Callable[[torch.Tensor], torch.Tensor]
             ) -> tuple[dict[str, float], int, float]:
        """(sums, micro-batches, seconds) since the last read, over all processes; then reset."""
        counts = torch.tensor([float(self.micro_batches)], device=self.sums.device)
        values = all_reduce(torch.cat([self.sums, counts])).tolist()
        seconds = time.perf_counter() - self.started
        self.sums.zero_()
        self.micro_batches = 0
        self.started = time.perf_counter()
        return dict(zip(self.names, values[:-1], strict=True)), int(values[-1]), seconds

    def restart_clock(self) -> None:
        """Leave evaluation, probe and checkpoint time out of the tokens/s figure."""
        self.started = time.perf_counter()
