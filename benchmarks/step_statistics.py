"""Two small costs of the bf16 step, against the code before session 29 (kept here as the
baseline): the generator's accuracy statistic (torch's argmax over bf16 logits, then the fast
path of `losses.top1_hits`) and the attention's padding mask (a broadcast masked_fill, then an
added bias from `layers.mask_scores_`), and for DeBERTa's disentangled attention the fused
kernel against the math path in bf16. Each alone at the preset's shapes, then the whole
training step with the old versions swapped in, same process, interleaved rounds (best of each
call; the median step).

    python benchmarks/step_statistics.py --configs small,debertav3 --threads 2 --out benchmarks/results/step_statistics.json

Both new versions give bit for bit the old results (tests/test_speed_paths.py). Under fp32 the
statistic took its fast path already; the mask change reaches every run whose attention takes
the math path (dropout on CPU, or bf16 on CPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import make_config, ours_step_fn  # noqa: E402
from report import best_interleaved, median_interleaved, ratio_rows, run_step_benchmark  # noqa: E402

import electra.model.deberta as deberta  # noqa: E402
import electra.model.layers as layers  # noqa: E402
import electra.objective.electra as objective  # noqa: E402
from electra.objective.losses import top1_hits  # noqa: E402


def argmax_hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The previous statistic for half-precision logits."""
    if logits.dtype != torch.float32:
        return logits.argmax(-1) == targets
    return top1_hits(logits, targets)


def masked_fill_attention(q, k, v, mask, p):
    """The previous math path: the padding mask written with a broadcast masked_fill."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if mask is not None:
        scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    return layers.packed_dropout(scores.softmax(-1), p) @ v


def bench(name: str, batch: int, rounds: int) -> list[dict]:
    cfg = make_config(name, 128, [])
    m = cfg.model
    step, precision = ours_step_fn(cfg, batch, 128, torch.device("cpu"), "auto")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    picked = batch * int((cfg.objective.mask_prob + 0.005) * 128)  # the generator's rows per step
    logits = torch.randn(picked, m.vocab_size, generator=g).to(dtype)
    rows = []
    for rate in (0.0, 0.3):  # share of positions the generator gets right
        targets = torch.randint(0, m.vocab_size, (picked,), generator=g)
        hit = torch.rand(picked, generator=g) < rate
        targets[hit] = logits.float().argmax(-1)[hit]
        fns = {"argmax": lambda t=targets: argmax_hits(logits, t), "fast path": lambda t=targets: top1_hits(logits, t)}
        rows += ratio_rows(best_interleaved(fns, rounds), "argmax", "variant",
                           f"{name} hits {list(logits.shape)} {dtype} right {rate:.0%}", config=name,
                           measured=f"generator accuracy, {rate:.0%} right")
    if m.family != "deberta":  # ELECTRA's key mask; DeBERTa's pairwise mask keeps the fill
        rows += attention_rows(name, m, batch, dtype, rounds, g)
    rows += whole_step_rows(name, step, precision, rounds, batch)
    return rows


def attention_rows(name: str, m, batch: int, dtype: torch.dtype, rounds: int, g: torch.Generator) -> list[dict]:
    qkv = [torch.randn(batch, m.num_heads, 128, m.hidden_size // m.num_heads, generator=g).to(dtype)
           .requires_grad_() for _ in range(3)]
    mask = torch.ones(batch, 1, 1, 128, dtype=torch.bool)
    mask[: batch // 2, ..., 100:] = False

    def attend(fn) -> None:
        fn(*qkv, mask, m.attention_dropout).sum().backward()
    fns = {"masked_fill": lambda: attend(masked_fill_attention), "added bias": lambda: attend(layers.attention_math)}
    return ratio_rows(best_interleaved(fns, rounds), "masked_fill", "variant",
                      f"{name} attention fwd+bwd {dtype}", config=name, measured="attention math path")


def whole_step_rows(name: str, step, precision: str, rounds: int, batch: int) -> list[dict]:
    def with_old(old: bool) -> None:
        current = objective.top1_hits, layers.attention_math, deberta.math_path_is_faster
        if old:  # DeBERTa's attention kept torch's fused kernel before
            objective.top1_hits, layers.attention_math = argmax_hits, masked_fill_attention
            deberta.math_path_is_faster = lambda q: False
        try:
            step()
        finally:
            objective.top1_hits, layers.attention_math, deberta.math_path_is_faster = current
    steps = median_interleaved({"before": lambda: with_old(True), "after": lambda: with_old(False)}, rounds)
    return ratio_rows(steps, "before", "variant", f"{name} whole step {precision}", config=name,
                      measured="training step (median)", batch=batch, seq=128)


def main() -> None:
    run_step_benchmark(__doc__, bench)


if __name__ == "__main__":
    main()
