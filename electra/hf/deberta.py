"""DeBERTa-v2/v3 in Hugging Face format (`model.family=deberta`), both ways.

The discriminator (or any deberta encoder) goes to `DebertaV2Model` (also what
`DebertaV2ForTokenClassification` and friends load, heads fresh): HF has no replaced-token
detection head, so ours stays behind. The generator goes to `DebertaV2ForMaskedLM` (legacy head:
dense H->E, GELU, LayerNorm, tied decoder + bias, which is our `GeneratorHead`). The stock class
has no enhanced mask decoder: it scores masked tokens from the last layer directly, so with
`model.emd_layers` > 0 its logits differ from ours (a warning says so; the EMD position table is
written as `embeddings.position_embeddings`, which HF skips on load and we read back)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from electra.config import ModelConfig
from electra.errors import CheckpointError
from electra.hf.common import encoder_config, encoder_fields
from electra.model.build import build_encoder

log = logging.getLogger(__name__)

MODEL_TYPE = "deberta-v2"
PREFIX = "deberta."
# our DebertaEncoder names -> HF's, by prefix (layer i: `layers.{i}.` -> `encoder.layer.{i}.`)
_NAMES = {
    "embeddings.": "embeddings.",
    "project.dense.": "embeddings.embed_proj.",
    "project.norm.": "embeddings.LayerNorm.",
    "relative.embeddings.": "encoder.rel_embeddings.",
    "relative.norm.": "encoder.LayerNorm.",
}
_LAYER_NAMES = {
    "attention.query.": "attention.self.query_proj.",
    "attention.key.": "attention.self.key_proj.",
    "attention.value.": "attention.self.value_proj.",
    "attention.out.": "attention.output.dense.",
    "attention_norm.": "attention.output.LayerNorm.",
    "ffn_in.": "intermediate.dense.",
    "ffn_out.": "output.dense.",
    "ffn_norm.": "output.LayerNorm.",
}
_LAYER = re.compile(r"^layers\.(\d+)\.(.*)$")
MLM_HEAD_MAP = {
    "dense.weight": "cls.predictions.transform.dense.weight",
    "dense.bias": "cls.predictions.transform.dense.bias",
    "norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "bias": "cls.predictions.bias",
}


def hf_name(ours: str) -> str:
    """One parameter name of our `DebertaEncoder` -> HF's (without the `deberta.` prefix)."""
    if m := _LAYER.match(ours):
        i, rest = m.groups()
        for src, dst in _LAYER_NAMES.items():
            if rest.startswith(src):
                return f"encoder.layer.{i}.{dst}{rest[len(src):]}"
    for src, dst in _NAMES.items():
        if ours.startswith(src):
            return dst + ours[len(src):]
    raise KeyError(ours)


def expected_keys(cfg: ModelConfig) -> list[str]:
    with torch.device("meta"):
        return list(build_encoder(cfg).state_dict())


def encoder_to_hf(state: dict[str, torch.Tensor], prefix: str = PREFIX) -> dict[str, torch.Tensor]:
    """A plain `DebertaEncoder.state_dict()` -> HF tensors."""
    return {prefix + hf_name(k): v.detach().contiguous().clone() for k, v in state.items()}


def encoder_from_hf(tensors: dict[str, torch.Tensor], cfg: ModelConfig, prefix: str
                    ) -> dict[str, torch.Tensor]:
    """HF tensors -> our `DebertaEncoder.state_dict()`; KeyError names the first missing one."""
    return {k: tensors[prefix + hf_name(k)] for k in expected_keys(cfg)}


def hf_config(cfg: ModelConfig, architecture: str) -> dict:
    """The `DebertaV2Config` of our layers: the v3 choices are fixed, not options."""
    return encoder_config(cfg, architecture, MODEL_TYPE) | {
        "relative_attention": True,
        "pos_att_type": ["p2c", "c2p"],
        "position_buckets": cfg.relative_buckets or -1,
        "max_relative_positions": cfg.max_relative_positions or -1,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "position_biased_input": False,
        "legacy": True,
        "emd_layers": cfg.emd_depth,  # ours only: HF keeps unknown keys and ignores them
        "torch_dtype": "float32",
    }


