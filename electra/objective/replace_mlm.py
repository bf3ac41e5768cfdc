"""Replace MLM (the paper's ablation): masked LM on generator samples instead of [MASK].

A generator is trained as in ELECTRA (its own MLM on the masked input); its samples (never a
special token) fill the picked positions; the discriminator-sized model reads that input and
predicts the original token at the picked positions only. Its cross-entropy has weight 1, like
the generator's: `objective.disc_weight` (lambda) balances ELECTRA's per-token BCE and does not
apply here."""

from __future__ import annotations

import torch

from electra.model.heads import gather_positions
from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.losses import mlm_loss, top1_hits
from electra.objective.masking import MaskedBatch


class ReplaceMLMModel(ElectraModel):
    STAT_NAMES = (*ElectraModel.STAT_NAMES, "disc_mlm_loss", "disc_mlm_correct")
    DISC_VOCAB_HEAD = True

    @property
    def has_idle_parameters(self) -> bool:
        return True  # the RTD head, kept so the encoder exports as ElectraForPreTraining

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        # input_ids, token_type_ids, attention_mask: [B, T]
        masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                    masked, generator)  # g_logits [B, P, V]
        corrupted, replaced = self.corrupt(input_ids, attention_mask, masked, g_logits, generator,
                                           no_special=True)  # [B, T]
        h = gather_positions(self.discriminator(corrupted, token_type_ids, attention_mask),
                             masked.positions)  # [B, P, H]
        d_logits = self.discriminator_mlm_head(h, self.discriminator.embeddings.word_embeddings.weight)
        d_mlm = mlm_loss(d_logits, masked.targets, masked.weights)  # picked positions only
        with torch.no_grad():
            d_hit = (top1_hits(d_logits, masked.targets).float() * masked.weights).sum()
        return self.output_without_rtd(self.objective.mlm_weight * mlm + d_mlm, mlm, g_logits,
                                       masked, replaced, attention_mask, corrupted,
                                       extra=(d_mlm.detach(), d_hit))

    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        return {**super().summarize(sums, micro_batches),
                "disc_mlm_loss": sums["disc_mlm_loss"] / max(micro_batches, 1),
                "disc_mlm_acc": sums["disc_mlm_correct"] / max(sums["gen_count"], 1)}
