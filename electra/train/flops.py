"""Training FLOPs per token (6N convention, non-causal attention).

The one FLOP counter used by the training logs, `electra plan` and the benchmarks, following
REFERENCE.md: encoder 6*(matmul params) + 12*L*H*T, plus the heads; the generator's vocabulary
projection costs only at the gathered positions (fraction P/T). Training algorithms:
`adversarial` costs what joint training does (the REINFORCE term reuses the generator's logits);
`two_stage` has two phases, generator forward + backward, then generator forward only +
discriminator forward + backward (`flop_rate`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from electra.config import ModelConfig, PretrainConfig
from electra.errors import ConfigError
from electra.model.deberta import reached_rows
from electra.objective.masking import MaskSpec


def encoder_matmul_params(cfg: ModelConfig) -> int:
    """Weights that take part in a matmul for every token (embedding lookups excluded)."""
    H, F, L, E = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers, cfg.embedding_size
    project = E * H if E != H or cfg.family == "albert" else 0  # ALBERT always projects E -> H
    return L * (4 * H * H + 2 * H * F) + project


def encoder_train_flops(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per token of one encoder."""
    flops = 6.0 * encoder_matmul_params(cfg) + 12.0 * cfg.num_layers * cfg.hidden_size * seq_len
    return flops + relative_attention_flops(cfg, seq_len) if cfg.family == "deberta" else flops


def relative_attention_flops(cfg: ModelConfig, seq_len: int) -> float:
    """DeBERTa's content->position and position->content scores, per token: each a [H] x [H, R]
    product against the R table rows the sequence reaches (their projections run once per
    batch, not per token, and are left out)."""
    lo, hi = reached_rows(cfg, seq_len)
    return 12.0 * cfg.num_layers * cfg.hidden_size * (hi - lo + 1)


def emd_flops(cfg: ModelConfig, seq_len: int) -> float:
    """The enhanced mask decoder (deberta family): `emd_depth` more passes of the last layer, less
    that layer's own backward (2/3 of it): the decoder reads the layer below, so the last layer's
    output reaches no loss."""
    if not cfg.emd_depth:
        return 0.0
    one_layer = dataclasses.replace(cfg, num_layers=1, embedding_size=cfg.hidden_size)  # no projection
    return (cfg.emd_depth - 2 / 3) * encoder_train_flops(one_layer, seq_len)


def mlm_head_flops(cfg: ModelConfig, positions_frac: float) -> float:
    """Forward + backward FLOPs per token of an MLM head (dense H->E, tied E->V) applied at a
    fraction `positions_frac` of the tokens."""
    return 6.0 * (cfg.hidden_size * cfg.embedding_size + cfg.embedding_size * cfg.vocab_size) * positions_frac


def rtd_head_flops(cfg: ModelConfig) -> float:
    """The per-token sigmoid head (dense H->H, H->1): RTD, and All-Tokens MLM's copy gate."""
    return 6.0 * (cfg.hidden_size * cfg.hidden_size + cfg.hidden_size)


def sop_head_flops(cfg: ModelConfig, seq_len: int) -> float:
    """ALBERT's sentence-order head (dense H->H, H->2) on one vector per row, per token."""
    return 6.0 * (cfg.hidden_size * cfg.hidden_size + 2 * cfg.hidden_size) / seq_len


def electra_train_flops(cfg: PretrainConfig, seq_len: int, gathered: bool = True) -> float:
    """FLOPs per token of one training step of `cfg.objective.kind` (every model and head); for
    `algorithm=two_stage` or a discriminator MLM warm start the mean over `train.steps`
    (`flop_rate` has each phase's)."""
    if cfg.objective.algorithm == "two_stage" or cfg.objective.disc_mlm_steps:
        return flop_rate(cfg, seq_len, gathered).mean(cfg.train.steps)
    return _step_flops(cfg, seq_len, gathered)


def _step_flops(cfg: PretrainConfig, seq_len: int, gathered: bool) -> float:
    if cfg.objective.sop_weight:  # the same step plus the SOP head on one [CLS] vector per row
        without = dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, sop_weight=0.0))
        return _step_flops(without, seq_len, gathered) + sop_head_flops(cfg.model, seq_len)
    d, g, kind = cfg.model, cfg.generator_model(), cfg.objective.kind
    frac = _picked_frac(cfg, seq_len, gathered)
    if kind == "mlm":  # one encoder and its MLM head: no generator, no discriminator pass
        return _masked_lm_flops(cfg, seq_len, gathered)
    generator = encoder_train_flops(g, seq_len) + mlm_head_flops(g, frac) + emd_flops(g, seq_len)
    if kind in ("electra", "electra15") and cfg.objective.disc_weight == 0:  # masked LM alone
        return generator
    disc = encoder_train_flops(d, seq_len)
    if kind == "replace_mlm":  # the discriminator-sized MLM head at the picked positions
        return generator + disc + mlm_head_flops(d, frac)
    if kind == "all_tokens_mlm":  # a vocabulary head and the copy gate at every token
        return generator + disc + mlm_head_flops(d, 1.0) + rtd_head_flops(d)
    return generator + disc + rtd_head_flops(d)


