"""What every BERT-shaped Hugging Face family shares: the encoder's config fields and the
split/merge of our fused QKV projection. Family modules (`hf/albert.py`, `hf/bert.py`,
`hf/deberta.py`) and `hf/__init__.py` build on these and add only their own names."""

from __future__ import annotations

import torch

from electra.config import ModelConfig

QKV = ("query", "key", "value")


def encoder_config(cfg: ModelConfig, architecture: str, model_type: str) -> dict:
    """The config fields of the encoder that every family names the same way (exact GELU, as
    our layers compute it); a family adds or overrides its own."""
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "embedding_size": cfg.embedding_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": cfg.initializer_range,
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": cfg.pad_token_id,
    }


def layer_to_hf(state: dict[str, torch.Tensor], src: str, dst: str, attention: str,
                layer_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """Our layer `src` (fused `attention.qkv`) -> HF names under `dst`, the query/key/value
    projections under `dst + attention` (`attention.self.` in BERT/ELECTRA, `attention.` in ALBERT)."""
    out = {}
    for kind in ("weight", "bias"):
        for name, t in zip(QKV, state[f"{src}attention.qkv.{kind}"].chunk(3, dim=0), strict=True):
            out[f"{dst}{attention}{name}.{kind}"] = t
        for ours, hf in layer_map.items():
            out[f"{dst}{hf}.{kind}"] = state[f"{src}{ours}.{kind}"]
    return out


def layer_from_hf(tensors: dict[str, torch.Tensor], src: str, dst: str, attention: str,
                  layer_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """The inverse of `layer_to_hf`: HF layer `src` -> our names under `dst` (QKV fused)."""
    out = {}
    for kind in ("weight", "bias"):
        out[f"{dst}attention.qkv.{kind}"] = torch.cat([tensors[f"{src}{attention}{n}.{kind}"] for n in QKV], 0)
        for ours, hf in layer_map.items():
            out[f"{dst}{ours}.{kind}"] = tensors[f"{src}{hf}.{kind}"]
    return out


# our ModelConfig field -> the HF config key every BERT-shaped family uses for it
_FIELDS = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
           "num_heads": "num_attention_heads", "intermediate_size": "intermediate_size",
           "max_position_embeddings": "max_position_embeddings", "type_vocab_size": "type_vocab_size",
           "dropout": "hidden_dropout_prob", "attention_dropout": "attention_probs_dropout_prob",
           "layer_norm_eps": "layer_norm_eps", "initializer_range": "initializer_range",
           "embedding_size": "embedding_size"}


def encoder_fields(config: dict, **defaults: float) -> dict:
    """The inverse of `encoder_config`: `ModelConfig` keyword arguments from an HF config, each
    family giving its own class defaults for keys a config may leave out (a key with no default is
    required: KeyError names it). `embedding_size` defaults to the hidden size."""
    defaults = {"initializer_range": 0.02, "embedding_size": config.get("hidden_size"), **defaults}
    fields = {ours: config[hf] if config.get(hf) is not None or ours not in defaults else defaults[ours]
              for ours, hf in _FIELDS.items()}
    return fields | {"pad_token_id": config.get("pad_token_id") or 0}
