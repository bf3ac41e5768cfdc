"""Run health: cheap checks on what the loop already measures, so a run that is going wrong says
so while it runs, not after days. Each alarm is one console line and a `health` record in
metrics.jsonl with a suggested action; `electra doctor` replays the same checks on a finished or
crashed run's metrics.

The checks read only the per-interval figures the loop logs anyway (loss, gradient norm,
learning rate, generator/discriminator statistics, validation gains), so they cost no extra
host sync. An alarm fires once when its condition starts and again only after it has cleared."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from electra.config import PretrainConfig
from electra.train.validate import learned_context

# thresholds (documented in RELIABILITY.md)
GRAD_EXPLOSION_FACTOR = 10.0  # interval grad norm vs the median of the earlier intervals
LOSS_SPIKE_FACTOR = 1.1  # interval loss vs the median of the last 5 intervals (after warm-up) ...
LOSS_SPIKE_NATS = 0.3  # ... and at least this much above it (noise at log_every=1 is ~0.1-0.2)
COLLAPSE_GEN_FRACTION = 0.5  # generator accuracy fell below half its best: the run diverged
DEAD_LR_FRACTION = 1e-3  # lr below this fraction of optim.lr after 10% and before 95% of the run
GENERATOR_STRONG_ACC = 0.6  # generator guesses most masked tokens: few replacements to detect
GENERATOR_WEAK_ACC = 0.02  # after warm-up: the generator has not even learned token frequencies
COLLAPSE_ACC_MARGIN = 0.001  # discriminator accuracy within this of "everything is original"
COLLAPSE_AUC_MARGIN = 0.02  # ... and AUC within this of chance
LATE_FRACTION = 0.5  # "no context learned" is judged after half the run


@dataclass(frozen=True)
class Alarm:
    name: str
    message: str
    action: str
    stop: bool = False  # the loop ends the run (with the message) instead of going on
    rollback: bool = False  # the loop reloads the newest finite checkpoint at a lower rate (train/rollback.py)

    def record(self) -> dict[str, str]:
        return {"alarm": self.name, "message": self.message, "action": self.action}

    def line(self) -> str:
        return f"health: {self.message} -> {self.action}"


@dataclass
class HealthMonitor:
    """Feed it every train log record and every validation record, in order."""

    cfg: PretrainConfig
    max_bad_steps: int = 3
    rollbacks: int = 0  # roll-backs the run has made so far (train.on_nonfinite=rollback)
    peak_lr: float = 0.0  # the peak rate the schedule follows (lowered by roll-backs); 0: optim.lr
    run_steps: int = 0  # where the schedule ends (state.schedule_steps: a FLOP budget may come first); 0: train.steps
    _active: set[str] = field(default_factory=set)
    _grad_norms: list[float] = field(default_factory=list)
    _losses: list[float] = field(default_factory=list)
    _bad_steps: int = 0
    _best_gen_acc: float = 0.0
    _clean_step: int = 0  # the end of the last interval without a non-finite step

    @property
    def _run_length(self) -> int:
        return self.run_steps or self.cfg.train.steps

    def on_train(self, step: int, m: dict[str, float]) -> list[Alarm]:
        o, steps = self.cfg.optim, self._run_length
        warm = step > max(o.warmup_steps, 1)
        found: dict[str, Alarm | None] = {}
        bad = int(m.get("bad_steps", 0))
        self._bad_steps += bad
        found["nonfinite"] = self._nonfinite(step, bad) if bad else None
        self._clean_step = self._clean_step if bad else step
        g = m.get("grad_norm")
        if g is not None and len(self._grad_norms) >= 3:
            ref = statistics.median(self._grad_norms)
            found["grad_explosion"] = Alarm(
                "grad_explosion", f"gradient norm {g:.3g} at step {step}, {g / ref:.0f}x its median "
                f"so far ({ref:.3g})", "lower optim.lr or clip harder (optim.clip_norm=1.0)"
            ) if ref > 0 and g > GRAD_EXPLOSION_FACTOR * ref else None
        loss = m["loss"]
        if warm and len(self._losses) >= 5:
            ref = statistics.median(self._losses[-5:])
            found["loss_spike"] = Alarm(
                "loss_spike", f"loss {loss:.3f} at step {step}, {loss / ref:.2f}x the recent median "
                f"({ref:.3f})", "watch the next intervals; if it stays up, resume from the last "
                "checkpoint with a lower optim.lr"
            ) if loss > LOSS_SPIKE_FACTOR * ref and loss - ref > LOSS_SPIKE_NATS else None
        done = step / steps  # a warm-up longer than the run counts: it never reaches its rate
        peak = self.peak_lr or o.lr
        found["dead_lr"] = Alarm(
            "dead_lr", f"learning rate {m['lr']:.2e} at step {step} of {steps} is below 1/1000 of "
            f"the peak rate {peak:g}: the model barely learns", "check optim.schedule, optim.warmup_steps and "
            "train.steps (a slice of a longer run should raise train.steps, not restart it)"
        ) if 0.1 <= done < 0.95 and m["lr"] < DEAD_LR_FRACTION * peak else None
        gen_acc = m.get("gen_acc")
        if gen_acc is not None and self.cfg.objective.mlm_weight > 0:
            found["generator_strong"] = Alarm(
                "generator_strong", f"the generator guesses {100 * gen_acc:.0f}% of masked tokens: "
                "few replacements are left for the discriminator", "use a smaller generator "
                "(objective.generator_size=0.25) or a higher objective.temperature"
            ) if gen_acc > GENERATOR_STRONG_ACC and self.cfg.objective.detects_replacements else None
            found["generator_weak"] = Alarm(
                "generator_weak", f"generator accuracy {gen_acc:.3f} at step {step}, after warm-up: "
                "it has not learned even token frequencies", "check optim.lr and objective.mlm_weight"
            ) if step > 2 * max(o.warmup_steps, 1) and gen_acc < GENERATOR_WEAK_ACC else None
            found["diverged"] = Alarm(
                "diverged", f"generator accuracy fell from {self._best_gen_acc:.3f} to {gen_acc:.3f} "
                f"at step {step}: training has diverged", "resume from a checkpoint before the fall "
                "with a lower optim.lr (electra pretrain --resume --out RUN optim.lr=...)"
            ) if self._best_gen_acc >= 0.05 and gen_acc < COLLAPSE_GEN_FRACTION * self._best_gen_acc else None
            self._best_gen_acc = max(self._best_gen_acc, gen_acc)
        if g is not None and g == g:  # finite norms only
            self._grad_norms.append(g)
        if loss == loss:
            self._losses.append(loss)
        return self._fire(found)

    def on_valid(self, step: int, m: dict[str, float]) -> list[Alarm]:
        steps, found = self._run_length, {}
        after_warmup = step > max(self.cfg.optim.warmup_steps, 1)
        if "disc_auc" in m and self.cfg.objective.detects_replacements and after_warmup:
            gain = m["disc_acc"] - m["baseline_acc"]
            collapsed = gain < COLLAPSE_ACC_MARGIN and m["disc_auc"] - 0.5 < COLLAPSE_AUC_MARGIN
            does = ("calls every token original" if abs(gain) < COLLAPSE_ACC_MARGIN else
                    "does no better than calling every token original")  # e.g. stuck on "replaced"
            found["disc_collapse"] = Alarm(
                "disc_collapse", f"the discriminator {does} (accuracy {m['disc_acc']:.4f} vs "
                f"{m['baseline_acc']:.4f} all-original, AUC {m['disc_auc']:.3f})",
                "make replacements easier to spot: objective.temperature=1.5, a smaller "
                "objective.generator_size, or an MLM warm start (objective.disc_mlm_steps)"
            ) if collapsed else None
        if "gain_mlm_loss" in m and step >= LATE_FRACTION * steps:
            gen_ok, disc_ok = learned_context(m)
            needs_disc = "gain_disc_auc" in m and self.cfg.objective.detects_replacements
            behind = [f"the generator (gain {m['gain_mlm_loss']:+.3f} nats over unigram+copy)"] * (not gen_ok)
            if needs_disc and not disc_ok:
                behind.append(f"the discriminator (AUC gain {m['gain_disc_auc']:+.3f} over token identity)")
            found["no_context"] = Alarm(
                "no_context", f"at step {step} of {steps} {' and '.join(behind)} still scores like "
                "a context-free baseline", "train longer (train.steps), or see RESULTS.md for "
                "CPU-scale recipes") if behind else None
        return self._fire(found)

    def _nonfinite(self, step: int, bad: int) -> Alarm:
        tc = self.cfg.train
        roll = tc.on_nonfinite == "rollback" and self.rollbacks < tc.max_rollbacks
        then = (f"after {self.max_bad_steps} such steps the run rolls back to its newest finite "
                f"checkpoint at {tc.rollback_lr_factor:g}x the rate (roll-back {self.rollbacks + 1} "
                f"of {tc.max_rollbacks})" if roll else f"the run stops after {self.max_bad_steps} such steps")
        limit = self._bad_steps >= self.max_bad_steps
        return Alarm("nonfinite", f"{bad} step(s) up to step {step} had a non-finite loss or gradient "
                     f"({self._bad_steps} since the run (re)started; their updates were skipped where the "
                     f"device allows)", f"lower optim.lr (or use train.precision=fp32); {then}",
                     stop=limit and not roll, rollback=limit and roll)

    def on_record(self, r: dict) -> list[Alarm]:
        """Any metrics.jsonl record, as read back (resume, roll-back, `electra doctor`): train and
        valid records are checked, a roll-back record sets the rate the run went on at, a record
        from an older version that lacks a field is skipped."""
        if r.get("alarm") == "rollback" and isinstance(r.get("lr"), (int, float)):
            self.peak_lr = float(r["lr"])
        try:
            if r.get("kind") == "train":
                return self.on_train(r["step"], r)
            if r.get("kind") == "valid":
                return self.on_valid(r["step"], r)
        except (KeyError, TypeError):
            pass
        return []

    def replay(self, records: Iterable[dict]) -> None:
        """Catch up, without firing, with the records a run kept before it resumed or rolled
        back, so an alarm that fired then and still holds is not logged a second time. The
        non-finite count starts again: it counts the steps since this (re)start."""
        for r in records:
            self.on_record(r)
        self._bad_steps = 0

    @property
    def clean_step(self) -> int:
        """The last logged step whose interval had no non-finite step (0: none yet). A roll-back
        goes to a checkpoint from before it, so that the update that made the weights blow up
        (the one before the first non-finite gradient) is not in it."""
        return self._clean_step

    @property
    def active(self) -> frozenset[str]:
        """Alarms whose condition held at the last check (e.g. for `electra doctor`)."""
        return frozenset(self._active)

    def _fire(self, found: dict[str, Alarm | None]) -> list[Alarm]:
        fired = []
        for name, alarm in found.items():
            if alarm is None:
                self._active.discard(name)
            elif name not in self._active or alarm.stop or name == "nonfinite":
                self._active.add(name)
                fired.append(alarm)
        return fired
