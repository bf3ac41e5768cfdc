"""ALBERT's encoder: ELECTRA's post-LN layers with cross-layer parameter sharing.

Factorised embeddings (V x E, then E -> H) are `layers.Embeddings` + the projection, which ALBERT
always has (HF `embedding_hidden_mapping_in`), even when E == H. `model.share_layers`:
`all` runs one layer's weights at every depth; `attention` / `ffn` share only that sublayer
(the attention projections, or the two FFN matrices) while each layer keeps its own other parts,
LayerNorms included (as ALBERT's `attention_1` / `ffn_1` variable scopes hold no LayerNorm).

Sharing is by module identity: the shared module sits at every depth of `layers`, so its
gradient is the sum over the layers that use it, `parameters()` counts it once, and
`state_dict()` lists it under every layer's name (a checkpoint stores it once)."""

from __future__ import annotations

from torch import nn

from electra.config import ModelConfig
from electra.model.layers import Embeddings, Encoder

# share_layers -> the attributes of `layers.Layer` that every layer takes from layer 0
SHARED_PARTS = {"none": (), "attention": ("attention",), "ffn": ("ffn_in", "ffn_out")}


class AlbertEncoder(Encoder):
    """`Encoder` with a projection E -> H at any E and `cfg.share_layers` applied to its layers."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None) -> None:
        super().__init__(cfg, embeddings)
        if self.project is None:
            self.project = nn.Linear(cfg.embedding_size, cfg.hidden_size)
        self.layers = share_layers(self.layers, cfg.share_layers)


def share_layers(layers: nn.ModuleList, mode: str) -> nn.ModuleList:
    """`layers` with layer 0's weights (all of them, or one sublayer's) used at every depth."""
    if mode == "all":
        return nn.ModuleList([layers[0]] * len(layers))
    for layer in layers[1:]:
        for part in SHARED_PARTS[mode]:
            setattr(layer, part, getattr(layers[0], part))
    return layers
