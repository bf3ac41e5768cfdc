"""Two processes on CPU (gloo) through torchrun: the same loop, DDP-wrapped."""

import os
import subprocess
import sys

import pytest
import torch

from electra.train import checkpoint as ckpt
from tests.conftest import TINY_RUN


@pytest.mark.dist
def test_two_process_run_and_exact_resume_layout_check(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "electra.cli", "pretrain", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), *TINY_RUN,
           "train.steps=4", "train.save_every=2", "train.eval_every=2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    path = ckpt.resolve_checkpoint(out)
    assert {p.name for p in path.iterdir()} >= {"rng_0.pt", "rng_1.pt", "trainer.pt", "model.safetensors"}
    meta = ckpt.read_meta(path)
    assert meta["world_size"] == 2 and meta["step"] == 4
    # each process read its own half of every global batch of 8 rows
    trainer, _ = ckpt.load_trainer(path, 1)
    assert trainer["loader"]["world_size"] == 2 and trainer["loader"]["batch_size"] == 4
    weights = ckpt.load_weights(path)
    assert all(torch.isfinite(w).all() for w in weights.values())
    # resuming with one process cannot continue the data stream exactly: refused clearly
    from electra.api import load_run_config
    from electra.api import pretrain as run
    from electra.errors import DataError

    with pytest.raises(DataError, match="same layout"):
        run(load_run_config(out, ["train.steps=6"]), out=out, resume=True)
