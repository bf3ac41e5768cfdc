"""Prediction heads on top of an `Encoder`.

The generator's MLM head is meant to be applied to gathered masked positions only: computing
V-way logits for 15% of the tokens instead of all of them is the single largest saving in the
ELECTRA step (the vocabulary projection dominates a small generator's cost)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeneratorHead(nn.Module):
    """dense(H_g -> E), GELU, LayerNorm, then the tied word-embedding matrix (E -> V) + bias."""

    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, embedding_size)
        self.norm = nn.LayerNorm(embedding_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        # h: [..., H_g]; word_embeddings: [V, E] -> logits [..., V]
        x = self.norm(F.gelu(self.dense(h)))
        return F.linear(x, word_embeddings, self.bias)


class DiscriminatorHead(nn.Module):
    """dense(H -> H), GELU, dense(H -> 1): one replaced-token logit per position."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: [B, T, H] -> logits [B, T]
        return self.out(F.gelu(self.dense(h))).squeeze(-1)


def gather_positions(h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    # h: [B, T, H]; positions: [B, P] -> [B, P, H]
    return torch.gather(h, 1, positions.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
