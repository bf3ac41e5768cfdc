"""Hugging Face format in and out, through explicit key maps.

`to_hf` writes a directory that stock `transformers.ElectraForPreTraining` (discriminator) or
`ElectraForMaskedLM` (generator) loads with no missing or unexpected keys (BERT and RoBERTa:
`hf/bert.py`); `HFCheckpoint` reads a local HF ELECTRA, BERT or RoBERTa directory back into our
`Encoder` layout (warm starts, fine-tuning); `finetuned_to_hf` maps a fine-tuned encoder + task
head onto the stock `ElectraFor{SequenceClassification,TokenClassification,QuestionAnswering}`.
HF's TF-era names (`LayerNorm`, `attention.self`) live only in this package."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from electra.config import ModelConfig
from electra.errors import CheckpointError
from electra.files import atomic_dir
from electra.hf import albert, bert
from electra.hf import deberta as deberta_hf
from electra.hf.common import encoder_config, encoder_fields, layer_from_hf, layer_to_hf
from electra.model.build import build_encoder
from electra.model.heads import ClassificationHead, ElectraClassificationHead, SpanHead, TokenHead

# our Encoder layer names -> HF names inside `encoder.layer.{i}.`
_LAYER_MAP = {
    "attention.out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_EMB_MAP = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "embeddings.norm.weight": "embeddings.LayerNorm.weight",
    "embeddings.norm.bias": "embeddings.LayerNorm.bias",
}
DISC_HEAD_MAP = {
    "dense.weight": "discriminator_predictions.dense.weight",
    "dense.bias": "discriminator_predictions.dense.bias",
    "out.weight": "discriminator_predictions.dense_prediction.weight",
    "out.bias": "discriminator_predictions.dense_prediction.bias",
}
GEN_HEAD_MAP = {
    "dense.weight": "generator_predictions.dense.weight",
    "dense.bias": "generator_predictions.dense.bias",
    "norm.weight": "generator_predictions.LayerNorm.weight",
    "norm.bias": "generator_predictions.LayerNorm.bias",
    "bias": "generator_lm_head.bias",
}

# our `ElectraClassificationHead` (fine-tuning, head.kind=electra) -> HF ElectraForSequenceClassification
CLASSIFIER_HEAD_MAP = {
    "dense.weight": "classifier.dense.weight",
    "dense.bias": "classifier.dense.bias",
    "out_proj.weight": "classifier.out_proj.weight",
    "out_proj.bias": "classifier.out_proj.bias",
}
# our `TokenHead` -> ElectraForTokenClassification; our `SpanHead` -> ElectraForQuestionAnswering
TOKEN_HEAD_MAP = {"out.weight": "classifier.weight", "out.bias": "classifier.bias"}
SPAN_HEAD_MAP = {"span.weight": "qa_outputs.weight", "span.bias": "qa_outputs.bias"}


def encoder_to_hf(state: dict[str, torch.Tensor], num_layers: int, prefix: str = "electra.",
                  project_name: str = "embeddings_project") -> dict[str, torch.Tensor]:
    """Our `Encoder.state_dict()` -> HF names; the fused QKV is split into query/key/value."""
    out = {prefix + hf: state[ours] for ours, hf in _EMB_MAP.items()}
    if "project.weight" in state:
        out[f"{prefix}{project_name}.weight"] = state["project.weight"]
        out[f"{prefix}{project_name}.bias"] = state["project.bias"]
    for i in range(num_layers):
        src, dst = f"layers.{i}.", f"{prefix}encoder.layer.{i}."
        out |= layer_to_hf(state, src, dst, "attention.self.", _LAYER_MAP)
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def encoder_from_hf(tensors: dict[str, torch.Tensor], num_layers: int, prefix: str,
                    project_name: str = "embeddings_project") -> dict[str, torch.Tensor]:
    """HF names -> our `Encoder.state_dict()`; raises KeyError naming the first missing key."""
    state = {ours: tensors[prefix + hf] for ours, hf in _EMB_MAP.items()}
    if f"{prefix}{project_name}.weight" in tensors:
        state["project.weight"] = tensors[f"{prefix}{project_name}.weight"]
        state["project.bias"] = tensors[f"{prefix}{project_name}.bias"]
    for i in range(num_layers):
        src, dst = f"{prefix}encoder.layer.{i}.", f"layers.{i}."
        state |= layer_from_hf(tensors, src, dst, "attention.self.", _LAYER_MAP)
    return state


def head_to_hf(state: dict[str, torch.Tensor], key_map: dict[str, str]) -> dict[str, torch.Tensor]:
    return {hf: state[ours].detach().contiguous().clone() for ours, hf in key_map.items()}


def head_from_hf(tensors: dict[str, torch.Tensor], key_map: dict[str, str]) -> dict[str, torch.Tensor] | None:
    if not all(hf in tensors for hf in key_map.values()):
        return None
    return {ours: tensors[hf] for ours, hf in key_map.items()}


def hf_config(cfg: ModelConfig, architecture: str) -> dict:
    return encoder_config(cfg, architecture, "electra") | {
        "position_embedding_type": "absolute",
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
        "torch_dtype": "float32",
    }


def model_config_from_hf(config: dict) -> ModelConfig:
    """ELECTRA and BERT configs -> our ModelConfig (BERT: embedding size = hidden size)."""
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"hidden_act={config['hidden_act']!r} is not supported (only exact 'gelu')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError("only absolute position embeddings are supported")
    return ModelConfig(**encoder_fields(config, type_vocab_size=2, dropout=0.1, attention_dropout=0.1,
                                        layer_norm_eps=1e-12))


def save_hf(out_dir: str | Path, config: dict, tensors: dict[str, torch.Tensor],
            tokenizer=None, *, overwrite: bool = False) -> Path:
    """Write config.json + model.safetensors (+ tokenizer files) atomically into `out_dir`; an
    existing export there is replaced only with `overwrite`."""
    out = Path(out_dir)
    if out.is_file():
        raise CheckpointError(f"--out {out} is a file; pass a directory for the model")
    if out.exists() and any(out.iterdir()) and not (out / "config.json").exists():
        raise CheckpointError(f"{out} exists and is not an exported model; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out} already holds an exported model; pass --force to replace it "
                              "or choose another --out")
    with atomic_dir(out, replace=True) as tmp:
        if tokenizer is not None:
            tokenizer.save(tmp)
            _fit_max_length(tmp / "tokenizer_config.json", config)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    return out


def _fit_max_length(path: Path, config: dict) -> None:
    """The tokenizer truncates to the model's positions (stock `truncation=True` on a 128-position
    model would otherwise cut at 512 and fail in the model)."""
    positions = config.get("max_position_embeddings")
    if not positions or not path.is_file():
        return
    if config.get("model_type") == "roberta":
        positions -= bert.position_offset(config["pad_token_id"])
    settings = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(settings | {"model_max_length": positions}, indent=2) + "\n", encoding="utf-8")


def _check_shapes(path: Path, cfg: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    """config.json must describe the weights (an edited vocab_size or hidden_size would otherwise
    surface as a torch size-mismatch traceback when the encoder is loaded)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_encoder(cfg).state_dict().items()}
    for name, shape in expected.items():
        if name in state and tuple(state[name].shape) != shape:
            raise CheckpointError(
                f"{path}: config.json does not describe model weights ({name} has shape "
                f"{tuple(state[name].shape)}, the config implies {shape}); restore the config.json "
                "that came with these weights")


