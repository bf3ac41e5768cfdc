import json
import os
from pathlib import Path

import pytest
import torch

from electra.cli import main
from electra.train.pretrained import load_pretrained
from tests.conftest import TINY_RUN

transformers = pytest.importorskip("transformers")


def cli_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra: error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def cli_run(tiny_corpus, tmp_path_factory):
    """The whole pipeline from raw text through the CLI: tokenizer, shards, training, export."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["pretrain", "--preset", "tiny", "--corpus", str(tiny_corpus), "--out", str(out), *TINY_RUN]) == 0
    return out


def test_pretrain_from_raw_text_prints_where_everything_is(cli_run, capsys):
    for sub in ("tokenizer/tokenizer.json", "tokenizer/vocab.txt", "data/manifest.json", "config.json",
                "metrics.jsonl", "export/discriminator/config.json", "export/generator/model.safetensors"):
        assert (cli_run / sub).is_file(), sub
    positions = json.loads((cli_run / "export/discriminator/config.json").read_text())["max_position_embeddings"]
    settings = json.loads((cli_run / "export/discriminator/tokenizer_config.json").read_text())
    assert settings["model_max_length"] == positions == 64  # stock truncation=True fits the model


def test_exported_models_match_our_checkpoint(cli_run, tmp_path):
    trained = load_pretrained(cli_run)
    model, tok = trained.model, trained.tokenizer
    model.eval()
    enc = tok.encode("the river crossed a new bridge", "it was widely praised.")
    ids = torch.tensor([enc["input_ids"]])
    types = torch.tensor([enc["token_type_ids"]])
    attn = torch.ones_like(ids, dtype=torch.bool)
    assert main(["export", str(cli_run), "--out", str(tmp_path / "g"), "--part", "generator"]) == 0
    before = (tmp_path / "g" / "config.json").read_text()
    assert main(["export", str(cli_run), "--out", str(tmp_path / "g")]) == 2  # no silent overwrite
    assert (tmp_path / "g" / "config.json").read_text() == before
    assert main(["export", str(cli_run), "--out", str(tmp_path / "d"), "--force"]) == 0
    for part, cls, ours in (
        ("discriminator", transformers.ElectraForPreTraining, model.discriminator_logits(ids, types, attn)),
        ("generator", transformers.ElectraForMaskedLM, model.generator_logits(ids, types, attn, None)),
    ):
        path = cli_run / "export" / part if part == "discriminator" else tmp_path / "g"
        hf, info = cls.from_pretrained(path, output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        hf_tok = transformers.AutoTokenizer.from_pretrained(path)
        assert hf_tok("the river crossed a new bridge", "it was widely praised.")["input_ids"] == enc["input_ids"]
        with torch.no_grad():
            theirs = hf.eval()(input_ids=ids, token_type_ids=types).logits
        assert (theirs - ours.detach()).abs().max().item() <= 1e-5


def test_warm_start_from_a_hf_directory(cli_run, tiny_corpus, tmp_path):
    from electra.api import apply_init_config
    from electra.config import apply_overrides, preset
    from electra.hf import HFCheckpoint
    from electra.objective import ElectraModel, TokenIds
    from electra.train.state import InitFrom, load_init_weights

    hf_dir = cli_run / "export" / "discriminator"
    # continued pre-training on domain text: shards made with the HF directory's tokenizer
    assert main(["preprocess", "--corpus", str(tiny_corpus), "--tokenizer", str(hf_dir), "--seq-len", "32",
                 "--out", str(tmp_path / "shards"), "--valid-fraction", "0.1"]) == 0
    out = tmp_path / "warm"
    assert main(["pretrain", "--preset", "tiny", "--data", str(tmp_path / "shards"), "--init-from", str(hf_dir),
                 "--out", str(out), *TINY_RUN, "train.stop_at=1", "model.hidden_size=48"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 32  # the architecture comes from the HF config

    init = InitFrom(hf_dir)
    model = ElectraModel.from_config(apply_init_config(apply_overrides(preset("tiny"), TINY_RUN), init),
                                     TokenIds.standard())
    load_init_weights(model, init)
    ref = HFCheckpoint(hf_dir)
    for k, v in model.discriminator.state_dict().items():
        assert torch.equal(v, ref.encoder_state[k]), k
    for k, v in model.discriminator_head.state_dict().items():
        assert torch.equal(v, ref.discriminator_head[k]), k


def test_init_from_with_shards_of_another_vocabulary(cli_run, tiny_data, tmp_path, capsys):
    from electra.data.tokenizer import Tokenizer
    from electra.hf import pretrained_to_hf, save_hf
    from tests.test_model import tiny_model

    # an HF directory whose tokenizer has another vocabulary than the shards
    corpus = tmp_path / "c.txt"
    corpus.write_text("zebra yak xylophone walrus quokka\n\n" * 40)
    assert main(["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "300", "--out",
                 str(tmp_path / "tok")]) == 0
    other = save_hf(tmp_path / "other", *pretrained_to_hf(tiny_model(), "discriminator"),
                    Tokenizer.load(tmp_path / "tok"))
    err = cli_error(capsys, "pretrain", "--preset", "tiny", "--data", str(tiny_data), "--init-from", str(other),
                    "--out", str(tmp_path / "x"), *TINY_RUN)
    assert "different tokenizer" in err and "electra preprocess" in err


def test_user_errors_are_one_line(tmp_path, capsys):
    assert "does not exist" in cli_error(capsys, "tokenizer", "train", "--corpus", str(tmp_path / "nope.txt"),
                                         "--vocab-size", "200", "--out", str(tmp_path / "t"))
    assert "did you mean 'train.steps'" in cli_error(capsys, "pretrain", "train.stepz=3")
    assert "no run" in cli_error(capsys, "pretrain", "--resume", "--out", str(tmp_path))
    assert "drop --preset" in cli_error(capsys, "pretrain", "--resume", "--out", str(tmp_path), "--preset", "small")
    assert "not both" in cli_error(capsys, "pretrain", "--data", "a", "--corpus", "b")
    assert "drop --corpus/--init-from" in cli_error(capsys, "pretrain", "--resume", "--out", str(tmp_path),
                                                    "--corpus", "c.txt", "optim.lr=1e-5")
    assert "generator_size=1.0" in cli_error(capsys, "pretrain", "--preset", "tiny", "objective.sharing=all")
    assert "does not exist" in cli_error(capsys, "export", str(tmp_path / "none"), "--out", str(tmp_path / "e"))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    assert "not UTF-8" in cli_error(capsys, "pretrain", "--preset", "tiny", "--corpus", str(binary), "--out", str(tmp_path / "r"),
                                    *TINY_RUN)


def test_pretrain_on_a_task_tsv_reads_the_named_column(tiny_corpus, tmp_path, capsys):
    """Task-adaptive pre-training: the rows of a labelled TSV, its label column never read."""
    from electra.data.shards import read_manifest
    lines = [ln for ln in tiny_corpus.read_text().splitlines() if ln.strip()]
    tsv = tmp_path / "train.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"{ln}\t{i % 2}\n" for i, ln in enumerate(lines)))
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "tiny", "--corpus", str(tsv), "--text-field", "sentence", "--out", str(out),
                 *TINY_RUN, "preprocess.packing=full_sentences"]) == 0
    manifest = read_manifest(out / "data")
    assert manifest.preprocess["text_field"] == "sentence" and manifest.splits["train"].documents == len(lines) - \
        manifest.splits["valid"].documents
    assert load_pretrained(out).config.preprocess.text_field == "sentence"  # the tokenizer read it too
    capsys.readouterr()
    assert "--corpus" in cli_error(capsys, "pretrain", "--text-field", "sentence", "--data", str(out / "data"))
    assert "no column 'text'" in cli_error(capsys, "pretrain", "--preset", "tiny", "--corpus", str(tsv),
                                           "--out", str(tmp_path / "r2"), *TINY_RUN)


def test_the_next_command_printed_after_tokenizer_training_runs_as_printed(tiny_corpus, tmp_path, capsys):
    import shlex
    lines = [ln for ln in tiny_corpus.read_text().splitlines() if ln.strip()]
    tsv = tmp_path / "my task.tsv"  # a space in the path and in the column name
    tsv.write_text("#1 String\tQuality\n" + "".join(f"{ln}\t1\n" for ln in lines))
    assert main(["tokenizer", "train", "--corpus", str(tsv), "--text-field", "#1 String", "--vocab-size", "300",
                 "--out", str(tmp_path / "tok")]) == 0
    nxt = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("next: electra ")
    argv = [a if a != "DATA_DIR" else str(tmp_path / "data") for a in shlex.split(nxt)]
    assert main([*argv, "--seq-len", "32"]) == 0


def test_print_config_shows_the_resolved_preset(capsys):
    assert main(["pretrain", "--preset", "base", "--print-config", "train.steps=7"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["hidden_size"] == 768 and cfg["train"]["steps"] == 7


def test_hf_config_that_does_not_describe_its_weights(cli_run, tiny_data, tmp_path, capsys):
    import shutil

    hf = tmp_path / "edited"
    shutil.copytree(cli_run / "export" / "discriminator", hf)
    config = json.loads((hf / "config.json").read_text())
    config["vocab_size"] += 7  # a hand edit that no longer matches model.safetensors
    (hf / "config.json").write_text(json.dumps(config))
    err = cli_error(capsys, "pretrain", "--preset", "tiny", "--data", str(tiny_data), "--init-from", str(hf),
                    "--out", str(tmp_path / "x"), *TINY_RUN)
    assert "config.json does not describe" in err and "word_embeddings" in err
    glue = tmp_path / "glue"
    from tests.finetune_fixtures import write_glue

    write_glue(glue)
    err = cli_error(capsys, "finetune", str(hf), "--task", "sst2", "--data", str(glue / "SST-2"),
                    "--out", str(tmp_path / "ft"))
    assert "config.json does not describe" in err


def test_roberta_style_run_with_bpe_and_doc_sentences_exports_a_loadable_tokenizer(tiny_corpus, tmp_path):
    from electra.data.shards import read_manifest
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "tiny", "--corpus", str(tiny_corpus), "--out", str(out), *TINY_RUN,
                 "tokenizer.kind=bpe", "preprocess.packing=doc_sentences"]) == 0
    trained = load_pretrained(out)
    tok = trained.tokenizer
    assert tok.kind == "bpe" and read_manifest(out / "data").packing == "doc_sentences"
    hf_dir = out / "export" / "discriminator"
    assert not (hf_dir / "vocab.txt").exists()
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    for text, pair in (("The river crossed a new bridge", "It was widely praised."), ("中文 🙂", None)):
        ours = tok.encode(text, pair)
        theirs = hf_tok(text, pair)
        assert theirs["input_ids"] == ours["input_ids"] and theirs["token_type_ids"] == ours["token_type_ids"]
    hf = transformers.ElectraForPreTraining.from_pretrained(hf_dir)
    ids = torch.tensor([hf_tok("the river crossed a new bridge")["input_ids"]])
    with torch.no_grad():
        ours = trained.model.eval().discriminator_logits(ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool))
        assert (hf.eval()(input_ids=ids).logits - ours).abs().max().item() <= 1e-5


def test_print_config_with_data_shows_what_the_run_uses(tiny_data, tmp_path, capsys):
    """The shards decide the vocabulary and the rows' length: --print-config shows those, not the
    preset's 8192 and 128, and a run started with the same arguments saves exactly that config."""
    from electra.data.tokenizer import Tokenizer

    argv = ["pretrain", "--preset", "tiny", "--data", str(tiny_data), *[o for o in TINY_RUN if not o.startswith(("preprocess.seq_len",
                                                                                           "tokenizer.vocab"))]]
    assert main([*argv, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["vocab_size"] == Tokenizer.load(tiny_data / "tokenizer").vocab_size != 8192
    assert printed["preprocess"]["seq_len"] == 32
    assert main([*argv, "--out", str(tmp_path / "r"), "train.stop_at=1", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main([*argv, "--out", str(tmp_path / "r"), "train.stop_at=1"]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == printed


@pytest.mark.parametrize("argv", [
    ["pretrain", "--data", "{data}"],
    ["tokenizer", "train", "--corpus", "{corpus}", "--vocab-size", "200"],
    ["preprocess", "--corpus", "{corpus}", "--tokenizer", "{data}/tokenizer"],
    ["export", "{run}"],
])
def test_out_below_a_file_is_one_clear_line(argv, cli_run, tiny_corpus, tiny_data, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    paths = {"data": tiny_data, "corpus": tiny_corpus, "run": cli_run}
    err = cli_error(capsys, *[a.format(**paths) for a in argv], "--out", str(tmp_path / "afile" / "sub"))
    assert f"--out {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a directory" in err
    assert "Errno" not in err and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes regardless of permissions")
def test_unwritable_out_names_the_path_and_a_fix(tiny_corpus, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        err = cli_error(capsys, "tokenizer", "train", "--corpus", str(tiny_corpus), "--out", str(locked / "tok"))
    finally:
        locked.chmod(0o700)
    assert f"{locked} is not writable (permission denied)" in err and "chmod u+w" in err


def test_unwritable_out_message_when_the_os_refuses(tiny_corpus, tmp_path, capsys, monkeypatch):
    """The same check as above where the test runs as root (which writes anyway): the OS's answer
    is simulated, and a late PermissionError is also one line that names the path."""
    import errno

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path and real(p, mode))
    err = cli_error(capsys, "tokenizer", "train", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "tok"))
    assert f"--out {tmp_path / 'tok'}: {tmp_path} is not writable (permission denied)" in err
    assert not (tmp_path / "tok").exists()
    from electra.cli_checks import os_error_line

    line = os_error_line(PermissionError(errno.EACCES, "Permission denied", "/data/run/metrics.jsonl"))
    assert line == ("cannot access /data/run/metrics.jsonl: Permission denied; fix its permissions or "
                    "choose another path")


def _interrupt_training(monkeypatch, after: bool) -> None:
    """Ctrl-C during training: before the loop wrote anything, or once it has saved checkpoints."""
    from electra import api

    real = api.train_loop

    def interrupted(*args, **kwargs):
        if after:
            real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "train_loop", interrupted)


def _printed_command(capsys) -> list[str]:
    import shlex

    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("electra: interrupted") and err.endswith(")")
    return shlex.split(err.split(" with: electra ", 1)[1][:-1])


def test_ctrl_c_before_the_first_checkpoint_prints_the_command_that_starts_it_again(
        tiny_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    argv = ["pretrain", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), *TINY_RUN]
    _interrupt_training(monkeypatch, after=False)
    assert main(argv) == 130
    cmd = _printed_command(capsys)
    assert cmd == argv and "--resume" not in cmd  # --resume would say "holds no checkpoint"
    assert (out / "config.json").is_file() and not (out / "checkpoints").exists()
    monkeypatch.undo()
    assert main(cmd) == 0  # the directory is reused
    assert ckpt_steps(out) == [3, 6]


def test_ctrl_c_without_out_names_the_default_run_directory(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _interrupt_training(monkeypatch, after=False)
    assert main(["pretrain", "--preset", "tiny", "--data", str(tiny_data), *TINY_RUN]) == 130
    cmd = _printed_command(capsys)
    out = Path(cmd[cmd.index("--out") + 1])
    assert out.parent == Path("runs") and out.name.startswith("tiny-") and (out / "config.json").is_file()


def test_ctrl_c_after_a_checkpoint_prints_the_resume_command(tiny_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    _interrupt_training(monkeypatch, after=True)
    assert main(["pretrain", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), *TINY_RUN, "train.stop_at=3"]) == 130
    cmd = _printed_command(capsys)
    assert cmd == ["pretrain", "--resume", "--out", str(out)]
    # a resumed run given more steps is continued with them (config.json does not hold them)
    assert main([*cmd, "train.steps=8", "train.stop_at=5"]) == 130
    cmd = _printed_command(capsys)
    assert cmd == ["pretrain", "--resume", "--out", str(out), "train.steps=8"]  # stop_at: one invocation's
    monkeypatch.undo()
    assert main(cmd) == 0 and ckpt_steps(out) == [6, 8]


def ckpt_steps(run_dir: Path) -> list[int]:
    from electra.train.checkpoint import list_checkpoints

    return [s for s, _ in list_checkpoints(run_dir / "checkpoints")]


def test_a_run_without_validation_rows_says_so(tiny_corpus, tiny_tokenizer, tmp_path, caplog):
    data = tmp_path / "shards"
    assert main(["preprocess", "--corpus", str(tiny_corpus), "--tokenizer", str(tiny_tokenizer), "--seq-len",
                 "32", "--valid-fraction", "0", "--workers", "1", "--out", str(data)]) == 0
    with caplog.at_level("WARNING"):
        assert main(["pretrain", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "r"), *TINY_RUN,
                     "train.steps=3"]) == 0
    assert f"{data} has no validation rows: this run cannot measure what it learns" in caplog.text


def test_python_dash_m_electra_is_the_electra_command(tmp_path):
    import subprocess
    import sys
    # a user whose venv is not activated (no `electra` on PATH) runs the same command this way
    done = subprocess.run([sys.executable, "-m", "electra", "pretrain", "--preset", "quick", "--print-config"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["preset"] == "quick"


def test_a_section_command_names_a_mistyped_key_in_full(tiny_corpus, tiny_tokenizer, tmp_path, capsys):
    assert main(["preprocess", "--corpus", str(tiny_corpus), "--tokenizer", str(tiny_tokenizer), "--out",
                 str(tmp_path / "d"), "preprocess.seq_lenn=64"]) == 2
    assert "unknown config key 'preprocess.seq_lenn'; did you mean 'preprocess.seq_len'?" in capsys.readouterr().err


def test_a_section_command_refuses_another_sections_key(tiny_corpus, tiny_tokenizer, tmp_path, capsys):
    assert main(["preprocess", "--corpus", str(tiny_corpus), "--tokenizer", str(tiny_tokenizer), "--out",
                 str(tmp_path / "d"), "model.hidden_size=64"]) == 2
    assert "model.hidden_size is not a preprocess setting; this command takes preprocess.* keys" in capsys.readouterr().err
