"""Optimizer and learning-rate schedules.

Parameter groups exclude biases and LayerNorm weights from weight decay (BERT/ELECTRA rule).
`AdamW` adds the one thing torch's lacks: google-research/electra's Adam *without* bias
correction (`bias_correction=False`); with bias correction it is torch's own (fused/foreach).
`layerwise_lr_scales` gives fine-tuning's per-parameter LR multipliers (layer-wise decay), and
`optimizer_step` is the one update that pre-training, fine-tuning, `plan` and the benchmarks run."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from electra.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None
                 ) -> list[dict]:
    """Split parameters into decay / no-decay groups (optionally one per `lr_scale` entry).

    `lr_scale` maps parameter names to a learning-rate multiplier (layer-wise LR decay); each
    group carries it as `lr_scale`, which `build_scheduler` applies on top of the schedule."""
    no_decay = set()
    for mod_name, mod in model.named_modules():
        # LayerNorms, and modules that say so (objective.weighting's learned log-variances)
        if isinstance(mod, nn.LayerNorm) or getattr(mod, "no_weight_decay", False):
            no_decay.update(f"{mod_name}.{n}" if mod_name else n for n, _ in mod.named_parameters(recurse=False))
    groups: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():  # de-duplicated: shared weights appear once
        if not p.requires_grad:
            continue
        decay = 0.0 if (name in no_decay or name.endswith("bias")) else weight_decay
        scale = lr_scale.get(name, 1.0) if lr_scale else 1.0
        g = groups.setdefault((decay, scale), {"params": [], "names": [], "weight_decay": decay,
                                               "lr_scale": scale})
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


class AdamW(torch.optim.Optimizer):
    """Decoupled-weight-decay Adam; with `bias_correction=False` exactly G-EL's
    AdamWeightDecayOptimizer: p -= lr * (m / (sqrt(v) + eps) + wd * p)."""

    def __init__(self, params: Iterable, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - standard optimizer API
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            ms, vs = [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ms.append(state["exp_avg"])
                vs.append(state["exp_avg_sq"])
            grads = [p.grad for p in params]
            torch._foreach_lerp_(ms, grads, 1 - b1)  # m = b1*m + (1-b1)*g
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            denom = torch._foreach_sqrt(vs)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, ms, denom, value=-lr)
        return None


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr_scale: dict[str, float] | None = None
                    ) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, lr_scale)
    betas = (cfg.beta1, cfg.beta2)
    if not cfg.bias_correction:
        return AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
    # torch's fused kernel: one pass over each tensor on CPU as on GPU; about 3x faster than
    # foreach on CPU (BENCHMARKS.md, section 0c)
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, fused=fused or None)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state but keep this process's kernel choice: torch restores
    each group's saved `fused`/`foreach` flags, so a checkpoint written before the fused CPU
    kernel (or on another device) would otherwise run the slower path for the rest of the run.
    Both paths compute the same update (tests/test_speed_paths.py)."""
    optimizer.load_state_dict(state)
    if "fused" not in optimizer.defaults:  # our own AdamW (no bias correction): one path
        return
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = optimizer.defaults["fused"], optimizer.defaults["foreach"]
        if group["fused"]:  # the fused kernel keeps its step counts on the parameter's device
            for p in group["params"]:
                st = optimizer.state.get(p, {})
                if "step" in st:
                    st["step"] = torch.as_tensor(st["step"], dtype=torch.float32, device=p.device)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak LR for the update made at `step` (0-based)."""
    warm = min(1.0, step / warmup) if warmup > 0 else 1.0
    if schedule == "original":  # G-EL: linear decay over all steps *times* the warmup ramp
        return warm * max(0.0, 1.0 - step / total)
    if step < warmup:
        return warm
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0  # constant


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(scale: float):
        return lambda step: scale * lr_factor(step, total_steps, cfg.warmup_steps, cfg.schedule)

    lambdas = [factor(g.get("lr_scale", 1.0)) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def peak_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> float:
    """The peak rate the schedule now follows: optim.lr, or what a resume or roll-back made it."""
    return scheduler.base_lrs[0] / optimizer.param_groups[0].get("lr_scale", 1.0)


def rebase_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
              lr: float) -> float | None:
    """After loading a checkpoint's optimizer and schedule: apply a peak rate the user changed on
    resume (e.g. halving it after a divergence), which the loaded state would silently undo.
    Returns the old peak rate when it changed, else None."""
    want = [lr * g.get("lr_scale", 1.0) for g in optimizer.param_groups]
    old, old_peak = scheduler.base_lrs, peak_lr(optimizer, scheduler)
    if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(old, want, strict=True)):
        return None
    scheduler.base_lrs = want
    for group, base in zip(optimizer.param_groups, want, strict=True):
        group["initial_lr"] = base
    resync_lr(optimizer, scheduler)
    return old_peak


def resync_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Each group's rate from the schedule of this invocation at the loaded step: a loaded
    optimizer holds the rate of the schedule it was saved under, which `train.steps`,
    `optim.warmup_steps` or `train.budget_flops` given on resume change. Unchanged schedules give
    the saved rate exactly (the same product LambdaLR computes)."""
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def layerwise_lr_scales(names: Iterable[str], num_layers: int, decay: float, mode: str = "correct",
                        prefix: str = "encoder.", aliases: dict[str, list[str]] | None = None
                        ) -> dict[str, float]:
    """Layer-wise LR decay: parameter name -> LR multiplier `decay ** (top - depth)`.

    depth: embeddings (and the E->H projection, DeBERTa's relative-position table) 0, encoder
    layer i -> i + 1, anything else (the task head) `top`. `correct`: top = L + 1, so the head gets lr, the last layer lr*d and the
    embeddings lr*d^(L+1). `original` reproduces google-research/electra's `_get_layer_lrs`, whose
    head depth is L + 2 (issue #51): every encoder parameter gets one extra factor of d.

    `aliases` (`parameter_aliases`): every name of a weight used at several depths (ALBERT's
    shared layers). Such a weight gets the mean of its uses' multipliers: its gradient is the sum
    of the uses' gradients, and the mean rate moves it as the untied copies would move on average."""
    if mode not in ("correct", "original"):
        raise ValueError(f"unknown layer-wise decay mode {mode!r}")
    top = num_layers + 1 if mode == "correct" else num_layers + 2
    layer = re.compile(rf"^{re.escape(prefix)}layers\.(\d+)\.")

    def depth(name: str) -> int:
        if name.startswith((f"{prefix}embeddings.", f"{prefix}project.", f"{prefix}relative.")):
            return 0
        m = layer.match(name)
        return int(m.group(1)) + 1 if m else top

    scales = {}
    for name in names:
        uses = (aliases or {}).get(name, [name])
        scales[name] = sum(decay ** (top - depth(u)) for u in uses) / len(uses)
    return scales


def parameter_aliases(model: nn.Module) -> dict[str, list[str]]:
    """The first name of each parameter (as `named_parameters` reports it) -> all its names, for
    the parameters registered under several (shared modules)."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return {all_names[0]: all_names for all_names in names.values() if len(all_names) > 1}


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler,
                   scaler: torch.amp.GradScaler, clip_norm: float, *,
                   skip_nonfinite: bool = False) -> torch.Tensor:
    """One update after backward: unscale (fp16), clip the global gradient norm (0: off), step,
    update the loss scale, clear the gradients, advance the schedule. Returns the gradient norm
    (before clipping, on the device) for the health checks.

    `skip_nonfinite` drops an update whose gradients hold NaN/inf instead of writing them into
    the weights; it reads the norm on the host, so the loop asks for it only where that sync is
    free (CPU). fp16 needs no help: its loss scaler already skips such steps."""
    scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.grad is not None]
    if clip_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if skip_nonfinite and not scaler.is_enabled() and not bool(torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        return norm
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return norm
