"""The pre-training loop, readable top to bottom.

One iteration = `grad_accum` micro-batches (the objective masks on the device, runs generator and
discriminator, returns the loss) -> backward, then one `optimizer_step`. Every `log_every` steps
one console line and a metrics.jsonl record, every `eval_every` a validation pass (and the
fine-tuning probe if one is passed in), every `save_every` an atomic checkpoint. The loop reads
the same on 1 CPU and N GPUs; `api.pretrain` prepares the data and the process context."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from electra.config import PretrainConfig, TrainConfig
from electra.data.shards import ShardReader
from electra.errors import ConfigError
from electra.model.dropout import resolve_dropout_kernel
from electra.model.layers import Encoder
from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.train.cpu_runtime import setup_allocator
from electra.train.distributed import Context
from electra.train.flops import FlopRate, flop_rate
from electra.train.health import Alarm, HealthMonitor
from electra.train.log import Meter, MetricsLogger, format_count, format_duration, read_metrics
from electra.train.optim import optimizer_step, peak_lr
from electra.train.precision import describe
from electra.train.preempt import StopControl
from electra.train.rollback import recover
from electra.train.state import (
    InitFrom,
    RunData,
    TrainState,
    build_state,
    restore,
    save,
    schedule_steps,
)
from electra.train.validate import Validator, context_line

log = logging.getLogger(__name__)

Probe = Callable[[Encoder], dict]  # a short fine-tune of a copy of the encoder -> dev metrics


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    tokens: int
    valid: dict[str, float]
    preempted: bool = False  # stopped by SIGTERM after a checkpoint; resume continues it


def pretrain(cfg: PretrainConfig, data: RunData, run_dir: Path, ctx: Context, *,
             resume: bool = False, init: InitFrom | None = None, probe: Probe | None = None
             ) -> PretrainResult:
    """Train `cfg` on `data`, writing checkpoints and metrics under `run_dir` (which already holds
    config.json and tokenizer/); `resume` continues from its newest checkpoint."""
    # ---- setup --------------------------------------------------------------------------------
    tc = cfg.train
    state = build_state(cfg, data, ctx, init=None if resume else init)
    if resume:
        restore(state, run_dir / "checkpoints", data.tokenizer, ctx.info.rank, cfg.optim.lr, data.manifest.digest())
    rate = flop_rate(cfg, data.seq_len)  # FLOPs per token by step (two_stage: two phases)
    last_step = end_step(tc, state.step, rate, data.seq_len)  # this invocation's last step
    run_end = schedule_steps(cfg, data.seq_len)  # the run's (a FLOP budget may come first)
    model, precision = state.model, state.precision
    step_fn = dist.wrap_model(model, ctx.info, ctx.device,
                              some_parameters_idle=model.has_idle_parameters)
    step_fn = torch.compile(step_fn) if tc.compile else step_fn
    logger = MetricsLogger(run_dir, enabled=ctx.is_main, resume_step=state.step if resume else None)
    validator = make_validator(tc, data, state, ctx) if ctx.is_main else None
    meter = Meter(model.STAT_NAMES, ctx.device)
    health = HealthMonitor(cfg, max_bad_steps=tc.max_bad_steps, rollbacks=state.rollbacks,
                           peak_lr=peak_lr(state.optimizer, state.scheduler), run_steps=run_end)
    if resume:  # alarms that fired before the checkpoint and still hold are not logged again
        health.replay(read_metrics(run_dir / "metrics.jsonl")[0])
    log_setup(cfg, state, ctx, rate.mean(last_step))
    valid_metrics: dict[str, float] = {}
    path: Path | None = None
    first_step, t_start = state.step, time.perf_counter()
    control = StopControl(tc.save_every_minutes, ctx.device, tc.budget_minutes)
    stop = False

    model.train()
    while state.step < last_step:
        # ---- step: grad_accum micro-batches, then one optimizer update ---------------------
        model.set_step(state.step)
        for micro in range(tc.grad_accum):
            batch = state.loader.next_batch().to(ctx.device)
            model.set_word_bits(batch.continues_word)  # the shards' word segmentation, if any
            with dist.no_sync_unless(step_fn, micro == tc.grad_accum - 1):
                with precision.autocast():
                    out = step_fn(batch.input_ids, batch.token_type_ids, batch.attention_mask)
                precision.scaler.scale(out.loss / tc.grad_accum).backward()
            meter.add(out.loss, out.stats, batch.attention_mask, tc.grad_accum)
        norm = optimizer_step(model, state.optimizer, state.scheduler, precision.scaler,
                              cfg.optim.clip_norm, skip_nonfinite=ctx.device.type == "cpu")
        meter.add_step(norm, count_nonfinite_grads=not precision.scaler.is_enabled())
        state.step += 1
        step = state.step
        at_end = step == last_step or control.budget_spent(step, tc.log_every, ctx.info.world_size,
                                                           dist.all_reduce_max)

        # ---- log (the only host sync of a normal step) --------------------------------------
        if step % tc.log_every == 0 or step % tc.save_every == 0 or at_end:
            metrics = read_train_metrics(meter, state, cfg, rate, ctx.info.world_size)
            if step % tc.log_every == 0 or at_end:
                eta = (last_step - step) * (time.perf_counter() - t_start) / (step - first_step)
                log_train(step, run_end, metrics, eta, ctx, cfg.objective.detects_replacements)
            logger.write("train", step, metrics)
            halt = report_health(health.on_train(step, metrics), step, logger)
            if halt is not None:  # too many non-finite steps: stop, or roll back (train.on_nonfinite)
                logger, health = recover(halt, health, state, cfg, data.tokenizer, ctx, run_dir, logger)
                first_step, t_start = state.step, time.perf_counter()
                continue

        # ---- eval (main process; the others wait at the barrier) ----------------------------
        if step % tc.eval_every == 0 or at_end:
            if validator is not None and len(validator):
                valid_metrics = validator(model)
                log.info("valid @%d | %s", step, context_line(valid_metrics))
                logger.write("valid", step, valid_metrics)
                report_health(health.on_valid(step, valid_metrics), step, logger)
            dist.barrier()
            meter.restart_clock()

        # ---- probe: a short fine-tune of a copy of the encoder ------------------------------
        if probe is not None and (step % (cfg.eval.every or tc.eval_every) == 0 or at_end):
            if ctx.is_main:
                logger.write("probe", step, probe(model.encoder))
            dist.barrier()
            meter.restart_clock()

        # ---- save (on schedule, every save_every_minutes, and on SIGTERM: then stop) ---------
        stop, due = control.check(step, tc.log_every, ctx.info.world_size, dist.all_reduce_max)
        if step % tc.save_every == 0 or at_end or due:
            if meter.micro_batches:  # a timed save between log steps: the checkpoint counts them
                logger.write("train", step, read_train_metrics(meter, state, cfg, rate,
                                                               ctx.info.world_size))
            path = save(state, cfg, data, ctx, run_dir, rate.mean(state.step))
            control.saved()
            meter.restart_clock()
        if stop:
            log.warning("SIGTERM: stopped after step %d with a checkpoint (%s)", step, path)
            break
        if at_end:  # train.steps, train.stop_at or a budget reached
            break

    control.close()
    logger.close()
    return PretrainResult(run_dir=run_dir, checkpoint=path, step=state.step, tokens=state.tokens,
                          valid=valid_metrics, preempted=stop)


def make_validator(tc: TrainConfig, data: RunData, state: TrainState, ctx: Context) -> Validator:
    """Fixed held-out rows, masks and samples, and the context-free references' training rows."""
    if data.manifest.splits["valid"].rows == 0:
        log.warning("%s has no validation rows: this run cannot measure what it learns (no "
                    "context gains); re-run electra preprocess, which holds rows out", data.dir)
    return Validator(ShardReader(data.dir, "valid", manifest=data.manifest), state.loader.reader,
                     rows=tc.eval_rows, batch_size=state.micro_batch, pad_id=data.tokenizer.pad_id,
                     sep_id=data.tokenizer.sep_id, special_ids=tuple(sorted(data.tokenizer.special_ids)),
                     device=ctx.device, precision=state.precision, seed=tc.seed + 999)


