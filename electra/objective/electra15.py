"""ELECTRA 15% (the paper's ablation): ELECTRA with the RTD loss only on the masked positions.

Everything else is ELECTRA's (generator, sampling, the discriminator on every token); only the
tokens the RTD loss and its statistics count change: the ~15% picked for masking."""

from __future__ import annotations

import torch

from electra.objective.electra import ElectraModel
from electra.objective.masking import MaskedBatch, picked_tokens


class Electra15Model(ElectraModel):
    def rtd_positions(self, masked: MaskedBatch, attention_mask: torch.Tensor) -> torch.Tensor:
        return picked_tokens(masked, attention_mask.shape)  # [B, T] bool
