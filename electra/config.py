"""Typed, validated configuration for every command, plus the named presets.

Configs are `kw_only` dataclass trees validated in `__post_init__`, so a bad value fails at
parse time with a message naming the field instead of deep inside a training run. The CLI applies
`section.field=value` overrides with `apply_overrides`; every run writes its resolved config as
JSON (`to_dict` / `from_dict`)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field

from electra.config_algorithm import AlgorithmConfig, check_algorithm, check_algorithm_sizes
from electra.config_io import (  # noqa: F401 - re-exported: callers import them from here
    apply_overrides,
    from_dict,
    load_json,
    save_json,
    to_dict,
)
from electra.config_sections import (  # noqa: F401 - re-exported: callers import them from here
    ALLOCATORS,
    CJK_MODES,
    DROPOUT_KERNELS,
    MASKING_UNITS,
    MODEL_FAMILIES,
    NONFINITE_ACTIONS,
    OBJECTIVE_KINDS,
    PACKING_MODES,
    PRECISIONS,
    SAMPLE_KERNELS,
    SCHEDULES,
    SHARE_LAYERS,
    SHARING_MODES,
    TOKENIZER_KINDS,
    UNICODE_MODES,
    WORD_SEGMENTATIONS,
    ModelConfig,
    OptimConfig,
    PreprocessConfig,
    TokenizerConfig,
    TrainConfig,
    check,
    check_choice,
    check_prob,
)
from electra.errors import ConfigError


@dataclass(kw_only=True)
class ObjectiveConfig(AlgorithmConfig):  # + algorithm and loss_weighting (config_algorithm.py)
    """The pre-training objective: its kind, generator size, sharing, masking and loss weights.

    kind: `electra` (replaced token detection on every token), `electra15` (RTD only on the masked
    positions), `mlm` (BERT: one encoder, masked LM, no generator), `replace_mlm` (masked LM of
    the discriminator-sized model on generator samples instead of [MASK]), `all_tokens_mlm` (it
    predicts every token's identity through a copy gate)."""

    kind: str = "electra"
    generator_size: float = 0.25  # fraction of the discriminator's hidden size, heads and FFN
    generator_layers: int | None = None  # None: same depth as the discriminator (G-EL)
    # explicit generator shape (e.g. to warm-start from a released generator); None: from size
    generator_hidden_size: int | None = None
    generator_heads: int | None = None
    generator_intermediate_size: int | None = None
    sharing: str = "embeddings"  # none | embeddings | all | gdes (DeBERTaV3: E_D = sg(E_G) + E_delta)
    mask_prob: float = 0.15
    # of the picked positions: the share replaced by [MASK] and by a random token; the rest keep
    # the original. None: the kind's default, BERT's 80/10/10 for mlm, G-EL's 85/0/15 otherwise
    mask_token_prob: float | None = None
    random_token_prob: float | None = None
    max_predictions: int | None = None  # None: int((mask_prob + 0.005) * seq_len), as G-EL
    mlm_weight: float = 1.0
    disc_weight: float = 50.0
    temperature: float = 1.0
    # sampling-temperature anneal: flat samples first (easy to spot), then `temperature`; the
    # temperature falls linearly from `temperature_start` over the first `temperature_steps`
    temperature_start: float | None = None
    temperature_steps: int = 0
    # warm start of the discriminator: for the first `disc_mlm_steps` updates it trains as a
    # masked LM (its own MLM head over the shared embeddings; no generator, no RTD), then the
    # generator and replaced-token detection start; 0: off (the paper)
    disc_mlm_steps: int = 0
    # ALBERT's sentence-order prediction: each two-segment row has its segments swapped with
    # probability 0.5 and the discriminator's [CLS] predicts the order; loss += sop_weight * SOP
    # (kind=mlm: the one encoder's). 0: off
    sop_weight: float = 0.0
    # what is masked as one unit: `token` (G-EL), `whole_word` (all pieces of a picked word;
    # Google/Chinese-BERT-wwm), `ngram` (ALBERT: spans of n whole words, p(n) ~ 1/n, n <= max_ngram);
    # the mask_prob budget is counted in tokens either way
    masking: str = "token"
    max_ngram: int = 3
    # start every masked-LM head's output bias at log p(token) of the training rows, so the
    # generator predicts the unigram distribution from step 0 instead of spending its first
    # thousands of updates learning word frequencies (Adam moves a bias ~lr per step, and log
    # frequencies span ~10 nats); off: zeros, as the paper and HF
    unigram_bias_init: bool = False

    def __post_init__(self) -> None:
        check_choice("objective.masking", self.masking, MASKING_UNITS)
        check(1 <= self.max_ngram <= 8, f"objective.max_ngram={self.max_ngram} must be in [1, 8]")
        check(0.0 < self.generator_size <= 1.0,
               f"objective.generator_size={self.generator_size} must be in (0, 1]")
        for name in ("generator_layers", "generator_hidden_size", "generator_heads",
                     "generator_intermediate_size"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"objective.{name} must be >= 1 (or None)")
        check_choice("objective.sharing", self.sharing, SHARING_MODES)
        check(0.0 < self.mask_prob < 1.0, f"objective.mask_prob={self.mask_prob} must be in (0, 1)")
        check_choice("objective.kind", self.kind, OBJECTIVE_KINDS)
        mask_token, random_token = self.corruption()
        check_prob("objective.mask_token_prob", mask_token)
        check_prob("objective.random_token_prob", random_token)
        check(mask_token + random_token <= 1.0 + 1e-9,
               "objective.mask_token_prob + objective.random_token_prob must be <= 1")
        check(self.max_predictions is None or self.max_predictions >= 1,
               "objective.max_predictions must be >= 1 (or None)")
        check(self.mlm_weight >= 0 and self.disc_weight >= 0, "loss weights must be >= 0")
        check(self.temperature > 0, "objective.temperature must be > 0")
        check(self.temperature_start is None or self.temperature_start > 0,
              "objective.temperature_start must be > 0 (or None: no anneal)")
        check(self.temperature_steps >= 0, "objective.temperature_steps must be >= 0")
        check(self.disc_mlm_steps >= 0, "objective.disc_mlm_steps must be >= 0 (0: off)")
        check(self.disc_mlm_steps == 0 or self.kind in ("electra", "electra15"),
              f"objective.disc_mlm_steps warm-starts replaced token detection; objective.kind="
              f"{self.kind} has none: set objective.disc_mlm_steps=0")
        check(self.sop_weight >= 0, "objective.sop_weight must be >= 0 (0: off)")
        check(self.sop_weight == 0 or self.kind in ("electra", "electra15", "mlm"),
              f"objective.sop_weight reads the [CLS] vector of the discriminator's RTD pass or the "
              f"masked LM's; objective.kind={self.kind} has neither: use electra, electra15 or mlm")
        check(self.sop_weight == 0 or self.kind == "mlm" or (self.disc_weight > 0 and self.disc_mlm_steps == 0),
              "objective.sop_weight needs the discriminator's pass on every step: set "
              "objective.disc_weight > 0 and objective.disc_mlm_steps=0")
        check(self.sop_weight == 0 or self.algorithm == "joint",
              f"objective.sop_weight is implemented for joint training; objective.algorithm="
              f"{self.algorithm} has steps without the discriminator's pass: set objective.sop_weight=0")
        if self.kind == "mlm":  # one encoder predicts its own masked tokens: no generator at all
            check(self.sharing not in ("none", "gdes"), "objective.kind=mlm has no generator, so "
                  "nothing to keep apart: leave objective.sharing at embeddings (or all)")
            for name in ("generator_layers", "generator_hidden_size", "generator_heads",
                         "generator_intermediate_size", "temperature_start"):
                check(getattr(self, name) is None, f"objective.kind=mlm has no generator to shape or "
                      f"sample from: remove objective.{name}")
        check_algorithm(self)

    def corruption(self) -> tuple[float, float]:
        """(mask_token_prob, random_token_prob), the kind's default where a field is None."""
        bert = self.kind == "mlm"
        return (self.mask_token_prob if self.mask_token_prob is not None else 0.8 if bert else 0.85,
                self.random_token_prob if self.random_token_prob is not None else 0.1 if bert else 0.0)

    @property
    def has_generator(self) -> bool:
        return self.kind != "mlm"

    @property
    def detects_replacements(self) -> bool:
        """A discriminator is trained with replaced token detection (RTD metrics apply)."""
        return self.kind in ("electra", "electra15") and self.disc_weight > 0

    def temperature_at(self, step: int) -> float:
        """The sampling temperature for the update made at `step` (0-based)."""
        if self.temperature_start is None or step >= self.temperature_steps:
            return self.temperature
        frac = step / self.temperature_steps
        return self.temperature_start + frac * (self.temperature - self.temperature_start)


@dataclass(kw_only=True)
class ProbeConfig:
    """A cheap fine-tuning probe during pre-training (`eval.task=sst2 eval.every=N`): a short
    fine-tune on a subset, to catch a run whose loss falls while it learns nothing useful."""

    task: str = ""  # "" = off; a GLUE classification/regression task name, e.g. sst2
    data: str = ""  # the task's directory (e.g. .../glue/SST-2) or HF datasets directory
    every: int = 0  # steps between probes; 0 = at every train.eval_every
    train_examples: int = 2000  # seeded subset of the training set
    eval_examples: int = 1000  # first N dev examples (0 = all)
    epochs: float = 1.0
    lr: float = 1e-4
    batch_size: int = 32
    max_seq_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.task:  # the task name is checked against the registry by finetuning.probe
            return
        check(bool(self.data), f"eval.task={self.task} needs eval.data=PATH (the task's GLUE directory)")
        check(self.every >= 0, "eval.every must be >= 0 (0 = at every train.eval_every)")
        check(self.train_examples >= 1 and self.eval_examples >= 0, "eval.train_examples must be >= 1")
        check(self.epochs > 0 and self.lr > 0 and self.batch_size >= 1, "eval.epochs, eval.lr and "
               "eval.batch_size must be > 0")


@dataclass(kw_only=True)
class PretrainConfig:
    """Everything `electra pretrain` needs; written to `<run>/config.json`."""

    preset: str = "small"
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # built-in data only
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)  # built-in data only
    eval: ProbeConfig = field(default_factory=ProbeConfig)  # fine-tuning probe (off by default)

    def __post_init__(self) -> None:
        if self.objective.sharing == "all" and self.objective.has_generator:
            check(self.generator_model() == self.model,
                   "objective.sharing=all ties every generator weight to the discriminator, so the "
                   "generator must be the same size: set objective.generator_size=1.0 (and no "
                   "generator_layers) or use objective.sharing=embeddings")
        check(self.objective.sop_weight == 0 or self.preprocess.packing == "electra",
              f"objective.sop_weight needs two-segment rows; preprocess.packing={self.preprocess.packing} "
              "makes one-segment rows: use preprocess.packing=electra")
        g = self.generator_model()
        check_algorithm_sizes(self.objective, g == self.model, self.train.steps)
        check(g.hidden_size % g.num_heads == 0,
               f"the generator's hidden size {g.hidden_size} is not divisible by its {g.num_heads} heads")
        # preprocess.seq_len vs max_position_embeddings is checked where rows are made or read
        # (api._prepare_data, train.state.check_data): with --data the rows' length comes from
        # the shards, not from this default

    def generator_model(self) -> ModelConfig:
        """The generator: same depth, width/heads/FFN scaled by `generator_size` (G-EL rule)."""
        o, m = self.objective, self.model
        f = o.generator_size
        hidden = o.generator_hidden_size or max(1, int(round(m.hidden_size * f)))
        heads = o.generator_heads or max(1, int(round(m.num_heads * f)))
        while hidden % heads and not o.generator_heads:
            heads -= 1
        return dataclasses.replace(
            m,
            hidden_size=hidden,
            num_heads=heads,
            intermediate_size=o.generator_intermediate_size or max(1, int(round(m.intermediate_size * f))),
            num_layers=o.generator_layers or m.num_layers,
        )


