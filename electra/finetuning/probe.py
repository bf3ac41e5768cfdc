"""A cheap fine-tuning probe during pre-training (`electra pretrain ... eval.task=sst2 eval.data=DIR`).

A falling pre-training loss does not show that the encoder learns anything transferable; a short
fine-tune on a subset of a GLUE task every `eval.every` steps does. The probe fine-tunes a copy
of the discriminator's weights under a forked RNG, so the run's model, optimizer and random
streams (hence exact resume) are untouched."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from electra.config import ProbeConfig, check_choice
from electra.data.tokenizer import Tokenizer
from electra.finetuning.config import FinetuneConfig, FinetuneOptimConfig, FinetuneTrainConfig
from electra.finetuning.run import Backbone, finetune
from electra.finetuning.tasks import PROBE_TASKS, TaskData, TaskSpec, get_task, load_data
from electra.model.layers import Encoder
from electra.train.log import format_duration

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _task_data(task: str, data: str) -> tuple[TaskSpec, TaskData]:
    spec = get_task(task)  # read once per run, not at every probe
    return spec, load_data(spec, FinetuneConfig(), data=Path(data))


def check_probe_config(probe: ProbeConfig) -> None:
    """`eval.task` must be a GLUE classification/regression task (checked before a run starts)."""
    check_choice("eval.task", probe.task, PROBE_TASKS)


def make_probe(probe: ProbeConfig, tokenizer: Tokenizer, device: torch.device | str
               ) -> Callable[[Encoder], dict[str, float | str]]:
    """The callable the training loop runs every `eval.every` steps on its encoder."""
    check_probe_config(probe)
    return functools.partial(run_probe, tokenizer=tokenizer, probe=probe, device=device)


def run_probe(encoder: Encoder, tokenizer: Tokenizer, probe: ProbeConfig,
              device: torch.device | str = "cpu") -> dict[str, float | str]:
    """Fine-tune a copy of `encoder` on `probe.train_examples` examples of `probe.task`; returns
    the dev metrics (`probe.eval_examples` examples) and the seconds it took."""
    spec, data = _task_data(probe.task, probe.data)
    device = torch.device(device)
    state = {k: v.detach().to("cpu", copy=True) for k, v in encoder.state_dict().items()}
    backbone = Backbone(encoder.cfg, state, tokenizer, "probe")
    cfg = FinetuneConfig(
        seed=probe.seed, optim=FinetuneOptimConfig(lr=probe.lr),
        train=FinetuneTrainConfig(epochs=probe.epochs, batch_size=probe.batch_size,
                                  max_seq_len=probe.max_seq_len, train_examples=probe.train_examples,
                                  eval_examples=probe.eval_examples, device=str(device), log_every=10**9))
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        res = finetune(backbone, spec, data, cfg, quiet=True)
    log.info("probe %s (%d train / %d dev examples): %s (%s)", spec.name, probe.train_examples,
             probe.eval_examples, " | ".join(f"{k} {v:.4f}" for k, v in res.metrics.items()),
             format_duration(res.seconds))
    return {"task": spec.name, **res.metrics, "seconds": res.seconds}
