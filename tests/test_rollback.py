"""`train.on_nonfinite=rollback`: after `train.max_bad_steps` non-finite steps the run reloads
its newest finite checkpoint from before the bad stretch and goes on at a lower rate, records it
(one console line, one `health` record), keeps that rate across --resume, and stops after
`train.max_rollbacks` roll-backs or when no checkpoint can be rolled back to.

The provocation: LR 1e3 after a first update at rate 0 (a one-step warm-up), so the checkpoint
of step 1 holds the initial weights, the update of step 2 blows the weights up and every
gradient after it is non-finite."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import ConfigError, DataError
from electra.train import checkpoint as ckpt
from tests.conftest import TINY_RUN

BLOW_UP = ["optim.lr=1e3", "optim.warmup_steps=1", "optim.schedule=constant", "optim.clip_norm=0",
           "train.steps=8", "train.save_every=1", "train.keep_last=5", "train.eval_every=100",
           "train.on_nonfinite=rollback"]


def cfg(*extra):
    return apply_overrides(preset("tiny"), TINY_RUN + BLOW_UP + list(extra))


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def rolled(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rolled") / "run"
    result = run(cfg("train.rollback_lr_factor=1e-4"), out=out, data=tiny_data)
    assert result.train.step == 8
    return out


def test_nonfinite_steps_roll_back_and_the_run_finishes_with_finite_weights(rolled):
    [back] = [r for r in records(rolled, "health") if r["alarm"] == "rollback"]
    assert (back["step"], back["from_step"]) == (1, 5)  # 3 bad steps (3, 4, 5) -> step 1's checkpoint
    assert back["lr"] == pytest.approx(0.1) and "1000 -> 0.1" in back["message"]
    train = records(rolled, "train")
    assert [r["step"] for r in train] == list(range(1, 9))  # the lost steps were logged again, once
    assert all(r["bad_steps"] == 0 for r in train) and train[-1]["lr"] == pytest.approx(0.1)
    last = ckpt.list_checkpoints(rolled / "checkpoints")[-1][1]
    assert all(torch.isfinite(t).all() for t in ckpt.load_weights(last).values())
    assert ckpt.read_meta(last)["rollbacks"] == 1
    # the diverged checkpoints (steps 2-5) were set aside at the roll-back: never resumed from, kept to look at
    aside = sorted(p.name for p in (rolled / "checkpoints").glob("rolled_back*"))
    assert aside and all(p.startswith("rolled_back-step_0000000") for p in aside)


def test_the_lowered_rate_survives_a_resume(rolled, tmp_path, caplog):
    out = tmp_path / "run"
    shutil.copytree(rolled, out)
    with caplog.at_level("INFO"):
        run("tiny", out=out, resume=True, overrides=["train.steps=10"])
    assert [r["lr"] for r in records(out, "train")[-2:]] == pytest.approx([0.1, 0.1])
    assert any("lowered from 1000 by 1 roll-back" in m for m in caplog.messages)
    assert not [r for r in records(out, "health") if r["alarm"] in ("nonfinite", "dead_lr")]


def test_the_roll_back_is_one_console_line(tiny_data, tmp_path, caplog):
    run(cfg("train.rollback_lr_factor=1e-4", "train.steps=6"), out=tmp_path / "r", data=tiny_data)
    lines = [m for m in caplog.messages if "rolled back to" in m]
    assert len(lines) == 1 and lines[0].startswith("health: too many non-finite steps")


def test_it_stops_after_max_rollbacks(tiny_data, tmp_path):
    out = tmp_path / "r"  # halving 1e3 once is not enough
    with pytest.raises(DataError, match=r"stopped at step \d+: .*non-finite.*optim.lr=250\b") as e:
        run(cfg("train.max_rollbacks=1"), out=out, data=tiny_data)
    assert "\n" not in str(e.value)
    assert [r["alarm"] for r in records(out, "health")].count("rollback") == 1


def test_with_no_checkpoint_before_the_blow_up_it_stops(tiny_data, tmp_path):
    out = tmp_path / "r"  # no warm-up: step 1's update already blows the weights up
    with pytest.raises(DataError, match="no checkpoint from before step 1 .* start again with a lower rate"):
        run(cfg("optim.warmup_steps=0"), out=out, data=tiny_data)


@pytest.mark.parametrize("override, problem", [
    ("train.on_nonfinite=retry", "train.on_nonfinite='retry' is not one of stop, rollback"),
    ("train.rollback_lr_factor=1.0", "must be in (0, 1)"),
    ("train.max_rollbacks=0", "train.max_rollbacks must be >= 1"),
])
def test_bad_rollback_settings_are_one_line_errors(override, problem):
    with pytest.raises(ConfigError) as e:
        apply_overrides(preset("tiny"), [override])
    assert problem in str(e.value) and "\n" not in str(e.value)
