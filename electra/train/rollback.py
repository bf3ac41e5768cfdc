"""What the loop does when too many steps had a non-finite loss or gradient: stop with the
command that resumes at a lower rate (`train.on_nonfinite=stop`, the default), or roll back
(`rollback`): reload the newest checkpoint whose weights are finite and go on at
`train.rollback_lr_factor` x the rate, at most `train.max_rollbacks` times.

A roll-back loses what a kill would, the steps after the checkpoint, so it is handled like a
resume: metrics.jsonl is cut back to the checkpoint's step (TensorBoard purged after it), the
health checks catch up from what is left, and one console line and one `health` record say
what happened. The lower rate lives in the optimizer's schedule, so every later checkpoint
holds it and `--resume` keeps it (`state.restore`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from electra.config import PretrainConfig
from electra.data.tokenizer import Tokenizer
from electra.errors import DataError
from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.train.distributed import Context
from electra.train.health import Alarm, HealthMonitor
from electra.train.log import MetricsLogger, read_metrics
from electra.train.optim import peak_lr, rebase_lr
from electra.train.state import TrainState, load_checkpoint

log = logging.getLogger(__name__)


def recover(halt: Alarm, health: HealthMonitor, state: TrainState, cfg: PretrainConfig,
            tokenizer: Tokenizer, ctx: Context, run_dir: Path, logger: MetricsLogger
            ) -> tuple[MetricsLogger, HealthMonitor]:
    """After `health` raised `halt` (too many non-finite steps): raise the stop error, or roll
    `state` back and return the metrics logger and health monitor to go on with."""
    logger.close()
    tc, step, lr = cfg.train, state.step, peak_lr(state.optimizer, state.scheduler)
    target = finite_checkpoint(run_dir / "checkpoints", health.clean_step) if halt.rollback else None
    if target is None:
        why = (f", and no checkpoint from before step {health.clean_step} (the last clean interval) is "
               "intact with finite weights to roll back to") if halt.rollback else ""
        raise stop_error(f"{halt.message}{why}", step, run_dir, lr, resumable=not halt.rollback)
    new_lr, rollbacks = lr * tc.rollback_lr_factor, state.rollbacks + 1
    load_checkpoint(state, target, tokenizer, ctx.info.rank)
    if ctx.is_main:  # the checkpoints past the target hold the run that went wrong: a later --resume
        ckpt.set_aside_after(run_dir / "checkpoints", target)  # must not pick them up
    dist.barrier()
    rebase_lr(state.optimizer, state.scheduler, new_lr)
    state.rollbacks = rollbacks
    back = Alarm("rollback", f"too many non-finite steps (train.max_bad_steps={tc.max_bad_steps}) by "
                 f"step {step}: rolled back to {target.name}, optim.lr {lr:g} -> {new_lr:g} for the rest "
                 f"of the run (roll-back {rollbacks} of {tc.max_rollbacks})", "if it recurs, start from "
                 f"a lower optim.lr; after train.max_rollbacks={tc.max_rollbacks} roll-backs the run stops")
    logger = MetricsLogger(run_dir, enabled=ctx.is_main, resume_step=state.step)
    log.warning("%s", back.line())
    logger.write("health", state.step, {**back.record(), "from_step": step, "lr": new_lr})
    dist.barrier()  # the main process has cut metrics.jsonl back before anyone reads it
    health = HealthMonitor(cfg, max_bad_steps=tc.max_bad_steps, rollbacks=rollbacks, peak_lr=new_lr,
                           run_steps=health.run_steps)
    health.replay(read_metrics(run_dir / "metrics.jsonl")[0])
    return logger, health


def finite_checkpoint(ckpt_dir: Path, before: int) -> Path | None:
    """The newest checkpoint from before step `before` whose files are intact and weights
    finite, or None. (On CPU a non-finite update is skipped, but the update before it, which
    made the weights blow up, was not; on GPUs a checkpoint may hold NaN.)"""
    for step, path in reversed(ckpt.list_checkpoints(ckpt_dir)):
        if step < before and ckpt.problem(path) is None and all(
                bool(torch.isfinite(t).all()) for t in ckpt.load_weights(path).values()):
            return path
    return None


def stop_error(why: str, step: int, run_dir: Path, lr: float, resumable: bool) -> DataError:
    """The one-line error that ends the run, with the command that continues it (`resumable`:
    from its newest checkpoint) at half the rate."""
    last = ckpt.list_checkpoints(run_dir / "checkpoints") if resumable else []
    return DataError(f"stopped at step {step}: {why}; " + (
        f"continue from {last[-1][1].name} with a lower rate: electra pretrain --resume "
        f"--out {run_dir} optim.lr={lr / 2:g}" if last else
        f"start again with a lower rate (optim.lr={lr / 2:g})"))
