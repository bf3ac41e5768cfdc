import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from electra.api import load_run_config
from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import CheckpointError, ConfigError, DataError
from electra.train import checkpoint as ckpt
from tests.conftest import TINY_RUN


def cfg(*extra):
    return apply_overrides(preset("tiny"), TINY_RUN + list(extra))


def records(run_dir: Path, kind: str) -> dict[int, dict]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == kind:
            out[r["step"]] = r
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(ckpt.resolve_checkpoint(path))


@pytest.fixture(scope="module")
def straight(tiny_data, tmp_path_factory):
    """6 uninterrupted steps (dropout on, so RNG restore matters)."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    res = run(cfg("model.dropout=0.1"), out=out, data=tiny_data)
    return out, res


def test_run_writes_config_checkpoints_metrics_and_exports(straight):
    out, res = straight
    assert res.train.step == 6 and res.train.tokens > 6 * 8 * 10
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["vocab_size"] == 400 and saved["preprocess"]["seq_len"] == 32
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3, 6]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp dirs
    train = records(out, "train")
    assert sorted(train) == [1, 2, 3, 4, 5, 6]
    assert all(k in train[6] for k in ("loss", "mlm_loss", "rtd_loss", "gen_acc", "disc_acc", "lr", "tokens"))
    valid = records(out, "valid")
    assert sorted(valid) == [3, 6]
    v = valid[6]
    assert 0 <= v["disc_auc"] <= 1 and 0.5 < v["baseline_acc"] < 1 and v["rows"] > 0
    assert v["baseline_acc"] == pytest.approx(1 - v["replaced_frac"])
    assert (res.exports["discriminator"] / "model.safetensors").is_file()
    assert (res.exports["generator"] / "tokenizer.json").is_file()
    meta = ckpt.read_meta(ckpt.resolve_checkpoint(out))
    assert meta["step"] == 6 and meta["tokens"] == res.train.tokens


def test_two_n_steps_equal_n_then_resume_then_n(straight, tiny_data, tmp_path):
    out_a, _ = straight
    out_b = tmp_path / "resumed"
    first = run(cfg("model.dropout=0.1", "train.stop_at=3"), out=out_b, data=tiny_data)
    assert first.train.step == 3 and [s for s, _ in ckpt.list_checkpoints(out_b / "checkpoints")] == [3]
    second = run(load_run_config(out_b, []), out=out_b, resume=True)
    assert second.train.step == 6
    a, b = records(out_a, "train"), records(out_b, "train")
    for step in range(1, 7):
        for k in ("loss", "mlm_loss", "rtd_loss", "gen_acc", "disc_acc", "lr", "tokens"):
            assert a[step][k] == b[step][k], (step, k)
    assert records(out_a, "valid")[6]["loss"] == records(out_b, "valid")[6]["loss"]
    wa, wb = weights(out_a), weights(out_b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_keep_last_n(tiny_data, tmp_path):
    out = tmp_path / "r"
    run(cfg("train.save_every=1", "train.keep_last=2", "train.steps=4", "train.eval_every=100"), out=out,
        data=tiny_data)
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3, 4]


def test_output_dir_holding_a_run_or_other_files_is_refused(straight, tiny_data, tmp_path):
    out, _ = straight
    before = (out / "config.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run(cfg(), out=out, data=tiny_data)
    assert (out / "config.json").read_text() == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        run(cfg(), out=other, data=tiny_data)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_resume_a_finished_run_asks_for_more_steps(straight):
    out, _ = straight
    with pytest.raises(ConfigError, match="raise train.steps"):
        run(load_run_config(out, []), out=out, resume=True)


def test_resume_skips_a_damaged_checkpoint_for_the_newest_intact_one(straight, tmp_path, caplog):
    out = tmp_path / "copy"
    shutil.copytree(straight[0], out)
    latest = ckpt.resolve_checkpoint(out)  # step 6; step 3 is intact
    blob = bytearray((latest / "model.safetensors").read_bytes())
    blob[-5] ^= 0xFF  # same size: only the checksum can tell
    (latest / "model.safetensors").write_bytes(bytes(blob))
    assert "does not match its checksum" in ckpt.problem(latest)
    with caplog.at_level("WARNING"):
        res = run(load_run_config(out, ["train.steps=8", "train.stop_at=5"]), out=out, resume=True)
    assert "skipped step_00000006 (model.safetensors does not match its checksum)" in caplog.text
    assert res.train.step == 5 and records(out, "train")[4]["step"] == 4  # continued from step 3
    assert (latest / "model.safetensors").read_bytes() == bytes(blob)  # left alone, not deleted


def test_no_intact_checkpoint_is_one_clear_error(straight, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(straight[0], out)
    for _, path in ckpt.list_checkpoints(out / "checkpoints"):
        (path / "trainer.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="no intact checkpoint.*trainer.pt does not match"):
        run(load_run_config(out, ["train.steps=8"]), out=out, resume=True)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load_trainer(path, 0)


def test_tokenizer_that_does_not_match_the_shards(straight, tiny_data, tmp_path):
    from electra.config import TokenizerConfig
    from electra.data.corpus import iter_documents
    from electra.data.tokenizer import train_tokenizer

    out = tmp_path / "copy"
    shutil.copytree(straight[0], out)
    shutil.rmtree(out / "tokenizer")
    corpus = tmp_path / "other.txt"
    corpus.write_text("completely different words here\n\nzebra yak xylophone walrus\n" * 50)
    train_tokenizer(iter_documents([corpus]), out / "tokenizer", TokenizerConfig(vocab_size=400, min_frequency=1))
    from electra.errors import TokenizerError

    with pytest.raises(TokenizerError, match="different tokenizer"):
        run(load_run_config(out, ["train.steps=8"]), out=out, resume=True, data=tiny_data)


def test_batch_larger_than_the_data(tiny_data, tmp_path):
    with pytest.raises(DataError, match="fewer than one batch"):
        run(cfg("train.batch_size=100000"), out=tmp_path / "r", data=tiny_data)


def test_a_start_that_failed_before_its_first_checkpoint_is_no_dead_end(tiny_data, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(DataError, match="fewer than one batch"):
        run(cfg("train.batch_size=100000"), out=out, data=tiny_data)
    assert (out / "config.json").is_file()  # the failed start had written its setup
    with pytest.raises(CheckpointError, match="holds no checkpoint; start without --resume"):
        run(load_run_config(out, []), out=out, resume=True)
    assert run(cfg("train.steps=1"), out=out, data=tiny_data).train.step == 1  # a plain re-run works


def test_out_that_is_a_file_is_refused(tiny_data, tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ConfigError, match="is a file"):
        run(cfg(), out=tmp_path / "f", data=tiny_data)
    assert (tmp_path / "f").read_text() == "mine"


def test_position_table_as_long_as_the_data_rows_is_accepted(tiny_data, tmp_path):
    # the preset's default preprocess.seq_len (128) is not the data's (32): the shards decide
    c = apply_overrides(preset("tiny"), [o for o in TINY_RUN if not o.startswith("preprocess.seq_len")]
                        + ["model.max_position_embeddings=32", "train.steps=1"])
    assert run(c, out=tmp_path / "r", data=tiny_data).train.step == 1


def test_built_in_rows_longer_than_the_positions_fail_before_any_work(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        run(cfg("model.max_position_embeddings=16"), out=tmp_path / "r", corpus=[tiny_corpus])
    assert not (tmp_path / "r").exists()


def test_rows_longer_than_the_model_positions(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        run(cfg("model.max_position_embeddings=16", "preprocess.seq_len=16"), out=tmp_path / "r",
            data=tiny_data)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs(tiny_data, tmp_path, precision):
    out = tmp_path / precision
    res = run(cfg(f"train.precision={precision}", "train.steps=2", "train.eval_every=2", "train.save_every=2"),
              out=out, data=tiny_data)
    train = records(out, "train")
    assert all(math.isfinite(r["loss"]) for r in train.values())
    trainer, _ = ckpt.load_trainer(ckpt.resolve_checkpoint(out), 0)
    scaler_used = bool(trainer["scaler"])  # GradScaler state is saved only when enabled (fp16)
    assert scaler_used == (precision == "fp16")
    assert res.train.valid["rows"] > 0


def test_gradient_accumulation_reads_micro_batches(tiny_data, tmp_path):
    out = tmp_path / "accum"
    run(cfg("train.grad_accum=2", "train.steps=2", "train.save_every=2"), out=out, data=tiny_data)
    trainer, _ = ckpt.load_trainer(ckpt.resolve_checkpoint(out), 0)
    assert trainer["loader"]["batch_size"] == 4  # 8 rows per step = 2 micro-batches of 4
    assert trainer["loader"]["cursor"] == 4 or trainer["loader"]["epoch"] > 0
    tokens = records(out, "train")[2]["tokens"]
    assert tokens > 2 * 8 * 10  # two steps of 8 rows were seen


def test_tensorboard_events_are_written(straight):
    pytest.importorskip("tensorboard")
    out, _ = straight
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())


def test_gradient_checkpointing_run_matches_plain_run(straight, tiny_data, tmp_path):
    out = tmp_path / "ckpt"
    run(cfg("model.dropout=0.1", "train.gradient_checkpointing=true", "train.stop_at=3"), out=out,
        data=tiny_data)
    a, b = records(straight[0], "train"), records(out, "train")
    for step in (1, 2, 3):
        assert a[step]["loss"] == pytest.approx(b[step]["loss"], rel=1e-5)


def test_shard_bytes_changed_in_place_are_caught_before_training(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    shard = data / "train_00000.bin"
    blob = bytearray(shard.read_bytes())
    blob[100] ^= 0xFF  # same size, different content
    shard.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="does not match its checksum"):
        run(cfg(), out=tmp_path / "r", data=data)


def test_a_start_that_failed_on_bad_shards_is_re_run_in_place(tiny_data, tmp_path, capsys):
    """The run dir was claimed (config.json, tokenizer/) before the shards were found damaged; once
    they are repaired the same command starts the run in the same directory, no --resume needed."""
    from electra.cli import main

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    shard = data / "train_00000.bin"
    good = shard.read_bytes()
    shard.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    argv = ["pretrain", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "r"), *TINY_RUN, "train.steps=3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("electra: error:") and "does not match its checksum" in err
    assert (tmp_path / "r" / "config.json").is_file()
    shard.write_bytes(good)
    assert main(argv) == 0
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "r" / "checkpoints")] == [3]


def test_missing_or_moved_data_dirs_are_named(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="--data .*nowhere does not exist"):
        run(cfg(), out=tmp_path / "r0", data=tmp_path / "nowhere")
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    out = tmp_path / "r"
    run(cfg("train.stop_at=3"), out=out, data=data)
    data.rename(tmp_path / "moved")
    with pytest.raises(DataError, match="does not exist \\(moved or deleted\\?\\); pass --data"):
        run(load_run_config(out, []), out=out, resume=True)
    assert run(load_run_config(out, []), out=out, resume=True, data=tmp_path / "moved").train.step == 6
    # the new path is recorded: a later resume finds it without --data
    assert run(load_run_config(out, ["train.steps=8"]), out=out, resume=True).train.step == 8


def test_resume_refuses_other_shards_given_as_its_data(tiny_corpus, tiny_tokenizer, tiny_data, tmp_path):
    from electra.config import PreprocessConfig
    from electra.data.preprocess import preprocess

    other = tmp_path / "other"  # the same tokenizer and row length, another draw of validation rows
    preprocess([tiny_corpus], tiny_tokenizer, other, PreprocessConfig(seq_len=32, valid_fraction=0.2, workers=1))
    out = tmp_path / "r"
    run(cfg("train.stop_at=3"), out=out, data=tiny_data)
    with pytest.raises(DataError, match="the shards given to resume .* are not those it trained on"):
        run(load_run_config(out, []), out=out, resume=True, data=other)
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3]  # nothing trained or written
    assert json.loads((out / "run.json").read_text())["data"] == str(tiny_data.resolve())
    # other shards written where the run's were (preprocess --force into its data directory)
    shutil.copytree(tiny_data, tmp_path / "own")
    run(cfg("train.stop_at=3"), out=tmp_path / "r2", data=tmp_path / "own")
    shutil.rmtree(tmp_path / "own")
    shutil.copytree(other, tmp_path / "own")
    with pytest.raises(DataError, match="are not those it trained on"):
        run(load_run_config(tmp_path / "r2", []), out=tmp_path / "r2", resume=True)


def test_sigterm_finishes_the_step_saves_and_resumes_exactly(straight, tiny_data, tmp_path):
    """Preemption: the signal arrives mid-run (here from the step-3 probe hook); the run stops
    after that step with a checkpoint, and resuming gives the uninterrupted run's weights."""
    import os
    import signal

    from electra.api import pretrain as api_pretrain
    from electra.data.tokenizer import Tokenizer
    from electra.train import distributed as dist
    from electra.train.loop import pretrain as loop
    from electra.train.state import RunData

    out = tmp_path / "pre"
    c = cfg("model.dropout=0.1", "train.stop_at=1")
    api_pretrain(c, out=out, data=tiny_data)  # a run directory at step 1
    data = RunData.open(tiny_data, Tokenizer.load(out / "tokenizer"), "tokenizer")
    resumed = load_run_config(out, [])
    res = loop(resumed, data, out, dist.init_distributed("cpu"), resume=True,
               probe=lambda encoder: os.kill(os.getpid(), signal.SIGTERM) or {})
    assert res.preempted and res.step == 3
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")][-1] == 3
    assert signal.getsignal(signal.SIGTERM) is not None  # the old handler is back
    final = run(load_run_config(out, []), out=out, resume=True)
    assert final.train.step == 6
    wa, wb = weights(straight[0]), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_time_based_checkpoints(tiny_data, tmp_path):
    out = tmp_path / "timed"
    run(cfg("train.save_every=100", "train.eval_every=100", "train.save_every_minutes=1e-9"),
        out=out, data=tiny_data)
    # save_every=100 would save only at the end (6); the timer saved after every step
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [5, 6]  # keep_last=2


