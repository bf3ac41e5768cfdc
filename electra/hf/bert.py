"""BERT and RoBERTa in Hugging Face format: `electra export RUN --format bert|roberta`.

A masked-LM run (`objective.kind=mlm`) is BERT's model: one post-LN encoder and a
dense-GELU-LayerNorm head tied to the word embeddings. It goes to `BertForMaskedLM` under BERT's
names, or to `RobertaForMaskedLM`, which differs in three ways handled here: its position ids
start at pad_token_id + 1 (so the table is shifted: HF row pad+1+t is our row t), it has one
token type, and its tokenizer frames pairs as `<s> A </s></s> B </s>`. `HFCheckpoint` reads both
back through `to_bert_layout` (--init-from, fine-tuning). Tensors here are in HF's BERT layout
without the model prefix, as `encoder_to_hf(..., prefix="")` writes them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import processors
from torch import nn

from electra.config import ModelConfig, PretrainConfig
from electra.data.tokenizer import Tokenizer
from electra.errors import CheckpointError
from electra.hf.common import encoder_config

log = logging.getLogger(__name__)

FORMATS = ("bert", "roberta")
# our GeneratorHead (dense H->E, GELU, LayerNorm, tied decoder + bias) -> HF's MLM head names;
# the decoder weight is tied to the word embeddings and its bias to `bias`, so neither is written
MLM_HEAD_MAPS = {
    "bert": {"dense.weight": "cls.predictions.transform.dense.weight",
             "dense.bias": "cls.predictions.transform.dense.bias",
             "norm.weight": "cls.predictions.transform.LayerNorm.weight",
             "norm.bias": "cls.predictions.transform.LayerNorm.bias",
             "bias": "cls.predictions.bias"},
    "roberta": {"dense.weight": "lm_head.dense.weight", "dense.bias": "lm_head.dense.bias",
                "norm.weight": "lm_head.layer_norm.weight", "norm.bias": "lm_head.layer_norm.bias",
                "bias": "lm_head.bias"},
}
_CLASSES = {"bert": "Bert", "roberta": "Roberta"}
_POSITIONS = "embeddings.position_embeddings.weight"
_TYPES = "embeddings.token_type_embeddings.weight"


def position_offset(pad_token_id: int) -> int:
    """RoBERTa numbers the positions of real tokens from pad + 1 (`create_position_ids_from_input_ids`):
    rows 0..pad of its table are never read for them."""
    return pad_token_id + 1


def auto_format(cfg: PretrainConfig, tokenizer: Tokenizer) -> str | None:
    """The format a finished run is also exported in: a masked-LM run (objective.kind=mlm) is
    BERT's model, RoBERTa's when its tokenizer is byte-level BPE (the RoBERTa recipe). None for
    other objectives and families, and for E != H (logged: BERT has no projection)."""
    model = cfg.model
    if cfg.objective.kind != "mlm" or model.family != "electra":
        return None
    fmt = "roberta" if tokenizer.kind == "bpe" else "bert"
    if model.embedding_size != model.hidden_size:
        log.warning("no %s export: model.embedding_size=%d differs from model.hidden_size=%d and %s "
                    "has no projection (the ELECTRA exports hold the model)", fmt,
                    model.embedding_size, model.hidden_size, _CLASSES[fmt])
        return None
    return fmt


def encoder_and_head(model: nn.Module, part: str, fmt: str
                     ) -> tuple[ModelConfig, nn.Module, dict[str, torch.Tensor] | None]:
    """The `part` of an `ElectraModel` as (config, encoder, MLM head state or None). The
    discriminator has an MLM head only when it is also the generator (objective.kind=mlm,
    sharing=all); otherwise it exports as the bare `BertModel` / `RobertaModel`."""
    if part == "discriminator":
        cfg, encoder = model.disc_cfg, model.encoder  # `encoder`: GDES merged into one word table
        head = model.generator_head if model.generator_encoder is model.discriminator else None
    elif part == "generator":
        cfg, encoder, head = model.gen_cfg, model.generator_encoder, model.generator_head
    else:
        raise CheckpointError(f"unknown part {part!r}; use discriminator or generator")
    if cfg.family != "electra":
        raise CheckpointError(f"model.family={cfg.family} has its own layers; {_CLASSES[fmt]} holds only "
                              "BERT's (model.family=electra): export with --format electra")
    if cfg.embedding_size != cfg.hidden_size:
        width, fix = (("model.hidden_size", "model.embedding_size=model.hidden_size") if part == "discriminator"
                      else ("its width", "objective.generator_size=1.0 and model.embedding_size=model.hidden_size"))
        raise CheckpointError(
            f"{_CLASSES[fmt]} has no embedding projection, so the {part} (embeddings {cfg.embedding_size}, "
            f"{width} {cfg.hidden_size}) cannot be written as {fmt}; export it with --format electra, "
            f"or train with {fix}")
    return cfg, encoder, None if head is None else head.state_dict()


def to_hf(fmt: str, cfg: ModelConfig, encoder: dict[str, torch.Tensor],
          head: dict[str, torch.Tensor] | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Our encoder (BERT layout, unprefixed) + MLM head state -> (HF config, HF tensors) that
    `{Bert,Roberta}ForMaskedLM` (or `...Model` without a head) loads with no missing keys."""
    encoder = dict(encoder)
    if fmt == "roberta":
        encoder[_POSITIONS] = _shift_positions(encoder[_POSITIONS], position_offset(cfg.pad_token_id))
        encoder[_TYPES] = _distinct_types(encoder[_TYPES])
    tensors = {f"{fmt}.{k}": v for k, v in encoder.items()}
    if head is not None:
        tensors |= {hf: head[ours].detach().contiguous().clone() for ours, hf in MLM_HEAD_MAPS[fmt].items()}
    arch = _CLASSES[fmt] + ("ForMaskedLM" if head is not None else "Model")
    return hf_config(fmt, cfg, arch, type_vocab_size=encoder[_TYPES].shape[0]), tensors