# ----------------------------------------------------------------------------------------------
# presets: exact google-research/electra hyper-parameters for small/base/large; `quick` is the
# default CPU run (built-in corpus, under 15 minutes on 2 cores); `tiny` is the architecture the
# CPU presets share, with the first default's recipe (the golden-loss test's run).


def _tiny() -> PretrainConfig:
    return PretrainConfig(
        preset="tiny",
        model=ModelConfig(vocab_size=8192, embedding_size=128, hidden_size=128, num_layers=4,
                          num_heads=2, intermediate_size=512, max_position_embeddings=128,
                          dropout=0.0, attention_dropout=0.0),
        # At this scale a generator sampling at temperature 1 is too strong for the
        # discriminator: its replacements are as plausible as the discriminator can judge, and
        # the RTD loss stays at the all-original plateau for thousands of steps (measured: AUC
        # 0.52 after 3,500 steps). Flatter samples (G-EL's `temperature` knob) give the
        # discriminator a learnable signal within minutes; small/base/large keep 1.0.
        objective=ObjectiveConfig(generator_size=0.5, temperature=2.0),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, schedule="original"),
        train=TrainConfig(steps=800, batch_size=32, log_every=50, eval_every=200,
                          eval_rows=256, save_every=400, keep_last=2),
        tokenizer=TokenizerConfig(vocab_size=8192),
        preprocess=PreprocessConfig(seq_len=128),
    )


