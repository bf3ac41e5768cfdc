"""A fine-tuned model as a Hugging Face directory: `electra export FINETUNED_DIR --out DIR`.

`electra finetune` saves our own layout (finetune.json, model.safetensors in our names,
tokenizer/); this writes config.json + model.safetensors + tokenizer files that the stock
`transformers.AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering}` and
`AutoTokenizer` load, through the key maps in `electra.hf`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from electra.finetuning import glue
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.run import load_finetuned
from electra.finetuning.tasks import TaskSpec
from electra.hf import finetuned_to_hf, save_hf
from electra.hf.bert import with_tokenizer

# task kind -> the transformers auto class that loads its export
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification",
                "regression": "AutoModelForSequenceClassification",
                "tagging": "AutoModelForTokenClassification",
                "span": "AutoModelForQuestionAnswering"}


@dataclass(frozen=True)
class FinetunedExport:
    path: Path
    task: str
    architecture: str  # e.g. ElectraForSequenceClassification
    auto_class: str  # e.g. AutoModelForSequenceClassification
    notes: tuple[str, ...]  # what the HF model does differently from `electra predict`


def is_finetuned(path: str | Path) -> bool:
    """A directory written by `electra finetune` (it holds finetune.json)."""
    return (Path(path) / "finetune.json").is_file()


def export_finetuned(model_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> FinetunedExport:
    """Write the HF directory for a fine-tuned model; an existing export in `out` is replaced
    only with `overwrite`, and a directory holding anything else never."""
    model, spec, cfg, tokenizer, info = load_finetuned(model_dir)
    scale = glue.label_scale(spec) if spec.kind == "regression" else None
    config, tensors, notes = finetuned_to_hf(model.encoder.cfg, model.encoder.state_dict(), model.head,
                                             tuple(info["labels"]), regression=scale)
    config["finetuning_task"] = spec.name
    config, files = with_tokenizer(config, tokenizer)  # a one-type model's tokenizer types every token 0
    path = save_hf(out, config, tensors, files, overwrite=overwrite)
    return FinetunedExport(path=path, task=spec.name, architecture=config["architectures"][0],
                           auto_class=AUTO_CLASSES[spec.kind], notes=tuple(notes + _decoding_notes(spec, cfg)))


def _decoding_notes(spec: TaskSpec, cfg: FinetuneConfig) -> list[str]:
    """What `electra predict` does around the model that one transformers forward does not."""
    notes = []
    if spec.double_unordered and cfg.train.double_unordered:
        notes.append(f"electra predict averages the logits of both sentence orders for {spec.name}; one "
                     "transformers forward scores the order it is given")
    return notes
