"""ALBERT in Hugging Face format: a `model.family=albert` run as `AlbertForPreTraining` (encoder,
MLM head, sentence-order head), `AlbertForMaskedLM` or `AlbertModel`, and back.

HF ALBERT shares parameters only by whole layers: `num_hidden_groups` groups of consecutive
layers, each group one set of weights. `share_layers=all` is one group; `none` is one group per
layer. `attention` and `ffn` (one sublayer shared, the rest per layer) have no HF form, so they
are written unrolled, one group per layer with the shared sublayer's weights repeated: the same
outputs in stock transformers, and the model reads back as `share_layers=none`.
Our `SentenceOrderHead` is HF's pooler (dense + tanh) and `sop_classifier`; our MLM head is
`predictions` (decoder tied to the word embeddings, its bias to `predictions.bias`). The RTD head
of an ELECTRA-trained discriminator has no place in ALBERT's classes and is not written."""

from __future__ import annotations

import torch
from torch import nn

from electra.config import ModelConfig
from electra.errors import CheckpointError
from electra.hf.common import encoder_config, encoder_fields, layer_from_hf, layer_to_hf

_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "embeddings.norm.weight": "embeddings.LayerNorm.weight",
    "embeddings.norm.bias": "embeddings.LayerNorm.bias",
    "project.weight": "encoder.embedding_hidden_mapping_in.weight",
    "project.bias": "encoder.embedding_hidden_mapping_in.bias",
}
# our `layers.Layer` names -> HF names inside `encoder.albert_layer_groups.{g}.albert_layers.0.`
# (the fused qkv is split into attention.query/key/value)
_LAYER = {
    "attention.out": "attention.dense",
    "attention_norm": "attention.LayerNorm",
    "ffn_in": "ffn",
    "ffn_out": "ffn_output",
    "ffn_norm": "full_layer_layer_norm",
}
MLM_HEAD_MAP = {
    "dense.weight": "predictions.dense.weight",
    "dense.bias": "predictions.dense.bias",
    "norm.weight": "predictions.LayerNorm.weight",
    "norm.bias": "predictions.LayerNorm.bias",
    "bias": "predictions.bias",
}
SOP_HEAD_MAP = {
    "dense.weight": "albert.pooler.weight",
    "dense.bias": "albert.pooler.bias",
    "out.weight": "sop_classifier.classifier.weight",
    "out.bias": "sop_classifier.classifier.bias",
}


def num_groups(cfg: ModelConfig) -> int:
    """HF's `num_hidden_groups` for our sharing mode (attention / ffn: unrolled)."""
    return 1 if cfg.share_layers == "all" else cfg.num_layers


def _group_of(layer: int, num_layers: int, groups: int) -> int:
    return int(layer / (num_layers / groups))  # HF AlbertTransformer's rule


def encoder_to_albert(state: dict[str, torch.Tensor], cfg: ModelConfig, prefix: str = "albert."
                      ) -> dict[str, torch.Tensor]:
    """Our `AlbertEncoder.state_dict()` (every layer's names present) -> HF ALBERT names; group g
    takes the weights of its first layer (with sharing, every layer of a group holds the same)."""
    out = {f"{prefix}{hf}": state[ours] for ours, hf in _EMBEDDINGS.items()}
    for g in range(num_groups(cfg)):
        src, dst = f"layers.{g}.", f"{prefix}encoder.albert_layer_groups.{g}.albert_layers.0."
        out |= layer_to_hf(state, src, dst, "attention.", _LAYER)
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def encoder_from_albert(tensors: dict[str, torch.Tensor], num_layers: int, groups: int,
                        prefix: str) -> dict[str, torch.Tensor]:
    """HF ALBERT names -> our `AlbertEncoder.state_dict()`, layer i from its group; raises KeyError
    naming the first missing key."""
    state = {ours: tensors[prefix + hf] for ours, hf in _EMBEDDINGS.items()}
    for i in range(num_layers):
        g = _group_of(i, num_layers, groups)
        src, dst = f"{prefix}encoder.albert_layer_groups.{g}.albert_layers.0.", f"layers.{i}."
        state |= layer_from_hf(tensors, src, dst, "attention.", _LAYER)
    return state