def _mini() -> PretrainConfig:
    """The CPU study's recipe (RESULTS.md, "pre-training that pays"): the tiny model at the
    paper's temperature 1 with one encoder for both losses (the paper's "all weights shared"
    mode, generator = discriminator) at lambda 1, on 64-token rows in batches of 16 (more
    updates per token), the masked-LM head started at the data's unigram log-probs
    (objective.unigram_bias_init). 32,000 steps = 32 M tokens, one pass over two enwiki dumps'
    worth of text (pass --data; the built-in sample is 1.8 M tokens). Measured on the shared
    Wikipedia: the generator leaves the unigram plateau at 6-8 M tokens and ends +2.4 nats above
    its context-free reference, the discriminator +0.09 AUC; 8,000 steps (the earlier length)
    stopped at +0.31 / +0.03, before the plateau was left for good."""
    base = _tiny()
    return dataclasses.replace(
        base, preset="mini",
        objective=ObjectiveConfig(sharing="all", generator_size=1.0, disc_weight=1.0, temperature=1.0,
                                  unigram_bias_init=True),
        optim=OptimConfig(lr=1e-3, warmup_steps=400, schedule="original"),
        train=TrainConfig(steps=32000, batch_size=16, log_every=200, eval_every=2000, eval_rows=256,
                          save_every=2000, save_every_minutes=15, keep_last=16),
        preprocess=PreprocessConfig(seq_len=64),
    )


