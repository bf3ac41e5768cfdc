"""Adversarial ELECTRA (the paper's Appendix F, Figure 3 right): the generator is trained by
REINFORCE to maximise the discriminator's loss instead of by maximum likelihood.

- Reward, at each picked position t whose token x̂_t the generator sampled at temperature T:
  r_t = the discriminator's RTD loss at t on the corrupted input, -log sigmoid(z_t) where x̂_t is
  counted replaced and -log sigmoid(-z_t) where it equals the original (z_t: D's logit). That is
  the paper's R: how much the sample fooled D. Detached: no gradient flows through D into G.
- Baseline b: a running mean of the batches' mean reward r̄ (mean of r_t over picked positions):
  after each training forward m <- d*m + (1-d)*r̄ with d = `objective.reinforce_baseline_decay`,
  and b = m / (1 - d^k) after k updates (bias-corrected, as Adam's moments); the very first batch
  (k = 0) uses its own r̄. b comes from earlier batches, so it does not bias the estimate. It is
  a persistent buffer (checkpoints resume it exactly) and is not updated in eval mode
  (validation leaves the run's state alone). The paper learns a per-position value baseline
  instead; a running mean is simpler and keeps the estimator unbiased.
- Generator loss (minimised): L_G = -sum_t w_t (r_t - b) log p_T(x̂_t) / sum_t w_t, with p_T the
  generator's softmax at the sampling temperature and w_t the picked-position weights: one
  sample per position, under the paper's assumption that D at t depends on x̂_t only. Its
  gradient is the REINFORCE estimate of -grad E[r].
- Total: `mlm_weight * L_G + disc_weight * RTD`. The generator's MLM loss and accuracy are still
  reported (not trained; the paper reports the accuracy falling, 58% vs 65%), and the batch's
  mean reward and baseline are logged (`reward`, `reward_baseline`).
- Warm-up: the first `objective.adversarial_mlm_steps` updates train the generator by maximum
  likelihood (joint ELECTRA), so REINFORCE starts from a generator whose samples are plausible;
  the default 0 is the paper's setting (it describes no warm-up)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from electra.config import ModelConfig, ObjectiveConfig
from electra.objective.base import TokenIds
from electra.objective.electra import ElectraModel, PretrainOutput
from electra.objective.losses import rtd_loss
from electra.objective.masking import MaskedBatch


def position_rewards(d_logits: torch.Tensor, replaced: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The discriminator's per-token RTD loss at the picked positions (the generator's reward)."""
    # d_logits [B, T], replaced [B, T] bool, positions [B, P] -> [B, P], no gradient
    bce = F.binary_cross_entropy_with_logits(d_logits.detach().float(), replaced.float(), reduction="none")
    return bce.gather(1, positions)


def reinforce_loss(g_logits: torch.Tensor, sampled: torch.Tensor, advantage: torch.Tensor,
                   weights: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """-sum w * A * log p_T(sampled) / sum w: minimising it raises the probability of samples
    with a positive advantage A = reward - baseline and lowers the others'."""
    # g_logits [B, P, V]; sampled, advantage, weights [B, P] -> scalar
    log_p = F.log_softmax(g_logits.float() / temperature, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
    return -(advantage.detach() * log_p * weights).sum() / (weights.sum() + 1e-6)


@dataclass(frozen=True)
class AdversarialOutput(PretrainOutput):
    reward: torch.Tensor  # [B, P] the discriminator's loss at each picked position
    baseline: torch.Tensor  # scalar, subtracted from every reward of this batch
    sampled: torch.Tensor  # [B, P] the generator's samples (the original where it was kept)


class AdversarialElectraModel(ElectraModel):
    STAT_NAMES = (*ElectraModel.STAT_NAMES, "reward", "reward_baseline")

    def __init__(self, disc: ModelConfig, gen: ModelConfig, objective: ObjectiveConfig,
                 ids: TokenIds) -> None:
        super().__init__(disc, gen, objective, ids)
        self.register_buffer("reward_mean", torch.zeros(2))  # [running mean m, updates k]
        self.mle_phase = objective.adversarial_mlm_steps > 0

    def set_step(self, step: int) -> None:
        super().set_step(step)
        self.mle_phase = step < self.objective.adversarial_mlm_steps

    def baseline(self, mean_reward: torch.Tensor) -> torch.Tensor:
        """b from the batches before this one; then (training only) fold this batch's mean in."""
        m, k = self.reward_mean[0], self.reward_mean[1]
        d = self.objective.reinforce_baseline_decay
        b = torch.where(k > 0, m / (1 - torch.pow(d, k)).clamp_min(1e-12), mean_reward)
        if self.training:
            self.reward_mean.copy_(torch.stack([d * m + (1 - d) * mean_reward, k + 1]))
        return b

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> AdversarialOutput:
        # input_ids, token_type_ids, attention_mask: [B, T]
        obj = self.objective
        masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                    masked, generator)  # g_logits [B, P, V]
        corrupted, replaced = self.corrupt(input_ids, attention_mask, masked, g_logits, generator)
        d_logits = self.discriminator_logits(corrupted, token_type_ids, attention_mask)  # [B, T]
        rtd = rtd_loss(d_logits, replaced, attention_mask)
        reward = position_rewards(d_logits, replaced, masked.positions)  # [B, P]
        sampled = corrupted.gather(1, masked.positions)  # [B, P]
        w = masked.weights
        mean_reward = (reward * w).sum() / (w.sum() + 1e-6)
        b = self.baseline(mean_reward)
        gen = mlm if self.mle_phase else reinforce_loss(g_logits, sampled, reward - b, w, self.temperature)
        out = self.output(obj.mlm_weight * gen + obj.disc_weight * rtd, mlm, rtd, g_logits, masked,
                          d_logits, replaced, attention_mask, corrupted, extra=(mean_reward, b))
        fields = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        return AdversarialOutput(**fields, reward=reward, baseline=b, sampled=sampled)

    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        return {**super().summarize(sums, micro_batches),
                "reward": sums["reward"] / max(micro_batches, 1),
                "reward_baseline": sums["reward_baseline"] / max(micro_batches, 1)}
