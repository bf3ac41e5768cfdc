"""`electra plan`: how long a pre-training run takes, and what fits a time budget.

    electra plan --preset base --tokens 1e10
    electra plan --preset small --budget 8h
    electra plan --preset base --steps 766000 --gpu h100 --mfu 0.4

Throughput is measured with a few real training steps on this machine (or, with `--gpu`, taken
from the card's peak and an assumed MFU), then turned into time, FLOPs, memory and checkpoint
size with the same FLOP counter as the training logs. Other presets are scaled from the
measured FLOP rate, so one measurement answers "what fits in my budget"."""

from __future__ import annotations

import dataclasses
import re
import resource
import time
from dataclasses import dataclass

import torch

from electra.config import PRESETS, PretrainConfig, apply_overrides, preset
from electra.errors import ConfigError
from electra.objective import TokenIds, build_objective
from electra.train.distributed import resolve_device
from electra.train.flops import electra_train_flops, flop_rate
from electra.train.optim import build_optimizer, build_scheduler, optimizer_step
from electra.train.precision import Precision
from electra.train.state import schedule_steps, use_process_settings, use_speed_settings

# dense bf16 peak FLOP/s (fp16 tensor cores for V100), the usual MFU denominators
GPU_PEAK = {"v100": 125e12, "t4": 65e12, "a10": 125e12, "l4": 121e12, "a6000": 155e12,
            "a100": 312e12, "h100": 989e12, "h200": 989e12}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """'8h', '90m', '2d', '3600s' -> seconds. A bare number is refused: '8' is as likely to mean
    hours as seconds."""
    m = _DURATION.match(text)
    if not m or not m.group(2) or float(m.group(1)) <= 0:
        raise ConfigError(f"--budget {text!r} is not a positive duration with a unit; use e.g. 45m, 8h, 2d "
                          "or 3600s")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parameter_count(cfg: PretrainConfig) -> int:
    with torch.device("meta"):  # shapes only: no memory, no init cost even for `large`
        model = build_objective(cfg, TokenIds.standard())
    return sum(p.numel() for p in model.parameters())  # shared weights counted once


@dataclass(frozen=True)
class Throughput:
    tokens_per_s: float
    flops_per_s: float
    source: str  # how it was obtained, for the report
    peak_memory_bytes: int | None  # measured activation + state peak at `micro_batch`
    micro_batch: int


def measure(cfg: PretrainConfig, seq_len: int, micro_batch: int, steps: int = 3,
            device: str = "auto") -> Throughput:
    """Time `steps` real training steps (after one warm-up) on random ids, with the settings a run
    applies (threads, allocator, dropout and sampling kernels, checkpointing), so the plan times
    what the run would run (train.compile aside: its compile time would swamp a few steps)."""
    dev = resolve_device(device)
    use_process_settings(cfg.train)
    model = build_objective(cfg, TokenIds.standard()).to(dev).train()
    use_speed_settings(model, cfg.train, dev)
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, cfg.optim, cfg.train.steps)
    prec = Precision.resolve(cfg.train.precision, dev)
    ids = torch.randint(5, cfg.model.vocab_size, (micro_batch, seq_len), device=dev)
    types = torch.zeros_like(ids)
    attn = torch.ones_like(ids, dtype=torch.bool)

    def step() -> None:  # the training loop's step: masking in the objective, one optimizer_step
        with prec.autocast():
            loss = model(ids, types, attn).loss
        prec.scaler.scale(loss).backward()
        optimizer_step(model, opt, sched, prec.scaler, cfg.optim.clip_norm)

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    tok_s = steps * micro_batch * seq_len / (time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    flops = tok_s * electra_train_flops(cfg, seq_len)
    return Throughput(tok_s, flops, f"measured: {steps} steps of {micro_batch}x{seq_len} on {dev} "
                      f"({prec.name})", peak, micro_batch)


def assumed(cfg: PretrainConfig, seq_len: int, gpu: str, mfu: float) -> Throughput:
    if gpu not in GPU_PEAK:
        raise ConfigError(f"unknown --gpu {gpu!r}; known: {', '.join(GPU_PEAK)}")
    flops = GPU_PEAK[gpu] * mfu
    return Throughput(flops / electra_train_flops(cfg, seq_len), flops,
                      f"assumed: {100 * mfu:.0f}% MFU of a {gpu.upper()} ({GPU_PEAK[gpu] / 1e12:.0f} TFLOP/s bf16)",
                      None, 0)


@dataclass(frozen=True)
class Plan:
    preset: str
    params: int
    seq_len: int
    batch_size: int
    steps: int
    tokens: float
    flops_per_token: float
    total_flops: float
    seconds: float
    state_bytes: int  # weights + grads + Adam moments (fp32)
    checkpoint_bytes: int  # model.safetensors + optimizer state, one checkpoint
    keep_last: int
    throughput: Throughput


def make_plan(cfg: PretrainConfig, throughput: Throughput, *, tokens: float | None = None,
              steps: int | None = None, seconds: float | None = None) -> Plan:
    seq = cfg.preprocess.seq_len
    per_step = cfg.train.batch_size * seq
    if tokens is not None:
        steps = max(1, round(tokens / per_step))
    elif seconds is not None:
        steps = max(1, int(seconds * throughput.tokens_per_s / per_step))
    elif steps is None:  # where the run's schedule ends: train.budget_flops may come first
        steps = schedule_steps(cfg, seq)
    params = parameter_count(cfg)
    fpt = flop_rate(cfg, seq).mean(steps)
    return Plan(preset=cfg.preset, params=params, seq_len=seq, batch_size=cfg.train.batch_size,
                steps=steps, tokens=steps * per_step, flops_per_token=fpt,
                total_flops=steps * per_step * fpt, seconds=steps * per_step / throughput.tokens_per_s,
                state_bytes=16 * params, checkpoint_bytes=12 * params, keep_last=cfg.train.keep_last,
                throughput=throughput)


def scaled(throughput: Throughput, cfg: PretrainConfig) -> Throughput:
    """The same FLOP rate applied to another configuration."""
    fpt = electra_train_flops(cfg, cfg.preprocess.seq_len)
    return dataclasses.replace(throughput, tokens_per_s=throughput.flops_per_s / fpt,
                               source=throughput.source + ", scaled by FLOPs", peak_memory_bytes=None)


def preset_with_vocab(name: str, vocab_size: int | None, overrides: list[str]) -> PretrainConfig:
    """A preset with the vocabulary the user will train with (None: the preset's own)."""
    vocab = [f"model.vocab_size={vocab_size}"] if vocab_size is not None else []
    return apply_overrides(preset(name), [*vocab, *overrides])


def budget_table(throughput: Throughput, seconds: float, vocab_size: int | None) -> list[tuple[str, int, int, float]]:
    """(preset, steps that fit, recipe steps, fraction of the recipe) for every preset."""
    rows = []
    for name in PRESETS:
        cfg = preset_with_vocab(name, vocab_size, [])
        p = make_plan(cfg, scaled(throughput, cfg), seconds=seconds)
        rows.append((name, p.steps, cfg.train.steps, p.steps / cfg.train.steps))
    return rows