def _picked_frac(cfg: PretrainConfig, seq_len: int, gathered: bool) -> float:
    """The share of tokens an MLM head scores: the picked positions (gathered), or all of them."""
    spec = MaskSpec.from_config(cfg.objective, 0, cfg.model.vocab_size)
    return spec.predictions_for(seq_len) / seq_len if gathered else 1.0


def _masked_lm_flops(cfg: PretrainConfig, seq_len: int, gathered: bool) -> float:
    """The discriminator-sized encoder and its MLM head alone (with the SOP head where the
    objective has one): objective.kind=mlm, and the discriminator's MLM warm start
    (objective.disc_mlm_steps)."""
    d = cfg.model
    sop = sop_head_flops(d, seq_len) if cfg.objective.sop_weight else 0.0
    return (encoder_train_flops(d, seq_len) + mlm_head_flops(d, _picked_frac(cfg, seq_len, gathered))
            + emd_flops(d, seq_len) + sop)


@dataclass(frozen=True)
class FlopRate:
    """Training FLOPs per token as a function of the step: one phase, or two for two_stage."""

    phases: tuple[tuple[int, float], ...]  # (first step, FLOPs per token), ascending, from step 0

    def at(self, step: int) -> float:
        """FLOPs per token of the update made at `step` (0-based)."""
        return [f for start, f in self.phases if start <= step][-1]

    def mean(self, steps: int) -> float:
        """Step-weighted mean over the first `steps` updates (one phase: its value exactly)."""
        if len(self.phases) == 1 or steps <= self.phases[1][0]:
            return self.phases[0][1]
        ends = [s for s, _ in self.phases[1:]] + [steps]
        return sum((min(end, steps) - start) * f for (start, f), end in
                   zip(self.phases, ends, strict=True) if start < steps) / steps

    def spent(self, steps: int, tokens: float) -> float:
        """FLOPs of a run that has made `steps` updates on `tokens` tokens: tokens x the mean
        rate (exact when every step holds the same number of tokens, as budgets count them)."""
        return tokens * self.mean(steps)

    def steps_for(self, budget: float, batch_size: int, seq_len: int) -> int:
        """The number of updates whose capacity (batch x seq_len tokens each) spends `budget`."""
        left = budget
        for i, (start, f) in enumerate(self.phases):
            per_step = f * batch_size * seq_len
            length = self.phases[i + 1][0] - start if i + 1 < len(self.phases) else math.inf
            need = math.ceil(left / per_step - 1e-9)
            if need <= length:
                return start + need
            left -= length * per_step
        raise AssertionError("unreachable: the last phase is unbounded")


def two_stage_phases(cfg: PretrainConfig, seq_len: int, gathered: bool = True) -> tuple[float, float]:
    """FLOPs per token of two-stage's phases: (generator forward + backward, generator forward +
    discriminator forward + backward with its RTD head)."""
    d, g = cfg.model, cfg.generator_model()
    frac = _picked_frac(cfg, seq_len, gathered)
    generator = encoder_train_flops(g, seq_len) + mlm_head_flops(g, frac) + emd_flops(g, seq_len)
    return generator, generator / 3 + encoder_train_flops(d, seq_len) + rtd_head_flops(d)


def two_stage_switch(cfg: PretrainConfig, seq_len: int) -> int:
    """The generator-alone phase's length: `objective.two_stage_steps`, or for 0 half of the run
    (the paper's n + n steps): of the FLOP budget if one is set, else of `train.steps`."""
    if cfg.objective.two_stage_steps:
        return cfg.objective.two_stage_steps
    half = cfg.train.steps // 2
    if cfg.train.budget_flops:
        first, second = two_stage_phases(cfg, seq_len)
        half = min(half, int(cfg.train.budget_flops // ((first + second) * cfg.train.batch_size * seq_len)))
    return max(1, half)


def resolve_two_stage(cfg: PretrainConfig) -> PretrainConfig:
    """The config with `two_stage_steps=0` replaced by its value for these rows
    (`preprocess.seq_len`): a run's config.json holds the switch, so resume never moves it."""
    if cfg.objective.algorithm != "two_stage" or cfg.objective.two_stage_steps:
        return cfg
    steps = two_stage_switch(cfg, cfg.preprocess.seq_len)
    return dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, two_stage_steps=steps))


def flop_rate(cfg: PretrainConfig, seq_len: int, gathered: bool = True) -> FlopRate:
    """Per-step FLOPs per token of `cfg`'s training; a FLOP budget spent before two-stage's
    switch (no discriminator phase at all) is a ConfigError."""
    if cfg.objective.algorithm != "two_stage":
        steady = _step_flops(cfg, seq_len, gathered)
        warm = cfg.objective.disc_mlm_steps  # the discriminator and its MLM head alone first
        if not warm:
            return FlopRate(((0, steady),))
        return FlopRate(((0, _masked_lm_flops(cfg, seq_len, gathered)), (warm, steady)))
    switch = two_stage_switch(cfg, seq_len)
    first, second = two_stage_phases(cfg, seq_len, gathered)
    rate = FlopRate(((0, first), (switch, second)))
    tc = cfg.train
    if tc.budget_flops and rate.steps_for(tc.budget_flops, tc.batch_size, seq_len) <= switch:
        raise ConfigError(f"train.budget_flops={tc.budget_flops:g} is spent before two-stage's switch "
                          f"at step {switch}: lower objective.two_stage_steps or raise the budget")
    return rate
