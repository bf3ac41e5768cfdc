"""Packed dropout with a float mask (the training code) against the same kernel with a bool mask
(the code before session 24, kept here as the baseline): one dropout call forward + backward
at the shapes of a preset's step, and the whole training step with each kernel swapped in,
same process, interleaved rounds (best of each call; the median step).

    python benchmarks/dropout_mask.py --configs small --threads 2 --out benchmarks/results/dropout_mask.json

Both kernels draw the same random words and give bit for bit the same masks, outputs and
gradients (tests/test_speed_paths.py); only the cost of applying the mask differs. Presets
without dropout (tiny, mini, quick) are unaffected by either."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import make_config, ours_step_fn  # noqa: E402
from report import best_interleaved, median_interleaved, ratio_rows, run_step_benchmark  # noqa: E402

import electra.model.dropout as dropout  # noqa: E402


class _BoolMaskDropout(torch.autograd.Function):
    """The previous kernel: a bool keep-mask from the same words, a mixed-dtype multiply and a
    scaling pass in each direction."""

    @staticmethod
    def forward(ctx, x, p):  # type: ignore[override]
        halves = dropout.random_halves(x.numel(), x.device)
        keep = (halves >= dropout.keep_threshold(p)).view(x.shape)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - dropout.quantized_p(p))
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def bench(name: str, batch: int, rounds: int) -> list[dict]:
    """One dropout call at each of the preset's two mask shapes, then its whole training step."""
    cfg = make_config(name, 128, [])
    m = cfg.model
    if m.dropout == 0 and m.attention_dropout == 0:
        raise SystemExit(f"the {name} preset has no dropout: nothing to measure")
    # the training step as the loop runs it (allocator setting included), precision resolved by auto
    step, _ = ours_step_fn(cfg, batch, 128, torch.device("cpu"), "auto")
    kernels = {"bool mask": _BoolMaskDropout, "float mask": dropout._PackedDropout}
    rows = []
    shapes = {"attention probs": ((batch, m.num_heads, 128, 128), m.attention_dropout),
              "hidden": ((batch, 128, m.hidden_size), m.dropout)}
    for what, (shape, p) in shapes.items():
        x = torch.randn(shape, requires_grad=True)

        def call(kernel, p=p, x=x) -> None:
            x.grad = None
            kernel.apply(x, p).sum().backward()
        fns = {k: (lambda k=k: call(kernels[k])) for k in kernels}
        rows += ratio_rows(best_interleaved(fns, rounds), "bool mask", "kernel", f"{name} {what} {shape}",
                           config=name, measured=f"one call, {what}", shape=list(shape))

    def with_kernel(kernel: type) -> None:
        current, dropout._PackedDropout = dropout._PackedDropout, kernel  # looked up at call time
        try:
            step()
        finally:
            dropout._PackedDropout = current
    steps = median_interleaved({k: (lambda k=k: with_kernel(kernels[k])) for k in kernels}, rounds)
    rows += ratio_rows(steps, "bool mask", "kernel", f"{name} whole step", config=name,
                       measured="training step (median)", batch=batch, seq=128)
    return rows


def main() -> None:
    run_step_benchmark(__doc__, bench)


if __name__ == "__main__":
    main()
