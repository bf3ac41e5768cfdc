"""Every health alarm, provoked on a real tiny run by a setting that genuinely causes it, each
asserted as its console line and its `health` record in metrics.jsonl: a non-finite loss (LR
1e3), a dead learning rate (a 10k warm-up), a weak generator and no context learned (LR 1e-9),
a too-strong generator (one that sees the token it must guess), a divergence with its gradient
explosion and loss spike (that strong run resumed at 50x the rate), a collapsed discriminator
(LR 0.3 saturates it). The metric-stream tests below pin the thresholds and the
once-per-episode rule; tests/test_rollback.py covers the roll-back after non-finite steps."""

import json
import logging
import shutil
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import DataError
from electra.train import checkpoint as ckpt
from electra.train.health import GENERATOR_STRONG_ACC, HealthMonitor
from tests.conftest import TINY_RUN


def cfg(*extra):
    return apply_overrides(preset("tiny"), TINY_RUN + list(extra))


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def health_records(run_dir: Path) -> list[dict]:
    return records(run_dir, "health")


@contextmanager
def console() -> Iterator[list[str]]:
    """The warning lines a run prints (caplog is per test; the shared runs below need their own)."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("electra").addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger("electra").removeHandler(handler)


def fired(run_dir: Path, lines: list[str], alarm: str, after: int = 0) -> list[dict]:
    """The alarm's health records after step `after`; each was printed as its one console line."""
    recs = [r for r in health_records(run_dir) if r["alarm"] == alarm and r["step"] > after]
    assert recs, f"{alarm} did not fire; fired: {sorted({r['alarm'] for r in health_records(run_dir)})}"
    for r in recs:
        assert f"health: {r['message']} -> {r['action']}" in lines
        assert r["action"] and "\n" not in r["message"]
    return recs


# a generator that sees the token it must guess (masked positions keep the original: no [MASK],
# no random token), as wide as the discriminator and with little RTD weight on the shared
# embeddings, learns to copy within ~20 steps
STRONG = ["objective.mask_token_prob=0", "objective.random_token_prob=0", "objective.generator_size=1.0",
          "model.embedding_size=32", "objective.disc_weight=1", "objective.mask_prob=0.3",
          "optim.lr=2e-2", "optim.schedule=constant", "train.steps=30", "train.eval_every=30"]


@pytest.fixture(scope="module")
def strong(tiny_data, tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("strong") / "run"
    with console() as lines:
        run(cfg(*STRONG), out=out, data=tiny_data)
    return out, lines


@pytest.fixture(scope="module")
def jumped(strong, tmp_path_factory) -> tuple[Path, list[str]]:
    """The strong run resumed at 50x its rate: its generator falls from ~0.9 to ~0."""
    out = tmp_path_factory.mktemp("jumped") / "run"
    shutil.copytree(strong[0], out)
    with console() as lines:
        run("tiny", out=out, resume=True, overrides=["optim.lr=1", "train.steps=34"])
    return out, lines


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


def test_strong_generator_fires_on_a_real_run(strong):
    rec = fired(*strong, "generator_strong")[0]
    assert records(strong[0], "train")[rec["step"] - 1]["gen_acc"] > GENERATOR_STRONG_ACC


def test_divergence_fires_on_a_real_run_resumed_at_a_far_higher_rate(jumped):
    rec = fired(*jumped, "diverged", after=30)[0]
    acc = {r["step"]: r["gen_acc"] for r in records(jumped[0], "train")}
    assert acc[30] > GENERATOR_STRONG_ACC and acc[rec["step"]] < 0.1


def test_gradient_explosion_fires_on_a_real_run(jumped):
    rec = fired(*jumped, "grad_explosion", after=30)[0]
    norms = {r["step"]: r["grad_norm"] for r in records(jumped[0], "train")}
    assert norms[rec["step"]] > 10 * statistics.median(norms[s] for s in range(1, 31))


def test_loss_spike_fires_on_a_real_run(jumped):
    rec = fired(*jumped, "loss_spike", after=30)[0]
    loss = {r["step"]: r["loss"] for r in records(jumped[0], "train")}
    assert loss[rec["step"]] > 2 * max(loss[s] for s in range(26, 31))


def test_collapsed_discriminator_fires_on_a_real_run(tiny_data, tmp_path):
    """LR 0.3 saturates the discriminator: its score no longer depends on the input."""
    out = tmp_path / "collapse"
    with console() as lines:
        run(cfg("optim.lr=0.3", "optim.schedule=constant", "train.steps=8", "train.eval_every=4",
                "train.eval_rows=64"), out=out, data=tiny_data)
    rec = fired(out, lines, "disc_collapse")[0]
    valid = {r["step"]: r for r in records(out, "valid")}[rec["step"]]
    assert abs(valid["disc_auc"] - 0.5) < 0.02 and valid["disc_acc"] <= valid["baseline_acc"] + 0.001


def test_resume_logs_every_step_once_and_no_alarm_twice(tiny_data, tmp_path):
    """A run killed after step 5's records but before its checkpoint: the resume from step 4
    drops them, logs each (kind, step) once, and an alarm that fired at step 1 and still holds
    (a warm-up far longer than the run) is not logged again."""
    out = tmp_path / "r"
    run(cfg("optim.warmup_steps=10000", "train.stop_at=5", "train.save_every=2"), out=out, data=tiny_data)
    shutil.rmtree(ckpt.list_checkpoints(out / "checkpoints")[-1][1])  # the step-5 save never happened
    before = [line for line in (out / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] <= 4]
    run("tiny", out=out, resume=True)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines[:len(before)] == before  # what the checkpoint covers is kept as written
    seen = Counter((r["kind"], r["step"], r.get("alarm")) for r in map(json.loads, lines))
    assert max(seen.values()) == 1, [k for k, n in seen.items() if n > 1]
    assert sorted(s for k, s, _ in seen if k == "train") == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in health_records(out) if r["alarm"] == "dead_lr"] == [1]
