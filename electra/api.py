"""The Python API: pre-train, fine-tune, evaluate, export and load. The CLI is a thin layer over it.

    import electra
    run = electra.pretrain("tiny", out="runs/demo", overrides=["train.steps=200"])
    res = electra.finetune(run.exports["discriminator"], "sst2", data="glue/SST-2")
    electra.export(run.train.run_dir, "hf/disc")
    model = electra.load("runs/demo")  # .model .config .tokenizer .meta

`pretrain` without `data` trains a WordPiece tokenizer on the corpus (the built-in Wikipedia
sample by default), packs it into shards inside the run directory, pre-trains, and exports the
discriminator and generator in Hugging Face format. Only the main process prepares data; the
others wait at a barrier."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electra.config import (
    DEFAULT_PRESET,
    PretrainConfig,
    apply_overrides,
    load_json,
    preset,
    save_json,
)
from electra.data.corpus import iter_documents
from electra.data.preprocess import preprocess
from electra.data.shards import Manifest, read_manifest
from electra.data.tokenizer import Tokenizer, train_tokenizer
from electra.errors import ConfigError, ElectraError
from electra.files import is_atomic_tmp, write_text_atomic
from electra.finetuning.config import FinetuneConfig, seed_list
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf
from electra.hf.bert import auto_format, with_tokenizer
from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.train.flops import resolve_two_stage
from electra.train.loop import PretrainResult
from electra.train.loop import pretrain as train_loop
from electra.train.pretrained import Pretrained, load_pretrained
from electra.train.state import InitFrom, RunData

if TYPE_CHECKING:
    from electra.finetuning.export import FinetunedExport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    train: PretrainResult
    exports: dict[str, Path]  # part -> HF directory (main process only)
    seconds: float


def pretrain(config: PretrainConfig | str | None = None, *, out: str | Path | None = None,
             data: str | Path | None = None, corpus: Sequence[str | Path] | str | Path | None = None,
             resume: bool = False, init: InitFrom | None = None,
             overrides: Sequence[str] | str = ()) -> PipelineResult:
    """Pre-train from shards (`data`) or raw text (`corpus`: paths, default the built-in sample),
    then export. `config`: a preset name (default "quick") or a `PretrainConfig`; `overrides`:
    `section.field=value`. With `resume`, the run in `out` continues from its newest checkpoint
    under its saved config (plus `overrides`, e.g. a larger `train.steps`), or under a
    `PretrainConfig` if one is given (a preset name other than the run's is refused)."""
    t0 = time.perf_counter()
    corpus, overrides = _listed(corpus), _listed(overrides)
    if resume:  # the run's own config (+ overrides), or one the caller resolved from it
        if out is None:
            raise ConfigError("resuming needs the run directory (out=...)")
        run_dir = Path(out)
        cfg = (_config(config, overrides) if isinstance(config, PretrainConfig)
               else load_run_config(run_dir, overrides))
        if isinstance(config, str) and config != cfg.preset:
            raise ConfigError(f"resume=True continues the run in {out} (preset {cfg.preset!r}) under its own "
                              f"config; drop the preset {config!r} (change settings with overrides, e.g. train.steps=...)")
        ckpt.latest_checkpoint(run_dir / "checkpoints")  # fail before building anything
    else:
        cfg = _config(DEFAULT_PRESET if config is None else config, overrides)
        run_dir = Path(out) if out is not None else default_run_dir(cfg.preset)
    ctx = dist.init_distributed(cfg.train.device)
    if ctx.is_main and not resume:
        _new_run(cfg, run_dir, data, corpus, init)
    dist.barrier()
    if not resume:  # every rank reads what the main one resolved against the data
        cfg = load_json(PretrainConfig, run_dir / "config.json")
    saved = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    data_dir = Path(data or saved.get("data") or run_dir / "data")
    run_data = RunData.open(data_dir, Tokenizer.load(run_dir / "tokenizer"), str(run_dir / "tokenizer"),
                            verify=ctx.is_main)
    probe = _make_probe(cfg, run_data.tokenizer, ctx)
    result = train_loop(cfg, run_data, run_dir, ctx, resume=resume, init=init, probe=probe)
    if resume and data is not None and ctx.is_main:  # the loop checked they are the run's shards
        _record_data(run_dir, run_data.dir)

    exports: dict[str, Path] = {}
    if ctx.is_main and not result.preempted:  # preempted: leave while the grace period lasts
        exports = export_run(result.checkpoint, run_dir, verify=False)  # hashed as it was written
    dist.barrier()
    return PipelineResult(train=result, exports=exports, seconds=time.perf_counter() - t0)


def export_run(checkpoint: Path, run_dir: Path, *, verify: bool = True) -> dict[str, Path]:
    """A run's exports (RUN/export/): both models, and BERT's format for a masked-LM run."""
    trained = load_pretrained(checkpoint, verify=verify)
    exports = {part: export(trained, run_dir / "export" / part, part, overwrite=True)
               for part in ("discriminator", "generator")}
    fmt = auto_format(trained.config, trained.tokenizer)  # a masked-LM run: BERT's model
    if fmt is not None:
        exports[fmt] = export(trained, run_dir / "export" / fmt, fmt=fmt, overwrite=True)
    return exports


def _listed(value: Sequence[str | Path] | str | Path | None) -> list:
    """A path or override given alone is one item (a list() of a string is its characters)."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, Path)) else list(value)


def _config(config: PretrainConfig | str, overrides: Sequence[str]) -> PretrainConfig:
    base = preset(config) if isinstance(config, str) else config
    return apply_overrides(base, list(overrides)) if overrides else base


def _make_probe(cfg: PretrainConfig, tokenizer: Tokenizer, ctx: dist.Context):
    if not cfg.eval.task:
        return None
    from electra.finetuning.probe import make_probe  # the fine-tuning stack, only if asked

    return make_probe(cfg.eval, tokenizer, ctx.device)


def _new_run(cfg: PretrainConfig, run_dir: Path, data: str | Path | None,
             corpus: Sequence[str | Path] | None, init: InitFrom | None) -> None:
    """Resolve the config against the data, write config.json, run.json and tokenizer/."""
    check_new_run_dir(run_dir)
    if init is not None:
        cfg = apply_init_config(cfg, init)
    if cfg.eval.task:
        from electra.finetuning.probe import check_probe_config

        check_probe_config(cfg.eval)  # before any data is prepared
    data_dir, manifest, tokenizer = _prepare_data(cfg, run_dir, data, corpus, init)
    if data is not None and manifest.seq_len != cfg.preprocess.seq_len:  # said, not silently replaced
        log.warning("--data %s decides the rows: %d tokens (the config said preprocess.seq_len=%d); re-run "
                    "electra preprocess --seq-len N for other rows", data, manifest.seq_len, cfg.preprocess.seq_len)
    cfg = with_data(cfg, manifest.seq_len, tokenizer)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "tokenizer").exists():
        tokenizer.save(run_dir / "tokenizer")
    save_json(cfg, run_dir / "config.json")
    _record_data(run_dir, data_dir)
    log.info("run directory: %s", run_dir)


def _record_data(run_dir: Path, data_dir: Path) -> None:
    """run.json: where the run's shards are, so that a resume finds them (a resume given --data,
    which checks they are the same shards, records their new path)."""
    write_text_atomic(run_dir / "run.json", json.dumps({"data": str(Path(data_dir).resolve())}, indent=2) + "\n")


def default_corpus() -> list[str]:
    """The built-in Wikipedia sample (its NOTICE file is not text to train on)."""
    root = Path(str(resources.files("electra") / "resources" / "corpus"))
    return [str(p) for p in sorted(root.glob("wiki_*.gz"))]


def default_run_dir(preset_name: str) -> Path:
    return Path("runs") / f"{preset_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_run_config(run_dir: Path, overrides: list[str]) -> PretrainConfig:
    """The config a run was last trained under (`ckpt.last_config`), plus overrides (e.g. `train.steps=...`
    to extend it). `train.stop_at` belongs to one invocation, so it is reset unless given again."""
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"--resume: {run_dir} holds no run (no config.json); start it without --resume")
    return apply_overrides(load_json(PretrainConfig, ckpt.last_config(run_dir)), ["train.stop_at=0", *overrides])


_RUN_FILES = {"config.json", "run.json", "tokenizer", "data", "metrics.jsonl", "tensorboard",
              "checkpoints", "export"}


def check_new_run_dir(run_dir: Path) -> None:
    """A new run needs an empty (or missing) directory. One that holds only what an earlier start
    wrote before its first checkpoint (it failed or was interrupted) is cleared and reused:
    there is nothing to resume, and refusing it would leave the user no way forward."""
    if run_dir.is_file():
        raise ConfigError(f"--out {run_dir} is a file; pass a directory for the run")
    names = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    ours = all(n in _RUN_FILES or is_atomic_tmp(n) for n in names)
    if names and ours and not ckpt.list_checkpoints(run_dir / "checkpoints"):
        log.warning("%s holds a run that never saved a checkpoint; starting it afresh", run_dir)
        for p in run_dir.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return
    if (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                          "another --out")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} exists and is not empty; choose another --out")


def apply_init_config(cfg: PretrainConfig, init: InitFrom) -> PretrainConfig:
    """Take the model shape from the HF checkpoint(s) we warm-start from."""
    disc = HFCheckpoint(init.discriminator).config
    objective = cfg.objective
    if init.generator is not None:
        gen = HFCheckpoint(init.generator).config
        objective = dataclasses.replace(
            objective, generator_hidden_size=gen.hidden_size, generator_heads=gen.num_heads,
            generator_intermediate_size=gen.intermediate_size, generator_layers=gen.num_layers,
            generator_size=min(1.0, gen.hidden_size / disc.hidden_size))
    keep = {"dropout": cfg.model.dropout, "attention_dropout": cfg.model.attention_dropout}
    return dataclasses.replace(cfg, model=dataclasses.replace(disc, **keep), objective=objective)


def planned_config(cfg: PretrainConfig, *, data: str | Path | None = None,
                   init: InitFrom | None = None) -> PretrainConfig:
    """The config a new run started with these inputs would use (`--print-config`): the model
    shape from `init`, vocabulary, pad id and rows' length from the shards in `data`. A run from
    raw text learns its vocabulary only once its tokenizer is trained, so it shows the request."""
    if init is not None:
        cfg = apply_init_config(cfg, init)
    if data is None:
        return cfg
    manifest, tokenizer = _open_data(data)
    return with_data(cfg, manifest.seq_len, tokenizer)


def _open_data(data: str | Path) -> tuple[Manifest, Tokenizer]:
    if Path(data).is_file():
        raise ConfigError(f"--data {data} is a file; pass the directory written by electra preprocess "
                          "(raw text goes to --corpus)")
    if not Path(data).is_dir():
        raise ConfigError(f"--data {data} does not exist; pass the directory written by electra preprocess")
    return read_manifest(data), Tokenizer.load(Path(data) / "tokenizer")


def with_data(cfg: PretrainConfig, manifest_seq_len: int, tokenizer: Tokenizer) -> PretrainConfig:
    """The config with vocabulary and pad id from the tokenizer; `preprocess.seq_len` records the
    rows' length (the run itself reads it from the manifest); two-stage's switch, if left to the run
    (`objective.two_stage_steps=0`), is fixed here for these rows."""
    model = dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id)
    pre = dataclasses.replace(cfg.preprocess, seq_len=manifest_seq_len)
    return resolve_two_stage(dataclasses.replace(cfg, model=model, preprocess=pre))


def _prepare_data(cfg: PretrainConfig, run_dir: Path, data: str | Path | None,
                  corpus: Sequence[str | Path] | None, init: InitFrom | None
                  ) -> tuple[Path, Manifest, Tokenizer]:
    if data is not None:
        manifest, tokenizer = _open_data(data)
        if init is not None:
            manifest.check_tokenizer(
                Tokenizer.load(init.discriminator).fingerprint, data, str(init.discriminator),
                f"re-run electra preprocess with --tokenizer {init.discriminator}")
        return Path(data), manifest, tokenizer
    if cfg.preprocess.seq_len > cfg.model.max_position_embeddings:
        raise ConfigError(f"preprocess.seq_len={cfg.preprocess.seq_len} exceeds model."
                          f"max_position_embeddings={cfg.model.max_position_embeddings}; shorten "
                          "the rows or raise max_position_embeddings")
    corpus = [str(c) for c in corpus] if corpus else default_corpus()
    # the tokenizer and the packer read the same files: a field named in either section serves both
    field = next((f for f in (cfg.preprocess.text_field, cfg.tokenizer.text_field) if f != "text"), "text")
    run_dir.mkdir(parents=True, exist_ok=True)
    if init is not None:
        tokenizer, tok_dir = Tokenizer.load(init.discriminator), init.discriminator
    else:
        log.info("training a %d-token %s tokenizer on %d corpus path(s) (%s%s)", cfg.tokenizer.vocab_size, cfg.tokenizer.kind,
                 len(corpus), ", ".join(corpus[:2]), ", ..." if len(corpus) > 2 else "")
        tok_dir = run_dir / "tokenizer"
        tokenizer = train_tokenizer(iter_documents(corpus, field), tok_dir, cfg.tokenizer)
    data_dir = run_dir / "data"
    log.info("packing the corpus into %d-token rows in %s", cfg.preprocess.seq_len, data_dir)
    pre = dataclasses.replace(cfg.preprocess, text_field=field)
    return data_dir, preprocess(corpus, tok_dir, data_dir, pre), tokenizer


# ---- after pre-training ---------------------------------------------------------------------


def load(path: str | Path) -> Pretrained:
    """A run directory (its newest checkpoint) or a checkpoint directory: `.model` (generator +
    discriminator, on CPU), `.config`, `.tokenizer`, `.meta`."""
    return load_pretrained(path)


def export(checkpoint: str | Path | Pretrained, out: str | Path, part: str | None = None, *,
           overwrite: bool = False, fmt: str = "electra") -> Path:
    """A Hugging Face directory (config.json, model.safetensors, tokenizer files): for a run or
    checkpoint, `ElectraForPreTraining` (part="discriminator", the default) or
    `ElectraForMaskedLM` ("generator"), or with `fmt` "bert"/"roberta" the part's encoder (+ MLM
    head where it has one) as `BertForMaskedLM`/`RobertaForMaskedLM`; for a directory written by
    `finetune`, its task model (see `export_finetuned`). An existing export in `out` is replaced
    only with `overwrite`."""
    from electra.finetuning.export import is_finetuned  # the fine-tuning stack, only if asked

    if not isinstance(checkpoint, Pretrained) and is_finetuned(checkpoint):
        if part is not None or fmt != "electra":
            raise ConfigError(f"{checkpoint} is a fine-tuned model; it exports as its task model, without "
                              "a part or format (they are for pre-training runs)")
        res = export_finetuned(checkpoint, out, overwrite=overwrite)
        for note in res.notes:
            log.warning("%s: %s", res.path, note)
        return res.path
    trained = checkpoint if isinstance(checkpoint, Pretrained) else load(checkpoint)
    config, tensors = pretrained_to_hf(trained.model, part or "discriminator", fmt)
    config, tokenizer = with_tokenizer(config, trained.tokenizer)
    return save_hf(out, config, tensors, tokenizer, overwrite=overwrite)


def export_finetuned(model_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> FinetunedExport:
    """A directory written by `finetune` -> a Hugging Face directory that
    `transformers.AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering}` and
    `AutoTokenizer` load, with the same logits in eval mode. `.notes` name what the HF model does
    differently from `electra predict` (e.g. SQuAD 2.0's answerability classifier is left out)."""
    from electra.finetuning.export import export_finetuned as run_export

    return run_export(model_dir, out, overwrite=overwrite)


def finetune(model: str | Path | Pretrained, task: str, *, data: str | Path | None = None,
             train: str | Path | None = None, dev: str | Path | None = None,
             out: str | Path | None = None, seed: int = 0, config: FinetuneConfig | None = None,
             overrides: Sequence[str] | str = (), random_init: bool = False, split_by_article: int = 0,
             overwrite: bool = False):
    """Fine-tune `model` (a run, checkpoint, HF or fine-tuned directory) on one task with one
    seed; returns a `FinetuneResult` (dev metrics, history) and, with `out`, saves the model there
    and a copy for stock transformers in `out`/hf. An earlier fine-tuned model in `out` is
    replaced only with `overwrite`."""
    from electra.finetuning.run import check_out, load_backbone
    from electra.finetuning.run import finetune as run_finetune
    from electra.finetuning.tasks import get_task, load_data

    cfg = dataclasses.replace(_finetune_config(config, overrides), seed=seed)
    spec = get_task(task)
    if out is not None:
        check_out(Path(out), overwrite)  # before the model and data are read
    backbone = load_backbone(_model_path(model), random_init=random_init)
    task_data = load_data(spec, cfg, data=_opt_path(data), train=_opt_path(train), dev=_opt_path(dev),
                          split_by_article=split_by_article)
    result = run_finetune(backbone, spec, task_data, cfg, out=_opt_path(out), overwrite=overwrite)
    if out is not None:
        _hf_copy(Path(out))
    return result


def _model_path(model: str | Path | Pretrained) -> Path:
    """What `load` returned stands for the checkpoint it was read from."""
    return model.path if isinstance(model, Pretrained) else Path(model)


def _hf_copy(model_dir: Path) -> None:
    """`model_dir`/hf: the fine-tuned model for stock transformers, so results are never trapped
    in our layout. A model HF cannot hold is only warned about: the fine-tune itself succeeded."""
    try:
        res = export_finetuned(model_dir, model_dir / "hf", overwrite=True)
    except ElectraError as e:
        log.warning("no Hugging Face copy of %s: %s", model_dir, e)
        return
    for note in res.notes:
        log.info("%s: %s", res.path, note)


def evaluate(model: str | Path | Pretrained, tasks: str | Sequence[str], out: str | Path, *,
             seeds: int | Sequence[int] = 3, glue_dir: str | Path | None = None,
             squad: str | Path | None = None, conll_dir: str | Path | None = None,
             split_by_article: int = 0, config: FinetuneConfig | None = None,
             overrides: Sequence[str] | str = (), save_models: bool = False,
             random_init: bool = False, overwrite: bool = False, select: Sequence[str] | str = (),
             select_size: int = 0) -> dict[str, Any]:
    """Fine-tune every task with every seed (medians in `out`/results.json and results.md);
    re-running with the same `out` resumes. A non-empty `out` that evaluate did not write, or
    runs of another checkpoint (or step) or config there, need `overwrite`. `select`
    (["optim.lr=3e-4,1e-3", ...]) chooses each task's setting on `select_size` training examples
    held out of training (0: a fifth, at most 2,000) before its seeds run with it."""
    from electra.finetuning.report import Sources
    from electra.finetuning.report import evaluate as run_evaluate
    from electra.finetuning.select import parse_selection
    from electra.finetuning.tasks import resolve_tasks

    names = tasks if isinstance(tasks, str) else ",".join(tasks)
    sources = Sources(glue_dir=_opt_path(glue_dir), squad=_opt_path(squad),
                      split_by_article=split_by_article, conll_dir=_opt_path(conll_dir))
    cfg = _finetune_config(config, overrides)
    selection = parse_selection(_listed(select), select_size, cfg, _listed(overrides))
    return run_evaluate(_model_path(model), resolve_tasks(names), seed_list(seeds), cfg,
                        sources, Path(out), save_models=save_models, random_init=random_init,
                        overwrite=overwrite, selection=selection)


def _finetune_config(config: FinetuneConfig | None, overrides: Sequence[str] | str) -> FinetuneConfig:
    base = config or FinetuneConfig()
    return apply_overrides(base, _listed(overrides)) if overrides else base


def _opt_path(value: str | Path | None) -> Path | None:
    return Path(value) if value else None
