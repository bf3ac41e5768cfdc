"""BERT's masked LM: one encoder (the discriminator's size) predicts its masked tokens.

No generator and no discriminator pass: masking (BERT's 80/10/10 by default) -> the encoder ->
the MLM head at the picked positions only (and, with `objective.sop_weight`, ALBERT's
sentence-order head on the same pass's [CLS]). Built as ELECTRA with every weight shared and no RTD
term, so export is unchanged: the encoder is the `discriminator` part (its RTD head untrained)
and the encoder with its MLM head the `generator` part (ElectraForMaskedLM)."""

from __future__ import annotations

import dataclasses

import torch

from electra.config import PretrainConfig
from electra.model.build import mlm_states
from electra.model.heads import gather_positions
from electra.objective.base import TokenIds
from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.losses import mlm_loss
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
        order = self.sentence_order(input_ids, token_type_ids, attention_mask, generator)
        if order is not None:  # SOP: rows in the drawn order
            input_ids, token_type_ids = order.input_ids, order.token_type_ids
        if masked is None:
            masked = self.mask(input_ids, attention_mask, generator)
        # [B, T, H]; model.family=deberta: after its enhanced mask decoder (so SOP reads that too)
        h = mlm_states(self.discriminator, masked.input_ids, token_type_ids, attention_mask)
        logits = self.generator_head(gather_positions(h, masked.positions),
                                     self.discriminator.embeddings.word_embeddings.weight)  # [B, P, V]
        mlm = mlm_loss(logits, masked.targets, masked.weights)
        out = self.output_without_rtd(self.objective.mlm_weight * mlm, mlm, logits, masked,
                                      torch.zeros_like(attention_mask), attention_mask, input_ids)
        return self.with_sentence_order(out, h, order)
