"""The pre-training losses as small pure functions: masked-LM cross-entropy and replaced-token
detection BCE, both computed in fp32 whatever the autocast dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _WeightedCrossEntropy(torch.autograd.Function):
    """sum_i w_i (logsumexp(x_i) - x_i[t_i]) / (sum_i w_i + 1e-6), with the gradient written out:
    softmax(x) - onehot(t), scaled per row, built in one buffer. Autograd's cross-entropy
    zero-fills a [N, V] gradient, scatters into it, then runs log-softmax's backward over it:
    at V = 30k those passes were 11% of the `small` step on CPU (BENCHMARKS.md). The softmax
    is recomputed in backward rather than kept from forward: the caller holds the logits until
    the discriminator has run, so a kept copy would be a second [N, V] buffer at the step's
    memory peak."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                weights: torch.Tensor) -> torch.Tensor:
        top = logits.amax(-1, keepdim=True)  # [N, 1]
        lse = top.squeeze(1) + torch.sub(logits, top).exp_().sum(-1).log()  # [N]: one buffer, freed here
        picked = logits.gather(1, targets[:, None]).squeeze(1)
        denom = weights.sum() + 1e-6
        ctx.save_for_backward(logits, lse, targets, weights, denom)
        return ((lse - picked) * weights).sum() / denom

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        logits, lse, targets, weights, denom = ctx.saved_tensors
        scale = (weights * (grad_out / denom))[:, None]  # [N, 1]
        grad = torch.sub(logits, lse[:, None]).exp_().mul_(scale)  # softmax, scaled
        grad.scatter_add_(1, targets[:, None], -scale)
        return grad, None, None


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy over picked positions (G-EL: sum(w*ce) / (sum(w) + 1e-6))."""
    # logits: [B, P, V]; targets, weights: [B, P] -> scalar
    return _WeightedCrossEntropy.apply(logits.float().flatten(0, 1), targets.flatten(),
                                       weights.flatten().float())


def top1_hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Where argmax == target (for finite logits), without torch's CPU argmax over the whole
    row, which tracks indices: 1-2% of an fp32 pre-training step and 2.4% of a bf16 one for this
    statistic (BENCHMARKS.md 0f, 0h). A row is a hit where the target's logit is the row's
    maximum; fp32 ties at the maximum do not occur in practice, but half precision rounds nearby
    logits together (about one row in twenty ties at its maximum), so there the rows that are
    hits and tie get argmax itself, which returns the first index. Picking those rows waits for
    the device, so on GPUs half precision keeps argmax (no host sync per step)."""
    # logits: [..., V]; targets: [...] -> [...] bool
    if logits.dtype != torch.float32 and logits.device.type != "cpu":
        return logits.argmax(-1) == targets
    top = logits.amax(-1, keepdim=True)
    hits = (logits.gather(-1, targets.unsqueeze(-1)) >= top).squeeze(-1)
    if logits.dtype == torch.float32:
        return hits
    flat, first = logits.reshape(-1, logits.shape[-1]), hits.view(-1)  # first: a view, written below
    rows = first.nonzero().squeeze(-1)  # argmax itself only where the target shares its row's maximum
    tied = rows[(flat[rows] == top.view(-1, 1)[rows]).sum(-1) > 1]
    if tied.numel():
        first[tied] = flat[tied].argmax(-1) == targets.reshape(-1)[tied]
    return hits


def rtd_loss(logits: torch.Tensor, replaced: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sigmoid BCE averaged over the tokens in `mask` (all non-pad tokens for ELECTRA)."""
    # logits: [B, T]; replaced, mask: [B, T] bool -> scalar
    bce = F.binary_cross_entropy_with_logits(logits.float(), replaced.float(), reduction="none")
    m = mask.float()
    return (bce * m).sum() / (m.sum() + 1e-6)


def copy_log_probs(vocab_logits: torch.Tensor, gate_logits: torch.Tensor, inputs: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
    """log p(target) under the paper's copy mechanism, p = D*onehot(input) + (1-D)*softmax(vocab)
    with D = sigmoid(gate): computed in log space, so neither term underflows."""
    # vocab_logits: [B, T, V]; gate_logits, inputs, targets: [B, T] -> [B, T]
    log_soft = F.log_softmax(vocab_logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    gate = gate_logits.float()
    generate = F.logsigmoid(-gate) + log_soft  # log (1 - D) softmax[target]
    return torch.where(inputs == targets, torch.logaddexp(F.logsigmoid(gate), generate), generate)


def copy_distribution(vocab_logits: torch.Tensor, gate_logits: torch.Tensor,
                      inputs: torch.Tensor) -> torch.Tensor:
    """The full distribution over the vocabulary at every position (tests, inspection)."""
    # vocab_logits: [B, T, V]; gate_logits, inputs: [B, T] -> [B, T, V], sums to 1 over V
    d = torch.sigmoid(gate_logits.float()).unsqueeze(-1)
    onehot = F.one_hot(inputs, vocab_logits.shape[-1]).float()
    return d * onehot + (1 - d) * torch.softmax(vocab_logits.float(), -1)


def copy_mlm_loss(vocab_logits: torch.Tensor, gate_logits: torch.Tensor, inputs: torch.Tensor,
                  targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """All-Tokens MLM: mean -log p(original) over the tokens in `mask` (every non-pad token)."""
    m = mask.float()
    return -(copy_log_probs(vocab_logits, gate_logits, inputs, targets) * m).sum() / (m.sum() + 1e-6)