def test_resume_across_the_warm_start_phase_switch_is_exact(tiny_data, tmp_path):
    c = cfg("objective.disc_mlm_steps=3", "model.dropout=0.1")
    a = run(c, out=tmp_path / "a", data=tiny_data)
    run(cfg("objective.disc_mlm_steps=3", "model.dropout=0.1", "train.stop_at=2"), out=tmp_path / "b",
        data=tiny_data)
    b = run(load_run_config(tmp_path / "b", []), out=tmp_path / "b", resume=True)
    ra, rb = records(tmp_path / "a", "train"), records(tmp_path / "b", "train")
    assert ra[2]["rtd_loss"] == 0 and ra[4]["rtd_loss"] > 0  # MLM first, then ELECTRA
    assert all(ra[s]["loss"] == rb[s]["loss"] for s in range(1, 7))
    wa, wb = weights(a.train.checkpoint), weights(b.train.checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_shards_are_hashed_once_until_they_change(tiny_data, tmp_path):
    import os

    from electra.data.shards import read_manifest
    from electra.train.state import verify_shards
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / ".verified.json").unlink(missing_ok=True)
    manifest = read_manifest(data)
    n = sum(len(s.shards) for s in manifest.splits.values())
    assert verify_shards(data, manifest) == n
    assert verify_shards(data, manifest) == 0  # cached by size and mtime
    shard = data / "train_00000.bin"
    blob = bytearray(shard.read_bytes())
    blob[7] ^= 0xFF
    shard.write_bytes(bytes(blob))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(DataError, match="does not match its checksum"):
        verify_shards(data, manifest)


