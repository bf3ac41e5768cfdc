"""`electra finetune / evaluate / predict` end to end on tiny fixtures of every task family,
our own run directory as a backbone, the pre-training probe, and one-line user errors."""

import dataclasses
import json
import shutil

import pytest
import torch

from electra.cli import main
from electra.config import ProbeConfig, apply_overrides, preset
from electra.data.tokenizer import Tokenizer
from electra.errors import ConfigError
from electra.finetuning.config import FinetuneConfig
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf
from electra.model.layers import Encoder
from electra.objective import ElectraModel, TokenIds
from tests.conftest import TINY_RUN
from tests.finetune_fixtures import write_conll, write_glue, write_squad, write_user
from tests.test_model import TINY

# one thread: the default two spin badly when another job shares the cores
FAST = ["train.threads=1", "train.batch_size=8", "train.eval_batch_size=16", "train.max_seq_len=48",
        "train.log_every=2", "train.epochs=1", "optim.lr=1e-3"]


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def backbone(tiny_tokenizer, tmp_path_factory):
    """A local HF ELECTRA directory (random tiny discriminator + the tiny tokenizer)."""
    tok = Tokenizer.load(tiny_tokenizer)
    torch.manual_seed(0)
    model = ElectraModel.from_config(apply_overrides(preset("tiny"), [*TINY, f"model.vocab_size={tok.vocab_size}"]),
                                     TokenIds.standard())
    return save_hf(tmp_path_factory.mktemp("hf") / "disc", *pretrained_to_hf(model, "discriminator"), tok)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftcli")
    return {"glue": write_glue(root / "glue"), "conll": write_conll(root / "conll"),
            "squad": write_squad(root / "squad.json"), "squad2": write_squad(root / "v2.json", v2=True),
            "user": write_user(root / "user")}