def _shift_positions(table: torch.Tensor, offset: int) -> torch.Tensor:
    # table: [P, E] -> [offset + P, E]; rows below the offset are never read for real tokens
    return torch.cat([table.new_zeros(offset, table.shape[1]), table], 0).contiguous()


def _distinct_types(table: torch.Tensor) -> torch.Tensor:
    """RoBERTa has one token type. A table whose rows are all equal (one-segment training from
    an import, or type_vocab_size=1) is that one row; a model that learned two distinct types
    keeps both (RobertaConfig holds any type_vocab_size, so outputs stay exact)."""
    if all(torch.equal(row, table[0]) for row in table[1:]):
        return table[:1].clone()
    log.warning("the model has %d distinct token types; the RoBERTa export keeps them all "
                "(type_vocab_size=%d; stock RoBERTa has 1: pre-train with model.type_vocab_size=1)",
                table.shape[0], table.shape[0])
    return table


def hf_config(fmt: str, cfg: ModelConfig, architecture: str, *, type_vocab_size: int) -> dict:
    offset = position_offset(cfg.pad_token_id) if fmt == "roberta" else 0
    config = encoder_config(cfg, architecture, fmt) | {
        "max_position_embeddings": cfg.max_position_embeddings + offset,
        "type_vocab_size": type_vocab_size,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    del config["embedding_size"]  # BERT and RoBERTa have none (E = H, checked before export)
    return config


# ---- reading: a BERT or RoBERTa checkpoint in our layout ---------------------------------------


def our_config(model_type: str, config: dict) -> dict:
    """A RoBERTa config as our positions count (no offset rows) and with two token types (its one
    row doubled by `to_bert_layout`, so pairs typed 0/1 by our fine-tuning read what RoBERTa reads
    for any pair); BERT and ELECTRA configs unchanged."""
    if model_type != "roberta":
        return config
    offset = position_offset(config.get("pad_token_id", 1))
    return config | {"max_position_embeddings": config["max_position_embeddings"] - offset,
                     "type_vocab_size": max(2, config.get("type_vocab_size", 1))}


def to_bert_layout(model_type: str, config: dict, tensors: dict[str, torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
    """RoBERTa tensors with the position offset rows dropped and one token type doubled (the
    inverse of `to_hf`, up to the doubling); other families unchanged."""
    if model_type != "roberta":
        return tensors
    offset = position_offset(config.get("pad_token_id", 1))
    out = dict(tensors)
    for name, t in tensors.items():
        if name.endswith(_POSITIONS):
            out[name] = t[offset:]
        elif name.endswith(_TYPES) and t.shape[0] == 1:
            out[name] = t.expand(2, -1).clone()
    return out


# ---- the tokenizer written beside the model -----------------------------------------------------


def with_tokenizer(config: dict, tokenizer: Tokenizer) -> tuple[dict, Tokenizer | OneTypeTokenizerFiles]:
    """The config with the tokenizer's special ids, and what to save as tokenizer files: for a
    model with one segment type, the run's tokenizer typing every token 0 (in RoBERTa's framing
    for a RoBERTa export): the run's tokenizer gives a pair's second segment type 1, which
    indexes past a one-row type table; otherwise the run's tokenizer as it is."""
    roberta = config.get("model_type") == "roberta"
    if roberta:
        config = config | {"bos_token_id": tokenizer.cls_id, "eos_token_id": tokenizer.sep_id}
    if config.get("type_vocab_size") != 1:  # the model reads segment ids (0: it ignores them)
        return config, tokenizer
    return config, OneTypeTokenizerFiles(tokenizer, roberta)


class OneTypeTokenizerFiles:
    """The run's tokenizer with every token of type 0 and no token_type_ids among the model
    inputs, framed `[CLS] A [SEP] B [SEP]`, or as RoBERTa frames inputs (`<s> A </s></s> B </s>`).
    The tokenizer class stays the generic fast one: `RobertaTokenizer` would rebuild the pipeline
    from vocab and merges and drop our normalizer (lower-casing) and CJK split, giving other ids."""

    def __init__(self, tokenizer: Tokenizer, roberta: bool) -> None:
        self.tokenizer, self.roberta = tokenizer, roberta

    def save(self, out_dir: str | Path) -> Path:
        out, tok = Path(out_dir), self.tokenizer
        pipeline = HFTokenizer.from_str(tok.tok.to_str())
        cls, sep = tok.specials["cls"], tok.specials["sep"]
        middle = f"{sep} {sep}" if self.roberta else sep
        pipeline.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {middle} $B {sep}",
            special_tokens=[(cls, tok.cls_id), (sep, tok.sep_id)])
        specials = {"unk_token": tok.specials["unk"], "sep_token": sep, "pad_token": tok.specials["pad"],
                    "cls_token": cls, "mask_token": tok.specials["mask"]}
        if self.roberta:
            specials = {"bos_token": cls, "eos_token": sep, **specials}
        config = {"tokenizer_class": "PreTrainedTokenizerFast",  # model_max_length: save_hf sets it
                  "model_input_names": ["input_ids", "attention_mask"], **specials}
        out.mkdir(parents=True, exist_ok=True)
        (out / "tokenizer.json").write_text(pipeline.to_str(pretty=True), encoding="utf-8")
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
        return out
