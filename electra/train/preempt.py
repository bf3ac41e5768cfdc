"""Stopping early on purpose: SIGTERM (cluster preemption, `kill`) and time-based checkpoints.

A signal only sets a flag; the loop finishes the step it is in, writes a checkpoint and returns,
so a preempted run resumes exactly. Under DDP the ranks agree at log steps (the loop's only
sync points), so every rank takes part in the same save."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import torch


class StopControl:
    def __init__(self, save_every_minutes: float, device: torch.device,
                 budget_minutes: float = 0.0) -> None:
        self.signalled = False
        self.deadline = time.monotonic() + budget_minutes * 60.0 if budget_minutes else None
        self.save_every = save_every_minutes * 60.0
        self.last_save = time.monotonic()
        self.device = device
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.signalled = True

    def check(self, step: int, log_every: int, world_size: int,
              all_reduce_max: Callable[[torch.Tensor], torch.Tensor]) -> tuple[bool, bool]:
        """(stop now, save now) after `step`; across processes only at log steps."""
        time_due = self.save_every > 0 and time.monotonic() - self.last_save >= self.save_every
        if world_size == 1:
            return self.signalled, self.signalled or time_due
        if step % log_every:
            return False, False
        flags = all_reduce_max(torch.tensor([float(self.signalled), float(time_due)], device=self.device))
        stop, due = (bool(x) for x in flags.tolist())
        return stop, stop or due

    def budget_spent(self, step: int, log_every: int, world_size: int,
                     all_reduce_max: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        """`train.budget_minutes` has passed (checked after `step`; across processes only at
        log steps, so every rank ends at the same step)."""
        if self.deadline is None:
            return False
        over = time.monotonic() >= self.deadline
        if world_size == 1:
            return over
        if step % log_every:
            return False
        return bool(all_reduce_max(torch.tensor([float(over)], device=self.device)).item())

    def saved(self) -> None:
        self.last_save = time.monotonic()

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