def albert_config(cfg: ModelConfig, architecture: str) -> dict:
    return encoder_config(cfg, architecture, "albert") | {
        "num_hidden_groups": num_groups(cfg),
        "inner_group_num": 1,
        # "hidden_act" stays exact "gelu", as ours; HF ALBERT's default is gelu_new
        "classifier_dropout_prob": cfg.dropout,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }


def model_config_from_albert(config: dict) -> ModelConfig:
    """An HF ALBERT config -> our ModelConfig (family albert); refuses what our layers do not
    compute (another activation, inner groups, groups of several layers that are not all)."""
    if config.get("hidden_act", "gelu_new") != "gelu":
        raise CheckpointError(f"hidden_act={config.get('hidden_act', 'gelu_new')!r} is not supported "
                              "(only exact 'gelu'; stock ALBERT checkpoints use gelu_new)")
    if config.get("inner_group_num", 1) != 1:
        raise CheckpointError(f"inner_group_num={config['inner_group_num']} is not supported (only 1)")
    layers, groups = config["num_hidden_layers"], config.get("num_hidden_groups", 1)
    if groups not in (1, layers):
        raise CheckpointError(f"num_hidden_groups={groups} of {layers} layers has no model.share_layers "
                              "mode (only 1: all, or one group per layer: none)")
    return ModelConfig(  # defaults: AlbertConfig's
        **encoder_fields(config, embedding_size=128, max_position_embeddings=512, type_vocab_size=2,
                         dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12),
        family="albert",
        share_layers="all" if groups == 1 and layers > 1 else "none",
    )


def _heads(tensors: dict[str, torch.Tensor], key_map: dict[str, str]) -> dict[str, torch.Tensor] | None:
    if not all(hf in tensors for hf in key_map.values()):
        return None
    return {ours: tensors[hf] for ours, hf in key_map.items()}


def read_albert(config: dict, tensors: dict[str, torch.Tensor]
                ) -> tuple[ModelConfig, dict[str, torch.Tensor], dict | None, dict | None]:
    """A local HF ALBERT checkpoint -> (our config, our encoder state, MLM head state or None,
    SOP head state or None). Raises KeyError for a missing encoder weight."""
    cfg = model_config_from_albert(config)
    prefix = "albert." if "albert.embeddings.word_embeddings.weight" in tensors else ""
    state = encoder_from_albert(tensors, cfg.num_layers, config.get("num_hidden_groups", 1), prefix)
    return cfg, state, _heads(tensors, MLM_HEAD_MAP), _heads(tensors, SOP_HEAD_MAP)


def pretrained_to_albert(model: nn.Module, part: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A `model.family=albert` `ElectraModel` part -> (HF config, HF tensors).

    discriminator: with an MLM head on its encoder (objective.kind=mlm, or sharing=all) and an
    SOP head, `AlbertForPreTraining`; MLM head only, `AlbertForMaskedLM`; neither (RTD), the
    bare `AlbertModel` (its pooler = the SOP head's dense layer; without SOP training there is
    none to write and transformers initialises that unused pooler itself).
    generator: its encoder + MLM head as `AlbertForMaskedLM`."""
    if part == "discriminator":
        cfg, encoder = model.disc_cfg, model.encoder  # `encoder`: GDES merged into one word table
        mlm = model.generator_head if model.generator_encoder is model.discriminator else None
        sop = model.sop_head
    elif part == "generator":
        cfg, encoder, mlm, sop = model.gen_cfg, model.generator_encoder, model.generator_head, None
    else:
        raise CheckpointError(f"unknown part {part!r}; use discriminator or generator")
    tensors = encoder_to_albert(encoder.state_dict(), cfg)
    if mlm is not None:
        tensors |= {hf: mlm.state_dict()[ours].detach().clone() for ours, hf in MLM_HEAD_MAP.items()}
    if sop is not None:
        sop_map = SOP_HEAD_MAP if mlm is not None else {k: v for k, v in SOP_HEAD_MAP.items() if "pooler" in v}
        tensors |= {hf: sop.state_dict()[ours].detach().clone() for ours, hf in sop_map.items()}
    arch = ("AlbertForPreTraining" if mlm is not None and sop is not None
            else "AlbertForMaskedLM" if mlm is not None else "AlbertModel")
    if arch == "AlbertModel":  # the bare model's names carry no "albert." prefix
        tensors = {k.removeprefix("albert."): v for k, v in tensors.items()}
    return albert_config(cfg, arch), tensors
