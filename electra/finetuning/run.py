"""Fine-tune one encoder on one task with one seed: `electra finetune CKPT --task sst2 --data DIR`.

Setup: backbone (our run/checkpoint, a HF ELECTRA/BERT dir, or a fine-tuned dir) + tokenizer, data,
a fresh head, AdamW with layer-wise LR decay. Then one loop: epochs of shuffled batches padded to
their longest row, a dev evaluation per epoch; the model is saved with config, tokenizer, labels."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from electra.config import ModelConfig, from_dict, to_dict
from electra.data.tokenizer import Tokenizer
from electra.errors import CheckpointError, ConfigError, DataError, DivergedError, first_line
from electra.files import atomic_dir
from electra.finetuning.config import FinetuneConfig, FinetuneTrainConfig
from electra.finetuning.features import Encoded, batches
from electra.finetuning.tasks import TaskData, TaskSpec, get_task
from electra.hf import HFCheckpoint
from electra.model.build import build_encoder
from electra.model.dropout import resolve_dropout_kernel, use_dropout_kernel
from electra.model.finetuning import FinetuneModel
from electra.model.layers import init_weights, zero_pad_row
from electra.train import checkpoint as ckpt
from electra.train.cpu_runtime import setup_allocator
from electra.train.distributed import resolve_device
from electra.train.log import format_duration
from electra.train.optim import (
    build_optimizer,
    build_scheduler,
    layerwise_lr_scales,
    optimizer_step,
    parameter_aliases,
)
from electra.train.precision import Precision
from electra.train.pretrained import load_pretrained

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    model_cfg: ModelConfig
    encoder_state: dict[str, torch.Tensor]  # our Encoder layout
    tokenizer: Tokenizer
    source: str


def load_backbone(path: str | Path, *, random_init: bool = False) -> Backbone:
    """Our run or checkpoint directory, a local HF ELECTRA/BERT directory, or a directory written
    by `electra finetune` (its encoder: intermediate-task training). `random_init` keeps the
    architecture and tokenizer but draws fresh weights: the "no pre-training" control row."""
    backbone = _load_backbone(Path(path))
    if not random_init:
        return backbone
    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = build_encoder(backbone.model_cfg)
        init_weights(enc, backbone.model_cfg.initializer_range)
        zero_pad_row(enc.embeddings, backbone.model_cfg.pad_token_id)
    return dataclasses.replace(backbone, encoder_state=enc.state_dict(),
                               source=f"{backbone.source}, randomly re-initialised")


def _load_backbone(p: Path) -> Backbone:
    if not p.exists():
        raise CheckpointError(f"{p} does not exist; pass a run or checkpoint directory or a Hugging "
                              "Face ELECTRA/BERT directory")
    if (p / "finetune.json").is_file():
        model, _, _, tok, info = load_finetuned(p)
        return Backbone(model.encoder.cfg, model.encoder.state_dict(), tok, f"{p} ({info['task']})")
    # a run directory, even one that saved nothing yet (resolve_checkpoint says so), is ours
    ours = (p / "meta.json").is_file() or (p / "checkpoints").is_dir() or (p / "run.json").is_file()
    if not ours and (p / "config.json").is_file():
        if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise CheckpointError(f"{p} has no tokenizer (tokenizer.json or vocab.txt); copy the "
                                  "model's tokenizer files into it")
        hf = HFCheckpoint(p)
        return Backbone(hf.config, hf.encoder_state, Tokenizer.load(p), str(p))
    if (p / "meta.json").is_file() and not (p / "tokenizer").is_dir():  # said before its checksums would
        raise CheckpointError(f"{p} has no tokenizer/ directory; copy the tokenizer the model "
                              "was trained with into it")
    trained = load_pretrained(p)  # a run: its newest intact checkpoint
    return Backbone(trained.model.disc_cfg, trained.model.encoder.state_dict(), trained.tokenizer,
                    f"{trained.path} (step {trained.meta.get('step')})")


@dataclass
class FinetuneResult:
    task: str
    seed: int
    metrics: dict[str, float]  # dev metrics after the last epoch, split prefixes applied
    history: list[dict]  # one record per epoch
    seconds: float
    steps: int
    config: FinetuneConfig  # as resolved for this model (size, lr, decay)
    note: str = ""
    predictions: dict[str, list] = dataclasses.field(default_factory=dict)  # dev split -> per example


def fit_to_model(cfg: FinetuneConfig, mcfg: ModelConfig) -> FinetuneConfig:
    """Sequence lengths capped at the model's position table (e.g. SQuAD's 512 on a 128 model), and
    SQuAD's stride with them: windows that do not overlap lose every answer across their edge."""
    limit = mcfg.max_position_embeddings
    train, sq = cfg.train, cfg.squad
    if train.max_seq_len > limit:
        # a length the user asked for is said to be cut; the default's cut is the expected one
        say = log.warning if train.max_seq_len != FinetuneTrainConfig.max_seq_len else log.debug
        say("train.max_seq_len=%d is more than the model's %d positions: inputs are cut at %d tokens",
            train.max_seq_len, limit, limit)
        train = dataclasses.replace(train, max_seq_len=limit)
    if sq.max_seq_len > limit:
        stride = max(1, sq.doc_stride * limit // sq.max_seq_len)  # the same share of the window
        log.debug("squad.max_seq_len %d -> %d (the model's max_position_embeddings), doc_stride %d -> %d",
                  sq.max_seq_len, limit, sq.doc_stride, stride)
        sq = dataclasses.replace(sq, max_seq_len=limit, max_query_len=min(sq.max_query_len, limit // 2),
                                 doc_stride=min(sq.doc_stride, stride))
    room = sq.max_seq_len - sq.max_query_len - 3  # the least context a window holds
    if sq.doc_stride > room:
        log.warning("squad.doc_stride=%d is more than the %d context tokens a window may hold: windows may not "
                    "overlap, and answers across their edges cannot be found; lower it", sq.doc_stride, room)
    return dataclasses.replace(cfg, train=train, squad=sq)


def build_model(backbone: Backbone, spec: TaskSpec, labels: tuple[str, ...], cfg: FinetuneConfig
                ) -> FinetuneModel:
    mcfg = dataclasses.replace(backbone.model_cfg, dropout=cfg.train.dropout,
                               attention_dropout=cfg.train.dropout)
    if backbone.tokenizer.vocab_size > mcfg.vocab_size:
        raise CheckpointError(f"the tokenizer has {backbone.tokenizer.vocab_size} tokens but the model "
                              f"only {mcfg.vocab_size}; they do not belong together")
    encoder = build_encoder(mcfg)
    encoder.load_state_dict(backbone.encoder_state)
    _reinit_top_layers(encoder, cfg.train.reinit_layers, mcfg.initializer_range)
    head = spec.family.head(spec, mcfg.hidden_size, labels, cfg)
    init_weights(head, mcfg.initializer_range)
    return FinetuneModel(encoder, head)


def _reinit_top_layers(encoder: torch.nn.Module, n: int, std: float) -> None:
    """Fresh weights for the top `n` layers (`train.reinit_layers`); the embeddings and lower
    layers keep what pre-training learned. Layers shared across depths (ALBERT) cannot be
    re-initialised apart from the rest, so that is refused."""
    if n == 0:
        return
    layers = list(encoder.layers)
    if n > len(layers):
        raise ConfigError(f"train.reinit_layers={n} but the encoder has {len(layers)} layers; "
                          f"pass at most {len(layers)}")
    top = {id(m) for layer in layers[-n:] for m in layer.modules()}
    if any(id(m) in top for layer in layers[:-n] for m in layer.modules()):
        raise ConfigError("train.reinit_layers cannot re-initialise layers that share weights with "
                          "lower ones (ALBERT's model.share_layers); pass train.reinit_layers=0")
    for layer in layers[-n:]:  # drawn from the fine-tuning seed, like the head
        init_weights(layer, std)


@torch.no_grad()
def predict(model: FinetuneModel, spec: TaskSpec, enc: Encoded, batch_size: int, pad_id: int,
            device: torch.device, precision: Precision) -> list:
    """One output row per feature, in feature order."""
    was_training = model.training
    model.eval()
    rows: list = [None] * len(enc)
    for batch in batches(enc, batch_size, pad_id):
        b = batch.to(device)
        with precision.autocast():
            out = model(b.input_ids, b.token_type_ids, b.attention_mask)
        for i, row in zip(b.index, spec.family.unbatch(out, b), strict=True):
            rows[i] = row
    model.train(was_training)
    return rows


def _metrics_line(metrics: dict[str, float]) -> str:
    return " | ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "thresh" not in k)


@dataclass
class _Job:
    """What one fine-tuning run trains and evaluates, built once by `_setup`."""

    model: FinetuneModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    device: torch.device
    labels: tuple[str, ...]
    train_set: Encoded
    train_examples: int
    dev: dict[str, tuple[list, Encoded]]  # split -> (examples, features)
    total_steps: int
    epochs: float


def _setup(backbone: Backbone, spec: TaskSpec, data: TaskData, cfg: FinetuneConfig) -> _Job:
    tc, oc, tok = cfg.train, cfg.optim, backbone.tokenizer
    device = resolve_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    setup_allocator(tc.allocator)
    torch.manual_seed(cfg.seed)  # head init and dropout
    labels = spec.labels or spec.family.labels(spec, data.train)
    train_examples = data.train
    if 0 < tc.train_examples < len(train_examples):
        train_examples = random.Random(cfg.seed).sample(train_examples, tc.train_examples)
    train_set = spec.family.encode(spec, train_examples, tok, labels, cfg, True)
    if not len(train_set):
        raise DataError(f"no usable training examples for {spec.name}; check the training file")
    dev = {}
    for split, examples in data.dev.items():
        examples = examples[: tc.eval_examples or None]
        dev[split] = (examples, spec.family.encode(spec, examples, tok, labels, cfg, False))

    model = build_model(backbone, spec, labels, cfg).to(device)
    use_dropout_kernel(model, resolve_dropout_kernel(tc.dropout_kernel, device))
    epochs = tc.epochs or spec.epochs
    total = max(1, math.ceil(epochs * math.ceil(len(train_set) / tc.batch_size)))
    runtime = oc.to_runtime(total)
    scales = layerwise_lr_scales([n for n, _ in model.named_parameters()], backbone.model_cfg.num_layers,
                                 oc.layerwise_lr_decay, oc.llrd_mode, aliases=parameter_aliases(model))
    optimizer = build_optimizer(model, runtime, scales)
    return _Job(model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, runtime, total),
                precision=Precision.resolve(tc.precision, device), device=device,
                labels=labels, train_set=train_set, train_examples=len(train_examples), dev=dev,
                total_steps=total, epochs=epochs)


def check_out(out: Path, overwrite: bool) -> None:
    """`out` must be empty or missing, or hold an earlier fine-tuned model that `overwrite` lets
    us replace: a model that took hours is not lost to a repeated command, and a folder of
    other files is never written into."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / "finetune.json").is_file():
        raise CheckpointError(f"{out} exists and is not a fine-tuned model; choose another --out")
    if not overwrite:
        raise CheckpointError(f"{out} already holds a fine-tuned model; pass --overwrite to replace it, "
                              "or choose another --out")


def finetune(backbone: Backbone, spec: TaskSpec, data: TaskData, cfg: FinetuneConfig, *,
             out: Path | None = None, quiet: bool = False, overwrite: bool = False) -> FinetuneResult:
    """Train a fresh head + the encoder on `data.train`, evaluate on every dev split after each
    epoch; with `out`, save the model and dev predictions there (replacing an earlier fine-tuned
    model only with `overwrite`)."""
    # ---- setup --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    if out is not None:
        check_out(Path(out), overwrite)
    say = log.debug if quiet else log.info
    cfg = fit_to_model(cfg.resolved(backbone.model_cfg.hidden_size), backbone.model_cfg)
    tc, oc, pad_id = cfg.train, cfg.optim, backbone.tokenizer.pad_id
    job = _setup(backbone, spec, data, cfg)
    shuffle = torch.Generator().manual_seed(cfg.seed)  # batch order
    say("%s seed %d: %d train examples -> %d inputs, %g epochs = %d steps of %d | size %s, lr %.1e, "
        "layer decay %.2f (%s) | %s on %s", spec.name, cfg.seed, job.train_examples, len(job.train_set),
        job.epochs, job.total_steps, tc.batch_size, cfg.size, oc.lr, oc.layerwise_lr_decay,
        oc.llrd_mode, job.precision.name, job.device)

    # ---- loop ---------------------------------------------------------------------------------
    step, history = 0, []
    metrics: dict[str, float] = {}
    predictions: dict[str, list] = {}
    job.model.train()
    for epoch in range(1, math.ceil(job.epochs) + 1):
        t_epoch = time.perf_counter()
        loss_sum, n_steps = torch.zeros((), device=job.device), 0
        for batch in batches(job.train_set, tc.batch_size, pad_id, generator=shuffle):
            if step == job.total_steps:  # a fractional last epoch
                break
            # step: forward, loss, backward, one optimizer update
            b = batch.to(job.device)
            with job.precision.autocast():
                output = job.model(b.input_ids, b.token_type_ids, b.attention_mask)
            loss = spec.family.loss(spec, output, b, cfg)
            job.precision.scaler.scale(loss).backward()
            optimizer_step(job.model, job.optimizer, job.scheduler, job.precision.scaler, oc.clip_norm)
            step += 1
            loss_sum += loss.detach()
            n_steps += 1
            if step % tc.log_every == 0:  # log (the only host sync inside an epoch)
                say("  %s step %d/%d | loss %.4f | lr %.2e", spec.name, step, job.total_steps,
                    loss_sum.item() / n_steps, job.scheduler.get_last_lr()[0])
        train_loss = loss_sum.item() / max(n_steps, 1)
        if not math.isfinite(train_loss):
            raise DivergedError(f"the {spec.name} training loss became {train_loss}; lower optim.lr or use "
                            "train.precision=fp32")
        # eval
        metrics, predictions = _evaluate(job, spec, data, cfg, pad_id)
        history.append({"epoch": epoch, "step": step, "train_loss": train_loss, **metrics,
                        "seconds": time.perf_counter() - t_epoch})
        say("%s seed %d epoch %d/%d | train loss %.4f | %s | %s", spec.name, cfg.seed, epoch,
            math.ceil(job.epochs), train_loss, _metrics_line(metrics),
            format_duration(time.perf_counter() - t_epoch))

    result = FinetuneResult(task=spec.name, seed=cfg.seed, metrics=metrics, history=history,
                            seconds=time.perf_counter() - t0, steps=step, config=cfg, note=data.note,
                            predictions=predictions)
    # save
    if out is not None:
        save_finetuned(Path(out), job.model, spec, job.labels, backbone, result,
                       {split: examples for split, (examples, _) in job.dev.items()})
    return result


def _evaluate(job: _Job, spec: TaskSpec, data: TaskData, cfg: FinetuneConfig, pad_id: int
              ) -> tuple[dict[str, float], dict[str, list]]:
    metrics, predictions = {}, {}
    for split, (examples, enc) in job.dev.items():
        rows = predict(job.model, spec, enc, cfg.train.eval_batch_size, pad_id, job.device, job.precision)
        predictions[split] = spec.family.decode(spec, examples, enc, rows, job.labels, cfg)
        scored = spec.family.score(spec, examples, predictions[split], cfg)
        metrics.update({data.prefixes.get(split, "") + k: v for k, v in scored.items()})
    return metrics, predictions


# ---- the fine-tuned model directory ---------------------------------------------------------


def save_finetuned(out: Path, model: FinetuneModel, spec: TaskSpec, labels: tuple[str, ...],
                   backbone: Backbone, result: FinetuneResult, dev_examples: dict[str, list]) -> None:
    """model.safetensors + finetune.json (task, labels, configs, metrics) + tokenizer/ + the dev
    predictions, everything `electra predict` needs. Written aside and renamed over `out` (which
    `check_out` allowed), so an earlier model is replaced whole or not at all."""
    with atomic_dir(out, replace=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in ckpt.model_state(model).items()},
                  str(tmp / "model.safetensors"))
        backbone.tokenizer.save(tmp / "tokenizer")
        info = {"task": spec.name, "labels": list(labels), "source": backbone.source, "seed": result.seed,
                "metrics": result.metrics, "note": result.note, "steps": result.steps,
                "model": to_dict(model.encoder.cfg), "config": to_dict(result.config),
                "history": result.history}
        (tmp / "finetune.json").write_text(json.dumps(info, indent=2) + "\n")
        for split, examples in dev_examples.items():
            spec.family.write(spec, examples, result.predictions[split],
                              tmp / f"predictions_{split}{spec.pred_suffix}", result.metrics)


def _read_info(p: Path) -> dict:
    """finetune.json, checked for what loading the model reads."""
    try:
        info = json.loads((p / "finetune.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{p} has no finetune.json; pass a directory written by electra finetune") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{p}/finetune.json is corrupt ({e}); fine-tune again") from None
    kinds = {"task": str, "labels": list, "model": dict, "config": dict}
    wrong = [k for k, kind in kinds.items() if not isinstance(info, dict) or not isinstance(info.get(k), kind)]
    if wrong or not all(isinstance(label, str) for label in info["labels"]):
        raise CheckpointError(f"{p}/finetune.json lacks a valid {(wrong or ['labels'])[0]!r}; it was not "
                              "written by electra finetune, fine-tune again")
    return info


def finetuned_config(path: str | Path) -> FinetuneConfig:
    """The settings a fine-tuned model was trained with: what `electra predict` uses unless told
    otherwise (batch size, device, precision, data columns, SQuAD decoding)."""
    return from_dict(FinetuneConfig, _read_info(Path(path))["config"])


def load_finetuned(path: str | Path) -> tuple[FinetuneModel, TaskSpec, FinetuneConfig, Tokenizer, dict]:
    p = Path(path)
    info = _read_info(p)
    spec = get_task(info["task"])
    cfg = from_dict(FinetuneConfig, info["config"])
    mcfg = from_dict(ModelConfig, info["model"])
    if not (p / "tokenizer").is_dir():
        raise CheckpointError(f"{p} has no tokenizer/ directory; fine-tune again or copy it back")
    tokenizer = Tokenizer.load(p / "tokenizer")
    labels = tuple(info["labels"])
    model = FinetuneModel(build_encoder(mcfg), spec.family.head(spec, mcfg.hidden_size, labels, cfg))
    try:
        tensors = load_file(str(p / "model.safetensors"))
    except FileNotFoundError:
        raise CheckpointError(f"{p} has no model.safetensors; fine-tune again") from None
    except (SafetensorError, OSError) as e:  # a torn or overwritten file
        raise CheckpointError(f"{p}/model.safetensors is damaged ({first_line(e)}); fine-tune again") from None
    ckpt.load_model_state(model, tensors, str(p))
    return model.eval(), spec, cfg, tokenizer, info


def predict_file(model_dir: str | Path, input_path: Path, out_path: Path,
                 cfg: FinetuneConfig | None = None, *, overwrite: bool = False) -> tuple[int, dict[str, float]]:
    """Predictions for a file in the task's format (labels optional) -> `out_path`, in the GLUE
    submission format for GLUE tasks. Returns (examples, metrics if the file is labelled). `cfg`:
    prediction settings instead of the model's own (the model is built from its own). An existing
    `out_path` is replaced only with `overwrite`, and never when it is the input or in the model."""
    _check_prediction_out(Path(model_dir), Path(input_path), Path(out_path), overwrite)
    model, spec, saved, tok, info = load_finetuned(model_dir)
    cfg = cfg or saved
    labels = tuple(info["labels"])
    device = resolve_device(cfg.train.device)
    precision = Precision.resolve(cfg.train.precision, device)
    examples = spec.family.read(spec, Path(input_path), "test", cfg)
    enc = spec.family.encode(spec, examples, tok, labels, cfg, False)
    rows = predict(model.to(device), spec, enc, cfg.train.eval_batch_size, tok.pad_id, device, precision)
    predictions = spec.family.decode(spec, examples, enc, rows, labels, cfg)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    spec.family.write(spec, examples, predictions, out_path, info.get("metrics"))
    return len(examples), spec.family.score(spec, examples, predictions, cfg)


def _check_prediction_out(model_dir: Path, input_path: Path, out: Path, overwrite: bool) -> None:
    target = out.resolve()
    if input_path.exists() and target == input_path.resolve():
        raise ConfigError(f"--out {out} is the input file; choose another --out")
    if model_dir.is_dir() and target.is_relative_to(model_dir.resolve()):
        raise ConfigError(f"--out {out} is inside the fine-tuned model {model_dir}; choose a path outside it")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; pass a file name, e.g. {out / 'predictions.tsv'}")
    if out.exists() and not overwrite:
        raise ConfigError(f"--out {out} exists; pass --overwrite to replace it, or choose another --out")
