"""Dynamic masking as a pure function on the training device.

A fresh mask every time a row is seen (RoBERTa's dynamic masking), with G-EL's exact rule: per
row, round(mask_prob * n_tokens) positions (at least 1, at most `max_predictions`), never a
special token, returned in a fixed-size [B, P] layout so shapes are static (no host sync, and
the generator head can gather exactly P positions per row)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from electra.config import ObjectiveConfig


@dataclass(frozen=True)
class MaskSpec:
    """How positions are picked and corrupted; one per run, from the objective config and the
    tokenizer. Of the picked positions, `mask_token_prob` get [MASK], `random_token_prob` a
    uniformly random id and the rest keep the original (G-EL: 85/0/15; BERT: 80/10/10)."""

    mask_id: int
    vocab_size: int
    mask_prob: float = 0.15
    max_predictions: int | None = None  # None: int((mask_prob + 0.005) * T), as G-EL
    mask_token_prob: float = 0.85
    random_token_prob: float = 0.0

    @classmethod
    def from_config(cls, cfg: ObjectiveConfig, mask_id: int, vocab_size: int) -> MaskSpec:
        mask_token_prob, random_token_prob = cfg.corruption()
        return cls(mask_id=mask_id, vocab_size=vocab_size, mask_prob=cfg.mask_prob,
                   max_predictions=cfg.max_predictions, mask_token_prob=mask_token_prob,
                   random_token_prob=random_token_prob)

    def predictions_for(self, seq_len: int) -> int:
        """P, the fixed number of prediction slots per row of `seq_len` tokens."""
        if self.max_predictions is not None:
            return min(self.max_predictions, seq_len)
        return max(1, int((self.mask_prob + 0.005) * seq_len))


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: torch.Tensor  # [B, T] the generator's input: [MASK]/random/original at picks
    positions: torch.Tensor  # [B, P] long, the picked positions first, then filler slots
    targets: torch.Tensor  # [B, P] original ids at `positions`
    weights: torch.Tensor  # [B, P] float, 1.0 for a real pick, 0.0 for a filler slot


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor,
                spec: MaskSpec, generator: torch.Generator | None = None) -> MaskedBatch:
    """Pick and corrupt positions. `special_ids`: 1-D tensor of ids never to pick ([CLS], ...)."""
    # input_ids, attention_mask: [B, T]
    B, T = input_ids.shape
    P = spec.predictions_for(T)
    dev = input_ids.device
    candidates = attention_mask & ~torch.isin(input_ids, special_ids)  # [B, T]
    n_tokens = attention_mask.sum(1)  # [B], counts [CLS]/[SEP] too, as G-EL
    n_pick = torch.round(n_tokens.float() * spec.mask_prob).long().clamp(1, P)
    n_pick = torch.minimum(n_pick, candidates.sum(1))  # [B]

    # exact-count sampling without replacement: the P smallest random scores, non-candidates last
    scores = torch.rand(B, T, device=dev, generator=generator)
    scores = scores.masked_fill(~candidates, 2.0)
    positions = scores.topk(P, dim=1, largest=False, sorted=True).indices  # [B, P]
    weights = (torch.arange(P, device=dev)[None, :] < n_pick[:, None])  # [B, P] bool
    targets = torch.gather(input_ids, 1, positions)  # [B, P]

    u = torch.rand(B, P, device=dev, generator=generator)
    random_ids = torch.randint(spec.vocab_size, (B, P), device=dev, generator=generator)
    keep_after = spec.mask_token_prob + spec.random_token_prob
    replacement = torch.where(u < spec.mask_token_prob, torch.full_like(targets, spec.mask_id),
                              torch.where(u < keep_after, random_ids, targets))
    replacement = torch.where(weights, replacement, targets)  # filler slots write back the original
    masked = input_ids.scatter(1, positions, replacement)
    return MaskedBatch(input_ids=masked, positions=positions, targets=targets,
                       weights=weights.to(torch.float32))


def picked_tokens(masked: MaskedBatch, shape: torch.Size) -> torch.Tensor:
    """[B, T] bool: the positions actually picked (filler slots excluded)."""
    picked = torch.zeros(shape, dtype=torch.bool, device=masked.positions.device)
    return picked.scatter(1, masked.positions, masked.weights > 0)
