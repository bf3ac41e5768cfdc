"""A training step between log steps reads nothing back from the device (BENCHMARKS.md, GPU):
on a GPU every read of a tensor's value on the host, and every op whose output size depends on
values, waits for all queued kernels. Checked on CPU by counting the Python-level reads a run
makes: a run of 7 steps must make exactly as many as a run of 3 (setup, one log, one validation
and one checkpoint each), whatever the objective or model family."""

import collections

import pytest
import torch

import electra.train.loop as loop
from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from tests.conftest import TINY_RUN

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu", "nonzero", "unique")
# what a GPU run picks where the CPU picks its own kernels (packed dropout, inverse-CDF samples)
AS_ON_A_GPU = ["train.dropout_kernel=torch", "train.sample_kernel=gumbel"]


def count_reads(monkeypatch: pytest.MonkeyPatch, counts: collections.Counter) -> None:
    def counted(name: str):
        orig = getattr(torch.Tensor, name)

        def read(self, *a, **k):
            counts[name] += 1
            return orig(self, *a, **k)
        return read

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counted(name))

    def getitem(self, idx, _orig=torch.Tensor.__getitem__):
        if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in (idx if isinstance(idx, tuple) else (idx,))):
            counts["boolean index"] += 1
        return _orig(self, idx)
    monkeypatch.setattr(torch.Tensor, "__getitem__", getitem)


@pytest.mark.parametrize("name,extra", [
    ("tiny", []), ("tiny", ["train.grad_accum=2"]), ("tiny", ["objective.masking=ngram"]),
    ("tiny", ["objective.algorithm=adversarial"]), ("tiny", ["objective.loss_weighting=uncertainty"]),
    ("tiny", ["objective.algorithm=two_stage", "objective.two_stage_steps=2", "objective.sharing=none",
              "objective.generator_size=1.0"]),
    ("albert", []), ("debertav3", []), ("roberta", ["model.type_vocab_size=2"])])
def test_steps_between_log_steps_read_nothing_back(tiny_data, tmp_path, monkeypatch, name, extra):
    step = loop.optimizer_step  # as on CUDA: no host check of the gradient norm (CPU-only guard)
    monkeypatch.setattr(loop, "optimizer_step", lambda *a, **k: step(*a, **{**k, "skip_nonfinite": False}))
    totals = []
    for n in (3, 7):
        counts: collections.Counter = collections.Counter()
        every = [f"train.{k}={n}" for k in ("steps", "log_every", "eval_every", "save_every")]
        cfg = apply_overrides(preset(name), TINY_RUN + every + AS_ON_A_GPU + extra)
        with monkeypatch.context() as m:
            count_reads(m, counts)
            run(cfg, data=tiny_data, out=tmp_path / f"steps{n}")
        totals.append(counts)
    assert totals[0] == totals[1], f"reads per step: {totals[1] - totals[0]}"
