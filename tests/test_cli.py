import json

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
    assert main(["pretrain", "--corpus", str(tiny_corpus), "--out", str(out), *TINY_RUN]) == 0
    return out


def test_pretrain_from_raw_text_prints_where_everything_is(cli_run, capsys):
    for sub in ("tokenizer/tokenizer.json", "tokenizer/vocab.txt", "data/manifest.json", "config.json",
                "metrics.jsonl", "export/discriminator/config.json", "export/generator/model.safetensors"):
        assert (cli_run / sub).is_file(), sub


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
    assert main(["pretrain", "--data", str(tmp_path / "shards"), "--init-from", str(hf_dir),
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
    err = cli_error(capsys, "pretrain", "--data", str(tiny_data), "--init-from", str(other),
                    "--out", str(tmp_path / "x"), *TINY_RUN)
    assert "different tokenizer" in err and "electra preprocess" in err


def test_user_errors_are_one_line(tmp_path, capsys):
    assert "does not exist" in cli_error(capsys, "tokenizer", "train", "--corpus", str(tmp_path / "nope.txt"),
                                         "--vocab-size", "200", "--out", str(tmp_path / "t"))
    assert "did you mean 'train.steps'" in cli_error(capsys, "pretrain", "train.stepz=3")
    assert "no run" in cli_error(capsys, "pretrain", "--resume", "--out", str(tmp_path))
    assert "drop --preset" in cli_error(capsys, "pretrain", "--resume", "--out", str(tmp_path), "--preset", "small")
    assert "not both" in cli_error(capsys, "pretrain", "--data", "a", "--corpus", "b")
    assert "generator_size=1.0" in cli_error(capsys, "pretrain", "objective.sharing=all")
    assert "does not exist" in cli_error(capsys, "export", str(tmp_path / "none"), "--out", str(tmp_path / "e"))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    assert "not UTF-8" in cli_error(capsys, "pretrain", "--corpus", str(binary), "--out", str(tmp_path / "r"),
                                    *TINY_RUN)


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
    err = cli_error(capsys, "pretrain", "--data", str(tiny_data), "--init-from", str(hf),
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
    assert main(["pretrain", "--corpus", str(tiny_corpus), "--out", str(out), *TINY_RUN,
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
