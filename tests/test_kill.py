"""Crash safety: a pre-training subprocess killed with SIGKILL at random moments (some while a
checkpoint is being written), resumed each time, ends with exactly the weights of a run that was
never interrupted (fp32 CPU, same seed: bitwise), and metrics.jsonl holds every step once.

Half the kills are aimed at checkpoint writes: they fire the moment a half-written checkpoint
directory appears. A kill counts as "mid-save" only when that directory is still there after
the process died, i.e. the write really was cut off (an aimed kill that arrives after the
rename counts as "random"). The default suite kills 6 times; `-m slow` kills 20 times (the
figure in RELIABILITY.md)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.train import checkpoint as ckpt
from tests.conftest import TINY_RUN

STEPS = 40
SETTINGS = [*TINY_RUN, f"train.steps={STEPS}", "train.save_every=1", "train.keep_last=2",
            "train.eval_every=1000", "model.dropout=0.1", "train.threads=1"]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = ckpt.list_checkpoints(run_dir / "checkpoints")[-1][1]
    assert ckpt.problem(path) is None
    return ckpt.load_weights(path)


def start(data: Path, out: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "electra.cli", "pretrain", "--data", str(data), "--out", str(out),
           *(["--resume"] if resume else ["--preset", "tiny"]), *SETTINGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=Path(__file__).resolve().parents[1])


def half_written(ckpts: Path) -> set[Path]:
    return set(ckpts.glob(".step_*.tmp-*")) if ckpts.is_dir() else set()


def kill_somewhere(proc: subprocess.Popen, out: Path, rng: random.Random, mid_save: bool) -> str:
    """SIGKILL once training has begun: either the moment a half-written checkpoint is seen, or
    a random delay after a new metrics line. Returns 'mid-save' when the kill left a new
    half-written checkpoint behind, 'random' for any other kill, 'finished' if none came."""
    metrics, ckpts = out / "metrics.jsonl", out / "checkpoints"
    size0 = metrics.stat().st_size if metrics.exists() else 0
    stale = half_written(ckpts)  # left by an earlier leg; the next save removes them
    deadline, fire_at = time.monotonic() + 120, None
    while proc.poll() is None and time.monotonic() < deadline:
        if mid_save and half_written(ckpts) - stale:
            fire_at = time.monotonic()
        if fire_at is None and metrics.exists() and metrics.stat().st_size > size0:
            fire_at = time.monotonic() + (rng.uniform(0.1, 0.3) if mid_save else rng.uniform(0, 0.15))
        if fire_at is not None and time.monotonic() >= fire_at:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "mid-save" if half_written(ckpts) - stale else "random"
        time.sleep(0.002)
    proc.wait()
    return "finished"


def kill_and_resume(data: Path, out: Path, kills: int, seed: int = 0) -> Counter:
    rng, where = random.Random(seed), Counter()
    for i in range(kills):
        resume = bool(ckpt.list_checkpoints(out / "checkpoints"))
        where[kill_somewhere(start(data, out, resume), out, rng, mid_save=i % 2 == 1)] += 1
        if where["finished"]:
            break
    if not where["finished"]:  # the last leg runs to the end
        proc = start(data, out, bool(ckpt.list_checkpoints(out / "checkpoints")))
        assert proc.wait() == 0
    return where


def check_against_uninterrupted(tiny_data: Path, tmp_path: Path, kills: int) -> Counter:
    ref = tmp_path / "ref"
    run(apply_overrides(preset("tiny"), SETTINGS), out=ref, data=tiny_data)
    out = tmp_path / "killed"
    where = kill_and_resume(tiny_data, out, kills)
    a, b = final_weights(ref), final_weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after {where}"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = Counter((r["kind"], r["step"], r.get("alarm")) for r in map(json.loads, lines))
    assert max(steps.values()) == 1, "a step was logged twice"
    assert {s for k, s, _ in steps if k == "train"} == set(range(1, STEPS + 1))
    assert not list((out / "checkpoints").glob(".step_*.tmp-*"))  # stale temp dirs cleared
    return where


def test_killed_runs_resume_to_the_same_weights(tiny_data, tmp_path):
    where = check_against_uninterrupted(tiny_data, tmp_path, kills=6)
    assert where["random"] + where["mid-save"] >= 3, where  # legs that finish early end the loop: still >= 3 kills
    assert where["mid-save"] >= 1, where  # 3 are aimed at saves (a save takes most of a tiny step)


@pytest.mark.slow
def test_twenty_kills(tiny_data, tmp_path):
    where = check_against_uninterrupted(tiny_data, tmp_path, kills=20)
    print(f"kills: {dict(where)}")
    assert where["random"] + where["mid-save"] >= 15, where
    assert where["mid-save"] >= 5, where  # 10 are aimed at saves; these cut one off mid-write
