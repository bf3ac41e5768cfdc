"""The fine-tuning model: a pre-trained discriminator encoder with a task head on top.

Parameter names are `encoder.*` and `head.*`; layer-wise learning-rate decay
(`optim.layerwise_lr_scales`) reads the depth of each parameter from these names."""

from __future__ import annotations

import torch
from torch import nn

from electra.model.heads import SpanLogits
from electra.model.layers import Encoder


class FinetuneModel(nn.Module):
    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor | SpanLogits:
        # input_ids, token_type_ids, attention_mask: [B, T] -> the head's logits
        # `token_type_ids` are the segments (0: first, 1: second). An encoder with one type (or
        # none: RoBERTa's and DeBERTa-v3's recipes) reads every token as type 0, where a second
        # segment would index past its table; the head still reads the segments (SQuAD's answer
        # lies in the second)
        types = token_type_ids if self.encoder.cfg.type_vocab_size > 1 else torch.zeros_like(token_type_ids)
        h = self.encoder(input_ids, types, attention_mask)  # [B, T, H]
        return self.head(h, token_type_ids, attention_mask)
