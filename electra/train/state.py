"""Everything a pre-training run holds between steps, and how it is built, saved and restored.

`TrainState` is the model, optimizer, schedule, loss scaler, loader cursor and the step/token
counters; with each rank's RNG it is exactly what a checkpoint holds, so `restore` after
`save` continues a run bit for bit."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from electra.config import PretrainConfig, TrainConfig, save_json
from electra.data.loader import ONE_SEGMENT_PACKINGS, PretrainLoader
from electra.data.shards import Manifest, ShardReader, read_manifest
from electra.data.tokenizer import Tokenizer
from electra.errors import CheckpointError, ConfigError, DataError, TokenizerError
from electra.files import write_text_atomic
from electra.hf import HFCheckpoint
from electra.model.dropout import resolve_dropout_kernel, use_dropout_kernel
from electra.objective import PretrainingObjective, build_objective
from electra.objective.gdes import load_plain_state
from electra.objective.sampling import resolve_sample_kernel
from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.train.cpu_runtime import setup_allocator
from electra.train.distributed import Context
from electra.train.flops import flop_rate
from electra.train.log import format_count
from electra.train.optim import (
    build_optimizer,
    build_scheduler,
    load_optimizer_state,
    peak_lr,
    rebase_lr,
    resync_lr,
)
from electra.train.precision import Precision
from electra.train.pretrained import token_ids
from electra.train.unigram_init import init_unigram_bias

log = logging.getLogger(__name__)


VERIFIED = ".verified.json"  # shard -> [size, mtime_ns] when last hashed clean


def verify_shards(data_dir: Path, manifest: Manifest, *, force: bool = False) -> int:
    """Re-hash every shard against the manifest, skipping those whose size and mtime are as when
    they last hashed clean (a cache in the data dir, written when it is writable), so a large
    corpus is read once, not on every start. Returns the number of shards hashed."""
    cache_file = data_dir / VERIFIED
    try:
        cache = {} if force else json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    start, hashed, seen = time.perf_counter(), 0, {}
    for split in manifest.splits:  # same-size corruption would otherwise train silently
        reader = ShardReader(data_dir, split, manifest=manifest)
        for shard in reader.shards:
            stats = [(data_dir / f).stat() for f in (shard.file, shard.words) if f]  # + word bits
            seen[shard.file] = [v for st in stats for v in (st.st_size, st.st_mtime_ns)]
            if cache.get(shard.file) != seen[shard.file]:
                reader.verify_one(shard)
                hashed += 1
    if hashed:
        log.info("verified %d shard(s) against their checksums in %.1fs", hashed,
                 time.perf_counter() - start)
        try:
            write_text_atomic(cache_file, json.dumps(seen))
        except OSError:  # a read-only data dir: verify again next time
            pass
    return hashed


MIN_VALID_ROWS = 32  # below this a validation reading is a handful of rows


@dataclass(frozen=True)
class RunData:
    """The shards a run trains on, with their manifest and tokenizer, read and checked once."""

    dir: Path
    manifest: Manifest
    tokenizer: Tokenizer

    @classmethod
    def open(cls, data_dir: Path, tokenizer: Tokenizer, tokenizer_name: str, *,
             verify: bool = True) -> RunData:
        """`verify`: re-hash every shard (one process of a DDP run is enough)."""
        if not Path(data_dir).is_dir():
            raise DataError(f"the data directory {data_dir} does not exist (moved or deleted?); "
                            "pass --data with its new path")
        manifest = read_manifest(data_dir)
        manifest.check_tokenizer(tokenizer.fingerprint, data_dir, tokenizer_name,
                                 "re-run electra preprocess with the model's tokenizer")
        valid = manifest.splits.get("valid")
        if verify and valid is not None and 0 < valid.rows < MIN_VALID_ROWS:
            log.warning("the validation split holds %d row(s): its losses and context gains (and the verdict "
                        "'learned context?') rest on them; raise preprocess.valid_fraction for a steadier reading",
                        valid.rows)
        if not verify:
            return cls(Path(data_dir), manifest, tokenizer)
        verify_shards(Path(data_dir), manifest)
        return cls(Path(data_dir), manifest, tokenizer)

    @property
    def seq_len(self) -> int:
        return self.manifest.seq_len


@dataclass(frozen=True)
class InitFrom:
    """Warm start from local Hugging Face ELECTRA/BERT directories."""

    discriminator: Path
    generator: Path | None = None


@dataclass
class TrainState:
    model: PretrainingObjective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    loader: PretrainLoader
    micro_batch: int
    step: int = 0
    tokens: int = 0
    rollbacks: int = 0  # roll-backs after non-finite steps so far (each lowered the rate)


def check_data(cfg: PretrainConfig, data: RunData) -> None:
    if cfg.model.vocab_size != data.tokenizer.vocab_size:
        raise TokenizerError(f"model.vocab_size={cfg.model.vocab_size} but the tokenizer has "
                             f"{data.tokenizer.vocab_size} tokens; they must match")
    if data.seq_len > cfg.model.max_position_embeddings:
        raise ConfigError(f"the shards hold rows of {data.seq_len} tokens but "
                          f"model.max_position_embeddings={cfg.model.max_position_embeddings}; "
                          "re-run electra preprocess with a shorter --seq-len")
    if cfg.model.type_vocab_size < 2 and data.manifest.packing not in ONE_SEGMENT_PACKINGS:
        raise ConfigError(f"model.type_vocab_size={cfg.model.type_vocab_size} holds one segment but the "
                          f"shards were packed with two (packing={data.manifest.packing}); re-run electra "
                          "preprocess with --packing full_sentences or doc_sentences, or set "
                          "model.type_vocab_size=2")
    check_word_bits(cfg, data)


def check_word_bits(cfg: PretrainConfig, data: RunData) -> None:
    """Whole-word masking reads word boundaries from the shards when they hold a segmentation."""
    if cfg.objective.masking == "token":
        return
    if not data.manifest.has_words and data.tokenizer.cjk_chars:
        log.info("objective.masking=%s: word boundaries come from the vocabulary, where each CJK "
                 "character is a word; for Chinese words preprocess with "
                 "preprocess.word_segmentation=jieba", cfg.objective.masking)


def schedule_steps(cfg: PretrainConfig, seq_len: int) -> int:
    """The step where the learning rate reaches the end of its schedule: `train.steps`, or the
    step that spends `train.budget_flops` if that comes first, so runs compared at equal compute
    each get a whole schedule (warm-up, decay to zero) instead of the first slice of a long one."""
    tc = cfg.train
    if not tc.budget_flops:
        return tc.steps
    return min(tc.steps, flop_rate(cfg, seq_len).steps_for(tc.budget_flops, tc.batch_size, seq_len))


def run_end(cfg: PretrainConfig) -> int:
    """`schedule_steps` of a run's saved config, whose preprocess.seq_len is its shards' row length."""
    return schedule_steps(cfg, cfg.preprocess.seq_len)


def build_state(cfg: PretrainConfig, data: RunData, ctx: Context, init: InitFrom | None = None
                ) -> TrainState:
    """A fresh run: model (optionally warm-started), optimizer, schedule, loader."""
    check_data(cfg, data)
    tc, world = cfg.train, ctx.info.world_size
    micro = tc.batch_size // (tc.grad_accum * world)
    if micro * tc.grad_accum * world != tc.batch_size:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by grad_accum x "
                          f"processes = {tc.grad_accum * world}")
    use_process_settings(tc)
    torch.manual_seed(tc.seed + ctx.info.rank)  # ranks draw different masks and samples
    tok = data.tokenizer
    model = build_objective(cfg, token_ids(tok)).to(ctx.device)
    use_speed_settings(model, tc, ctx.device)
    head_loaded = load_init_weights(model, init) if init is not None else False
    if init is not None and not head_loaded:
        where = (f"{init.generator} has none" if init.generator is not None
                 else "--init-generator-from the generator export keeps it")
        log.info("warm start without the generator's masked-LM head (%s): it starts afresh%s", where,
                 " at the unigram distribution" if cfg.objective.unigram_bias_init else "")
    if cfg.objective.unigram_bias_init:  # every head that was not warm-started
        init_unigram_bias(model, ShardReader(data.dir, "train", manifest=data.manifest),
                          tuple(sorted(tok.special_ids)), skip=(model.generator_head,) if head_loaded else ())
    optimizer = build_optimizer(model, cfg.optim)
    loader = PretrainLoader(ShardReader(data.dir, "train", manifest=data.manifest), micro,
                            seed=tc.seed, pad_id=tok.pad_id, sep_id=tok.sep_id,
                            vocab_size=tok.vocab_size, rank=ctx.info.rank, world_size=world)
    return TrainState(model=model, optimizer=optimizer,
                      scheduler=build_scheduler(optimizer, cfg.optim, schedule_steps(cfg, data.seq_len)),
                      precision=Precision.resolve(tc.precision, ctx.device),
                      loader=loader, micro_batch=micro)


def use_process_settings(tc: TrainConfig) -> None:
    """The process-wide settings a run starts with: its thread count and (CPU) allocator. Shared
    with `electra plan`, so a plan measures the speed the run would get."""
    if tc.threads:
        torch.set_num_threads(tc.threads)
    setup_allocator(tc.allocator)


def use_speed_settings(model: PretrainingObjective, tc: TrainConfig, device: torch.device) -> None:
    """The model-level settings that change speed or memory, not what is learned (BENCHMARKS.md):
    gradient checkpointing, the dropout kernel and the sampling kernel (the last two draw their
    own random streams). One place, so the benchmarks time exactly what training runs."""
    model.set_gradient_checkpointing(tc.gradient_checkpointing)
    use_dropout_kernel(model, resolve_dropout_kernel(tc.dropout_kernel, device))
    model.sample_kernel = resolve_sample_kernel(tc.sample_kernel, device)


def load_init_weights(model: PretrainingObjective, init: InitFrom) -> bool:
    """Returns whether the generator's masked-LM head (`generator_head`) was loaded: one that was
    not starts afresh (at the unigram distribution where the objective asks for it)."""
    disc = HFCheckpoint(init.discriminator)
    gdes = model.objective.sharing == "gdes"
    if gdes:  # the word table goes to E_G and E_delta restarts at 0
        load_plain_state(model.discriminator, disc.encoder_state)
    else:
        model.discriminator.load_state_dict(disc.encoder_state)
    if disc.discriminator_head is not None:
        model.discriminator_head.load_state_dict(disc.discriminator_head)
    if model.sop_head is not None and disc.sop_head is not None:  # ALBERT's sentence-order head
        model.sop_head.load_state_dict(disc.sop_head)
    if model.generator is None:  # one encoder (mlm, or sharing=all): its MLM head
        return _load_one_encoder_head(model, disc, init)
    if init.generator is None:
        return False
    gen = HFCheckpoint(init.generator)
    state = gen.encoder_state
    if model.objective.sharing == "embeddings":  # D's embeddings are the shared ones
        state = {k: v for k, v in state.items() if not k.startswith("embeddings.")}
    if gdes:  # E_G holds D's table already, so E_D = sg(E_G) + 0 is D's exactly
        state = {k: v for k, v in state.items() if k != "embeddings.word_embeddings.weight"}
    missing = model.generator.load_state_dict(state, strict=False).missing_keys
    if any(not k.startswith("embeddings.") for k in missing):
        raise CheckpointError(f"{init.generator} does not fit the generator (missing {missing[:3]})")
    return _load_generator_head(model, gen.generator_head)


def _load_generator_head(model: PretrainingObjective, state: dict[str, torch.Tensor] | None) -> bool:
    if state is None:
        return False
    model.generator_head.load_state_dict(state)
    return True


def _load_one_encoder_head(model: PretrainingObjective, disc: HFCheckpoint, init: InitFrom) -> bool:
    """A masked LM's export holds its head; an ELECTRA discriminator's (ElectraForPreTraining)
    does not, so a one-encoder ELECTRA run (sharing=all) takes it from the generator export,
    which must hold the same encoder: a head trained on another one would start from nonsense."""
    if disc.generator_head is not None or init.generator is None:
        return _load_generator_head(model, disc.generator_head)
    gen = HFCheckpoint(init.generator)
    if gen.generator_head is None:
        return False
    mine, theirs = disc.encoder_state, gen.encoder_state
    if mine.keys() != theirs.keys() or any(not torch.equal(v, mine[k]) for k, v in theirs.items()):
        raise CheckpointError(f"{init.generator} holds another encoder than {init.discriminator}; this run "
                              "has one encoder for both losses, so pass the two exports of the same run")
    return _load_generator_head(model, gen.generator_head)


def restore(state: TrainState, ckpt_dir: Path, tokenizer: Tokenizer, rank: int, lr: float,
            data_digest: str | None = None) -> Path:
    """Load the newest intact checkpoint in `ckpt_dir` into `state`. The schedule goes on at the
    checkpoint's rate (lowered by any roll-back) unless `lr`, the config's optim.lr, differs from
    the one the checkpoint was written under: a rate given on resume wins."""
    path = ckpt.latest_checkpoint(ckpt_dir)
    meta = load_checkpoint(state, path, tokenizer, rank, data_digest)
    written_under = meta.get("optim_lr")
    if not (isinstance(written_under, (int, float)) and math.isclose(written_under, lr, rel_tol=1e-9)):
        old_lr = rebase_lr(state.optimizer, state.scheduler, lr)  # also: older checkpoints
        if old_lr is not None:
            log.info("optim.lr changed on resume: %g -> %g (the schedule continues at step %d)",
                     old_lr, lr, meta["step"])
    elif state.rollbacks:
        log.info("the schedule goes on at optim.lr=%g, lowered from %g by %d roll-back(s); pass "
                 "optim.lr=... to change it", peak_lr(state.optimizer, state.scheduler), lr, state.rollbacks)
    log.info("resumed from %s (step %d, %s tokens)", path, state.step, format_count(state.tokens))
    return path


def load_checkpoint(state: TrainState, path: Path, tokenizer: Tokenizer, rank: int,
                    data_digest: str | None = None) -> dict[str, Any]:
    """Everything the checkpoint at `path` holds into `state` (weights, optimizer, schedule,
    scaler, loader cursor, this rank's RNG, counters); returns its meta. `data_digest`: the
    shards' (Manifest.digest), which must be those the checkpoint trained on: its loader cursor
    and validation references belong to them (checkpoints older than the digest are not checked)."""
    meta = ckpt.read_meta(path)
    ckpt.check_tokenizer(path, meta, tokenizer.fingerprint, "the run's tokenizer/")
    if data_digest is not None and meta.get("data_digest", data_digest) != data_digest:
        raise DataError(f"the shards given to resume {path} are not those it trained on ({meta.get('data')}); "
                        "pass those shards (or a copy) with --data, or start a new run in another --out")
    ckpt.load_model_state(state.model, ckpt.load_weights(path), str(path))
    trainer, rng = ckpt.load_trainer(path, rank)
    load_optimizer_state(state.optimizer, trainer["optimizer"])
    state.scheduler.load_state_dict(trainer["scheduler"])
    resync_lr(state.optimizer, state.scheduler)
    if trainer["scaler"]:  # empty when saved without fp16: a run moved to an fp16 device starts a fresh scaler
        state.precision.scaler.load_state_dict(trainer["scaler"])
    state.loader.load_state_dict(trainer["loader"])
    ckpt.set_rng_state(rng)
    state.step, state.tokens = meta["step"], meta["tokens"]
    rollbacks = meta.get("rollbacks", 0)
    state.rollbacks = rollbacks if type(rollbacks) is int and rollbacks >= 0 else 0
    return meta


def save(state: TrainState, cfg: PretrainConfig, data: RunData, ctx: Context, run_dir: Path,
         flops_per_token: float) -> Path:
    """A checkpoint of `state` (called on every rank: each contributes its RNG state)."""
    rng_states = dist.gather_to_main(ckpt.rng_state())
    path = run_dir / "checkpoints" / f"step_{state.step:08d}"
    if ctx.is_main:
        trainer: dict[str, Any] = {
            "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
            "scaler": state.precision.scaler.state_dict(), "loader": state.loader.state_dict()}
        meta = {"tokens": state.tokens, "flops": state.tokens * flops_per_token,
                "tokenizer_fingerprint": data.tokenizer.fingerprint, "seq_len": data.seq_len,
                "world_size": ctx.info.world_size, "data": str(data.dir), "data_digest": data.manifest.digest(),
                "time": time.time(),
                "optim_lr": cfg.optim.lr, "rollbacks": state.rollbacks}  # see `restore`

        def extra(tmp: Path) -> None:  # checkpoints are self-contained
            save_json(cfg, tmp / "config.json")
            data.tokenizer.save(tmp / "tokenizer")

        path = ckpt.save_checkpoint(run_dir / "checkpoints", state.step, state.model, trainer,
                                    rng_states, meta, cfg.train.keep_last, extra)
    dist.barrier()
    return path
