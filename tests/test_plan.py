import pytest
import torch

from electra.config import apply_overrides, preset
from electra.errors import ConfigError
from electra.plan import (
    assumed,
    budget_table,
    make_plan,
    measure,
    parse_duration,
    preset_with_vocab,
)
from electra.train.flops import electra_train_flops
from tests.test_model import TINY


def test_parse_duration():
    assert parse_duration("8h") == 8 * 3600 and parse_duration("90m") == 5400
    assert parse_duration("2d") == 172800 and parse_duration("30s") == 30
    for text in ("eight hours", "8", "0h"):  # a bare number could mean hours or seconds
        with pytest.raises(ConfigError, match="not a positive duration with a unit"):
            parse_duration(text)


def test_plan_from_an_assumed_gpu_uses_the_training_flop_counter():
    cfg = preset_with_vocab("base", 30522, [])
    t = assumed(cfg, 512, "a100", 0.4)
    assert t.tokens_per_s == pytest.approx(0.4 * 312e12 / electra_train_flops(cfg, 512))
    p = make_plan(cfg, t, tokens=1e10)
    assert p.steps == round(1e10 / (256 * 512))
    assert p.seconds == pytest.approx(p.tokens / t.tokens_per_s)
    assert p.total_flops == pytest.approx(p.tokens * electra_train_flops(cfg, 512))
    assert p.checkpoint_bytes == 12 * p.params and 100e6 < p.params < 200e6
    with pytest.raises(ConfigError, match="unknown --gpu"):
        assumed(cfg, 512, "tpu", 0.4)
    capped = apply_overrides(cfg, ["train.steps=1000000", "train.budget_flops=1e18"])  # the budget ends it
    p = make_plan(capped, t)
    assert p.steps < 1_000_000 and p.total_flops == pytest.approx(1e18, rel=1e-3)


def test_budget_table_fits_more_steps_of_smaller_presets():
    cfg = preset_with_vocab("small", 30522, [])
    rows = dict((r[0], r[1]) for r in budget_table(assumed(cfg, 128, "h100", 0.3), 8 * 3600, 30522))
    assert rows["tiny"] > rows["small"] > rows["base"] > rows["large"] >= 1


def test_measure_times_real_steps_on_cpu():
    cfg = apply_overrides(preset("tiny"), TINY + ["train.device=cpu", "train.precision=fp32"])
    t = measure(cfg, 32, micro_batch=2, steps=1, device="cpu")
    assert t.tokens_per_s > 0 and t.flops_per_s > 0 and "measured" in t.source


def test_plan_cli_prints_time_memory_and_budget(capsys):
    from electra.cli import main

    assert main(["plan", "--preset", "base", "--gpu", "h100", "--mfu", "0.4", "--tokens", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "7,629 steps" in out and "40% MFU of a H100" in out and "GiB each" in out
    assert main(["plan", "--preset", "tiny", "--budget", "1h", "--micro-batch", "2", "--measure-steps", "1",
                 "preprocess.seq_len=32", "model.max_position_embeddings=64", "model.num_layers=1"]) == 0
    out = capsys.readouterr().out
    assert "measured" in out and "in 1h at the same FLOP rate" in out and "large" in out
    assert main(["plan", "--steps", "5", "--tokens", "9"]) == 2
    capsys.readouterr()
    for bad in (["--gpu", "a100", "--mfu", "0"], ["--gpu", "a100", "--mfu", "5"], ["--measure-steps", "0"],
                ["--micro-batch", "-2"], ["--steps", "-3"], ["--tokens", "-5"], ["--gpu", "a100", "--tokens", "inf"], ["--gpu", "a100", "--vocab-size", "0"]):
        assert main(["plan", "--preset", "small", *bad]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and ("out of range" in err or "vocab_size" in err), err


def test_measured_plan_runs_the_model_with_trainings_threads_and_speed_settings(monkeypatch):
    import electra.plan as plan

    seen = []

    def spy(model, tc, device):
        plan_use(model, tc, device)
        seen.append((tc.sample_kernel, model.sample_kernel, device.type))

    plan_use = plan.use_speed_settings
    monkeypatch.setattr(plan, "use_speed_settings", spy)
    cfg = apply_overrides(preset("tiny"), ["model.num_layers=1", "model.max_position_embeddings=64",
                                           "train.sample_kernel=gumbel", "train.threads=1"])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert measure(cfg, 32, 2, steps=1, device="cpu").tokens_per_s > 0
        assert torch.get_num_threads() == 1  # the run's thread count, as training sets it
    finally:
        torch.set_num_threads(threads)
    assert seen == [("gumbel", "gumbel", "cpu")]