def end_step(tc: TrainConfig, step: int, rate: FlopRate, seq_len: int) -> int:
    """Where this invocation stops: `train.stop_at` (a slice of a longer run), `train.steps`, or
    the step that spends `train.budget_flops` (each step counted as batch x seq_len tokens)."""
    if step >= tc.steps:
        raise ConfigError(f"the run is already at step {step} of train.steps={tc.steps}; raise "
                          "train.steps to continue it")
    last = min(tc.stop_at, tc.steps) if tc.stop_at else tc.steps
    if tc.budget_flops:
        spent_at = rate.steps_for(tc.budget_flops, tc.batch_size, seq_len)
        if spent_at <= step:
            raise ConfigError(f"train.budget_flops={tc.budget_flops:g} is spent by step {spent_at}; "
                              f"the run is at step {step}: raise the budget to continue it")
        last = min(last, spent_at)
    if last <= step:
        raise ConfigError(f"train.stop_at={tc.stop_at} is not after the checkpoint's step {step}")
    return last


def read_train_metrics(meter: Meter, state: TrainState, cfg: PretrainConfig,
                       rate: FlopRate, world_size: int) -> dict[str, float]:
    sums, micro_batches, seconds = meter.read(dist.all_reduce_sum)
    state.tokens += int(sums["tokens"])
    steps = micro_batches / cfg.train.grad_accum  # summed over processes
    return {"loss": sums["loss"] / steps, **state.model.summarize(sums, micro_batches),
            "lr": state.scheduler.get_last_lr()[0], "tokens": state.tokens,
            "tokens_per_s": sums["tokens"] / max(seconds, 1e-9), "seconds": seconds,
            "flops": rate.spent(state.step, state.tokens), "grad_norm": sums["grad_norm"] / steps,
            "bad_steps": round(sums["bad_steps"] / world_size)}


