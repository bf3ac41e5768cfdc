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
        h = self.encoder(input_ids, token_type_ids, attention_mask)  # [B, T, H]
        return self.head(h, token_type_ids, attention_mask)