def _quick() -> PretrainConfig:
    """The default run (`electra pretrain` with no preset): mini's recipe on the built-in corpus
    for 4,000 steps (3.8 M tokens, two passes over the sample), with its replacements sampled at
    temperature 2 as `tiny` does. Measured on the built-in corpus (RESULTS.md): both models clear
    their context-free references by the end (generator +0.07 nats, discriminator +0.06 AUC),
    where `tiny` leaves the generator below its reference and mini at temperature 1 the
    discriminator within noise of it. Flatter samples are what gives the discriminator its gain
    in minutes; the shared encoder at lambda 1 with the unigram head start is what gives the
    generator its own."""
    base = _mini()
    return dataclasses.replace(
        base, preset="quick",
        objective=dataclasses.replace(base.objective, temperature=2.0),
        train=dataclasses.replace(base.train, steps=4000, eval_every=1000, save_every_minutes=0.0,
                                  keep_last=2),
    )


def _paper(name: str, *, hidden: int, layers: int, heads: int, embedding: int, generator: float,
           lr: float, steps: int, batch: int, seq_len: int, mask_prob: float = 0.15) -> PretrainConfig:
    """google-research/electra's configuration for one model size (FFN = 4 x hidden, Adam
    without bias correction, 10k warm-up steps)."""
    return PretrainConfig(
        preset=name,
        model=ModelConfig(embedding_size=embedding, hidden_size=hidden, num_layers=layers,
                          num_heads=heads, intermediate_size=4 * hidden),
        objective=ObjectiveConfig(generator_size=generator, mask_prob=mask_prob),
        optim=OptimConfig(lr=lr, warmup_steps=10_000, bias_correction=False),
        train=TrainConfig(steps=steps, batch_size=batch),
        preprocess=PreprocessConfig(seq_len=seq_len),
    )


def _small() -> PretrainConfig:
    return _paper("small", hidden=256, layers=12, heads=4, embedding=128, generator=0.25, lr=5e-4,
                  steps=1_000_000, batch=128, seq_len=128)


