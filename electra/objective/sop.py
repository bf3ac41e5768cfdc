"""ALBERT's sentence-order prediction (SOP): the data step and the loss, as pure functions.

A two-segment row `[CLS] A [SEP] B [SEP]` (two consecutive spans of one document, as
`data.preprocess` packs them) becomes `[CLS] B [SEP] A [SEP]` with probability 1/2, token types
rebuilt (0 up to and including the first [SEP], then 1), and the label says which order it is in.
Rows with one segment (no type-1 token) are never swapped and are left out of the loss. The swap
is drawn on the device before masking, so masks fall on the order the model sees."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SOP_STAT_NAMES = ("sop_loss", "sop_correct", "sop_count")


@dataclass(frozen=True)
class SentenceOrder:
    input_ids: torch.Tensor  # [B, T] the rows, some with their segments swapped
    token_type_ids: torch.Tensor  # [B, T] rebuilt for the new order
    swapped: torch.Tensor  # [B] long, the SOP label: 1 = segments swapped
    two_segments: torch.Tensor  # [B] bool, rows that count in the SOP loss
    source: torch.Tensor  # [B, T] long, new position -> old position (identity on unswapped rows)

    def reorder(self, per_token: torch.Tensor) -> torch.Tensor:
        """Any other per-token tensor of the rows ([B, T], e.g. word-boundary bits) in the new order."""
        return torch.gather(per_token, 1, self.source)


def swap_segments(input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor,
                  generator: torch.Generator | None = None, prob: float = 0.5) -> SentenceOrder:
    """Swap segments A and B of each two-segment row with probability `prob`.

    A's length `a` counts its closing [SEP] (type-0 tokens after [CLS]); B's `b` counts its own
    (the type-1 tokens). New position j takes B's token a + j for 1 <= j <= b, then A's token
    j - b up to a + b; [CLS] and padding stay where they are."""
    # input_ids, token_type_ids, attention_mask: [B, T]
    B, T = input_ids.shape
    second = (token_type_ids == 1) & attention_mask  # [B, T]
    b = second.sum(1, keepdim=True)  # [B, 1]
    a = attention_mask.sum(1, keepdim=True) - b - 1  # [B, 1], without [CLS]
    two_segments = b.squeeze(1) > 0  # [B]
    draw = torch.rand(B, generator=generator, device=input_ids.device) < prob
    swap = draw & two_segments  # [B]
    j = torch.arange(T, device=input_ids.device).expand(B, T)  # [B, T]
    in_b = (j >= 1) & (j <= b)
    in_a = (j > b) & (j <= a + b)
    source = torch.where(in_b, j + a, torch.where(in_a, j - b, j))  # [B, T]
    source = torch.where(swap[:, None], source, j)  # [B, T]
    return SentenceOrder(
        input_ids=torch.gather(input_ids, 1, source),
        token_type_ids=torch.where(swap[:, None], in_a.to(token_type_ids.dtype), token_type_ids),
        swapped=swap.long(), two_segments=two_segments, source=source)


def sop_loss(logits: torch.Tensor, order: SentenceOrder) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the two-segment rows, [3] additive stats named SOP_STAT_NAMES)."""
    # logits: [B, 2]
    counted = order.two_segments.float()  # [B]
    n = counted.sum()
    ce = F.cross_entropy(logits.float(), order.swapped, reduction="none")  # [B]
    loss = (ce * counted).sum() / n.clamp(min=1.0)
    with torch.no_grad():
        correct = ((logits.argmax(-1) == order.swapped).float() * counted).sum()
        stats = torch.stack([loss.detach(), correct, n])
    return loss, stats
