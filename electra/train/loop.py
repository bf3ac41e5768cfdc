"""The pre-training loop, readable top to bottom.

Command: `electra pretrain --data DIR --preset small [section.field=value ...]` (see `pipeline.py`
for the raw-text-to-export path). One iteration = `grad_accum` micro-batches (mask on device ->
generator -> sample -> discriminator -> loss -> backward) then one optimizer step; every
`log_every` steps one console line and a metrics.jsonl record, every `eval_every` a validation
pass, every `save_every` an atomic checkpoint. The loop is the same on 1 CPU and N GPUs."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from electra.train import checkpoint as ckpt
from electra.train import distributed as dist
from electra.config import PretrainConfig, save_json
from electra.data.loader import PretrainLoader
from electra.objective.masking import mask_tokens
from electra.data.shards import ShardReader, read_manifest
from electra.errors import CheckpointError, ConfigError, DataError, TokenizerError
from electra.export import HFCheckpoint
from electra.train.flops import electra_train_flops
from electra.train.log import MetricsLogger, format_count, format_duration
from electra.objective.electra import ElectraModel
from electra.train.optim import build_optimizer, build_scheduler
from electra.train.precision import Precision, resolve_precision
from electra.data.tokenizer import Tokenizer
from electra.train.validate import evaluate_pretraining

log = logging.getLogger(__name__)

# order of the on-device running sums (one tensor, synced only when logging)
_SUMS = ("loss", "mlm_loss", "rtd_loss", "gen_correct", "gen_count", "disc_correct", "disc_count",
         "replaced", "tokens")


@dataclass(frozen=True)
class InitFrom:
    """Warm start from local Hugging Face ELECTRA/BERT directories."""

    discriminator: Path
    generator: Path | None = None


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    tokens: int
    valid: dict[str, float]


def load_init_weights(model: ElectraModel, init: InitFrom) -> None:
    disc = HFCheckpoint(init.discriminator)
    model.discriminator.load_state_dict(disc.encoder_state)
    if disc.discriminator_head is not None:
        model.discriminator_head.load_state_dict(disc.discriminator_head)
    if init.generator is not None and model.generator is not None:
        gen = HFCheckpoint(init.generator)
        state = gen.encoder_state
        if model.objective.sharing == "embeddings":  # D's embeddings are the shared ones
            state = {k: v for k, v in state.items() if not k.startswith("embeddings.")}
        missing = model.generator.load_state_dict(state, strict=False).missing_keys
        if any(not k.startswith("embeddings.") for k in missing):
            raise CheckpointError(f"{init.generator} does not fit the generator (missing {missing[:3]})")
        if gen.generator_head is not None:
            model.generator_head.load_state_dict(gen.generator_head)


def check_data(cfg: PretrainConfig, data_dir: Path, tokenizer: Tokenizer):
    manifest = read_manifest(data_dir)
    if manifest.tokenizer_fingerprint != tokenizer.fingerprint:
        raise TokenizerError(f"the shards in {data_dir} were made with a different tokenizer than the "
                             "model's; re-run electra preprocess with the model's tokenizer")
    if cfg.model.vocab_size != tokenizer.vocab_size:
        raise TokenizerError(f"model.vocab_size={cfg.model.vocab_size} but the tokenizer has "
                             f"{tokenizer.vocab_size} tokens; they must match")
    if manifest.seq_len > cfg.model.max_position_embeddings:
        raise ConfigError(f"the shards hold rows of {manifest.seq_len} tokens but "
                          f"model.max_position_embeddings={cfg.model.max_position_embeddings}; "
                          "re-run electra preprocess with a shorter --seq-len")
    return manifest


def pretrain(cfg: PretrainConfig, data_dir: Path, run_dir: Path, *, resume: bool = False,
             init: InitFrom | None = None) -> PretrainResult:
    """Train `cfg` on the shards in `data_dir`, writing everything under `run_dir`.

    `run_dir` must already hold `config.json` (the resolved config) and `tokenizer/`
    (`pipeline.prepare_run` does both); `resume` continues from its latest checkpoint."""
    # ---- setup --------------------------------------------------------------------------------
    info, device = dist.init_distributed(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    tokenizer = Tokenizer.load(run_dir / "tokenizer")
    manifest = check_data(cfg, data_dir, tokenizer)
    seq_len = manifest.seq_len
    tc = cfg.train
    micro = tc.batch_size // (tc.grad_accum * info.world_size)
    if micro * tc.grad_accum * info.world_size != tc.batch_size:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by grad_accum x "
                          f"processes = {tc.grad_accum * info.world_size}")
    torch.manual_seed(tc.seed + info.rank)  # ranks draw different masks and samples
    precision = Precision(resolve_precision(tc.precision, device), device)

    model = ElectraModel.from_config(cfg).to(device)
    model.set_gradient_checkpointing(tc.gradient_checkpointing)
    if init is not None and not resume:
        load_init_weights(model, init)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, tc.steps)
    loader = PretrainLoader(ShardReader(data_dir, "train"), micro, seed=tc.seed,
                            pad_id=tokenizer.pad_id, sep_id=tokenizer.sep_id,
                            vocab_size=tokenizer.vocab_size, rank=info.rank, world_size=info.world_size)
    valid = ShardReader(data_dir, "valid")
    special_ids = torch.tensor(sorted(tokenizer.special_ids), device=device)
    mask_kwargs = dict(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                       mask_prob=cfg.objective.mask_prob,
                       max_predictions=cfg.objective.max_predictions_for(seq_len),
                       mask_token_prob=cfg.objective.mask_token_prob,
                       random_token_prob=cfg.objective.random_token_prob)
    flops_per_token = electra_train_flops(cfg, seq_len)

    step, tokens_seen = 0, 0
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        found = ckpt.list_checkpoints(ckpt_dir)
        if not found:
            raise CheckpointError(f"--resume: {ckpt_dir} holds no checkpoint; start without --resume")
        path = found[-1][1]
        meta = ckpt.read_meta(path)
        if meta.get("tokenizer_fingerprint") != tokenizer.fingerprint:
            raise TokenizerError(f"{path} was trained with a different tokenizer than {run_dir / 'tokenizer'}")
        ckpt.load_model_state(model, ckpt.load_weights(path), str(path))
        trainer, rng = ckpt.load_trainer(path, info.rank)
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        precision.scaler.load_state_dict(trainer["scaler"])
        loader.load_state_dict(trainer["loader"])
        ckpt.set_rng_state(rng)
        step, tokens_seen = meta["step"], meta["tokens"]
        log.info("resumed from %s (step %d, %s tokens)", path, step, format_count(tokens_seen))
    if step >= tc.steps:
        raise ConfigError(f"the run is already at step {step} of train.steps={tc.steps}; raise "
                          "train.steps to continue it")

    last_step = min(tc.stop_at, tc.steps) if tc.stop_at else tc.steps
    if last_step <= step:
        raise ConfigError(f"train.stop_at={tc.stop_at} is not after the checkpoint's step {step}")
    ddp_model = dist.wrap_model(model, info, device)
    step_fn = torch.compile(ddp_model) if tc.compile else ddp_model
    logger = MetricsLogger(run_dir, enabled=info.is_main)
    if info.is_main:
        n_params = sum(p.numel() for p in ckpt.model_state(model).values())
        log.info("model: %s parameters (discriminator %s) | precision %s | device %s x%d | "
                 "batch %d = %d x %d accum x %d proc | %.1fM FLOPs/token",
                 format_count(n_params), format_count(sum(p.numel() for p in model.discriminator.parameters())),
                 precision.name, device, info.world_size, tc.batch_size, micro, tc.grad_accum,
                 info.world_size, flops_per_token / 1e6)

    def evaluate() -> dict[str, float]:
        metrics = evaluate_pretraining(model, valid, rows=tc.eval_rows, batch_size=micro,
                                       mask_kwargs=mask_kwargs, special_ids=special_ids,
                                       pad_id=tokenizer.pad_id, sep_id=tokenizer.sep_id,
                                       device=device, precision=precision, seed=tc.seed + 999)
        log.info("valid @%d | loss %.4f | mlm %.3f | rtd %.4f | gen_acc %.3f | disc_acc %.4f "
                 "(all-original baseline %.4f) | disc_auc %.3f", step, metrics["loss"],
                 metrics["mlm_loss"], metrics["rtd_loss"], metrics["gen_acc"], metrics["disc_acc"],
                 metrics["baseline_acc"], metrics["disc_auc"])
        logger.write("valid", step, metrics)
        return metrics

    def save() -> Path:
        tmp = ckpt.tmp_dir_for(ckpt_dir, step)
        if info.is_main:
            tmp.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        ckpt.write_rng(tmp, info.rank)
        dist.barrier()
        path = ckpt_dir / f"step_{step:08d}"
        if info.is_main:
            trainer = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "scaler": precision.scaler.state_dict(), "loader": loader.state_dict()}
            meta = {"tokens": tokens_seen, "flops": tokens_seen * flops_per_token,
                    "tokenizer_fingerprint": tokenizer.fingerprint, "seq_len": seq_len,
                    "world_size": info.world_size, "data": str(data_dir), "time": time.time()}
            save_json(cfg, tmp / "config.json")
            tokenizer.save(tmp / "tokenizer")
            path = ckpt.save_checkpoint(ckpt_dir, step, model, trainer, meta, tc.keep_last)
        dist.barrier()
        return path

    # ---- loop ---------------------------------------------------------------------------------
    sums = torch.zeros(len(_SUMS), device=device)
    steps_in_sums = 0
    valid_metrics: dict[str, float] = {}
    last_path: Path | None = None
    t_log, start_step, t_start = time.perf_counter(), step, time.perf_counter()
    model.train()
    while step < last_step:
        # step: grad_accum micro-batches, then one optimizer update
        for micro_step in range(tc.grad_accum):
            batch = loader.next_batch().to(device)
            with dist.no_sync_unless(ddp_model, micro_step == tc.grad_accum - 1):
                masked = mask_tokens(batch.input_ids, batch.attention_mask, special_ids, **mask_kwargs)
                with precision.autocast():
                    out = step_fn(batch.input_ids, batch.token_type_ids, batch.attention_mask, masked)
                precision.scaler.scale(out.loss / tc.grad_accum).backward()
            sums += torch.stack([out.loss.detach() / tc.grad_accum, out.mlm_loss / tc.grad_accum,
                                 out.rtd_loss / tc.grad_accum, out.gen_correct, out.gen_count,
                                 out.disc_correct, out.disc_count, out.replaced_count,
                                 batch.attention_mask.sum().float()])
        precision.scaler.unscale_(optimizer)
        if cfg.optim.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_norm)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        steps_in_sums += 1

        # log (the only host sync of a normal step)
        at_end = step == last_step
        if step % tc.log_every == 0 or at_end or step % tc.save_every == 0:
            s = dict(zip(_SUMS, dist.all_reduce_sum(sums.clone()).tolist(), strict=True))
            n_steps = info.world_size * steps_in_sums
            tokens_seen += int(s["tokens"])
            if not math.isfinite(s["loss"]):
                last = ckpt.list_checkpoints(ckpt_dir)
                raise DataError(f"the loss became {s['loss']} at step {step}; lower optim.lr or use "
                                "train.precision=fp32" + (f", then resume from {last[-1][1]}" if last else ""))
            elapsed = time.perf_counter() - t_log
            tok_s = s["tokens"] / max(elapsed, 1e-9)
            eta = (tc.steps - step) * (time.perf_counter() - t_start) / max(step - start_step, 1)
            metrics = {
                "loss": s["loss"] / n_steps,
                "mlm_loss": s["mlm_loss"] / n_steps,
                "rtd_loss": s["rtd_loss"] / n_steps,
                "gen_acc": s["gen_correct"] / max(s["gen_count"], 1),
                "disc_acc": s["disc_correct"] / max(s["disc_count"], 1),
                "replaced_frac": s["replaced"] / max(s["disc_count"], 1),
                "lr": scheduler.get_last_lr()[0], "tokens": tokens_seen, "tokens_per_s": tok_s,
                "flops": tokens_seen * flops_per_token,
            }
            if info.is_main and (step % tc.log_every == 0 or at_end):
                log.info("step %d/%d | loss %.4f | mlm %.3f | rtd %.4f | gen_acc %.3f | disc_acc %.3f | "
                         "lr %.2e | %s tok/s | ETA %s", step, tc.steps, metrics["loss"],
                         metrics["mlm_loss"], metrics["rtd_loss"], metrics["gen_acc"],
                         metrics["disc_acc"], metrics["lr"], format_count(tok_s), format_duration(eta))
            logger.write("train", step, metrics)
            sums.zero_()
            steps_in_sums = 0
            t_log = time.perf_counter()

        # eval (main process only; the others wait at the next barrier)
        if step % tc.eval_every == 0 or at_end:
            if info.is_main and len(valid):
                valid_metrics = evaluate()
            dist.barrier()

        # probe (main process only): a short fine-tune on a copy of the discriminator
        if cfg.eval.task and (step % (cfg.eval.every or tc.eval_every) == 0 or at_end):
            if info.is_main:
                from electra.finetune.probe import run_probe  # the fine-tuning stack, only if asked

                logger.write("probe", step, run_probe(model.discriminator, tokenizer, cfg.eval, device))
            dist.barrier()
            t_log = time.perf_counter()  # do not count probe time as training time

        # save
        if step % tc.save_every == 0 or at_end:
            last_path = save()
            t_log = time.perf_counter()  # do not count save time as training time

    logger.close()
    return PretrainResult(run_dir=run_dir, checkpoint=last_path, step=step, tokens=tokens_seen,
                          valid=valid_metrics)


def with_data(cfg: PretrainConfig, manifest_seq_len: int, tokenizer: Tokenizer) -> PretrainConfig:
    """The config with vocabulary, pad id and sequence length taken from the data."""
    model = replace(cfg.model, vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id)
    pre = replace(cfg.preprocess, seq_len=manifest_seq_len)
    return replace(cfg, model=model, preprocess=pre)