def test_disk_full_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tiny_data, tmp_path,
                                                                                 monkeypatch, capsys):
    import errno

    from electra.cli import main
    real, calls = ckpt.save_file, []

    def full_disk(tensors, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    out = tmp_path / "r"
    assert main(["pretrain", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), *TINY_RUN]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("electra: error: [Errno 28] No space left on device") and "Traceback" not in err
    ckpts = ckpt.list_checkpoints(out / "checkpoints")
    assert [s for s, _ in ckpts] == [3] and ckpt.problem(ckpts[0][1]) is None
    assert not list((out / "checkpoints").glob(".*"))  # the torn write was removed


def test_a_lower_learning_rate_given_on_resume_is_used(straight, tmp_path, tiny_data):
    out = tmp_path / "r"
    shutil.copytree(straight[0], out)
    shutil.rmtree(ckpt.list_checkpoints(out / "checkpoints")[-1][1])  # resume from step 3
    run("tiny", out=out, resume=True, overrides=["optim.lr=5e-4"])
    lrs = {s: r["lr"] for s, r in records(out, "train").items()}
    base = json.loads((straight[0] / "config.json").read_text())["optim"]["lr"]
    assert base == 1e-3
    assert lrs[4] == pytest.approx(records(straight[0], "train")[4]["lr"] / 2)


def test_a_rate_changed_on_resume_stays_changed_on_the_next_resume(tiny_data, tmp_path):
    out = tmp_path / "r"
    run(cfg("train.steps=2", "train.save_every=1", "optim.lr=1e-3"), out=out, data=tiny_data)
    run("tiny", out=out, resume=True, overrides=["train.steps=4", "optim.lr=2e-4"])
    run("tiny", out=out, resume=True, overrides=["train.steps=6"])  # no optim.lr this time
    meta = ckpt.read_meta(ckpt.resolve_checkpoint(out))
    assert meta["step"] == 6 and meta["optim_lr"] == pytest.approx(2e-4)
    lrs = {s: r["lr"] for s, r in records(out, "train").items()}
    straight = tmp_path / "s"  # the same schedule at 2e-4 from the start: same rates at 5 and 6
    run(cfg("train.steps=6", "optim.lr=2e-4"), out=straight, data=tiny_data)
    ref = {s: r["lr"] for s, r in records(straight, "train").items()}
    assert lrs[5] == pytest.approx(ref[5]) and lrs[6] == pytest.approx(ref[6])


def test_progress_counts_towards_the_budget_not_train_steps(tiny_data, tmp_path, caplog):
    """With train.steps far beyond a FLOP budget, progress and ETA count to the budget's step."""
    c = cfg("train.steps=1000000", "train.eval_every=1000", "train.save_every=1000",
            "train.budget_flops=2e8")
    with caplog.at_level("INFO"):
        run(c, out=tmp_path / "r", data=tiny_data)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    totals = {line.split()[1].split("/")[1] for line in lines}
    assert len(totals) == 1
    end = int(totals.pop())
    assert 2 <= end < 1000 and lines[-1].startswith(f"step {end}/{end} |")


def test_what_a_resume_changed_stays_and_a_changed_schedule_applies_from_its_first_step(tiny_data, tmp_path):
    out = tmp_path / "r"
    run(cfg("train.steps=4", "train.save_every=1", "train.eval_every=100"), out=out, data=tiny_data)  # lr ends at 0
    run(load_run_config(out, ["train.steps=8", "train.stop_at=5"]), out=out, resume=True)
    w4, w5 = weights(out / "checkpoints" / "step_00000004"), weights(out / "checkpoints" / "step_00000005")
    assert any(not torch.equal(w4[k], w5[k]) for k in w4)  # step 5 learned: not at the old schedule's lr 0
    resumed = load_run_config(out, [])  # a plain --resume keeps train.steps=8 (config.json still says 4)
    assert resumed.train.steps == 8 and json.loads((out / "config.json").read_text())["train"]["steps"] == 4
    assert run(resumed, out=out, resume=True).train.step == 8


def test_keep_last_never_prunes_the_checkpoint_just_written(tiny_data, tmp_path):
    out = tmp_path / "r"
    run(cfg("train.save_every=2", "train.eval_every=100", "train.stop_at=4"), out=out, data=tiny_data)
    (out / "checkpoints" / "step_00000004" / "trainer.pt").write_bytes(b"damaged")  # a damaged newest one
    run(load_run_config(out, ["train.keep_last=1", "train.save_every=1", "train.stop_at=3"]), out=out,
        resume=True)  # from step 2, saves step 3
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3, 4]  # 4 left for the user to see
    assert ckpt.problem(out / "checkpoints" / "step_00000003") is None


