"""Two-stage ELECTRA (the paper's Figure 3, right): the generator alone learns masked LM for n
steps (`objective.two_stage_steps`); then the discriminator starts as a copy of the generator and
learns replaced token detection on its samples while the generator stays frozen.

The phase is a function of the step (`set_step`), so a run resumes bit for bit in either phase and
across the switch: the copy happens when the update made at step n is prepared, so a checkpoint
saved at step n still holds the untouched discriminator and resuming from it copies at step n
again. Frozen means no gradient: in phase 2 the generator runs under no_grad, so AdamW (which
skips parameters without a gradient, weight decay included) leaves it bitwise unchanged and its
moments stay where phase 1 left them. The discriminator got no gradient in phase 1, so its
moments start at zero at the switch, as a fresh model's would. One learning-rate schedule spans
the run: the discriminator starts at step n's rate (no second warm-up). Equal sizes and
`sharing=none` (the frozen generator keeps its own embeddings) are checked by the config."""

from __future__ import annotations

import torch

from electra.config import ModelConfig, ObjectiveConfig
from electra.errors import ConfigError
from electra.objective.base import TokenIds
from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.losses import rtd_loss
from electra.objective.masking import MaskedBatch


class TwoStageElectraModel(ElectraModel):
    def __init__(self, disc: ModelConfig, gen: ModelConfig, objective: ObjectiveConfig,
                 ids: TokenIds) -> None:
        super().__init__(disc, gen, objective, ids)
        self._step = 0  # the step set_step last saw: a fresh model is at step 0

    @property
    def switch_step(self) -> int:
        return self.objective.two_stage_steps

    @property
    def generator_phase(self) -> bool:
        return self._step < self.switch_step

    @property
    def has_idle_parameters(self) -> bool:
        return True  # one model or the other waits in each phase

    def set_step(self, step: int) -> None:
        if self.switch_step < 1:  # a model built for its shape (plan) may leave it unresolved
            raise ConfigError("objective.two_stage_steps=0 (half of the run) is resolved against the "
                              "data by electra pretrain; set objective.two_stage_steps=N to train here")
        super().set_step(step)
        self._step = step
        if step == self.switch_step:
            self.initialise_discriminator()

    @torch.no_grad()
    def initialise_discriminator(self) -> None:
        """The discriminator's encoder becomes a copy of the generator's (its RTD head stays
        as initialised: the generator has none)."""
        self.discriminator.load_state_dict(self.generator_encoder.state_dict())

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        # input_ids, token_type_ids, attention_mask: [B, T]
        if self.generator_phase:  # phase 1: the generator's masked LM alone, no RTD pass
            masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                        masked, generator)  # g_logits [B, P, V]
            return self.output_without_rtd(self.objective.mlm_weight * mlm, mlm, g_logits, masked,
                                           torch.zeros_like(attention_mask), attention_mask, input_ids)
        with torch.no_grad():  # phase 2: the frozen generator only samples
            masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                        masked, generator)
        corrupted, replaced = self.corrupt(input_ids, attention_mask, masked, g_logits, generator)
        d_logits = self.discriminator_logits(corrupted, token_type_ids, attention_mask)  # [B, T]
        rtd = rtd_loss(d_logits, replaced, attention_mask)
        return self.output(self.objective.disc_weight * rtd, mlm, rtd, g_logits, masked, d_logits,
                           replaced, attention_mask, corrupted)
