"""The generator's work over the vocabulary in one pre-training step: MLM loss forward and
backward, the accuracy statistic and the replacement samples, on [N, V] logits of a preset's
shape, same process, interleaved rounds, best of each.

    python benchmarks/vocab_pass.py --configs tiny,small --threads 1 --out benchmarks/results/vocab_pass.json

`current` is the training code (objective/losses.py, objective/sampling.py). `previous` is a
frozen copy of that code before session 22 (kept here as the baseline): the loss's log-sum-exp
through `torch.logsumexp` (an extra [N, V] buffer), the accuracy an argmax, and the sampler
dividing a copy of the logits by the temperature before shifting them. Both recompute the
softmax in backward. `autograd` is the textbook: `F.cross_entropy` through autograd, argmax,
Gumbel-max samples."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import make_config  # noqa: E402
from report import best_interleaved, ratio_rows, run_step_benchmark  # noqa: E402

from electra.objective import TokenIds  # noqa: E402
from electra.objective.losses import mlm_loss, top1_hits  # noqa: E402
from electra.objective.masking import MaskSpec  # noqa: E402
from electra.objective.sampling import cdf_sample, gumbel_sample  # noqa: E402
from electra.train.cpu_runtime import keep_freed_memory  # noqa: E402


class _PreviousCrossEntropy(torch.autograd.Function):
    """The previous loss: torch.logsumexp forward, softmax recomputed from the saved logits."""

    @staticmethod
    def forward(ctx, logits, targets, weights):  # type: ignore[override]
        lse = torch.logsumexp(logits, -1)
        picked = logits.gather(1, targets[:, None]).squeeze(1)
        denom = weights.sum() + 1e-6
        ctx.save_for_backward(logits, lse, targets, weights, denom)
        return ((lse - picked) * weights).sum() / denom

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        logits, lse, targets, weights, denom = ctx.saved_tensors
        scale = (weights * (grad_out / denom))[:, None]
        grad = torch.sub(logits, lse[:, None]).exp_().mul_(scale)
        grad.scatter_add_(1, targets[:, None], -scale)
        return grad, None, None


def divide_first_sample(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    x = logits if temperature == 1.0 else logits / temperature
    cdf = torch.sub(x, x.amax(-1, keepdim=True)).exp_().cumsum_(-1)
    u = torch.rand(x.shape[0], 1).mul_(cdf[:, -1:])
    return torch.searchsorted(cdf, u, right=True).clamp_(max=x.shape[-1] - 1)


def bench(name: str, batch: int, rounds: int) -> list[dict]:
    cfg = make_config(name, 128, [])
    spec = MaskSpec.from_config(cfg.objective, TokenIds.standard().mask_id, cfg.model.vocab_size)
    n, V, T = batch * spec.predictions_for(128), cfg.model.vocab_size, cfg.objective.temperature
    keep_freed_memory()  # as in training (train.allocator=auto): no page faults per step
    logits = (torch.randn(n, V) * 2).requires_grad_()
    targets, weights = torch.randint(0, V, (n,)), torch.ones(n)

    def current() -> None:
        logits.grad = None
        mlm_loss(logits[None], targets[None], weights[None]).backward()
        top1_hits(logits.detach(), targets).sum()
        cdf_sample(logits.detach(), T)

    def previous() -> None:
        logits.grad = None
        _PreviousCrossEntropy.apply(logits, targets, weights).backward()
        (logits.detach().argmax(-1) == targets).sum()
        divide_first_sample(logits.detach(), T)

    def autograd() -> None:
        logits.grad = None
        ((F.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum()).backward()
        (logits.detach().argmax(-1) == targets).sum()
        gumbel_sample(logits.detach(), T)

    fns = {"current": current, "previous": previous, "autograd": autograd}
    for fn in fns.values():
        fn()
    best = best_interleaved(fns, rounds)
    return ratio_rows(best, "previous", "path", f"{name:6s} [{n}, {V}] T={T:g}", config=name,
                      rows=n, vocab=V, temperature=T)


def main() -> None:
    run_step_benchmark(__doc__, bench, configs="tiny,small")


if __name__ == "__main__":
    main()
