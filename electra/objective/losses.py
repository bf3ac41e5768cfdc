"""The pre-training losses as small pure functions: masked-LM cross-entropy and replaced-token
detection BCE, both computed in fp32 whatever the autocast dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy over picked positions (G-EL: sum(w*ce) / (sum(w) + 1e-6))."""
    # logits: [B, P, V]; targets, weights: [B, P] -> scalar
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    w = weights.flatten()
    return (ce * w).sum() / (w.sum() + 1e-6)


def rtd_loss(logits: torch.Tensor, replaced: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sigmoid BCE averaged over the tokens in `mask` (all non-pad tokens for ELECTRA)."""
    # logits: [B, T]; replaced, mask: [B, T] bool -> scalar
    bce = F.binary_cross_entropy_with_logits(logits.float(), replaced.float(), reduction="none")
    m = mask.float()
    return (bce * m).sum() / (m.sum() + 1e-6)
