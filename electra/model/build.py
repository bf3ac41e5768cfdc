"""One place that turns a `ModelConfig` into an encoder, so objectives, fine-tuning and the HF
loaders never name a family's class: `model.family` picks the layers."""

from __future__ import annotations

from torch import nn

from electra.config import ModelConfig
from electra.model.layers import Embeddings, Encoder


def build_encoder(cfg: ModelConfig, embeddings: Embeddings | None = None) -> nn.Module:
    """An encoder of `cfg.family`; `embeddings` is a module shared with another encoder (the
    generator reusing the discriminator's), of the same family."""
    if cfg.family == "electra":
        return Encoder(cfg, embeddings=embeddings)
    raise ValueError(f"model.family={cfg.family!r} has no encoder")  # config validation stops this earlier
