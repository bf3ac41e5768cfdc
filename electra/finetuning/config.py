"""Fine-tuning configuration: paper Table 7 defaults per model size, all overridable.

`FinetuneConfig` is what `electra finetune` / `electra evaluate` resolve from the command line
(`section.field=value`) and write into every fine-tuned model directory."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from electra.config import (
    ALLOCATORS,
    DROPOUT_KERNELS,
    PRECISIONS,
    SCHEDULES,
    OptimConfig,
    check,
    check_choice,
    check_prob,
)
from electra.errors import ConfigError

FINETUNE_SIZES = ("auto", "tiny", "small", "base", "large")
# size -> (peak lr, layer-wise lr decay): small/base/large are paper Table 7 / G-EL
# configure_finetuning.py; tiny is the CPU presets' 4-layer, 128-wide encoders, which the
# paper's Small recipe under-trains in its few hundred steps (RESULTS.md, "fine-tuning side":
# decay 0.8 cost 8-9 SST-2 points, and lr 1e-3 beat 3e-4 for pre-trained encoders)
SIZE_DEFAULTS = {"tiny": (1e-3, 1.0), "small": (3e-4, 0.8), "base": (1e-4, 0.8), "large": (5e-5, 0.9)}
LLRD_MODES = ("correct", "original")
POOLINGS = ("cls", "mean")
HEAD_KINDS = ("linear", "electra")


def seed_list(seeds: object, name: str = "seeds") -> list[int]:
    """Fine-tuning seeds from a count (3: seeds 0, 1, 2) or distinct integers (a list, a range,
    numpy integers), as the CLI's --seeds, an experiment's finetune.seeds and the Python API take
    them. A bool or a string is neither."""
    def integer(x: object) -> int | None:
        try:
            return None if isinstance(x, bool) else operator.index(x)
        except TypeError:
            return None

    count = integer(seeds)
    listed = ([integer(s) for s in seeds] if isinstance(seeds, Iterable)  # a list, range, numpy array
              and not isinstance(seeds, (str, bytes, Mapping)) else [])
    if count is not None and count >= 1:
        return list(range(count))
    if listed and None not in listed and len(set(listed)) == len(listed):
        return listed
    raise ConfigError(f"{name}={seeds!r} must be a count (3) or distinct integers (0, 1, 2)")


@dataclass(kw_only=True)
class FinetuneOptimConfig:
    """AdamW with layer-wise LR decay; `None` values take the model size's default."""

    lr: float | None = None  # None: 1e-3 / 3e-4 / 1e-4 / 5e-5 for tiny / small / base / large
    layerwise_lr_decay: float | None = None  # None: 1.0 / 0.8 / 0.8 / 0.9; 1.0 turns it off
    # correct: head lr, top layer lr*d, ..., embeddings lr*d^(L+1); original: G-EL's off-by-one
    # (top layer lr*d^2, embeddings lr*d^(L+2)), google-research/electra issue #51
    llrd_mode: str = "correct"
    warmup_fraction: float = 0.1
    schedule: str = "linear"  # linear: warmup then linear decay to 0; original: G-EL's product
    weight_decay: float = 0.0  # the paper's 0 (G-EL's code uses 0.01)
    eps: float = 1e-6
    beta1: float = 0.9
    beta2: float = 0.999
    bias_correction: bool = True  # False: G-EL's Adam without bias correction
    clip_norm: float = 1.0  # G-EL clips the global norm at 1.0; 0 disables

    def __post_init__(self) -> None:
        check(self.lr is None or self.lr > 0, f"optim.lr={self.lr} must be > 0")
        d = self.layerwise_lr_decay
        check(d is None or 0 < d <= 1, f"optim.layerwise_lr_decay={d} must be in (0, 1]")
        check_choice("optim.llrd_mode", self.llrd_mode, LLRD_MODES)
        check_prob("optim.warmup_fraction", self.warmup_fraction, open_right=True)
        check_choice("optim.schedule", self.schedule, SCHEDULES)
        check(self.weight_decay >= 0 and self.eps > 0 and self.clip_norm >= 0,
               "optim.weight_decay and optim.clip_norm must be >= 0, optim.eps > 0")

    def to_runtime(self, total_steps: int) -> OptimConfig:
        """The training runtime's optimizer settings for a run of `total_steps` updates (the
        layer-wise decay is applied separately, as per-parameter LR scales)."""
        if self.lr is None:
            raise ValueError("FinetuneConfig.resolved() fills in optim.lr first")
        return OptimConfig(lr=self.lr,
                           warmup_steps=int(self.warmup_fraction * total_steps),
                           schedule=self.schedule, weight_decay=self.weight_decay, beta1=self.beta1,
                           beta2=self.beta2, eps=self.eps, bias_correction=self.bias_correction,
                           clip_norm=self.clip_norm)


