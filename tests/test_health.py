"""Every health alarm, provoked: on a real tiny run where a setting provokes it within seconds
(non-finite loss, dead learning rate, weak generator, no context learned), else on the metric
stream the loop would log (a gradient explosion, a loss spike, a too-strong generator and a
collapsed discriminator need hours of a real run to appear)."""

import json
from pathlib import Path

import pytest

from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import DataError
from electra.train.health import HealthMonitor
from tests.conftest import TINY_RUN


def cfg(*extra):
    return apply_overrides(preset("tiny"), TINY_RUN + list(extra))


def health_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "health"]


def test_nonfinite_loss_stops_the_run_with_the_resume_command(tiny_data, tmp_path, caplog):
    out = tmp_path / "nan"
    with pytest.raises(DataError, match=r"non-finite.*optim.lr=") as e:
        run(cfg("optim.lr=1e3", "optim.warmup_steps=0", "optim.clip_norm=0", "train.steps=40",
                "train.save_every=2"), out=out, data=tiny_data)
    assert "\n" not in str(e.value)
    recs = [r for r in health_records(out) if r["alarm"] == "nonfinite"]
    assert recs and "lower optim.lr" in recs[-1]["action"]
    assert any("health:" in m for m in caplog.messages)


def test_dead_learning_rate_fires(tiny_data, tmp_path):
    out = tmp_path / "dead"  # the paper's 10k warm-up on a 6-step run never reaches its rate
    run(cfg("optim.warmup_steps=10000"), out=out, data=tiny_data)
    assert [r["step"] for r in health_records(out) if r["alarm"] == "dead_lr"] == [1]  # once


def test_weak_generator_and_no_context_fire(tiny_data, tmp_path):
    out = tmp_path / "weak"
    run(cfg("optim.lr=1e-9", "optim.warmup_steps=1"), out=out, data=tiny_data)
    names = {r["alarm"] for r in health_records(out)}
    assert {"generator_weak", "no_context"} <= names


def test_healthy_stream_raises_nothing():
    mon = HealthMonitor(cfg("train.steps=1000", "optim.warmup_steps=10"))
    for step in range(20, 1000, 20):
        m = {"loss": 5.0 - step / 1000, "grad_norm": 1.0, "lr": 1e-3, "gen_acc": 0.3, "bad_steps": 0}
        assert mon.on_train(step, m) == []


def stream(mon: HealthMonitor, n: int, **m):
    base = {"loss": 5.0, "grad_norm": 1.0, "lr": 1e-3, "gen_acc": 0.3, "bad_steps": 0}
    return [a for step in range(20, 20 * (n + 1), 20) for a in mon.on_train(step, {**base, **m})]


def test_gradient_explosion_and_loss_spike_fire_once_per_episode():
    mon = HealthMonitor(cfg("train.steps=1000", "optim.warmup_steps=10"))
    assert stream(mon, 6) == []
    fired = mon.on_train(200, {"loss": 9.0, "grad_norm": 50.0, "lr": 1e-3, "gen_acc": 0.3})
    assert {a.name for a in fired} == {"grad_explosion", "loss_spike"}
    again = mon.on_train(220, {"loss": 9.0, "grad_norm": 50.0, "lr": 1e-3, "gen_acc": 0.3})
    assert again == []  # still the same episode: no repeat


def test_strong_generator_fires():
    mon = HealthMonitor(cfg("train.steps=1000"))
    assert [a.name for a in stream(mon, 1, gen_acc=0.8)] == ["generator_strong"]


def test_collapsed_discriminator_fires():
    mon = HealthMonitor(cfg("train.steps=1000", "optim.warmup_steps=10"))
    valid = {"disc_acc": 0.8517, "baseline_acc": 0.8517, "disc_auc": 0.51}
    assert [a.name for a in mon.on_valid(200, valid)] == ["disc_collapse"]
    assert mon.on_valid(300, {**valid, "disc_acc": 0.87, "disc_auc": 0.7}) == []


def test_alarm_lines_are_one_line():
    mon = HealthMonitor(cfg("train.steps=1000"))
    for a in stream(mon, 1, gen_acc=0.8, bad_steps=1):
        assert "\n" not in a.line() and a.record()["action"]


def test_a_run_that_falls_back_to_the_plateau_is_called_diverged():
    """The shape of a real divergence (lr 2e-3, sharing=all, tiny at seq 64): loss 6.47 -> 7.47
    and generator accuracy 0.18 -> 0.05 within 400 steps."""
    mon = HealthMonitor(cfg("train.steps=8000", "optim.warmup_steps=400"))
    losses = [8.4, 7.2, 6.9, 6.8, 6.6, 6.54, 6.47, 6.92, 7.47]
    accs = [0.04, 0.10, 0.13, 0.15, 0.17, 0.182, 0.183, 0.135, 0.051]
    fired = {}
    for i, (loss, acc) in enumerate(zip(losses, accs, strict=True)):
        for a in mon.on_train(200 * (i + 1), {"loss": loss, "grad_norm": 1.0, "lr": 1e-3, "gen_acc": acc}):
            fired.setdefault(a.name, 200 * (i + 1))
    assert fired == {"loss_spike": 1800, "diverged": 1800}


def test_active_alarms_are_those_still_holding():
    mon = HealthMonitor(cfg("train.steps=1000", "optim.warmup_steps=10"))
    valid = {"disc_acc": 0.8517, "baseline_acc": 0.8517, "disc_auc": 0.51}
    mon.on_valid(200, valid)
    assert mon.active == {"disc_collapse"}
    mon.on_valid(300, {**valid, "disc_acc": 0.87, "disc_auc": 0.7})
    assert mon.active == frozenset()  # electra doctor lists it as "cleared since", not a problem
