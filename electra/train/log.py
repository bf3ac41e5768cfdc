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

from electra.files import write_text_atomic

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
    """`resume_step`: the step a resumed run restarts from. Records after it belong to the part
    of the run that was lost (written after the checkpoint, before the crash): they are dropped,
    with any line torn by a kill, so every (kind, step) appears once."""

    def __init__(self, run_dir: Path | None, enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled and run_dir is not None
        self._file = None
        self._tb = None
        if not self.enabled:
            return
        path = run_dir / "metrics.jsonl"
        if resume_step is not None and path.is_file():
            _truncate_after(path, resume_step)
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - kept open
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        purge = {"purge_step": resume_step + 1} if resume_step is not None else {}
        self._tb = SummaryWriter(str(run_dir / "tensorboard"), **purge)

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


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """metrics.jsonl's records, and how many lines were unreadable (a line torn by kill -9)."""
    if not path.is_file():
        return [], 0
    records, torn = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step", 0), int):
            records.append(record)
        else:
            torn += 1
    return records, torn


def _truncate_after(path: Path, step: int) -> None:
    kept = [r for r in read_metrics(path)[0] if r.get("step", 0) <= step]
    write_text_atomic(path, "".join(f"{json.dumps(r)}\n" for r in kept))


class Meter:
    """On-device running sums of the loss, an objective's statistics, the tokens seen, the
    gradient norm and the steps whose loss or gradients were not finite, read (one host sync,
    summed over processes) only when a log line is due."""

    def __init__(self, stat_names: tuple[str, ...], device: torch.device) -> None:
        self.names = ("loss", *stat_names, "tokens", "grad_norm", "bad_steps")
        self.sums = torch.zeros(len(self.names), device=device)
        self.micro_batches = 0
        self.started = time.perf_counter()
        self._step_bad = torch.zeros((), device=device)

    def add(self, loss: torch.Tensor, stats: torch.Tensor, attention_mask: torch.Tensor,
            grad_accum: int) -> None:
        # loss: scalar; stats: [K]; attention_mask: [B, T]. A non-finite loss is counted, not
        # summed, so one bad step does not hide the interval's figures.
        loss = loss.detach()
        finite = torch.isfinite(loss)
        self._step_bad = torch.maximum(self._step_bad, (~finite).float())
        zero = loss.new_zeros(2)
        self.sums += torch.cat([(torch.where(finite, loss, 0.0) / grad_accum)[None], stats,
                                attention_mask.sum().float()[None], zero])
        self.micro_batches += 1

    def add_step(self, grad_norm: torch.Tensor, count_nonfinite_grads: bool) -> None:
        """After each optimizer step: its gradient norm. fp16 overflows are routine (the loss
        scaler skips them), so only other precisions count a non-finite norm as a bad step."""
        finite = torch.isfinite(grad_norm)
        bad = torch.maximum(self._step_bad, (~finite).float()) if count_nonfinite_grads else self._step_bad
        self.sums[-2:] += torch.stack([torch.where(finite, grad_norm, 0.0).float(), bad])
        self._step_bad = torch.zeros_like(self._step_bad)

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
