"""What the model learns: masking, sampling, losses and the pre-training modules.

`build_objective(cfg, ids)` is the one place that maps `objective.*` settings to a module."""

from __future__ import annotations

from electra.config import PretrainConfig
from electra.objective.adversarial import AdversarialElectraModel
from electra.objective.all_tokens_mlm import AllTokensMLMModel
from electra.objective.base import ObjectiveOutput, PretrainingObjective, TokenIds
from electra.objective.electra import ElectraModel
from electra.objective.electra15 import Electra15Model
from electra.objective.mlm import MaskedLMModel
from electra.objective.replace_mlm import ReplaceMLMModel
from electra.objective.two_stage import TwoStageElectraModel

__all__ = ["AllTokensMLMModel", "Electra15Model", "ElectraModel", "MaskedLMModel", "ObjectiveOutput",
           "PretrainingObjective", "ReplaceMLMModel", "TokenIds", "build_objective"]

# objective.kind -> module; each is an ElectraModel (same parts, so export and checkpoints agree)
OBJECTIVES: dict[str, type[ElectraModel]] = {
    "electra": ElectraModel,
    "electra15": Electra15Model,
    "mlm": MaskedLMModel,
    "replace_mlm": ReplaceMLMModel,
    "all_tokens_mlm": AllTokensMLMModel,
}


# objective.algorithm other than joint -> module (for objective.kind=electra, checked by the config)
ALGORITHMS: dict[str, type[ElectraModel]] = {
    "two_stage": TwoStageElectraModel,
    "adversarial": AdversarialElectraModel,
}


def build_objective(cfg: PretrainConfig, ids: TokenIds) -> ElectraModel:
    cls = ALGORITHMS.get(cfg.objective.algorithm) or OBJECTIVES[cfg.objective.kind]
    return cls.from_config(cfg, ids)