class HFCheckpoint:
    """A local HF ELECTRA/BERT directory: config, our-layout encoder state and any heads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        cfg_file = self.path / "config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"{self.path} has no config.json; pass a Hugging Face model directory")
        try:
            self.raw_config = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_file} is not valid JSON ({e}); re-download or re-export it") from None
        self.model_type = self.raw_config.get("model_type", "electra")
        self.sop_head: dict[str, torch.Tensor] | None = None  # ALBERT's sentence-order head
        if self.model_type == "albert":
            self._read_albert()
            return
        if self.model_type == deberta_hf.MODEL_TYPE:  # DeBERTa-v2/v3 (hf/deberta.py)
            self.config, self.encoder_state, self.generator_head = deberta_hf.read_checkpoint(
                self.path, self.raw_config, _read_weights(self.path))
            self.discriminator_head = None
            return
        if self.model_type not in ("electra", *bert.FORMATS):
            raise CheckpointError(f"{self.path} is a {self.model_type!r} model; only ELECTRA, BERT, RoBERTa, "
                                  "ALBERT and DeBERTa-v2/v3 checkpoints can be loaded")
        try:
            self.config = model_config_from_hf(bert.our_config(self.model_type, self.raw_config))
        except KeyError as e:
            raise CheckpointError(f"{cfg_file} lacks {e}; it is not a complete ELECTRA/BERT config") from None
        tensors = bert.to_bert_layout(self.model_type, self.raw_config, _read_weights(self.path))
        prefix = next((p for p in (f"{self.model_type}.", "") if
                       f"{p}embeddings.word_embeddings.weight" in tensors), None)
        if prefix is None:
            raise CheckpointError(f"{self.path} has no {self.model_type} embeddings; is it an encoder checkpoint?")
        try:
            self.encoder_state = encoder_from_hf(tensors, self.config.num_layers, prefix)
        except KeyError as e:
            raise CheckpointError(f"{self.path} is missing weight {e}; the checkpoint is incomplete") from None
        _check_shapes(self.path, self.config, self.encoder_state)
        self.discriminator_head = head_from_hf(tensors, DISC_HEAD_MAP)
        self.generator_head = head_from_hf(tensors, bert.MLM_HEAD_MAPS.get(self.model_type, GEN_HEAD_MAP))

    def _read_albert(self) -> None:
        try:
            self.config, self.encoder_state, self.generator_head, self.sop_head = albert.read_albert(
                self.raw_config, _read_weights(self.path))
        except KeyError as e:
            raise CheckpointError(f"{self.path} lacks {e}; it is not a complete ALBERT checkpoint") from None
        _check_shapes(self.path, self.config, self.encoder_state)
        self.discriminator_head = None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    st, pt = path / "model.safetensors", path / "pytorch_model.bin"
    try:
        if st.is_file():
            return load_file(str(st))
        if pt.is_file():
            return torch.load(pt, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, EOFError) as e:
        raise CheckpointError(f"cannot read weights in {path} ({str(e).splitlines()[0]}); the file is "
                              "corrupt or truncated, re-download or re-export it") from None
    raise CheckpointError(f"{path} has neither model.safetensors nor pytorch_model.bin")


def pretrained_to_hf(model, part: str = "discriminator", fmt: str = "electra") -> tuple[dict, dict[str, torch.Tensor]]:
    """An `ElectraModel` part -> (HF config dict, HF tensors); `fmt` bert or roberta: see hf/bert.py."""
    if fmt in bert.FORMATS:
        cfg, encoder, head = bert.encoder_and_head(model, part, fmt)
        return bert.to_hf(fmt, cfg, encoder_to_hf(encoder.state_dict(), cfg.num_layers, prefix=""), head)
    if fmt != "electra":
        raise CheckpointError(f"unknown export format {fmt!r}; use electra, bert or roberta")
    if model.disc_cfg.family == "albert":  # the family's own classes (hf/albert.py)
        return albert.pretrained_to_albert(model, part)
    if model.disc_cfg.family == "deberta":
        return deberta_hf.pretrained_to_hf(model, part)
    if part == "discriminator":
        cfg, enc = model.disc_cfg, model.encoder  # `encoder`: GDES merged into one word table
        tensors = encoder_to_hf(enc.state_dict(), cfg.num_layers)
        tensors |= head_to_hf(model.discriminator_head.state_dict(), DISC_HEAD_MAP)
        return hf_config(cfg, "ElectraForPreTraining"), tensors
    if part == "generator":
        cfg, enc = model.gen_cfg, model.generator_encoder
        tensors = encoder_to_hf(enc.state_dict(), cfg.num_layers)
        tensors |= head_to_hf(model.generator_head.state_dict(), GEN_HEAD_MAP)
        # generator_lm_head.weight is tied to the word embeddings: HF re-ties it on load
        return hf_config(cfg, "ElectraForMaskedLM"), tensors
    raise CheckpointError(f"unknown part {part!r}; use discriminator or generator")


# ---- fine-tuned models: encoder + task head -> a stock transformers task class ----------------


def finetuned_to_hf(cfg: ModelConfig, encoder_state: dict[str, torch.Tensor], head: nn.Module,
                    labels: tuple[str, ...], *, regression: tuple[float, float] | None = None
                    ) -> tuple[dict, dict[str, torch.Tensor], list[str]]:
    """A fine-tuned encoder + task head -> (HF config, HF tensors, notes on what HF leaves out),
    so a fine-tuned model loads in `transformers.AutoModelFor...` with the logits ours give in
    eval mode. `labels`: class or tag names in output order; `regression`: (low, width) of a
    regression task's normalised targets, folded into the head so that HF's logit is the score
    on the label scale (what `electra predict` reports, before clipping to the range).

    The span head masks non-context positions to -1e4 for its own decoding; HF's
    `qa_outputs` gives the same logits unmasked (its QA pipeline restricts answers itself)."""
    if cfg.family == "deberta":
        raise CheckpointError("a fine-tuned model.family=deberta model has no Hugging Face task-model "
                              "export yet; its encoder exports from the pre-training run (electra export)")
    notes: list[str] = []
    if cfg.family == "albert" and cfg.embedding_size == cfg.hidden_size:  # E != H: exact, unrolled
        raise CheckpointError("a fine-tuned ALBERT model with model.embedding_size = model.hidden_size has an "
                              "E -> H projection that the ELECTRA task classes lack; it cannot be exported")
    if isinstance(head, (ClassificationHead, ElectraClassificationHead)):
        if head.pooling != "cls":
            raise CheckpointError(f"this model was fine-tuned with head.pooling={head.pooling}; stock "
                                  "ElectraForSequenceClassification reads [CLS] only, so it cannot be "
                                  "exported (fine-tune with head.pooling=cls to export)")
        arch, head_tensors, extra = _sequence_head(head, labels, regression)
    elif isinstance(head, TokenHead):
        arch, head_tensors = "ElectraForTokenClassification", head_to_hf(head.state_dict(), TOKEN_HEAD_MAP)
        extra = _label_config(labels) | {"classifier_dropout": head.dropout.p}
    elif isinstance(head, SpanHead):
        arch, head_tensors = "ElectraForQuestionAnswering", head_to_hf(head.state_dict(), SPAN_HEAD_MAP)
        extra = {"num_labels": 2}
        if head.answerable is not None:
            notes.append("the SQuAD 2.0 answerability classifier has no place in ElectraForQuestionAnswering "
                         "and is left out; there the [CLS] start + end logits score 'no answer'")
    else:
        raise CheckpointError(f"a {type(head).__name__} head has no Hugging Face counterpart; it cannot "
                              "be exported")
    tensors = encoder_to_hf(encoder_state, cfg.num_layers) | head_tensors
    return hf_config(cfg, arch) | extra, tensors, notes


def _label_config(labels: tuple[str, ...]) -> dict:
    return {"id2label": {str(i): str(name) for i, name in enumerate(labels)},
            "label2id": {str(name): i for i, name in enumerate(labels)}}


def _sequence_head(head: ClassificationHead | ElectraClassificationHead, labels: tuple[str, ...],
                   regression: tuple[float, float] | None) -> tuple[str, dict[str, torch.Tensor], dict]:
    if isinstance(head, ElectraClassificationHead):
        state = dict(head.state_dict())
    else:
        state = linear_as_electra_head(head.out.weight.detach(), head.out.bias.detach())
    extra: dict = {"classifier_dropout": head.dropout.p}
    if regression is None:
        extra |= _label_config(labels) | {"problem_type": "single_label_classification"}
    else:
        low, width = regression
        state["out_proj.weight"] = state["out_proj.weight"] * width
        state["out_proj.bias"] = state["out_proj.bias"] * width + low
        extra |= {"num_labels": 1, "problem_type": "regression"}
    return "ElectraForSequenceClassification", head_to_hf(state, CLASSIFIER_HEAD_MAP), extra


def linear_as_electra_head(weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our linear head (W h + b on [CLS]) as weights of HF's `ElectraClassificationHead`, which
    computes out_proj(gelu(dense(h))) and has no linear variant. Because gelu(z) - gelu(-z) = z
    exactly, dense rows 2k and 2k+1 = +w_k and -w_k with out_proj (+1, -1) reproduce w_k . h + b_k
    (fp32: within an ulp, in any precision: relative, no cancellation). Needs 2C <= H."""
    C, H = weight.shape  # weight: [C, H], bias: [C]
    if 2 * C > H:
        raise CheckpointError(f"a linear head with {C} outputs needs a hidden size of at least {2 * C} to be "
                              f"written as ElectraForSequenceClassification (this model has {H}); "
                              "fine-tune with head.kind=electra to export it")
    k = torch.arange(C)
    dense = weight.new_zeros(H, H)  # [H, H]: rows 2k = w_k, 2k+1 = -w_k, the rest unused (gelu(0) = 0)
    dense[2 * k], dense[2 * k + 1] = weight, -weight
    out = weight.new_zeros(C, H)  # [C, H]
    out[k, 2 * k], out[k, 2 * k + 1] = 1.0, -1.0
    return {"dense.weight": dense, "dense.bias": weight.new_zeros(H), "out_proj.weight": out,
            "out_proj.bias": bias.clone()}
