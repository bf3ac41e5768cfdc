"""How ELECTRA's two losses are weighed (`objective.loss_weighting`), beyond the paper's fixed
lambda = 50, which the paper's critics call a hand-tuned multi-task weight.

- `fixed`: `mlm_weight * MLM + disc_weight * RTD`, the paper.
- `uncertainty` (Kendall, Gal & Cipolla 2018): one learned log-variance s_i per loss and
  `total = sum_i exp(-s_i) * L_i + s_i`. This is twice their classification form
  `L / sigma^2 + log sigma` with s = log sigma^2 (the factor only rescales the total). It starts at
  s_i = -ln w_i, i.e. at the fixed weights; for a steady loss the optimum is exp(-s_i) = 1 / L_i,
  so each loss drifts towards a weight inverse to its size. The effective weights exp(-s_i) are
  logged as `mlm_weight` and `disc_weight`; s_i are checkpointed with the model and excluded from
  weight decay, which would pull them to weight 1.
- `schedule`: lambda moves linearly from `disc_weight_start` at step 0 to `disc_weight` at
  `disc_weight_steps` and stays there (a function of the step, so resume is exact); the MLM
  weight stays `mlm_weight`. Both weights are logged."""

from __future__ import annotations

import math

import torch
from torch import nn

from electra.config import ObjectiveConfig


def disc_weight_at(objective: ObjectiveConfig, step: int) -> float:
    """Lambda for the update made at `step` (0-based) under `loss_weighting=schedule`."""
    if step >= objective.disc_weight_steps:
        return objective.disc_weight
    frac = step / objective.disc_weight_steps
    return objective.disc_weight_start + frac * (objective.disc_weight - objective.disc_weight_start)


class LossWeighting(nn.Module):
    """forward(mlm, rtd) -> the total loss; `stats` are the effective weights of that forward."""

    no_weight_decay = True  # optim.param_groups: this module's parameters are never decayed

    def __init__(self, objective: ObjectiveConfig) -> None:
        super().__init__()
        self.objective = objective
        self.kind = objective.loss_weighting
        self.mlm_weight, self.disc_weight = objective.mlm_weight, objective.disc_weight
        self.log_vars: nn.Parameter | None = None  # [2]: s_mlm, s_rtd
        if self.kind == "uncertainty":
            self.log_vars = nn.Parameter(torch.tensor(
                [-math.log(objective.mlm_weight), -math.log(objective.disc_weight)]))
        self.STAT_NAMES: tuple[str, ...] = () if self.kind == "fixed" else ("mlm_weight", "disc_weight")
        self.set_step(0)

    def set_step(self, step: int) -> None:
        if self.kind == "schedule":
            self.disc_weight = disc_weight_at(self.objective, step)

    def forward(self, mlm: torch.Tensor, rtd: torch.Tensor) -> torch.Tensor:
        # mlm, rtd: scalars -> scalar
        if self.log_vars is None:
            return self.mlm_weight * mlm + self.disc_weight * rtd
        w = torch.exp(-self.log_vars)  # [2]
        return w[0] * mlm + w[1] * rtd + self.log_vars.sum()

    def stats(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The weights this forward used, as scalars on `like`'s device (none for `fixed`)."""
        if self.kind == "fixed":
            return ()
        if self.log_vars is not None:
            w = torch.exp(-self.log_vars.detach()).to(like.dtype)
            return w[0], w[1]
        return like.new_tensor(self.mlm_weight), like.new_tensor(self.disc_weight)

    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        return {k: sums[k] / max(micro_batches, 1) for k in self.STAT_NAMES}