def cli_error(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_finetune_learns_and_predict_writes_a_glue_submission(backbone, data, tmp_path, capsys):
    out = tmp_path / "sst2"
    assert main(["finetune", str(backbone), "--task", "sst2", "--data", str(data["glue"]), "--out", str(out),
                 *FAST, "train.epochs=4", "optim.lr=3e-3", "--seed", "3"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    losses = [h["train_loss"] for h in info["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert info["seed"] == 3 and info["labels"] == ["0", "1"] and 0 <= info["metrics"]["acc"] <= 1
    # a 128-wide encoder gets the CPU presets' recipe: the size's decay (1.0), the given lr
    assert info["config"]["size"] == "tiny" and info["config"]["optim"]["layerwise_lr_decay"] == 1.0
    assert info["config"]["optim"]["lr"] == 3e-3
    assert (out / "tokenizer" / "vocab.txt").is_file() and (out / "predictions_dev.tsv").is_file()
    printed = capsys.readouterr().out
    assert "SST-2 (seed 3" in printed and "electra predict" in printed

    sub = tmp_path / "SST-2.tsv"
    assert main(["predict", str(out), "--input", str(data["glue"] / "SST-2" / "test.tsv"), "--out", str(sub)]) == 0
    lines = sub.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 7
    assert [ln.split("\t")[0] for ln in lines[1:]] == [str(i) for i in range(6)]
    assert {ln.split("\t")[1] for ln in lines[1:]} <= {"0", "1"}
    # a labelled file also prints its score
    assert main(["predict", str(out), "--input", str(data["glue"] / "SST-2" / "dev.tsv"), "--out",
                 str(tmp_path / "dev.tsv")]) == 0
    assert "wrote 16 predictions" in capsys.readouterr().out


def test_evaluate_reports_medians_over_seeds_and_resumes(backbone, data, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", str(backbone), "--tasks", "cola,mrpc,stsb", "--seeds", "2", "--glue-dir",
            str(data["glue"]), "--out", str(out), *FAST]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1] and list(res["tasks"]) == ["cola", "mrpc", "stsb"]
    for task, metrics in (("cola", {"mcc", "acc"}), ("mrpc", {"acc", "f1"}), ("stsb", {"spearman", "pearson"})):
        t = res["tasks"][task]
        assert set(t["summary"]) == metrics and len(t["runs"]) == 2 and t["seconds"] > 0
        for s in t["summary"].values():
            assert set(s) == {"median", "mean", "std", "min", "max", "n"} and s["min"] <= s["median"] <= s["max"]
        values = [r["metrics"][t["main_metric"]] for r in t["runs"]]
        assert t["summary"][t["main_metric"]]["median"] == pytest.approx(sum(values) / 2)
    g = res["glue_average"]
    assert g["tasks"] == ["cola", "mrpc", "stsb"] and "rte" in g["missing"]
    assert g["score"] == pytest.approx(sum(res["tasks"][t]["summary"][res["tasks"][t]["main_metric"]]["median"]
                                           for t in g["tasks"]) / 3)
    md = (out / "results.md").read_text()
    assert "| CoLA | mcc |" in md and "| STS-B | spearman |" in md and "GLUE average of medians" in md
    assert "not the GLUE score" in md
    first = (out / "runs" / "cola" / "seed0" / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # resumes: every run is already done
    assert (out / "runs" / "cola" / "seed0" / "result.json").stat().st_mtime_ns == first
    assert json.loads((out / "results.json").read_text())["tasks"] == res["tasks"]
    # never mix runs of different settings in one table
    assert "another checkpoint (or step) or config (the fine-tuning settings differ)" in cli_error(
        capsys, *argv, "optim.lr=2e-3")


def _user_args(d, name):
    u = d["user"]
    return {
        "conll2003": ["--data", d["conll"], "train.epochs=2"],
        "squad": ["--data", d["squad"], "--split-by-article", "4", "squad.max_seq_len=48",
                  "squad.doc_stride=16", "squad.max_query_len=12"],
        "squad2": ["--train", d["squad2"], "--dev", d["squad2"], "squad.max_seq_len=48",
                   "squad.max_query_len=12", "train.precision=bf16"],  # autocast path (emulated on CPU)
        "classification": ["--train", u / "train.csv", "--dev", u / "dev.csv", "--text-column", "review",
                           "--label-column", "sentiment", "head.kind=electra"],
        "regression": ["--train", u / "train.jsonl", "--dev", u / "dev.jsonl", "--text-column", "a",
                       "--pair-column", "b", "--label-column", "y"],
        "tagging": ["--train", u / "train_tags.jsonl", "--dev", u / "dev_tags.jsonl"],
    }[name]


@pytest.mark.parametrize("task, metric, suffix", [
    ("conll2003", "f1", ".txt"), ("squad", "exact", ".json"), ("squad2", "best_f1_thresh", ".json"),
    ("classification", "f1_macro", ".tsv"), ("regression", "pearson", ".tsv"), ("tagging", "f1", ".txt")])
def test_every_task_family_runs_end_to_end(backbone, data, tmp_path, task, metric, suffix, capsys):
    out = tmp_path / task
    assert main(["finetune", str(backbone), "--task", task, "--out", str(out), *FAST,
                 *map(str, _user_args(data, task))]) == 0
    info = json.loads((out / "finetune.json").read_text())
    assert metric in info["metrics"] and len(info["history"]) >= 1
    preds = out / f"predictions_dev{suffix}"
    assert preds.is_file()
    if task == "squad":
        assert "article split" in info["note"]
        assert set(json.loads(preds.read_text())) == {f"a{a}q{q}" for a in (4, 5) for q in range(4)}
    if task == "conll2003":
        first = preds.read_text().splitlines()[0].split()
        assert len(first) == 3 and first[1] in ("I-PER", "B-PER")  # word gold predicted (conlleval input)
    # predict re-reads the task's format (labels optional) and writes the same kind of file
    src = {"conll2003": data["conll"] / "eng.testa", "squad": data["squad"], "squad2": data["squad2"],
           "classification": data["user"] / "dev.csv", "regression": data["user"] / "dev.jsonl",
           "tagging": data["user"] / "dev_tags.jsonl"}[task]
    assert main(["predict", str(out), "--input", str(src), "--out", str(tmp_path / f"p{suffix}")]) == 0
    if task == "regression":  # an error on the label scale is printed as it is, not x100
        printed = capsys.readouterr().out
        mse = json.loads((out / "finetune.json").read_text())["metrics"]["mse"]
        assert f"mse {mse:.4f}" in printed and f"mse {100 * mse:.2f}" not in printed


def test_our_run_directory_is_a_backbone(tiny_data, data, tmp_path, capsys):
    from electra.api import pretrain as run

    res = run(apply_overrides(preset("tiny"), TINY_RUN), out=tmp_path / "run", data=tiny_data)
    out = tmp_path / "ft"
    assert main(["finetune", str(tmp_path / "run"), "--task", "rte", "--data", str(data["glue"]), "--out",
                 str(out), *FAST]) == 0
    assert "step 6" in json.loads((out / "finetune.json").read_text())["source"]
    # fine-tuned encoders start from the run's discriminator
    from electra.finetuning.run import load_backbone

    assert torch.equal(load_backbone(tmp_path / "run").encoder_state["layers.0.ffn_in.weight"],
                       HFCheckpoint(res.exports["discriminator"]).encoder_state["layers.0.ffn_in.weight"])
    import electra  # what electra.load returns fine-tunes as the checkpoint it was read from
    api_res = electra.finetune(electra.load(tmp_path / "run"), "rte", data=data["glue"], overrides=FAST)
    assert api_res.task == "rte" and "acc" in api_res.metrics
    shutil.copytree(res.train.checkpoint, tmp_path / "no_tok")
    shutil.rmtree(tmp_path / "no_tok" / "tokenizer")
    assert "has no tokenizer/ directory" in cli_error(capsys, "finetune", tmp_path / "no_tok", "--task", "rte",
                                                      "--data", data["glue"])
    # an evaluation of the run is not resumed once the run has trained further (another model)
    ev = ["evaluate", str(tmp_path / "run"), "--tasks", "rte", "--seeds", "1", "--glue-dir", str(data["glue"]),
          "--out", str(tmp_path / "ev"), *FAST]
    assert main(ev) == 0
    from electra.api import load_run_config
    run(load_run_config(tmp_path / "run", ["train.steps=8"]), out=tmp_path / "run", resume=True)
    capsys.readouterr()
    assert "another checkpoint (or step) or config" in cli_error(capsys, *ev)


@pytest.fixture(scope="module")
def sst2_model(backbone, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sst2") / "model"
    assert main(["finetune", str(backbone), "--task", "sst2", "--data", str(data["glue"]), "--out", str(out),
                 *FAST]) == 0
    return out


def test_export_finetune_and_evaluate_use_only_intact_checkpoints(tiny_data, data, tmp_path, capsys, caplog):
    from electra.api import pretrain as run
    from electra.train import checkpoint as ckpt

    run_dir, glue = tmp_path / "run", data["glue"]
    run(apply_overrides(preset("tiny"), TINY_RUN), out=run_dir, data=tiny_data)
    (_, step3), (_, step6) = ckpt.list_checkpoints(run_dir / "checkpoints")
    blob = bytearray((step6 / "model.safetensors").read_bytes())
    blob[-5] ^= 0xFF  # same size: only the checksum can tell
    (step6 / "model.safetensors").write_bytes(bytes(blob))
    with caplog.at_level("WARNING"):
        assert main(["export", str(run_dir), "--out", str(tmp_path / "e")]) == 0
    assert "(discriminator, step 3)" in capsys.readouterr().out
    assert "skipped step_00000006 (model.safetensors does not match its checksum)" in caplog.text
    assert main(["finetune", str(run_dir), "--task", "rte", "--data", str(glue), "--out", str(tmp_path / "ft"),
                 *FAST]) == 0
    assert "step_00000003 (step 3)" in json.loads((tmp_path / "ft" / "finetune.json").read_text())["source"]
    assert "is damaged (model.safetensors does not match" in cli_error(capsys, "export", step6, "--out",
                                                                       tmp_path / "e2")
    (step3 / "trainer.pt").write_bytes(b"junk")
    for argv in (["export", run_dir, "--out", tmp_path / "e3"],
                 ["finetune", run_dir, "--task", "rte", "--data", glue, "--out", tmp_path / "ft2"],
                 ["evaluate", run_dir, "--tasks", "rte", "--glue-dir", glue, "--out", tmp_path / "ev"]):
        err = cli_error(capsys, *argv)
        assert "no intact checkpoint in" in err and "step_00000003 (trainer.pt does not match its checksum)" in err
        assert not argv[-1].exists()


def test_finetune_over_an_earlier_model_needs_overwrite(sst2_model, backbone, data, tmp_path, capsys):
    out = tmp_path / "m"
    shutil.copytree(sst2_model, out)
    before = (out / "model.safetensors").read_bytes()
    argv = ["finetune", backbone, "--task", "rte", "--data", data["glue"], "--out", out, *FAST, "--seed", "1"]
    err = cli_error(capsys, *argv)
    assert f"{out} already holds a fine-tuned model; pass --overwrite to replace it" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*map(str, argv), "--overwrite"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    assert info["task"] == "rte" and info["seed"] == 1 and (out / "hf" / "config.json").is_file()


def test_evaluate_claims_a_folder_of_other_files_only_with_overwrite(backbone, data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    argv = [*map(str, ["evaluate", backbone, "--tasks", "rte", "--seeds", "1", "--glue-dir", data["glue"],
                       "--out", out]), *FAST]
    err = cli_error(capsys, *argv)
    assert f"--out {out} holds files evaluate did not write (notes.txt)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep" and (out / "results.json").is_file()
    assert main(argv) == 0  # claimed: it resumes like any evaluation of its own
    assert "another checkpoint (or step) or config" in cli_error(capsys, *argv, "optim.lr=2e-3")
    assert main([*argv, "optim.lr=2e-3", "--overwrite"]) == 0  # runs of the old settings replaced
    assert json.loads((out / "results.json").read_text())["config"]["optim"]["lr"] == 2e-3
    assert (out / "notes.txt").read_text() == "keep"


def test_predict_refuses_rows_with_extra_fields(sst2_model, tmp_path, capsys):
    bad = tmp_path / "test.tsv"
    bad.write_text("index\tsentence\n0\tit was widely praised .\n1\tcritics\tdisagreed about it .\n")
    err = cli_error(capsys, "predict", sst2_model, "--input", bad, "--out", tmp_path / "p.tsv")
    assert "test.tsv:3 has 3 tab-separated fields, the file has 2" in err
    assert not (tmp_path / "p.tsv").exists()


def test_predict_never_overwrites_its_input_or_the_model_and_others_only_when_asked(sst2_model, data, tmp_path,
                                                                                   capsys):
    test = tmp_path / "test.tsv"
    test.write_bytes((data["glue"] / "SST-2" / "test.tsv").read_bytes())
    weights = (sst2_model / "model.safetensors").read_bytes()
    assert "is the input file" in cli_error(capsys, "predict", sst2_model, "--input", test, "--out", test,
                                            "--overwrite")
    for inside in ("finetune.json", "model.safetensors", "new.tsv"):
        assert "inside the fine-tuned model" in cli_error(capsys, "predict", sst2_model, "--input", test,
                                                          "--out", sst2_model / inside, "--overwrite")
    assert (sst2_model / "model.safetensors").read_bytes() == weights and not (sst2_model / "new.tsv").exists()
    assert "is a directory" in cli_error(capsys, "predict", sst2_model, "--input", test, "--out", tmp_path)
    out = tmp_path / "p.tsv"
    out.write_text("keep")
    assert "exists; pass --overwrite" in cli_error(capsys, "predict", sst2_model, "--input", test, "--out", out)
    assert out.read_text() == "keep"
    assert main(["predict", str(sst2_model), "--input", str(test), "--out", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("index\tprediction")


def test_predict_prints_and_reads_its_config(sst2_model, data, tmp_path, capsys):
    argv = [*map(str, ["predict", sst2_model, "--input", data["glue"] / "SST-2" / "test.tsv", "--out",
                       tmp_path / "p.tsv"])]
    assert main([*argv, "train.eval_batch_size=3", "--print-config"]) == 0
    printed = capsys.readouterr().out
    cfg, saved = json.loads(printed), json.loads((sst2_model / "finetune.json").read_text())["config"]
    assert cfg["train"]["eval_batch_size"] == 3 and cfg["optim"] == saved["optim"]  # the model's own, + ours
    (tmp_path / "c.json").write_text(printed)
    assert main([*argv, "--config", str(tmp_path / "c.json"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert main([*argv, "--config", str(tmp_path / "c.json")]) == 0
    assert "wrote 6 predictions" in capsys.readouterr().out


def test_user_errors_are_one_line(backbone, data, tmp_path, capsys):
    hf = tmp_path / "hf"
    shutil.copytree(backbone, hf)
    for f in ("tokenizer.json", "vocab.txt"):
        (hf / f).unlink()
    assert "has no tokenizer" in cli_error(capsys, "finetune", hf, "--task", "sst2", "--data", data["glue"])
    bad = tmp_path / "SST-2"
    bad.mkdir()
    (bad / "dev.tsv").write_text((data["glue"] / "SST-2" / "dev.tsv").read_text())
    (bad / "train.tsv").write_text("text\tlabel\nhello\t1\n")
    assert "no column 'sentence'" in cli_error(capsys, "finetune", backbone, "--task", "sst2", "--data", bad)
    (bad / "train.tsv").write_text("sentence\tlabel\nhello\tpositive\n")
    assert "unknown label 'positive'" in cli_error(capsys, "finetune", backbone, "--task", "sst2", "--data", bad)
    (bad / "train.tsv").write_text("")
    assert "is empty" in cli_error(capsys, "finetune", backbone, "--task", "sst2", "--data", bad)
    u = data["user"]
    assert "--text-column" in cli_error(capsys, "finetune", backbone, "--task", "classification",
                                        "--train", u / "train.csv", "--dev", u / "dev.csv")
    assert "did you mean 'stsb'" in cli_error(capsys, "finetune", backbone, "--task", "stsc")
    assert "needs --glue-dir" in cli_error(capsys, "evaluate", backbone, "--tasks", "glue", "--out", tmp_path / "e")
    # a wrong --glue-dir fails before anything is written, so the same --out works once it is fixed
    cli_error(capsys, "evaluate", backbone, "--tasks", "sst2", "--glue-dir", tmp_path / "nowhere",
              "--out", tmp_path / "e2")
    assert not (tmp_path / "e2").exists()
    assert "did you mean 'optim.lr'" in cli_error(capsys, "finetune", backbone, "--task", "sst2", "optim.lrr=1")
    assert "does not exist" in cli_error(capsys, "finetune", tmp_path / "nothing", "--task", "sst2")
    assert "--seeds" in cli_error(capsys, "evaluate", backbone, "--seeds", "five", "--out", tmp_path / "e")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert "not a fine-tuned model" in cli_error(capsys, "finetune", backbone, "--task", "sst2", "--data",
                                                 data["glue"], "--out", tmp_path / "mine", *FAST)


def test_probe_fine_tunes_a_copy_and_leaves_the_rng_alone(backbone, data):
    from electra.finetuning.probe import run_probe

    ck = HFCheckpoint(backbone)
    encoder = Encoder(ck.config)
    encoder.load_state_dict(ck.encoder_state)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    probe = ProbeConfig(task="sst2", data=str(data["glue"] / "SST-2"), train_examples=32, eval_examples=16,
                        batch_size=8, max_seq_len=48)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    result = run_probe(encoder, Tokenizer.load(backbone), probe, "cpu")
    assert torch.equal(torch.get_rng_state(), rng)
    assert result["task"] == "sst2" and 0 <= result["acc"] <= 1 and result["seconds"] > 0
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    cfg = apply_overrides(preset("tiny"), ["eval.task=sst2", f"eval.data={data['glue']}", "eval.every=100"])
    assert cfg.eval.task == "sst2" and cfg.eval.every == 100
    with pytest.raises(ConfigError, match="needs eval.data"):
        apply_overrides(preset("tiny"), ["eval.task=sst2"])
    from electra.finetuning.probe import check_probe_config

    with pytest.raises(ConfigError, match="eval.task='squad'"):  # checked before any data is made
        check_probe_config(apply_overrides(preset("tiny"), ["eval.task=squad", "eval.data=x"]).eval)


def test_pretrain_probe_is_logged_and_leaves_training_unchanged(tiny_data, data, tmp_path):
    from electra.api import pretrain as run
    from electra.train import checkpoint as ckpt

    probe = ["eval.task=sst2", f"eval.data={data['glue'] / 'SST-2'}", "eval.every=2", "eval.train_examples=32",
             "eval.eval_examples=16", "eval.max_seq_len=48"]
    off = run(apply_overrides(preset("tiny"), TINY_RUN), out=tmp_path / "off", data=tiny_data)
    on = run(apply_overrides(preset("tiny"), TINY_RUN + probe), out=tmp_path / "on", data=tiny_data)
    records = [json.loads(line) for line in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "probe"] == [2, 4, 6]
    assert all(0 <= r["acc"] <= 1 for r in records if r["kind"] == "probe")
    a, b = ckpt.load_weights(off.train.checkpoint), ckpt.load_weights(on.train.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the probe's RNG is forked


def test_random_init_control_keeps_shapes_and_tokenizer_but_not_weights(backbone):
    from electra.finetuning.run import load_backbone

    trained = load_backbone(backbone)
    fresh = load_backbone(backbone, random_init=True)
    again = load_backbone(backbone, random_init=True)
    assert fresh.tokenizer.fingerprint == trained.tokenizer.fingerprint
    assert fresh.encoder_state.keys() == trained.encoder_state.keys()
    assert all(fresh.encoder_state[k].shape == v.shape for k, v in trained.encoder_state.items())
    assert not torch.equal(fresh.encoder_state["layers.0.ffn_in.weight"], trained.encoder_state["layers.0.ffn_in.weight"])
    assert all(torch.equal(fresh.encoder_state[k], again.encoder_state[k]) for k in fresh.encoder_state)
    assert "randomly re-initialised" in fresh.source


def test_reinit_layers_refreshes_only_the_top_layers(backbone):
    """train.reinit_layers=1 on a 2-layer encoder: layer 1 gets fresh weights (different for each
    fine-tuning seed), the embeddings and layer 0 keep the pre-trained ones; too many layers, or
    layers shared across depths, are refused in one line."""
    import dataclasses

    from electra.finetuning.config import FinetuneConfig, FinetuneTrainConfig
    from electra.finetuning.run import build_model, load_backbone
    from electra.finetuning.tasks import get_task

    bb, spec = load_backbone(backbone), get_task("sst2")

    def built(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        cfg = FinetuneConfig(train=FinetuneTrainConfig(reinit_layers=n))
        return build_model(bb, spec, ("0", "1"), cfg).encoder.state_dict()

    same, fresh, other_seed = built(0), built(1), built(1, seed=1)
    for k, v in bb.encoder_state.items():
        assert torch.equal(same[k], v)
        if k.startswith("layers.1.") and k.endswith("weight") and "norm" not in k:
            assert not torch.equal(fresh[k], v), k
            assert not torch.equal(fresh[k], other_seed[k]), k
        elif not k.startswith("layers.1."):
            assert torch.equal(fresh[k], v), k
    with pytest.raises(ConfigError, match="reinit_layers=3 but the encoder has 2 layers"):
        built(3)
    shared = dataclasses.replace(bb, model_cfg=dataclasses.replace(bb.model_cfg, family="albert",
                                                                   share_layers="all"))
    with pytest.raises(ConfigError, match="share weights with lower ones"):
        torch.manual_seed(0)
        build_model(shared, spec, ("0", "1"), FinetuneConfig(train=FinetuneTrainConfig(reinit_layers=1)))
    with pytest.raises(ConfigError, match="must be >= 0"):
        FinetuneTrainConfig(reinit_layers=-1)


def test_a_seed_scores_the_same_whatever_ran_before_it_in_the_process(backbone, data, monkeypatch):
    # evaluate runs its seeds in one process and resumes in another: a seed's run must not depend
    # on what ran first (the bf16 probe once drew from the global generator on the first run)
    from electra.finetuning.run import finetune, load_backbone
    from electra.finetuning.tasks import get_task, load_data
    from electra.train import precision

    spec = get_task("stsb")
    cfg = apply_overrides(FinetuneConfig(), [*FAST, "train.epochs=2"])
    bb, task_data = load_backbone(backbone), load_data(spec, cfg, data=data["glue"])
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)  # the probe runs on any machine
    precision.cpu_bf16_speedup.cache_clear()  # as in a fresh process: the probe runs again
    try:
        runs = [finetune(bb, spec, task_data, dataclasses.replace(cfg, seed=s), quiet=True) for s in (1, 0, 1)]
    finally:
        precision.cpu_bf16_speedup.cache_clear()  # later tests measure this machine again
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[2].history]
    assert runs[0].metrics == runs[2].metrics and runs[0].metrics != runs[1].metrics


def test_a_damaged_fine_tuned_model_is_named_in_one_line(sst2_model, data, tmp_path, capsys):
    torn = tmp_path / "torn"
    shutil.copytree(sst2_model, torn)
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    test = data["glue"] / "SST-2" / "test.tsv"
    for argv in (["predict", torn, "--input", test, "--out", tmp_path / "p.tsv"],
                 ["export", torn, "--out", tmp_path / "hf"],
                 ["finetune", torn, "--task", "sst2", "--data", data["glue"], "--out", tmp_path / "ft", *FAST]):
        assert "model.safetensors is damaged" in cli_error(capsys, *argv)


def test_a_longer_max_seq_len_than_the_model_holds_is_said_to_be_cut(caplog):
    import logging

    from electra.config import ModelConfig
    from electra.finetuning.run import fit_to_model

    model = ModelConfig(max_position_embeddings=64)
    with caplog.at_level(logging.INFO):
        assert fit_to_model(apply_overrides(FinetuneConfig(), ["train.max_seq_len=512"]), model).train.max_seq_len == 64
    assert "train.max_seq_len=512 is more than the model's 64 positions" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert fit_to_model(FinetuneConfig(), model).train.max_seq_len == 64  # the default: no warning
    assert "max_seq_len" not in caplog.text


def test_predict_names_the_column_option_it_takes(backbone, data, tmp_path, capsys):
    out = tmp_path / "cls"
    assert main(["finetune", str(backbone), "--task", "classification", "--out", str(out), *FAST,
                 *map(str, _user_args(data, "classification"))]) == 0
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text\nit was widely praised\n")
    err = cli_error(capsys, "predict", out, "--input", unlabelled, "--out", tmp_path / "p.tsv")
    assert "no column 'review'" in err and "pass data.text_column=NAME" in err
    assert main(["predict", str(out), "--input", str(unlabelled), "--out", str(tmp_path / "p.tsv"),
                 "data.text_column=text"]) == 0


def test_a_dev_label_unseen_in_training_names_its_example(backbone, tmp_path, capsys):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("sentence,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(6)))
    dev.write_text("sentence,label\ngood,pos\nso so,neutral\n")
    err = cli_error(capsys, "finetune", backbone, "--task", "classification", "--train", train, "--dev", dev,
                    "--out", tmp_path / "ft", *FAST)
    assert "label 'neutral' (example 1 of the file read for evaluation or prediction) does not occur" in err