def test_a_run_saved_without_fp16_resumes_under_fp16(tiny_data, tmp_path):
    out = tmp_path / "r"
    run(cfg("train.stop_at=3", "train.eval_every=100"), out=out, data=tiny_data)
    assert run(load_run_config(out, ["train.precision=fp16"]), out=out, resume=True).train.step == 6


def test_api_takes_a_path_or_override_alone_and_refuses_a_preset_on_resume(tiny_corpus, tmp_path):
    import electra

    out = tmp_path / "run"
    res = run(cfg("train.steps=1"), out=out, corpus=Path(tiny_corpus), overrides="train.steps=2")  # one each
    assert res.train.step == 2
    with pytest.raises(ConfigError, match="under its own config; drop the preset 'albert'"):
        run("albert", out=out, resume=True, overrides=["train.steps=3"])
    assert load_run_config(out, []).train.steps == 2  # nothing was trained under the preset
    for seeds in (0, [0, 0], "3", True):
        with pytest.raises(ConfigError, match=r"seeds=.* must be a count \(3\) or distinct integers"):
            electra.evaluate(out, "sst2", tmp_path / "ev", seeds=seeds, glue_dir=tmp_path)
    assert not (tmp_path / "ev").exists()


def test_a_run_that_saved_nothing_yet_is_not_called_a_hugging_face_directory(tiny_data, tmp_path):
    import electra

    out = tmp_path / "run"
    with pytest.raises(ConfigError):  # fails at the data check, after writing config.json and run.json
        run(cfg("model.max_position_embeddings=16"), out=out, data=tiny_data)
    assert (out / "config.json").is_file() and (out / "run.json").is_file()
    for call in (lambda: electra.load(out), lambda: electra.export(out, tmp_path / "hf"),
                 lambda: electra.finetune(out, "sst2", data=tmp_path)):
        with pytest.raises(CheckpointError, match="is a pre-training run with no checkpoint yet"):
            call()


def test_rows_from_data_that_the_config_did_not_ask_for_are_said(tiny_data, tmp_path, caplog):
    run(cfg("preprocess.seq_len=16", "train.steps=1"), out=tmp_path / "run", data=tiny_data)
    assert "decides the rows: 32 tokens" in caplog.text
    assert "preprocess.seq_len=16" in caplog.text
    assert load_run_config(tmp_path / "run", []).preprocess.seq_len == 32