def report_health(alarms: list[Alarm], step: int, logger: MetricsLogger) -> Alarm | None:
    """One console line and one metrics.jsonl record per alarm. Returns the alarm that ends
    this stretch of training (too many non-finite steps), if any, for `rollback.recover`."""
    for alarm in alarms:
        log.warning("%s", alarm.line())
        logger.write("health", step, alarm.record())
    return next((a for a in alarms if a.stop or a.rollback), None)


def log_setup(cfg: PretrainConfig, state: TrainState, ctx: Context, flops_per_token: float) -> None:
    if not ctx.is_main:
        return
    n_params = sum(p.numel() for p in ckpt.model_state(state.model).values())
    runtime = describe(cfg.train.precision, state.precision.name, ctx.device)
    if ctx.device.type == "cpu":  # both are speed-only settings (BENCHMARKS.md)
        runtime += f", {setup_allocator(cfg.train.allocator)}"
    if cfg.model.dropout > 0 or cfg.model.attention_dropout > 0:
        runtime += f", {resolve_dropout_kernel(cfg.train.dropout_kernel, ctx.device)} dropout masks"
    runtime += f", {state.model.sample_kernel} samples"  # as use_speed_settings resolved it
    log.info("model: %s parameters (encoder %s) | precision %s | device %s x%d | batch %d = %d x %d "
             "accum x %d proc | %.1fM FLOPs/token", format_count(n_params),
             format_count(sum(p.numel() for p in state.model.encoder.parameters())), runtime, ctx.device,
             ctx.info.world_size, cfg.train.batch_size,
             state.micro_batch, cfg.train.grad_accum, ctx.info.world_size, flops_per_token / 1e6)


def log_train(step: int, total: int, m: dict[str, float], eta: float, ctx: Context,
              rtd: bool = True) -> None:
    """One console line; the RTD figures only for objectives that detect replacements (for
    MLM-style kinds they would be zeros)."""
    if not ctx.is_main:
        return
    disc = f" | rtd {m['rtd_loss']:.4f} | disc_acc {m['disc_acc']:.3f}" if rtd else ""
    extra = f" | model mlm {m['disc_mlm_loss']:.3f}" if "disc_mlm_loss" in m else ""
    extra += f" | sop_acc {m['sop_acc']:.3f}" if "sop_acc" in m else ""  # ALBERT's sentence order
    log.info("step %d/%d | loss %.4f | mlm %.3f | gen_acc %.3f%s%s | lr %.2e | %s tok/s | ETA %s",
             step, total, m["loss"], m["mlm_loss"], m["gen_acc"], disc, extra, m["lr"],
             format_count(m["tokens_per_s"]), format_duration(eta))