def _base() -> PretrainConfig:
    return _paper("base", hidden=768, layers=12, heads=12, embedding=768, generator=1 / 3, lr=2e-4,
                  steps=766_000, batch=256, seq_len=512)


def _large() -> PretrainConfig:
    return _paper("large", hidden=1024, layers=24, heads=16, embedding=1024, generator=0.25,
                  lr=2e-4, steps=400_000, batch=2048, seq_len=512, mask_prob=0.25)


def _roberta() -> PretrainConfig:
    """RoBERTa's recipe at the tiny size (REFERENCE.md): byte-level BPE (cased, no unknown
    tokens), FULL-SENTENCES one-segment rows and so one token type, BERT's masked LM with a new
    80/10/10 mask every step (dynamic masking) and no NSP, Adam beta2 0.98, linear warm-up and
    decay. E = H, so the run also exports as `RobertaForMaskedLM` (RUN/export/roberta); scale it
    with model.* overrides, keeping model.embedding_size = model.hidden_size."""
    base = _tiny()
    return dataclasses.replace(
        base, preset="roberta",
        model=dataclasses.replace(base.model, type_vocab_size=1),
        objective=ObjectiveConfig(kind="mlm"),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, schedule="linear", beta2=0.98),
        tokenizer=TokenizerConfig(kind="bpe", vocab_size=8192, lowercase=False),
        preprocess=PreprocessConfig(seq_len=128, packing="full_sentences"),
    )


def _albert() -> PretrainConfig:
    """ALBERT's recipe at the tiny size (REFERENCE.md): factorised embeddings (E = 64 under
    H = 128), one layer's weights used at all 4 depths (model.share_layers=all; attention / ffn
    share one sublayer), BERT's masked LM with sentence-order prediction on the two-segment rows
    (objective.sop_weight=1; with objective.kind=electra it trains RTD + SOP instead), n-gram
    whole-word masking (spans of n <= 3 words, p(n) proportional to 1/n). Exports
    `AlbertForPreTraining` (RUN/export/discriminator)."""
    base = _tiny()
    return dataclasses.replace(
        base, preset="albert",
        model=dataclasses.replace(base.model, family="albert", share_layers="all", embedding_size=64),
        objective=ObjectiveConfig(kind="mlm", sop_weight=1.0, masking="ngram", max_ngram=3),
    )


def _debertav3() -> PretrainConfig:
    """DeBERTaV3's recipe at the tiny size (REFERENCE.md): the DeBERTa backbone (disentangled
    attention over log-bucketed relative positions, no absolute position in the input, the
    enhanced mask decoder in the generator) trained with replaced token detection and
    gradient-disentangled embedding sharing (objective.sharing=gdes), a generator as wide as the
    discriminator and half as deep, RTD weight 10. Exports `DebertaV2Model` (discriminator) and
    `DebertaV2ForMaskedLM` (generator). Scale with model.* overrides, keeping
    objective.generator_layers at half of model.num_layers."""
    base = _tiny()
    return dataclasses.replace(
        base, preset="debertav3",
        # 64 buckets: exact distances up to 32, log-spaced up to the 128-token rows (v3: 256 for 512)
        model=dataclasses.replace(base.model, family="deberta", embedding_size=base.model.hidden_size,
                                  relative_buckets=64),
        objective=ObjectiveConfig(sharing="gdes", generator_size=1.0,
                                  generator_layers=base.model.num_layers // 2, disc_weight=10.0,
                                  temperature=base.objective.temperature),
    )


DEFAULT_PRESET = "quick"  # what `electra pretrain` and `electra.pretrain()` run without one
PRESETS: dict[str, typing.Callable[[], PretrainConfig]] = {
    "tiny": _tiny,
    "quick": _quick,
    "mini": _mini,
    "small": _small,
    "base": _base,
    "large": _large,
    "roberta": _roberta,
    "albert": _albert,
    "debertav3": _debertav3,
}


def preset(name: str) -> PretrainConfig:
    if name not in PRESETS:
        hint = difflib.get_close_matches(name, PRESETS, n=1)
        raise ConfigError(f"unknown preset {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                          + f" (available: {', '.join(PRESETS)})")
    return PRESETS[name]()
