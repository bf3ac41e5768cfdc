"""The data, architecture, optimizer and loop sections of the pre-training config
(`tokenizer`, `preprocess`, `model`, `optim`, `train`), the choice lists and the small checks
every config section uses. Split from `config.py`, which re-exports all of it, so each module
stays one readable screenful per section; callers import from `electra.config`."""

from __future__ import annotations

from dataclasses import dataclass

from electra.errors import ConfigError

SHARING_MODES = ("none", "embeddings", "all", "gdes")  # gdes: DeBERTaV3, E_D = sg(E_G) + E_delta
# the paper's objectives (REFERENCE.md, "The paper's ablations"); each a module in objective/
OBJECTIVE_KINDS = ("electra", "electra15", "mlm", "replace_mlm", "all_tokens_mlm")
SCHEDULES = ("original", "linear", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
NONFINITE_ACTIONS = ("stop", "rollback")  # train.on_nonfinite (train/rollback.py)
DROPOUT_KERNELS = ("auto", "torch", "packed")  # train.dropout_kernel (model/dropout.py)
ALLOCATORS = ("auto", "system")  # train.allocator (train/cpu_runtime.py)
SAMPLE_KERNELS = ("auto", "gumbel", "cdf")  # train.sample_kernel (objective/sampling.py)
TOKENIZER_KINDS = ("wordpiece", "bpe", "unigram")
CJK_MODES = ("chars", "none")
UNICODE_MODES = ("auto", "none", "nfc", "nfkc", "nfd", "nfkd")  # tokenizer.unicode
PACKING_MODES = ("electra", "full_sentences", "doc_sentences")
MASKING_UNITS = ("token", "whole_word", "ngram")  # objective.masking
WORD_SEGMENTATIONS = ("none", "jieba", "file")  # preprocess.word_segmentation
MODEL_FAMILIES = ("electra", "albert", "deberta")
# ALBERT cross-layer sharing: one layer for all, or only its attention / FFN (LayerNorms stay per layer)
SHARE_LAYERS = ("none", "all", "attention", "ffn")


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def check_prob(name: str, value: float, *, open_right: bool = False) -> None:
    ok = 0.0 <= value < 1.0 if open_right else 0.0 <= value <= 1.0
    check(ok, f"{name}={value} is not a probability; use a value in [0, 1{')' if open_right else ']'}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    check(value in choices, f"{name}={value!r} is not one of {', '.join(choices)}")


@dataclass(kw_only=True)
class TokenizerConfig:
    """How `electra tokenizer train` builds a vocabulary."""

    kind: str = "wordpiece"
    vocab_size: int = 30522
    lowercase: bool = True
    strip_accents: bool | None = None  # None: strip when lower-casing, as BERT uncased does
    min_frequency: int = 2
    limit_alphabet: int = 1000
    # "chars": every CJK ideograph is a token boundary, as BERT-Chinese; "none": Chinese text
    # without spaces is one word for the model to split
    cjk: str = "chars"
    # Unicode normal form applied before everything else: auto (the kind's own: NFKC for unigram,
    # none for wordpiece and bpe), none, nfc, nfkc, nfd or nfkd
    unicode: str = "auto"
    text_field: str = "text"  # JSONL field or CSV/TSV column(s) holding the text

    def __post_init__(self) -> None:
        check_choice("tokenizer.kind", self.kind, TOKENIZER_KINDS)
        check_choice("tokenizer.cjk", self.cjk, CJK_MODES)
        check_choice("tokenizer.unicode", self.unicode, UNICODE_MODES)
        check(self.vocab_size >= 100, f"tokenizer.vocab_size={self.vocab_size} is too small; use at least 100")
        check(self.limit_alphabet >= 26, f"tokenizer.limit_alphabet={self.limit_alphabet} keeps too few characters "
              "for a vocabulary (every other one becomes [UNK]); use at least 26, e.g. the default 1000")
        check(self.kind != "bpe" or self.vocab_size > 261, f"tokenizer.vocab_size={self.vocab_size} "
              "leaves byte-level BPE no merges (256 bytes + 5 special tokens); use at least 300")
        check(self.min_frequency >= 1, "tokenizer.min_frequency must be >= 1")


@dataclass(kw_only=True)
class PreprocessConfig:
    """How `electra preprocess` turns documents into packed rows (google-research/electra style)."""

    seq_len: int = 128
    packing: str = "electra"
    split_sentences: bool = True  # split paragraph lines into sentences before packing
    valid_fraction: float = 0.01  # share of documents held out for validation, chosen by hash
    single_segment_prob: float = 0.1  # rows with only segment A, as in classification inputs
    short_seq_prob: float = 0.05  # rows with a random shorter target length
    rows_per_shard: int = 65536
    workers: int = 0  # 0: all cores
    seed: int = 12345
    text_field: str = "text"  # as tokenizer.text_field
    # word boundaries stored beside the shards for whole-word masking where the vocabulary cannot
    # tell them (Chinese characters): "jieba" segments each line at preprocessing time, "file"
    # reads `segmentation_file` (one line per corpus line, words separated by spaces)
    word_segmentation: str = "none"
    segmentation_file: str = ""

    def __post_init__(self) -> None:
        check(8 <= self.seq_len <= 8192, f"preprocess.seq_len={self.seq_len} must be in [8, 8192]")
        check_choice("preprocess.word_segmentation", self.word_segmentation, WORD_SEGMENTATIONS)
        check((self.word_segmentation == "file") == bool(self.segmentation_file),
              "preprocess.segmentation_file names the reference file of word_segmentation=file "
              "(and only then): set both or neither")
        check_choice("preprocess.packing", self.packing, PACKING_MODES)
        check_prob("preprocess.valid_fraction", self.valid_fraction, open_right=True)
        check_prob("preprocess.single_segment_prob", self.single_segment_prob)
        check_prob("preprocess.short_seq_prob", self.short_seq_prob)
        check(self.rows_per_shard >= 1, "preprocess.rows_per_shard must be >= 1")
        check(self.workers >= 0, "preprocess.workers must be >= 0 (0 = all cores)")


@dataclass(kw_only=True)
class ModelConfig:
    """One post-LN transformer encoder, numerically the same as HF `ElectraModel`."""

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    # how fresh position embeddings start (they stay learned, so exports are unchanged):
    # "normal" (BERT/HF) or "sinusoidal" (Transformer-style table scaled to initializer_range,
    # so nearby positions start similar and local attention is easier to find early)
    position_init: str = "normal"
    # which layers: "electra" (BERT/ELECTRA post-LN, learned absolute positions), "albert" (the
    # same layers, E -> H projection always present, optionally shared across layers)
    family: str = "electra"
    share_layers: str = "none"  # albert only: none | all | attention | ffn
    # deberta family only (model/deberta.py: DeBERTa-v2/v3 disentangled attention over relative
    # positions): distances in log buckets (HF `position_buckets`; 0: no buckets, every distance
    # up to max_relative_positions its own row), the largest distance the buckets are spaced for
    # (0: max_position_embeddings), and the enhanced mask decoder's passes (absolute positions
    # added before the MLM head; None: the paper's 2, 0: off)
    relative_buckets: int = 256
    max_relative_positions: int = 0
    emd_layers: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings"):
            check(getattr(self, name) >= 1, f"model.{name}={getattr(self, name)} must be >= 1")
        check(self.type_vocab_size >= (0 if self.family == "deberta" else 1),  # HF DeBERTa-v3: 0
              f"model.type_vocab_size={self.type_vocab_size} must be >= 1 (0 only for model.family=deberta)")
        check(self.hidden_size % self.num_heads == 0,
               f"model.hidden_size={self.hidden_size} is not divisible by model.num_heads={self.num_heads}")
        check_prob("model.dropout", self.dropout, open_right=True)
        check_prob("model.attention_dropout", self.attention_dropout, open_right=True)
        check(0 <= self.pad_token_id < self.vocab_size, "model.pad_token_id must be a valid token id")
        check(self.position_init in ("normal", "sinusoidal"),
              f"model.position_init={self.position_init!r} must be 'normal' or 'sinusoidal'")
        check_choice("model.family", self.family, MODEL_FAMILIES)
        check_choice("model.share_layers", self.share_layers, SHARE_LAYERS)
        check(self.share_layers == "none" or self.family == "albert",
              f"model.share_layers={self.share_layers} is ALBERT's cross-layer sharing: set model.family=albert")
        self._check_deberta()

    def _check_deberta(self) -> None:
        check(self.relative_buckets >= 0 and self.max_relative_positions >= 0 and (self.emd_layers or 0) >= 0,
              "model.relative_buckets, model.max_relative_positions and model.emd_layers must be >= 0")
        if self.family != "deberta":
            check(not self.emd_layers, "model.emd_layers (the enhanced mask decoder) is a "
                  "model.family=deberta option; remove it or set model.family=deberta")
            return
        mid = self.relative_buckets // 2
        check(self.relative_buckets == 0 or mid >= 1 and (mid < self.relative_span_limit - 1 or
                                                          mid >= self.max_position_embeddings - 1),
              f"model.relative_buckets={self.relative_buckets}: half of it must be below model."
              f"max_relative_positions - 1 = {self.relative_span_limit - 1} (or cover every distance)")
        check(self.position_init == "normal" or self.emd_depth > 0, "model.position_init applies to "
              "the absolute position table, which model.family=deberta has only with model.emd_layers > 0")

    @property
    def relative_span_limit(self) -> int:
        """The largest relative distance the deberta family spaces its buckets for."""
        return self.max_relative_positions or self.max_position_embeddings

    @property
    def relative_span(self) -> int:
        """Rows on each side of distance 0 in the relative-position table (2 x this in all)."""
        return self.relative_buckets or self.relative_span_limit

    @property
    def emd_depth(self) -> int:
        """Enhanced-mask-decoder passes: `emd_layers`, or the deberta family's 2 when unset."""
        if self.emd_layers is not None:
            return self.emd_layers
        return 2 if self.family == "deberta" else 0


@dataclass(kw_only=True)
class OptimConfig:
    """AdamW (optionally without bias correction, as G-EL) and the learning-rate schedule."""

    lr: float = 5e-4
    warmup_steps: int = 10_000
    schedule: str = "original"  # original: linear decay x min(1, step/warmup), as G-EL
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    bias_correction: bool = True  # False: G-EL's Adam without bias correction (small/base/large)
    clip_norm: float = 1.0  # 0 disables clipping

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optim.lr={self.lr} must be > 0")
        check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        check_choice("optim.schedule", self.schedule, SCHEDULES)
        check(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "optim.beta1/beta2 must be in [0, 1)")
        check(self.eps > 0, "optim.eps must be > 0")
        check(self.clip_norm >= 0, "optim.clip_norm must be >= 0 (0 disables clipping)")


@dataclass(kw_only=True)
class TrainConfig:
    """Loop length, batch, precision and the log/eval/save cadence."""

    steps: int = 1_000_000
    stop_at: int = 0  # end this invocation after this step (0: at `steps`); resume continues
    # compute budgets (0 = off): stop, with a checkpoint and exports as at `steps`, once this many
    # training FLOPs are spent (counted as batch_size x seq_len tokens per step, the rows' capacity)
    # or this many minutes of training have passed in one invocation; equal budgets make
    # objectives comparable at equal compute. A FLOP budget also ends the LR schedule (decay to 0
    # at the step that spends it, if before `steps`); a time budget only stops the run
    budget_flops: float = 0.0
    budget_minutes: float = 0.0
    batch_size: int = 128  # global batch, in rows, per optimizer step
    grad_accum: int = 1
    precision: str = "auto"  # auto: bf16 on GPUs and CPUs with native bf16, else fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 1234
    log_every: int = 100
    eval_every: int = 10_000
    eval_rows: int = 1024  # validation rows used per evaluation (fixed masks, fixed samples)
    save_every: int = 10_000
    save_every_minutes: float = 0.0  # also checkpoint when this much wall time has passed; 0: off
    keep_last: int = 3
    compile: bool = False
    gradient_checkpointing: bool = False  # recompute layer activations in backward: less memory
    threads: int = 0  # CPU intra-op threads; 0 = leave torch's default
    # speed only (BENCHMARKS.md): packed-bit dropout masks on CPU (auto) or torch's own;
    # a glibc allocator that keeps freed memory for the next step (auto) or untouched (system);
    # generator samples by inverse CDF on CPU (auto) or by Gumbel-max: the same distribution,
    # not the same random stream (gumbel repeats runs made before the inverse CDF existed)
    dropout_kernel: str = "auto"
    allocator: str = "auto"
    sample_kernel: str = "auto"
    max_bad_steps: int = 3  # this many steps with a non-finite loss/gradient end the stretch ...
    # ... `stop`: the run stops with the command that resumes it at a lower rate; `rollback`: it
    # reloads the newest checkpoint with finite weights and goes on at `rollback_lr_factor` x the
    # rate, at most `max_rollbacks` times (then it stops)
    on_nonfinite: str = "stop"
    rollback_lr_factor: float = 0.5
    max_rollbacks: int = 3

    def __post_init__(self) -> None:
        check(self.steps >= 1, f"train.steps={self.steps} must be >= 1")
        check(0 <= self.stop_at, "train.stop_at must be >= 0 (0 = run to train.steps)")
        check(self.budget_flops >= 0 and self.budget_minutes >= 0,
              "train.budget_flops and train.budget_minutes must be >= 0 (0: off)")
        check(self.batch_size >= 1, f"train.batch_size={self.batch_size} must be >= 1")
        check(self.grad_accum >= 1, "train.grad_accum must be >= 1")
        check(self.batch_size % self.grad_accum == 0,
               f"train.batch_size={self.batch_size} is not divisible by train.grad_accum={self.grad_accum}")
        check_choice("train.precision", self.precision, PRECISIONS)
        check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
               f"train.device={self.device!r} must be auto, cpu, cuda or cuda:N")
        for name in ("log_every", "eval_every", "save_every", "keep_last", "eval_rows"):
            check(getattr(self, name) >= 1, f"train.{name} must be >= 1")
        check(self.threads >= 0, "train.threads must be >= 0")
        check_choice("train.dropout_kernel", self.dropout_kernel, DROPOUT_KERNELS)
        check_choice("train.allocator", self.allocator, ALLOCATORS)
        check_choice("train.sample_kernel", self.sample_kernel, SAMPLE_KERNELS)
        check(self.max_bad_steps >= 1, "train.max_bad_steps must be >= 1")
        check_choice("train.on_nonfinite", self.on_nonfinite, NONFINITE_ACTIONS)
        check(0 < self.rollback_lr_factor < 1, f"train.rollback_lr_factor={self.rollback_lr_factor} "
              "must be in (0, 1): a roll-back lowers the rate")
        check(self.max_rollbacks >= 1, "train.max_rollbacks must be >= 1")
        check(self.save_every_minutes >= 0, "train.save_every_minutes must be >= 0 (0: off)")
