"""Raw text (or existing shards) to a trained and exported model: what `electra pretrain` runs.

Without `--data` the run trains a WordPiece tokenizer on the corpus (the built-in Wikipedia
sample by default), packs it into shards inside the run directory, pre-trains, and exports the
discriminator and generator in Hugging Face format. Only the main process prepares data; the
others wait at a barrier."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.config import PretrainConfig, apply_overrides, load_json, save_json
from electra.data.preprocess import preprocess
from electra.data.shards import read_manifest
from electra.errors import ConfigError, TokenizerError
from electra.export import HFCheckpoint, pretrained_to_hf, save_hf
from electra.train.loop import InitFrom, PretrainResult, pretrain, with_data
from electra.data.tokenizer import Tokenizer, train_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    train: PretrainResult
    exports: dict[str, Path]
    seconds: float


def default_corpus() -> list[str]:
    """The built-in Wikipedia sample (its NOTICE file is not text to train on)."""
    root = Path(str(resources.files("electra") / "resources" / "corpus"))
    return [str(p) for p in sorted(root.glob("wiki_*.gz"))]


def default_run_dir(preset_name: str) -> Path:
    return Path("runs") / f"{preset_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_run_config(run_dir: Path, overrides: list[str]) -> PretrainConfig:
    """The config a run was started with, plus overrides (e.g. `train.steps=...` to extend it).
    `train.stop_at` belongs to one invocation, so it is reset unless given again."""
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"--resume: {run_dir} holds no run (no config.json); start it without --resume")
    return apply_overrides(load_json(PretrainConfig, run_dir / "config.json"), ["train.stop_at=0", *overrides])


def check_new_run_dir(run_dir: Path) -> None:
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


def _prepare_data(cfg: PretrainConfig, run_dir: Path, data: Path | None, corpus: list[str] | None,
                  init: InitFrom | None) -> tuple[Path, Tokenizer]:
    if data is not None:
        tokenizer = Tokenizer.load(Path(data) / "tokenizer")
        if init is not None:
            hf_tok = Tokenizer.load(init.discriminator)
            if hf_tok.fingerprint != tokenizer.fingerprint:
                raise TokenizerError(f"{data} was tokenized with a different vocabulary than "
                                     f"{init.discriminator}; re-run electra preprocess with "
                                     f"--tokenizer {init.discriminator}")
        return Path(data), tokenizer
    corpus = corpus or default_corpus()
    run_dir.mkdir(parents=True, exist_ok=True)
    if init is not None:
        tokenizer = Tokenizer.load(init.discriminator)
        tok_dir = init.discriminator
    else:
        log.info("training a %d-token WordPiece tokenizer on %d corpus path(s) (%s%s)", cfg.tokenizer.vocab_size,
                 len(corpus), ", ".join(corpus[:2]), ", ..." if len(corpus) > 2 else "")
        tok_dir = run_dir / "tokenizer"
        tokenizer = train_tokenizer(corpus, tok_dir, cfg.tokenizer)
    data_dir = run_dir / "data"
    log.info("packing the corpus into %d-token rows in %s", cfg.preprocess.seq_len, data_dir)
    preprocess(corpus, tok_dir, data_dir, cfg.preprocess)
    return data_dir, tokenizer


def run(cfg: PretrainConfig, *, out: Path | None = None, data: Path | None = None,
        corpus: list[str] | None = None, resume: bool = False, init: InitFrom | None = None
        ) -> PipelineResult:
    t0 = time.perf_counter()
    info, _ = dist.init_distributed(cfg.train.device)
    run_dir = Path(out) if out is not None else default_run_dir(cfg.preset)
    if info.is_main:
        if resume:
            saved = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
            data = Path(data or saved.get("data") or run_dir / "data")
        else:
            check_new_run_dir(run_dir)
            if init is not None:
                cfg = apply_init_config(cfg, init)
            data, tokenizer = _prepare_data(cfg, run_dir, data, corpus, init)
            cfg = with_data(cfg, read_manifest(data).seq_len, tokenizer)
            run_dir.mkdir(parents=True, exist_ok=True)
            if not (run_dir / "tokenizer").exists():
                tokenizer.save(run_dir / "tokenizer")
            save_json(cfg, run_dir / "config.json")
            (run_dir / "run.json").write_text(json.dumps({"data": str(Path(data).resolve())}, indent=2) + "\n")
            log.info("run directory: %s", run_dir)
    dist.barrier()
    if not info.is_main:  # the other ranks read what the main one resolved
        cfg = load_json(PretrainConfig, run_dir / "config.json")
        data = Path(json.loads((run_dir / "run.json").read_text())["data"])
    result = pretrain(cfg, Path(data), run_dir, resume=resume, init=init)

    exports: dict[str, Path] = {}
    if info.is_main:
        model, _, tokenizer, _ = ckpt.load_pretrained(result.checkpoint)
        for part in ("discriminator", "generator"):
            config, tensors = pretrained_to_hf(model, part)
            exports[part] = save_hf(run_dir / "export" / part, config, tensors, tokenizer)
    dist.barrier()
    return PipelineResult(train=result, exports=exports, seconds=time.perf_counter() - t0)
