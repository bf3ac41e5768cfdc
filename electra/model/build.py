"""One place that turns a `ModelConfig` into an encoder, so objectives, fine-tuning and the HF
loaders never name a family's class: `model.family` picks the layers."""

from __future__ import annotations

import torch
from torch import nn

from electra.config import ModelConfig
from electra.model.albert import AlbertEncoder
from electra.model.deberta import DebertaEncoder
from electra.model.layers import Embeddings, Encoder


def build_encoder(cfg: ModelConfig, embeddings: Embeddings | None = None) -> nn.Module:
    """An encoder of `cfg.family`; `embeddings` is a module shared with another encoder (the
    generator reusing the discriminator's), of the same family."""
    if cfg.family == "electra":
        return Encoder(cfg, embeddings=embeddings)
    if cfg.family == "albert":
        return AlbertEncoder(cfg, embeddings=embeddings)
    if cfg.family == "deberta":
        return DebertaEncoder(cfg, embeddings=embeddings)
    raise ValueError(f"model.family={cfg.family!r} has no encoder")  # config validation stops this earlier


def mlm_states(encoder: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
    """What an MLM head reads: the encoder output, or for DeBERTa its enhanced mask decoder's
    (absolute positions added before the softmax). [B, T] -> [B, T, H]"""
    if isinstance(encoder, DebertaEncoder):
        return encoder.mlm_states(input_ids, token_type_ids, attention_mask)
    return encoder(input_ids, token_type_ids, attention_mask)
