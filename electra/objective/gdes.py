"""Gradient-disentangled embedding sharing (DeBERTaV3, `objective.sharing=gdes`).

The discriminator's word embedding is E_D = sg(E_G) + E_delta: it reads the generator's table
E_G through a stop-gradient plus its own E_delta, zero at the start. The MLM loss alone moves
E_G; replaced token detection moves only E_delta, so the two losses no longer pull one table
in opposite directions (ES's tug-of-war) while the discriminator still starts from what the
generator learns. Export and fine-tuning take a plain encoder whose table is E_G + E_delta."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from electra.model.build import build_encoder


class GDESEmbedding(nn.Module):
    """Stands in for the discriminator's `word_embeddings`: `.weight` is sg(E_G) + E_delta, so
    every reader of the table (the input lookup, a tied MLM head) sees the sum."""

    def __init__(self, source: nn.Embedding) -> None:
        super().__init__()
        self.source = source  # the generator's table; parameters are de-duplicated by identity
        self.delta = nn.Parameter(torch.zeros_like(source.weight))  # [V, E]

    @property
    def weight(self) -> torch.Tensor:
        return self.source.weight.detach() + self.delta  # [V, E]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # [B, T] -> [B, T, E]
        return F.embedding(input_ids, self.weight)


def share_gdes(discriminator_embeddings: nn.Module, generator_embeddings: nn.Module) -> None:
    """Replace the discriminator's word embedding by sg(generator's) + a zero delta."""
    source = generator_embeddings.word_embeddings
    if source.weight.shape != discriminator_embeddings.word_embeddings.weight.shape:
        raise ValueError("GDES needs equal vocabulary and embedding sizes")
    discriminator_embeddings.word_embeddings = GDESEmbedding(source)


@torch.no_grad()
def plain_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """`encoder.state_dict()` with every GDES table merged into a plain `weight` = E_G + E_delta,
    the layout of an encoder built without sharing."""
    state = dict(encoder.state_dict())
    for name, module in encoder.named_modules():
        if isinstance(module, GDESEmbedding):
            for key in [k for k in state if k.startswith(f"{name}.")]:
                del state[key]
            state[f"{name}.weight"] = module.weight.detach().clone()
    return state


@torch.no_grad()
def merged_encoder(encoder: nn.Module) -> nn.Module:
    """A plain copy of `encoder` (same config, device and mode) with GDES merged. Built on the
    meta device and filled from the state, so it draws no random numbers (a resumed run's RNG
    stays where it was)."""
    with torch.device("meta"):
        plain = build_encoder(encoder.cfg)
    device = next(encoder.parameters()).device
    plain = plain.to_empty(device=device)
    plain.load_state_dict(plain_state(encoder))
    return plain.train(encoder.training)


@torch.no_grad()
def load_plain_state(encoder: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a plain encoder state (a warm start) into a GDES discriminator: the word table goes
    to E_G and E_delta restarts at zero, so E_D equals the loaded table exactly."""
    state = dict(state)
    for name, module in encoder.named_modules():
        if isinstance(module, GDESEmbedding):
            module.source.weight.copy_(state.pop(f"{name}.weight"))
            state[f"{name}.delta"] = torch.zeros_like(module.delta)
            state[f"{name}.source.weight"] = module.source.weight.detach().clone()
    encoder.load_state_dict(state)
