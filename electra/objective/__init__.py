"""What the model learns: masking, sampling, losses and the pre-training modules.

`build_objective(cfg, ids)` is the one place that maps `objective.*` settings to a module."""

from __future__ import annotations

from electra.config import PretrainConfig
from electra.objective.base import ObjectiveOutput, PretrainingObjective, TokenIds
from electra.objective.electra import ElectraModel

__all__ = ["ElectraModel", "ObjectiveOutput", "PretrainingObjective", "TokenIds", "build_objective"]


def build_objective(cfg: PretrainConfig, ids: TokenIds) -> ElectraModel:
    return ElectraModel.from_config(cfg, ids)