def _require(config: dict, key: str, ok: bool, want: str) -> None:
    if not ok:
        raise CheckpointError(f"DeBERTa config has {key}={config.get(key)!r}; only {want} is supported "
                              "(DeBERTa-v3 layers)")


def model_config_from_hf(config: dict) -> ModelConfig:
    """A `DebertaV2Config` dict -> our ModelConfig; settings our layers do not implement fail."""
    att = config.get("pos_att_type") or []  # a list, or HF's older "p2c|c2p" string
    types = {x.strip().lower() for x in (att.split("|") if isinstance(att, str) else att)}
    _require(config, "hidden_act", config.get("hidden_act", "gelu") == "gelu", "'gelu'")
    _require(config, "relative_attention", config.get("relative_attention") is True, "true")
    _require(config, "pos_att_type", types == {"c2p", "p2c"}, "['p2c', 'c2p']")
    _require(config, "share_att_key", config.get("share_att_key") is True, "true")
    _require(config, "position_biased_input", config.get("position_biased_input", True) is False, "false")
    _require(config, "norm_rel_ebd", "layer_norm" in str(config.get("norm_rel_ebd", "none")), "'layer_norm'")
    _require(config, "conv_kernel_size", not config.get("conv_kernel_size"), "0 (no convolution layer)")
    _require(config, "attention_head_size", config.get("attention_head_size") in (None, config["hidden_size"]
             // config["num_attention_heads"]), "hidden_size / num_attention_heads")
    return ModelConfig(
        family="deberta",
        **encoder_fields(config, type_vocab_size=0, dropout=0.1, attention_dropout=0.1, layer_norm_eps=1e-7),
        relative_buckets=max(0, config.get("position_buckets", -1)),
        max_relative_positions=max(0, config.get("max_relative_positions", -1)),
        emd_layers=config.get("emd_layers", 0),  # a stock checkpoint has no EMD
    )


def read_checkpoint(path: Path, config: dict, tensors: dict[str, torch.Tensor]
                    ) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """A local HF DebertaV2 directory's config and tensors -> (our config, encoder state, MLM head
    state or None)."""
    try:
        cfg = model_config_from_hf(config)
    except KeyError as e:
        raise CheckpointError(f"{path}/config.json lacks {e}; it is not a complete DeBERTa-v2 config") from None
    prefix = next((p for p in (PREFIX, "") if f"{p}embeddings.word_embeddings.weight" in tensors), None)
    if prefix is None:
        raise CheckpointError(f"{path} has no deberta embeddings; is it an encoder checkpoint?")
    try:
        state = encoder_from_hf(tensors, cfg, prefix)
    except KeyError as e:
        raise CheckpointError(f"{path} is missing weight {e}; the checkpoint is incomplete") from None
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in build_encoder(cfg).state_dict().items()}
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise CheckpointError(f"{path}: config.json does not describe model weights ({name} has shape "
                                  f"{tuple(state[name].shape)}, the config implies {shape}); restore the "
                                  "config.json that came with these weights")
    head = {ours: tensors[hf] for ours, hf in MLM_HEAD_MAP.items()} if all(
        hf in tensors for hf in MLM_HEAD_MAP.values()) else None
    return cfg, state, head


def pretrained_to_hf(model, part: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A deberta-family `ElectraModel` part -> (HF config, HF tensors)."""
    if part == "discriminator":  # `encoder`: GDES merged into a plain word embedding
        return hf_config(model.disc_cfg, "DebertaV2Model"), encoder_to_hf(model.encoder.state_dict())
    if part != "generator":
        raise CheckpointError(f"unknown part {part!r}; use discriminator or generator")
    cfg = model.gen_cfg
    if cfg.emd_depth:
        log.warning("stock DebertaV2ForMaskedLM has no enhanced mask decoder: its masked-token logits "
                    "come from the last layer, not from the %d EMD passes this generator was trained "
                    "with (the weights are complete; --init-from restores the EMD)", cfg.emd_depth)
    tensors = encoder_to_hf(model.generator_encoder.state_dict())
    tensors |= {hf: model.generator_head.state_dict()[ours].detach().clone() for ours, hf in MLM_HEAD_MAP.items()}
    return hf_config(cfg, "DebertaV2ForMaskedLM"), tensors
