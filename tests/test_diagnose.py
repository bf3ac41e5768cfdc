"""`electra doctor`, `electra inspect`, `--version`, and `--print-config`/`--config` round trips."""

import importlib.metadata
import json
import shutil

import pytest

import electra
from electra.api import pretrain as run
from electra.cli import main
from electra.config import apply_overrides, preset
from electra.diagnose import doctor, inspect
from electra.errors import ConfigError
from electra.train import checkpoint as ckpt
from tests.conftest import TINY_RUN


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("doctor") / "run"
    run(apply_overrides(preset("tiny"), TINY_RUN), out=out, data=tiny_data)
    return out


def test_doctor_on_a_finished_run(finished):
    text = doctor(finished).text()
    assert "checkpoints: 2 (step_00000003, step_00000006); newest intact: step 6" in text
    assert "shard(s) match their checksums" in text
    assert "progress: step 6 of 6" in text and "learned context:" in text
    assert "next: electra evaluate" in text


def test_doctor_names_damage_and_the_way_on(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    newest = ckpt.list_checkpoints(run_dir / "checkpoints")[-1][1]
    (newest / "trainer.pt").write_bytes(b"torn")
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a write cut by kill -9
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["train"]["steps"] = 12
    (run_dir / "config.json").write_text(json.dumps(cfg))
    text = doctor(run_dir).text()
    assert "checkpoint step_00000006 is damaged (trainer.pt does not match its checksum)" in text
    assert "newest intact: step 3" in text and "1 unreadable line(s)" in text
    assert f"next: electra pretrain --resume --out {run_dir}" in text
    assert "DAMAGED: trainer.pt" in "\n".join(inspect(newest))
    with open(newest / "model.safetensors", "r+b") as f:  # a torn weights file: reported, not read
        f.truncate(1000)
    assert "DAMAGED: model.safetensors" in "\n".join(inspect(newest))


def test_doctor_exits_1_on_a_corrupt_shard_and_0_on_a_healthy_run(finished, tiny_data, tmp_path, capsys):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(finished, run_dir)
    shutil.copytree(tiny_data, data)
    (run_dir / "run.json").write_text(json.dumps({"data": str(data)}))
    # the 6-step tiny run's own health alarms (no context learned yet) are problems too: keep
    # the metrics of its first two steps, before any alarm could fire
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= 2))
    assert main(["doctor", str(run_dir)]) == 0
    assert "no problems found" in capsys.readouterr().out
    shard = data / "train_00000.bin"
    blob = bytearray(shard.read_bytes())
    blob[100] ^= 0xFF  # same size: only the checksum can tell
    shard.write_bytes(bytes(blob))
    assert main(["doctor", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "problem: data:" in out and "train_00000.bin does not match its checksum" in out


def test_doctor_refuses_a_directory_without_a_run(finished, tmp_path):
    with pytest.raises(ConfigError, match="holds no run"):
        doctor(tmp_path)
    with pytest.raises(ConfigError, match="nowhere does not exist"):
        doctor(tmp_path / "nowhere")
    step = finished / "checkpoints" / "step_00000006"
    with pytest.raises(ConfigError, match=f"one checkpoint of a run; pass the run directory \\({finished}\\)"):
        doctor(step)


def test_inspect_prints_what_a_checkpoint_holds(finished, capsys):
    assert main(["inspect", str(finished)]) == 0
    out = capsys.readouterr().out
    assert "step_00000006" in out and "step 6," in out and "all intact" in out
    assert "discriminator 2 x 32" in out and "vocab 400" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"electra {electra.__version__}\n"
    assert importlib.metadata.version("electra") == electra.__version__  # pyproject.toml and the package agree


@pytest.mark.parametrize("argv", [
    ["pretrain", "train.steps=7", "objective.temperature=1.5"],
    ["tokenizer", "train", "--corpus", "c", "--out", "o", "--vocab-size", "500", "--cased"],
    ["preprocess", "--corpus", "c", "--tokenizer", "t", "--out", "o", "--seq-len", "64", "preprocess.seed=3"],
    ["finetune", "ckpt", "--task", "sst2", "optim.lr=1e-4", "train.epochs=2"],
    ["evaluate", "ckpt", "--out", "o", "--size", "base"],
    ["plan", "--preset", "tiny", "train.batch_size=8"],
])
def test_printed_config_repeats_exactly_with_config(argv, tmp_path, capsys):
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out
    saved = tmp_path / "cfg.json"
    saved.write_text(printed)
    plain = [a for a in argv if "=" not in a and a not in ("--cased",)]
    plain = [a for i, a in enumerate(plain) if not (a in ("--vocab-size", "--seq-len", "--size")
                                                   or (i and plain[i - 1] in ("--vocab-size", "--seq-len", "--size")))]
    assert main([*plain, "--config", str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed


def test_experiment_spec_prints_and_runs_from_config(tmp_path, capsys):
    argv = ["experiment", "run", "ablations", "--out", str(tmp_path / "x"), "--data", "d", "--seeds", "2",
            "--budgets", "1e14", "train.log_every=5", "finetune.optim.lr=1e-4"]
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out
    spec = json.loads(printed)
    assert spec["name"] == "ablations" and spec["finetune"]["seeds"] == [0, 1]
    assert spec["overrides"] == ["train.log_every=5"] and spec["finetune"]["overrides"] == ["optim.lr=1e-4"]
    (tmp_path / "spec.json").write_text(printed)
    assert main(["experiment", "run", "--config", str(tmp_path / "spec.json"), "--out", str(tmp_path / "x"),
                 "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert main(["experiment", "run", "ablations", "--config", str(tmp_path / "spec.json"), "--out", "x"]) == 2
    assert "one of the two" in capsys.readouterr().err


def test_pretrain_runs_from_a_config_file(tiny_data, tmp_path, capsys):
    assert main(["pretrain", "--preset", "tiny", "--print-config", *TINY_RUN, "train.steps=4"]) == 0
    (tmp_path / "c.json").write_text(capsys.readouterr().out)
    out = tmp_path / "r"
    assert main(["pretrain", "--config", str(tmp_path / "c.json"), "--data", str(tiny_data),
                 "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 4
    assert main(["pretrain", "--config", str(tmp_path / "c.json"), "--preset", "tiny"]) == 2


def test_a_run_ended_by_its_flop_budget_is_healthy_and_told_how_to_go_on(tiny_data, tmp_path, capsys):
    from electra.summaries import print_pretrain_summary
    from electra.train.flops import flop_rate
    base = apply_overrides(preset("tiny"), [*TINY_RUN, "train.steps=100"])
    budget = flop_rate(base, 32).at(0) * 8 * 32 * 6  # a few steps of 8 rows x 32 tokens
    out = tmp_path / "b"
    res = run(apply_overrides(base, [f"train.budget_flops={budget}"]), out=out, data=tiny_data)
    n = res.train.step
    assert n < 100
    alarms = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert not [a for a in alarms if a["kind"] == "health" and a.get("alarm") == "dead_lr"]
    report = doctor(out)
    assert not [p for p in report.problems if "learning rate" in p]  # the schedule ended where it should
    assert f"{n} steps planned: train.budget_flops" in report.text()
    assert f"progress: step {n} of {n}," in report.text()
    assert "next: electra evaluate" in report.text()
    print_pretrain_summary(res)
    assert f"--resume --out {out} train.budget_flops={2 * budget:g} train.steps=100" in capsys.readouterr().out


def test_a_run_stopped_before_its_end_is_told_to_resume_as_it_is(tiny_data, tmp_path, capsys):
    from electra.summaries import print_pretrain_summary
    out = tmp_path / "s"
    res = run(apply_overrides(preset("tiny"), [*TINY_RUN, "train.stop_at=3"]), out=out, data=tiny_data)
    print_pretrain_summary(res)
    assert f"or train it longer: electra pretrain --resume --out {out}\n" in capsys.readouterr().out


def test_a_budgeted_run_cut_by_stop_at_is_told_to_resume_as_it_is(tiny_data, tmp_path, capsys):
    from electra.summaries import print_pretrain_summary
    out = tmp_path / "sb"
    res = run(apply_overrides(preset("tiny"), [*TINY_RUN, "train.steps=100", "train.budget_flops=1e12",
                                               "train.stop_at=3"]), out=out, data=tiny_data)
    print_pretrain_summary(res)
    assert f"or train it longer: electra pretrain --resume --out {out}\n" in capsys.readouterr().out


def test_inspect_says_what_a_directory_is_when_it_is_no_run(finished, capsys):
    assert main(["inspect", str(finished / "export" / "discriminator")]) == 2
    assert "already a Hugging Face model directory" in capsys.readouterr().err
