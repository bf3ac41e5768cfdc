"""How the generator and discriminator are trained and how their losses are weighed: the
`objective.algorithm` and `objective.loss_weighting` fields of `ObjectiveConfig`, with the checks
of their combinations (kept here so `config.py` stays one screenful per section).

    electra pretrain objective.algorithm=two_stage objective.generator_size=1.0 objective.sharing=none
    electra pretrain objective.algorithm=adversarial
    electra pretrain objective.loss_weighting=uncertainty"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from electra.errors import ConfigError

if TYPE_CHECKING:
    from electra.config import ObjectiveConfig

# joint: the paper's ELECTRA; two_stage and adversarial: its Figure 3 (right) alternatives
ALGORITHMS = ("joint", "two_stage", "adversarial")
LOSS_WEIGHTINGS = ("fixed", "uncertainty", "schedule")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(kw_only=True)
class AlgorithmConfig:
    """`algorithm`: `joint` (G by maximum likelihood and D by RTD in every step, the paper's
    default); `two_stage` (G alone by MLM for `two_stage_steps`, then D starts as a copy of G and
    trains by RTD while G stays frozen; 0: half of the run, resolved against the data when the run
    starts); `adversarial` (G trained by REINFORCE to maximise D's RTD loss, after
    `adversarial_mlm_steps` maximum-likelihood steps; the reward's baseline is a running mean
    with decay `reinforce_baseline_decay`).

    `loss_weighting` of `mlm_weight * MLM + disc_weight * RTD` (joint training only): `fixed`
    (the paper's lambda = disc_weight), `uncertainty` (learned log-variances, Kendall et al.
    2018, starting at the fixed weights), `schedule` (lambda moves linearly from
    `disc_weight_start` to `disc_weight` over `disc_weight_steps`)."""

    algorithm: str = "joint"
    two_stage_steps: int = 0
    adversarial_mlm_steps: int = 0
    reinforce_baseline_decay: float = 0.99
    loss_weighting: str = "fixed"
    disc_weight_start: float = 1.0
    disc_weight_steps: int = 0


def check_algorithm(o: ObjectiveConfig) -> None:
    """Called by `ObjectiveConfig.__post_init__` once its own fields are checked."""
    kind, sharing, alg, weighting = o.kind, o.sharing, o.algorithm, o.loss_weighting
    _check(alg in ALGORITHMS, f"objective.algorithm={alg!r} is not one of {', '.join(ALGORITHMS)}")
    _check(weighting in LOSS_WEIGHTINGS,
           f"objective.loss_weighting={weighting!r} is not one of {', '.join(LOSS_WEIGHTINGS)}")
    _check(o.two_stage_steps >= 0 and o.adversarial_mlm_steps >= 0 and o.disc_weight_steps >= 0,
           "objective.two_stage_steps, adversarial_mlm_steps and disc_weight_steps must be >= 0")
    _check(o.two_stage_steps == 0 or alg == "two_stage",
           "objective.two_stage_steps is the two-stage switch: set objective.algorithm=two_stage")
    _check(o.adversarial_mlm_steps == 0 or alg == "adversarial",
           "objective.adversarial_mlm_steps warms up the adversarial generator: set objective.algorithm=adversarial")
    _check(0.0 <= o.reinforce_baseline_decay < 1.0, "objective.reinforce_baseline_decay must be in [0, 1)")
    if alg != "joint":
        _check(kind == "electra", f"objective.algorithm={alg} trains ELECTRA's generator and "
               f"discriminator; objective.kind={kind} is not ELECTRA: use objective.kind=electra")
        _check(o.disc_weight > 0 and o.disc_mlm_steps == 0,
               f"objective.algorithm={alg} needs replaced token detection from its start: set "
               "objective.disc_weight > 0 and objective.disc_mlm_steps=0")
        _check(getattr(o, "sop_weight", 0.0) == 0, f"objective.algorithm={alg} trains no "
               "sentence-order head: set objective.sop_weight=0")
        _check(sharing != "all", f"objective.algorithm={alg} keeps the generator apart from the "
               "discriminator; objective.sharing=all makes them one: use objective.sharing=none")
    _check(alg != "two_stage" or sharing == "none", "objective.algorithm=two_stage freezes the "
           "generator while the discriminator trains, so they cannot share embeddings: set objective.sharing=none")
    if weighting != "fixed":
        _check(alg == "joint", f"objective.loss_weighting={weighting} weighs the joint losses; "
               f"objective.algorithm={alg} trains them apart: use objective.loss_weighting=fixed")
        _check(kind in ("electra", "electra15") and o.disc_mlm_steps == 0,
               f"objective.loss_weighting={weighting} weighs MLM against RTD: use objective.kind="
               "electra or electra15 and objective.disc_mlm_steps=0")
        _check(o.mlm_weight > 0 and o.disc_weight > 0,
               f"objective.loss_weighting={weighting} needs both losses: set mlm_weight and disc_weight > 0")
    _check(weighting != "schedule" or (o.disc_weight_steps >= 1 and o.disc_weight_start >= 0),
           "objective.loss_weighting=schedule moves lambda over objective.disc_weight_steps: set it "
           ">= 1 (and objective.disc_weight_start >= 0)")


def check_algorithm_sizes(o: ObjectiveConfig, same_size: bool, steps: int) -> None:
    """Called by `PretrainConfig.__post_init__`: `same_size` is generator == discriminator."""
    if o.algorithm != "two_stage":
        return
    _check(same_size, "objective.algorithm=two_stage initialises the discriminator from the "
           "generator, so they must be the same size: set objective.generator_size=1.0 (and no "
           "generator_layers / generator_hidden_size / generator_heads / generator_intermediate_size)")
    _check(o.two_stage_steps < steps, f"objective.two_stage_steps={o.two_stage_steps} leaves "
           f"no discriminator phase before train.steps={steps}: lower it (0: half of the run)")
