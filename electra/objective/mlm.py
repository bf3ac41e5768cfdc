"""BERT's masked LM: one encoder (the discriminator's size) predicts its masked tokens.

No generator and no discriminator pass: masking (BERT's 80/10/10 by default) -> the encoder ->
the MLM head at the picked positions only. Built as ELECTRA with every weight shared and no RTD
term, so export is unchanged: the encoder is the `discriminator` part (its RTD head untrained)
and the encoder with its MLM head the `generator` part (ElectraForMaskedLM)."""

from __future__ import annotations

import dataclasses

import torch

from electra.config import PretrainConfig
from electra.objective.base import TokenIds
from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.masking import MaskedBatch


class MaskedLMModel(ElectraModel):
    @classmethod
    def from_config(cls, cfg: PretrainConfig, ids: TokenIds) -> MaskedLMModel:
        return cls(cfg.model, cfg.model, dataclasses.replace(cfg.objective, sharing="all"), ids)

    @property
    def has_idle_parameters(self) -> bool:
        return True  # the RTD head, kept so the encoder exports as ElectraForPreTraining

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        # input_ids, token_type_ids, attention_mask: [B, T]
        masked, logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                  masked, generator)  # logits [B, P, V]
        return self.output_without_rtd(self.objective.mlm_weight * mlm, mlm, logits, masked,
                                       torch.zeros_like(attention_mask), attention_mask, input_ids)