@dataclass(kw_only=True)
class FinetuneTrainConfig:
    """Epochs, batches, sequence length and where/how the model runs."""

    epochs: float | None = None  # None: the task's default (3; RTE and STS-B 10; SQuAD 2)
    batch_size: int = 32
    eval_batch_size: int = 64
    max_seq_len: int = 128  # classification and tagging; SQuAD uses squad.max_seq_len
    dropout: float = 0.1  # encoder dropout while fine-tuning, whatever pre-training used
    double_unordered: bool = True  # MRPC/STS-B: train on both sentence orders, average both at eval
    train_examples: int = 0  # 0: all; N: a seeded subset (quick checks, probes)
    eval_examples: int = 0  # 0: all; N: the first N dev examples
    log_every: int = 100  # optimizer steps between progress lines
    precision: str = "auto"  # auto: bf16 where native, else fp32
    device: str = "auto"
    threads: int = 0
    dropout_kernel: str = "auto"  # speed only, as in pre-training: packed-bit masks on CPU
    allocator: str = "auto"  # speed only: glibc keeps freed memory for the next step
    # fresh weights for the top N encoder layers before fine-tuning (Zhang et al. 2021,
    # "Revisiting few-sample BERT fine-tuning"): a briefly pre-trained top layer is specialised to
    # its pre-training task, and with few examples starting it fresh can transfer better
    reinit_layers: int = 0

    def __post_init__(self) -> None:
        check(self.reinit_layers >= 0, f"train.reinit_layers={self.reinit_layers} must be >= 0")
        check(self.epochs is None or self.epochs > 0, f"train.epochs={self.epochs} must be > 0")
        for name in ("batch_size", "eval_batch_size", "log_every"):
            check(getattr(self, name) >= 1, f"train.{name} must be >= 1")
        check(8 <= self.max_seq_len <= 8192, f"train.max_seq_len={self.max_seq_len} must be in [8, 8192]")
        check_prob("train.dropout", self.dropout, open_right=True)
        check(self.train_examples >= 0 and self.eval_examples >= 0 and self.threads >= 0,
               "train.train_examples, train.eval_examples and train.threads must be >= 0")
        check_choice("train.precision", self.precision, PRECISIONS)
        check_choice("train.dropout_kernel", self.dropout_kernel, DROPOUT_KERNELS)
        check_choice("train.allocator", self.allocator, ALLOCATORS)
        check(self.device in ("auto", "cpu") or self.device.startswith("cuda"),
               f"train.device={self.device!r} must be auto, cpu, cuda or cuda:N")


@dataclass(kw_only=True)
class HeadConfig:
    """linear: dropout + linear on [CLS] (the paper); electra: HF's ElectraClassificationHead
    (dropout, dense, GELU, dropout, linear)."""

    kind: str = "linear"
    dropout: float = 0.1
    # sentence tasks: "cls" (the paper, and what stock HF classifiers compute) or "mean" (masked
    # mean of the token vectors; for encoders pre-trained too briefly to use [CLS], RESULTS.md)
    pooling: str = "cls"

    def __post_init__(self) -> None:
        check_choice("head.kind", self.kind, HEAD_KINDS)
        check_choice("head.pooling", self.pooling, POOLINGS)
        check_prob("head.dropout", self.dropout, open_right=True)


@dataclass(kw_only=True)
class SquadConfig:
    """Question answering: windows over long contexts, decoding, SQuAD 2.0 answerability."""

    max_seq_len: int = 512  # the paper's; capped at the model's max_position_embeddings
    doc_stride: int = 128  # tokens between window starts (BERT/G-EL meaning)
    max_query_len: int = 64
    max_answer_len: int = 30
    n_best: int = 20
    answerable_weight: float = 0.5  # weight of the answerability loss (SQuAD 2.0)

    def __post_init__(self) -> None:
        for name in ("max_seq_len", "doc_stride", "max_query_len", "max_answer_len", "n_best"):
            check(getattr(self, name) >= 1, f"squad.{name} must be >= 1")
        check(self.max_query_len + 8 <= self.max_seq_len,
               "squad.max_query_len must leave room for the context in squad.max_seq_len")
        check(self.answerable_weight >= 0, "squad.answerable_weight must be >= 0")


@dataclass(kw_only=True)
class DataConfig:
    """Column / field names of the user's own CSV, TSV and JSONL files."""

    text_column: str = "sentence"
    pair_column: str | None = None  # set for sentence-pair tasks
    label_column: str = "label"
    tokens_field: str = "tokens"  # JSONL tagging
    tags_field: str = "tags"


@dataclass(kw_only=True)
class FinetuneConfig:
    """Everything `electra finetune` needs; written into the fine-tuned model's directory."""

    size: str = "auto"  # auto: from the hidden size (<= 128 tiny, <= 256 small, <= 768 base, else large)
    seed: int = 0
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    squad: SquadConfig = field(default_factory=SquadConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        check_choice("size", self.size, FINETUNE_SIZES)

    def size_for(self, hidden_size: int) -> str:
        if self.size != "auto":
            return self.size
        return ("tiny" if hidden_size <= 128 else "small" if hidden_size <= 256 else
                "base" if hidden_size <= 768 else "large")

    def resolved(self, hidden_size: int) -> FinetuneConfig:
        """The config with lr and layer-wise decay filled in from the model size."""
        size = self.size_for(hidden_size)
        lr, decay = SIZE_DEFAULTS[size]
        optim = dataclasses.replace(self.optim, lr=self.optim.lr or lr,
                                    layerwise_lr_decay=self.optim.layerwise_lr_decay or decay)
        return dataclasses.replace(self, size=size, optim=optim)
