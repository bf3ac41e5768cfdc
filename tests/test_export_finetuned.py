"""Fine-tuned models leave our layout: `electra finetune` writes OUT/hf and `electra export
FINETUNED_DIR` writes a directory that stock `transformers.AutoModelFor...` and `AutoTokenizer`
load, with our logits (fp32, eval mode, atol 1e-5) and our token ids."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from electra.cli import main
from electra.config import ModelConfig
from electra.errors import CheckpointError
from electra.finetuning.glue import label_scale
from electra.finetuning.run import load_finetuned
from electra.hf import CLASSIFIER_HEAD_MAP, hf_config, linear_as_electra_head
from electra.model.heads import SpanLogits
from tests.test_finetune_cli import FAST, backbone, cli_error, data  # noqa: F401  (fixtures)

transformers = pytest.importorskip("transformers")

PAIRS = [("It was widely praised. the river crossed a new bridge", "the bridge was old"),
         ("Critics disagreed about its value.", "Maria visited the harbour in Paris ."),
         ("Who built the river?", "The river Maria built crossed a new bridge in Lisbon .")]
TASK_ARGS = {
    "sst2": lambda d: ["--data", d["glue"]],
    "mnli": lambda d: ["--data", d["glue"], "head.kind=electra"],
    "stsb": lambda d: ["--data", d["glue"]],
    "regression": lambda d: ["--train", d["user"] / "train.jsonl", "--dev", d["user"] / "dev.jsonl",
                             "--text-column", "a", "--pair-column", "b", "--label-column", "y",
                             "head.kind=electra"],
    "conll2003": lambda d: ["--data", d["conll"]],
    "squad": lambda d: ["--data", d["squad"], "--split-by-article", "4", "squad.max_seq_len=48",
                        "squad.max_query_len=12"],
    "squad2": lambda d: ["--train", d["squad2"], "--dev", d["squad2"], "squad.max_seq_len=48",
                         "squad.max_query_len=12"],
}


@pytest.fixture(scope="module")
def finetuned(backbone, data, tmp_path_factory):  # noqa: F811
    """task -> a directory written by `electra finetune` (trained once per module)."""
    cache = {}

    def get(task):
        if task not in cache:
            out = tmp_path_factory.mktemp("ft") / task
            assert main(["finetune", str(backbone), "--task", task, "--out", str(out), *FAST,
                         *map(str, TASK_ARGS[task](data))]) == 0
            cache[task] = out
        return cache[task]
    return get


def export(model_dir, out, *extra) -> None:
    assert main(["export", str(model_dir), "--out", str(out), *map(str, extra)]) == 0


def inputs(tok):
    """Our encoding of PAIRS as one padded batch (different lengths, so padding is exercised)."""
    encs = [tok.encode(a, b) for a, b in PAIRS]
    T = max(len(e["input_ids"]) for e in encs)
    ids = torch.full((len(encs), T), tok.pad_id)
    types = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        types[i, : len(e["input_ids"])] = torch.tensor(e["token_type_ids"])
    return encs, ids, types, ids != tok.pad_id


def ours_and_theirs(model_dir, hf_dir, auto_class):
    """(our FinetuneModel, our output, HF output, attention mask) on PAIRS; also checks that the
    HF weights load with no missing or unexpected keys and the tokenizer encodes like ours."""
    model, spec, _, tok, info = load_finetuned(model_dir)
    encs, ids, types, attn = inputs(tok)
    hf, loading = getattr(transformers, auto_class).from_pretrained(hf_dir, output_loading_info=True)
    assert not any(loading[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), loading
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    for (a, b), e in zip(PAIRS, encs, strict=True):
        theirs = hf_tok(a, b)
        assert theirs["input_ids"] == e["input_ids"] and theirs["token_type_ids"] == e["token_type_ids"]
    with torch.no_grad():
        ours = model.eval()(ids, types, attn)
        theirs = hf.eval()(input_ids=ids, attention_mask=attn.long(), token_type_ids=types)
    return model, ours, theirs, attn


@pytest.mark.parametrize("task, head_kind", [("sst2", "linear"), ("mnli", "electra")])
def test_finetuned_classifier_loads_in_transformers_with_our_logits(finetuned, tmp_path, task, head_kind):
    model_dir = finetuned(task)
    export(model_dir, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    info = json.loads((model_dir / "finetune.json").read_text())
    assert info["config"]["head"]["kind"] == head_kind
    assert config["architectures"] == ["ElectraForSequenceClassification"]
    assert config["id2label"] == {str(i): name for i, name in enumerate(info["labels"])}
    assert config["problem_type"] == "single_label_classification" and config["finetuning_task"] == task
    _, ours, theirs, _ = ours_and_theirs(model_dir, tmp_path / "hf", "AutoModelForSequenceClassification")
    assert ours.shape == theirs.logits.shape == (len(PAIRS), len(info["labels"]))
    assert (theirs.logits - ours).abs().max().item() <= 1e-5
    # `electra finetune` wrote the same HF model into OUT/hf
    assert json.loads((model_dir / "hf" / "config.json").read_text()) == config
    written, exported = (load_file(str(d / "model.safetensors")) for d in (model_dir / "hf", tmp_path / "hf"))
    assert written.keys() == exported.keys() and all(torch.equal(written[k], exported[k]) for k in written)


@pytest.mark.parametrize("task", ["stsb", "regression"])
def test_finetuned_regression_exports_the_score_on_the_label_scale(finetuned, tmp_path, task):
    model_dir = finetuned(task)
    export(model_dir, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["num_labels"] == 1
    _, ours, theirs, _ = ours_and_theirs(model_dir, tmp_path / "hf", "AutoModelForSequenceClassification")
    _, spec, *_ = load_finetuned(model_dir)
    low, width = label_scale(spec)  # STS-B: the model regresses score / 5
    assert (low, width) == ((0.0, 5.0) if task == "stsb" else (0.0, 1.0))
    assert theirs.logits.shape == (len(PAIRS), 1)
    assert (theirs.logits - (ours * width + low)).abs().max().item() <= 1e-5


def test_finetuned_tagger_loads_as_token_classification(finetuned, tmp_path):
    model_dir = finetuned("conll2003")
    export(model_dir, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["ElectraForTokenClassification"]
    assert config["id2label"]["4"] == "B-PER" and config["label2id"]["I-PER"] == 8
    _, ours, theirs, attn = ours_and_theirs(model_dir, tmp_path / "hf", "AutoModelForTokenClassification")
    assert ours.shape == theirs.logits.shape == (*attn.shape, 9)
    assert (theirs.logits - ours)[attn].abs().max().item() <= 1e-5


@pytest.mark.parametrize("task", ["squad", "squad2"])
def test_finetuned_qa_model_loads_as_question_answering(finetuned, tmp_path, capsys, task):
    model_dir = finetuned(task)
    capsys.readouterr()
    export(model_dir, tmp_path / "hf")
    printed = capsys.readouterr().out
    assert ("answerability classifier" in printed) == (task == "squad2")  # what HF leaves out is said
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [
        "ElectraForQuestionAnswering"]
    model, ours, theirs, attn = ours_and_theirs(model_dir, tmp_path / "hf", "AutoModelForQuestionAnswering")
    assert isinstance(ours, SpanLogits)
    _, _, types, _ = inputs(load_finetuned(model_dir)[3])
    candidates = (types == 1) & attn
    candidates[:, 0] = True  # ours masks everything but the context and [CLS] to -1e4 for decoding
    for mine, hf_logits in ((ours.start, theirs.start_logits), (ours.end, theirs.end_logits)):
        assert (hf_logits - mine)[candidates].abs().max().item() <= 1e-5
        assert (mine[~candidates] == -1e4).all()


def test_linear_head_is_exact_as_an_electra_classification_head():
    """gelu(z) - gelu(-z) = z: with large weights and activations the error stays at fp32
    rounding of the dot product itself (measured against sum |w_i h_i|, in float64)."""
    torch.manual_seed(0)
    weight, bias = 3 * torch.randn(5, 16), torch.randn(5)
    state = linear_as_electra_head(weight, bias)
    cfg = ModelConfig(vocab_size=50, embedding_size=16, hidden_size=16, num_layers=1, num_heads=2,
                      intermediate_size=32, max_position_embeddings=16)
    config = {k: v for k, v in hf_config(cfg, "ElectraForSequenceClassification").items()
              if k not in ("architectures", "torch_dtype")}
    hf = transformers.ElectraForSequenceClassification(transformers.ElectraConfig(**config, num_labels=5))
    hf.classifier.load_state_dict({k.removeprefix("classifier."): state[o] for o, k in CLASSIFIER_HEAD_MAP.items()})
    h = 10 * torch.randn(64, 3, 16)  # [B, T, H]
    with torch.no_grad():
        theirs = hf.classifier.eval()(h).double()
    exact = h[:, 0].double() @ weight.double().T + bias.double()  # [B, C]
    magnitude = h[:, 0].double().abs() @ weight.double().abs().T + bias.double().abs()
    assert ((theirs - exact).abs() / magnitude).max().item() <= 1e-6
    with pytest.raises(CheckpointError, match="head.kind=electra"):
        linear_as_electra_head(torch.zeros(9, 16), torch.zeros(9))


def test_export_of_a_finetuned_dir_over_a_nonempty_out_needs_force(finetuned, tmp_path, capsys):
    model_dir, out = finetuned("sst2"), tmp_path / "hf"
    export(model_dir, out)
    before = (out / "config.json").read_text()
    (out / "config.json").write_text(before.replace('"sst2"', '"edited"'))
    err = cli_error(capsys, "export", model_dir, "--out", out)
    assert "--force" in err and "edited" in (out / "config.json").read_text()  # left as it was
    export(model_dir, out, "--force")
    assert (out / "config.json").read_text() == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert "not an exported model" in cli_error(capsys, "export", model_dir, "--out", tmp_path / "mine", "--force")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # the fine-tuned directory itself is never an --out
    assert "not an exported model" in cli_error(capsys, "export", model_dir, "--out", model_dir, "--force")


def test_export_of_a_dir_that_is_no_model_is_a_one_line_error(finetuned, backbone, tmp_path, capsys):  # noqa: F811
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    out = tmp_path / "out"
    assert "neither a pre-training run" in cli_error(capsys, "export", tmp_path / "notes", "--out", out)
    assert "already a Hugging Face model" in cli_error(capsys, "export", backbone, "--out", out)
    assert "is a file" in cli_error(capsys, "export", tmp_path / "notes" / "a.txt", "--out", out)
    assert "does not exist" in cli_error(capsys, "export", tmp_path / "none", "--out", out)
    model_dir = finetuned("sst2")
    assert "drop --part" in cli_error(capsys, "export", model_dir, "--out", out, "--part", "generator")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    info = json.loads((broken / "finetune.json").read_text())
    del info["labels"]
    (broken / "finetune.json").write_text(json.dumps(info))
    err = cli_error(capsys, "export", broken, "--out", out)
    assert "finetune.json lacks" in err and "'labels'" in err
    (broken / "finetune.json").write_text("{not json")
    assert "is corrupt" in cli_error(capsys, "export", broken, "--out", out)
    assert not out.exists()


def test_mean_pooled_classifier_trains_and_its_export_is_a_one_line_error(backbone, data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "ft"
    assert main(["finetune", str(backbone), "--task", "sst2", "--out", str(out), *FAST,
                 *map(str, TASK_ARGS["sst2"](data)), "head.pooling=mean"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    assert info["config"]["head"]["pooling"] == "mean"
    model, *_ = load_finetuned(out)
    assert model.head.pooling == "mean"
    assert not (out / "hf").exists()  # no HF copy: stock classifiers read [CLS] only
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "hf")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head.pooling=mean" in err[0] and "head.pooling=cls" in err[0]
