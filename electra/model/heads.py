"""Prediction heads on top of an `Encoder`: pre-training (generator MLM, discriminator RTD) and
fine-tuning (classification, tagging, span QA).

The generator's MLM head is meant to be applied to gathered masked positions only: computing
V-way logits for 15% of the tokens instead of all of them is the single largest saving in the
ELECTRA step (the vocabulary projection dominates a small generator's cost)."""

from __future__ import annotations

from dataclasses import dataclass

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


# ---- fine-tuning heads: each takes the encoder output h [B, T, H] (+ the batch's type ids and
# attention mask, which only the span head needs) and returns logits


def pool(h: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """The sentence vector a classifier reads. `cls`: the [CLS] position (the paper). `mean`: the
    average over real tokens: a lightly pre-trained encoder has never been asked to summarise a
    sentence in [CLS] (no NSP/SOP; [CLS] is never masked), while every position carries context."""
    # h: [B, T, H]; attention_mask: [B, T] bool or None -> [B, H]
    if pooling == "cls":
        return h[:, 0]
    if attention_mask is None:
        return h.mean(dim=1)
    w = attention_mask.to(h.dtype).unsqueeze(-1)  # [B, T, 1]
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


class ClassificationHead(nn.Module):
    """The paper's classifier: dropout + linear on the [CLS] vector (num_outputs=1: regression),
    or on the mean of the token vectors (`pooling="mean"`)."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float, pooling: str = "cls") -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)
        self.pooling = pooling

    def forward(self, h: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # h: [B, T, H] -> [B, C]
        return self.out(self.dropout(pool(h, attention_mask, self.pooling)))


class ElectraClassificationHead(nn.Module):
    """HF's `ElectraClassificationHead`: dropout, dense(H -> H), GELU, dropout, linear on [CLS]
    (or on the mean of the token vectors, `pooling="mean"`)."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float, pooling: str = "cls") -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_outputs)
        self.pooling = pooling

    def forward(self, h: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # h: [B, T, H] -> [B, C]
        x = F.gelu(self.dense(self.dropout(pool(h, attention_mask, self.pooling))))
        return self.out_proj(self.dropout(x))


class TokenHead(nn.Module):
    """Dropout + linear on every token (tagging)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, h: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # h: [B, T, H] -> [B, T, C]
        return self.out(self.dropout(h))


@dataclass(frozen=True)
class SpanLogits:
    start: torch.Tensor  # [B, T], -1e4 outside the context and [CLS]
    end: torch.Tensor  # [B, T]
    impossible: torch.Tensor | None  # [B] logit that the question has no answer (SQuAD 2.0)


class SpanHead(nn.Module):
    """Start/end logits per token (BERT SQuAD head). With `answerable`, G-EL's SQuAD 2.0
    classifier: [CLS] vector and the start-probability-weighted token vector -> dense(512) ->
    GELU -> one "unanswerable" logit. Positions outside the context (segment B) except [CLS]
    are masked, so the softmax runs over candidate answers and the null answer only."""

    def __init__(self, hidden_size: int, answerable: bool, inner_size: int = 512) -> None:
        super().__init__()
        self.span = nn.Linear(hidden_size, 2)
        self.answerable = nn.Sequential(nn.Linear(2 * hidden_size, inner_size), nn.GELU(),
                                        nn.Linear(inner_size, 1)) if answerable else None

    def forward(self, h: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> SpanLogits:
        # h: [B, T, H]; token_type_ids, attention_mask: [B, T]
        candidates = (token_type_ids == 1) & attention_mask
        candidates[:, 0] = True  # [CLS] stands for "no answer in this window"
        start, end = self.span(h).float().unbind(-1)  # [B, T] each
        start = start.masked_fill(~candidates, -1e4)
        end = end.masked_fill(~candidates, -1e4)
        impossible = None
        if self.answerable is not None:
            p_start = start.softmax(-1).to(h.dtype)  # [B, T]
            weighted = torch.einsum("bt,bth->bh", p_start, h)  # [B, H]
            impossible = self.answerable(torch.cat([h[:, 0], weighted], -1)).squeeze(-1).float()
        return SpanLogits(start=start, end=end, impossible=impossible)


class SentenceOrderHead(nn.Module):
    """ALBERT's sentence-order head on the [CLS] vector: HF's pooler (dense H -> H, tanh), then
    dropout and a linear layer to 2 logits (0: segments in order, 1: swapped)."""

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: [B, T, H] -> logits [B, 2]
        return self.out(self.dropout(torch.tanh(self.dense(h[:, 0]))))
