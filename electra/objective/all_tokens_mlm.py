"""All-Tokens MLM (the paper's ablation): predict the identity of every token, with a copy gate.

The generator and its samples are ELECTRA's (samples never a special token); the
discriminator-sized model reads the corrupted input and gives, at every position, the
distribution p = D * onehot(input) + (1 - D) * softmax(vocabulary logits), D = sigmoid of a
per-token gate (the RTD head's shape, so the encoder exports as ElectraForPreTraining). Loss:
-log p(original) over every non-pad token, weight 1 like the generator's MLM."""

from __future__ import annotations

import torch

from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.losses import copy_distribution, copy_mlm_loss
from electra.objective.masking import MaskedBatch


class AllTokensMLMModel(ElectraModel):
    STAT_NAMES = (*ElectraModel.STAT_NAMES, "disc_mlm_loss", "disc_mlm_correct", "disc_mlm_count")
    DISC_VOCAB_HEAD = True

    def token_logits(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(vocabulary logits [B, T, V], copy-gate logits [B, T]) for every position."""
        h = self.discriminator(input_ids, token_type_ids, attention_mask)  # [B, T, H]
        vocab = self.discriminator_mlm_head(h, self.discriminator.embeddings.word_embeddings.weight)
        return vocab, self.discriminator_head(h)

    def token_distribution(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                           attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T, V]: the model's distribution over the vocabulary at every position."""
        return copy_distribution(*self.token_logits(input_ids, token_type_ids, attention_mask), input_ids)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        # input_ids, token_type_ids, attention_mask: [B, T]
        masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                    masked, generator)  # g_logits [B, P, V]
        corrupted, replaced = self.corrupt(input_ids, attention_mask, masked, g_logits, generator,
                                           no_special=True)  # [B, T]
        vocab, gate = self.token_logits(corrupted, token_type_ids, attention_mask)  # [B, T, V], [B, T]
        d_mlm = copy_mlm_loss(vocab, gate, corrupted, input_ids, attention_mask)
        with torch.no_grad():  # argmax of p: the input token unless another outweighs it
            d = torch.sigmoid(gate.float())
            soft = torch.softmax(vocab.float(), -1)  # [B, T, V]
            keep = d + (1 - d) * soft.gather(-1, corrupted.unsqueeze(-1)).squeeze(-1)
            best, best_id = soft.max(-1)
            pred = torch.where(keep >= (1 - d) * best, corrupted, best_id)  # [B, T]
            d_hit = ((pred == input_ids) & attention_mask).sum().float()
        return self.output_without_rtd(self.objective.mlm_weight * mlm + d_mlm, mlm, g_logits,
                                       masked, replaced, attention_mask, corrupted,
                                       extra=(d_mlm.detach(), d_hit, attention_mask.sum().float()))

    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        return {**super().summarize(sums, micro_batches),
                "disc_mlm_loss": sums["disc_mlm_loss"] / max(micro_batches, 1),
                "disc_mlm_acc": sums["disc_mlm_correct"] / max(sums["disc_mlm_count"], 1)}
