"""BERT-MLM and RoBERTa in Hugging Face format: exports load in the stock classes with the logits
ours give, random stock models import with the outputs HF gives, RoBERTa's position offset, and
the RoBERTa recipe (`--preset roberta`) end to end."""

from __future__ import annotations

import json

import pytest
import torch

from electra.cli import main
from electra.config import ModelConfig, ObjectiveConfig, PretrainConfig, TokenizerConfig, preset
from electra.data.corpus import iter_documents
from electra.data.tokenizer import train_tokenizer
from electra.errors import CheckpointError
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf
from electra.hf.bert import auto_format, position_offset
from electra.model.build import build_encoder
from electra.model.heads import GeneratorHead
from electra.objective import TokenIds, build_objective
from electra.train.pretrained import load_pretrained
from tests.conftest import TINY_RUN

transformers = pytest.importorskip("transformers")

V, T = 120, 12
IDS = TokenIds(mask_id=4, special_ids=(0, 1, 2, 3, 4))
# the RoBERTa recipe on `tiny_corpus`: TINY_RUN with E = H (BERT and RoBERTa have no projection)
ROBERTA_RUN = [*TINY_RUN, "model.embedding_size=32", "train.steps=3"]


def _mlm_model(*, pad_id: int = 0, embedding_size: int = 32, type_vocab_size: int = 2):
    """A tiny objective.kind=mlm model with every parameter moved off its init (LayerNorms 1/0 and
    zero biases would hide a mapping that swaps or drops them)."""
    model_cfg = ModelConfig(vocab_size=V, embedding_size=embedding_size, hidden_size=32, num_layers=2,
                            num_heads=2, intermediate_size=64, max_position_embeddings=40,
                            type_vocab_size=type_vocab_size, pad_token_id=pad_id, dropout=0.0,
                            attention_dropout=0.0)
    torch.manual_seed(0)
    model = build_objective(PretrainConfig(model=model_cfg, objective=ObjectiveConfig(kind="mlm")), IDS)
    _perturb(model)
    return model.eval()


@torch.no_grad()
def _perturb(module: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _batch(pad_id: int, types: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three rows of lengths T, T-4 and 5, padded at the end; segment B from position 4."""
    g = torch.Generator().manual_seed(2)
    mask = torch.arange(T)[None] < torch.tensor([T, T - 4, 5])[:, None]  # [3, T]
    ids = torch.randint(5, V, (3, T), generator=g).masked_fill(~mask, pad_id)
    token_types = ((torch.arange(T)[None] >= 4) & mask).long() if types else torch.zeros_like(ids)
    return ids, token_types, mask


def _export(model, tmp_path, fmt: str, part: str = "discriminator"):
    config, tensors = pretrained_to_hf(model, part, fmt)
    return save_hf(tmp_path / f"{fmt}-{part}", config, tensors)


def _load(cls, path, **kwargs):
    hf, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    return hf.eval(), {k: set(v) for k, v in info.items() if k != "error_msgs"}


# ---- export: our masked LM -> stock BERT / RoBERTa ----------------------------------------------


def test_mlm_run_exports_to_bert_for_masked_lm_and_bert_model_with_identical_outputs(tmp_path):
    model = _mlm_model()
    path = _export(model, tmp_path, "bert")
    ids, types, mask = _batch(0)
    hf, info = _load(transformers.BertForMaskedLM, path)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set()}
    assert hf.config.hidden_act == "gelu" and hf.config.architectures == ["BertForMaskedLM"]
    with torch.no_grad():
        ours = model.generator_logits(ids, types, mask, None)  # [3, T, V]
        theirs = hf(input_ids=ids, token_type_ids=types, attention_mask=mask.long()).logits
        # BERT numbers positions 0..T-1 as we do, pads included: every position agrees
        assert (ours - theirs).abs().max().item() <= 1e-5
        assert torch.equal(hf.cls.predictions.decoder.weight, hf.bert.embeddings.word_embeddings.weight)
        base, info = _load(transformers.BertModel, path, add_pooling_layer=False)
        assert not info["missing_keys"] and all(k.startswith("cls.predictions.") for k in info["unexpected_keys"])
        h = base(input_ids=ids, token_type_ids=types, attention_mask=mask.long()).last_hidden_state
        assert (h - model.discriminator(ids, types, mask)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("pad_id", [0, 1])
def test_mlm_run_exports_to_roberta_for_masked_lm_with_identical_outputs(pad_id, tmp_path):
    model = _mlm_model(pad_id=pad_id, type_vocab_size=1)
    path = _export(model, tmp_path, "roberta")
    config = json.loads((path / "config.json").read_text())
    assert config["max_position_embeddings"] == 40 + pad_id + 1 and config["type_vocab_size"] == 1
    ids, types, mask = _batch(pad_id, types=False)
    hf, info = _load(transformers.RobertaForMaskedLM, path)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set()}
    with torch.no_grad():
        ours = model.generator_logits(ids, types, mask, None)
        theirs = hf(input_ids=ids, attention_mask=mask.long()).logits
        # RoBERTa gives pad tokens the pad position; real tokens are where outputs must agree
        assert (ours - theirs)[mask].abs().max().item() <= 1e-5
        base, info = _load(transformers.RobertaModel, path, add_pooling_layer=False)
        assert not info["missing_keys"] and all(k.startswith("lm_head.") for k in info["unexpected_keys"])
        h = base(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        assert (h - model.discriminator(ids, types, mask))[mask].abs().max().item() <= 1e-5


def test_roberta_export_of_a_length_t_sequence_reads_our_positions_0_to_t_minus_1(tmp_path):
    pad_id, n = 1, 10
    model = _mlm_model(pad_id=pad_id, type_vocab_size=1)
    ids = torch.randint(5, V, (1, n), generator=torch.Generator().manual_seed(3))
    offset = position_offset(pad_id)
    assert torch.equal(transformers.models.roberta.modeling_roberta.RobertaEmbeddings
                       .create_position_ids_from_input_ids(ids, pad_id), offset + torch.arange(n)[None])

    def hf_logits(name: str) -> torch.Tensor:
        hf, _ = _load(transformers.RobertaForMaskedLM, save_hf(tmp_path / name, *pretrained_to_hf(
            model, "discriminator", "roberta")))
        table = hf.roberta.embeddings.position_embeddings.weight
        assert torch.equal(table[offset:], model.discriminator.embeddings.position_embeddings.weight)
        with torch.no_grad():
            return hf(input_ids=ids).logits

    base = hf_logits("base")
    table = model.discriminator.embeddings.position_embeddings.weight
    nudge = torch.randn(table.shape[1], generator=torch.Generator().manual_seed(4))  # not constant: LN
    with torch.no_grad():
        table[n] += nudge  # our position n: past the sequence, so never read
    assert torch.equal(hf_logits("beyond"), base)
    with torch.no_grad():
        table[n - 1] += nudge  # our last position: read by the last token
    changed = (hf_logits("last") - base).abs().amax(-1)[0]  # [n]
    assert changed.min().item() > 1e-3  # attention spreads the change to every position


def test_bert_export_refuses_a_factorised_embedding_and_electra_export_still_works(tmp_path):
    model = _mlm_model(embedding_size=16)
    for fmt in ("bert", "roberta"):
        with pytest.raises(CheckpointError, match=r"discriminator \(embeddings 16, model.hidden_size 32\)") as e:
            pretrained_to_hf(model, "discriminator", fmt)
        assert "\n" not in str(e.value) and "--format electra" in str(e.value)
    path = _export(model, tmp_path, "electra", "generator")
    _, info = _load(transformers.ElectraForMaskedLM, path)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    cfg = PretrainConfig(model=model.disc_cfg, objective=ObjectiveConfig(kind="mlm"))
    assert auto_format(cfg, type("Tok", (), {"kind": "bpe"})()) is None


def test_electra_discriminator_exports_as_a_bare_bert_model(tmp_path):
    cfg = PretrainConfig(model=ModelConfig(vocab_size=V, embedding_size=32, hidden_size=32, num_layers=1,
                                           num_heads=2, intermediate_size=64, max_position_embeddings=40))
    model = build_objective(cfg, IDS).eval()
    _perturb(model)
    path = _export(model, tmp_path, "bert")  # the generator's MLM head belongs to another encoder
    hf, info = _load(transformers.BertModel, path, add_pooling_layer=False)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set()}
    ids, types, mask = _batch(0)
    with torch.no_grad():
        h = hf(input_ids=ids, token_type_ids=types, attention_mask=mask.long()).last_hidden_state
        assert (h - model.discriminator(ids, types, mask)).abs().max().item() <= 1e-5


# ---- import: stock BERT / RoBERTa -> our encoder ------------------------------------------------


def _random_hf(fmt: str, head: bool, path, *, vocab_size: int = V, pad_id: int = 1):
    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if fmt == "bert":
        config = transformers.BertConfig(**common, max_position_embeddings=40, pad_token_id=0)
    else:  # RoBERTa's own layout: pad 1, positions 2.., one token type
        config = transformers.RobertaConfig(**common, max_position_embeddings=40 + pad_id + 1,
                                            pad_token_id=pad_id, type_vocab_size=1)
    name = {"bert": "Bert", "roberta": "Roberta"}[fmt] + ("ForMaskedLM" if head else "Model")
    torch.manual_seed(0)
    hf = getattr(transformers, name)(config)
    _perturb(hf)
    hf.save_pretrained(path)
    return getattr(transformers, name).from_pretrained(path).eval()  # as saved (ties re-made)


@pytest.mark.parametrize("fmt, head", [("bert", True), ("bert", False), ("roberta", True), ("roberta", False)])
def test_random_stock_model_imports_with_the_outputs_hf_gives(fmt, head, tmp_path):
    hf = _random_hf(fmt, head, tmp_path)
    ck = HFCheckpoint(tmp_path)
    assert ck.config.max_position_embeddings == 40 and (ck.generator_head is not None) == head
    encoder = build_encoder(ck.config).eval()
    encoder.load_state_dict(ck.encoder_state)
    pad_id = hf.config.pad_token_id
    ids, types, mask = _batch(pad_id, types=fmt == "bert")
    kwargs = {"token_type_ids": types} if fmt == "bert" else {}
    real = mask if fmt == "roberta" else torch.ones_like(mask)  # RoBERTa's pads sit at its pad position
    with torch.no_grad():
        h = encoder(ids, types, mask)
        if fmt == "roberta":  # its one token type is ours for both segments: pairs read as RoBERTa reads them
            assert torch.equal(h, encoder(ids, torch.ones_like(ids) * mask, mask))
        out = hf(input_ids=ids, attention_mask=mask.long(), **kwargs)
        if not head:
            assert (h - out.last_hidden_state)[real].abs().max().item() <= 1e-5
            return
        mlm = GeneratorHead(32, 32, V, ck.config.layer_norm_eps)
        mlm.load_state_dict(ck.generator_head)
        logits = mlm(h, encoder.embeddings.word_embeddings.weight)
        assert (logits - out.logits)[real].abs().max().item() <= 1e-5


@pytest.fixture(scope="module")
def bpe_tokenizer(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe") / "tok"
    return train_tokenizer(iter_documents([tiny_corpus]), out, TokenizerConfig(
        kind="bpe", vocab_size=400, min_frequency=1, lowercase=False))


def test_random_roberta_loads_through_init_from_and_fine_tuning_with_hf_outputs(bpe_tokenizer, tmp_path):
    from electra.api import apply_init_config
    from electra.finetuning.run import load_backbone
    from electra.train.pretrained import token_ids
    from electra.train.state import InitFrom, load_init_weights

    hf_dir = bpe_tokenizer.save(tmp_path / "roberta")
    hf = _random_hf("roberta", True, hf_dir, vocab_size=bpe_tokenizer.vocab_size, pad_id=bpe_tokenizer.pad_id)
    init = InitFrom(hf_dir)
    cfg = apply_init_config(preset("roberta"), init)  # what `pretrain --init-from` trains
    model = build_objective(cfg, token_ids(bpe_tokenizer)).eval()
    load_init_weights(model, init)
    backbone = load_backbone(hf_dir)  # what `finetune` starts from
    encoder = build_encoder(backbone.model_cfg).eval()
    encoder.load_state_dict(backbone.encoder_state)
    ids, types, mask = _batch(bpe_tokenizer.pad_id, types=False)
    ids = ids % bpe_tokenizer.vocab_size
    ids[ids < 5] += 5
    ids = ids.masked_fill(~mask, bpe_tokenizer.pad_id)
    with torch.no_grad():
        out = hf.roberta(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        logits = hf(input_ids=ids, attention_mask=mask.long()).logits
        assert (model.generator_logits(ids, types, mask, None) - logits)[mask].abs().max().item() <= 1e-5
        assert (encoder(ids, types, mask) - out)[mask].abs().max().item() <= 1e-5



def test_pretrain_init_from_a_stock_roberta_directory_runs_and_exports_roberta(bpe_tokenizer, tiny_corpus, tmp_path):
    hf_dir = bpe_tokenizer.save(tmp_path / "roberta")
    _random_hf("roberta", True, hf_dir, vocab_size=bpe_tokenizer.vocab_size, pad_id=bpe_tokenizer.pad_id)
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "roberta", "--corpus", str(tiny_corpus), "--init-from", str(hf_dir),
                 "--out", str(out), *ROBERTA_RUN, "train.steps=1"]) == 0
    _, info = _load(transformers.RobertaForMaskedLM, out / "export" / "roberta")
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_roberta_export_of_an_imported_roberta_gives_back_its_weights_and_one_token_type(tmp_path):
    hf = _random_hf("roberta", True, tmp_path / "in")
    ck = HFCheckpoint(tmp_path / "in")
    cfg = PretrainConfig(model=ck.config, objective=ObjectiveConfig(kind="mlm"))
    model = build_objective(cfg, IDS).eval()
    model.discriminator.load_state_dict(ck.encoder_state)
    model.generator_head.load_state_dict(ck.generator_head)
    config, tensors = pretrained_to_hf(model, "discriminator", "roberta")
    assert config["type_vocab_size"] == 1 and config["max_position_embeddings"] == 42
    originals = hf.state_dict()
    positions = "roberta.embeddings.position_embeddings.weight"  # rows below pad + 1 are never read
    assert torch.equal(tensors.pop(positions)[2:], originals[positions][2:])
    assert all(torch.equal(originals[k], v) for k, v in tensors.items())


# ---- the RoBERTa recipe, end to end ------------------------------------------------------------


def test_roberta_recipe_runs_and_loads_in_stock_roberta_for_masked_lm(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "roberta", "--corpus", str(tiny_corpus), "--out", str(out),
                 *ROBERTA_RUN]) == 0
    assert "(transformers.RobertaForMaskedLM)" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["tokenizer"]["kind"], cfg["preprocess"]["packing"], cfg["objective"]["kind"],
            cfg["optim"]["beta2"], cfg["model"]["type_vocab_size"]) == ("bpe", "full_sentences", "mlm", 0.98, 1)
    assert json.loads((out / "data" / "manifest.json").read_text())["packing"] == "full_sentences"
    trained = load_pretrained(out)
    assert trained.meta["step"] == 3
    hf_dir = out / "export" / "roberta"
    hf, info = _load(transformers.RobertaForMaskedLM, hf_dir)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set()}
    tok, hf_tok = trained.tokenizer, transformers.AutoTokenizer.from_pretrained(hf_dir)
    enc = hf_tok("The River crossed a new bridge", "Zoë painted it.")
    a, b = tok.encode_lines(["The River crossed a new bridge", "Zoë painted it."])
    assert enc["input_ids"] == [tok.cls_id, *a, tok.sep_id, tok.sep_id, *b, tok.sep_id]  # RoBERTa's pair
    assert "token_type_ids" not in enc and (hf_tok.bos_token, hf_tok.eos_token) == ("<s>", "</s>")
    batch = hf_tok(["The River crossed a new bridge in 1998.", "Zoë"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    assert not mask.all()  # padding in the batch
    with torch.no_grad():
        ours = trained.model.eval().generator_logits(ids, torch.zeros_like(ids), mask, None)
        theirs = hf(**batch).logits
    assert (ours - theirs)[mask].abs().max().item() <= 1e-5
    capsys.readouterr()
    assert main(["export", str(out), "--format", "bert", "--out", str(tmp_path / "bert")]) == 0
    assert "BertForMaskedLM" in capsys.readouterr().out
    bert, info = _load(transformers.BertForMaskedLM, tmp_path / "bert")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():  # BERT has no position offset: every position agrees
        assert (bert(input_ids=ids, attention_mask=batch["attention_mask"]).logits - ours).abs().max() <= 1e-5
    # one segment type: a pair through the BERT-format tokenizer is all type 0 and runs in stock BERT
    bert_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "bert")
    pair = bert_tok("The River crossed a new bridge", "Zoë painted it.", return_tensors="pt")
    assert pair["input_ids"][0].tolist() == [tok.cls_id, *a, tok.sep_id, *b, tok.sep_id]
    assert "token_type_ids" not in pair or not pair["token_type_ids"].any()
    with torch.no_grad():
        bert(**pair)
    # and our own fine-tuning of a sentence-pair task reads it as one type
    from tests.finetune_fixtures import write_glue
    glue = write_glue(tmp_path / "glue")
    assert main(["finetune", str(out), "--task", "mrpc", "--data", str(glue / "MRPC"), "--out",
                 str(tmp_path / "ft"), "train.epochs=1", "train.threads=1"]) == 0
    # whose Hugging Face export reads a pair in stock transformers as our model does (its
    # tokenizer typed the second segment 1, past the one-row table)
    from electra.finetuning.run import load_finetuned
    assert main(["export", str(tmp_path / "ft"), "--out", str(tmp_path / "ft_hf")]) == 0
    cls_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "ft_hf")
    cls = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "ft_hf").eval()
    pair = cls_tok("The River crossed a new bridge", "Zoë painted it.", return_tensors="pt")
    ft_model, *_ = load_finetuned(tmp_path / "ft")
    enc = tok.encode("The River crossed a new bridge", "Zoë painted it.")
    assert pair["input_ids"][0].tolist() == enc["input_ids"]
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        ours = ft_model.eval()(ids, torch.tensor([enc["token_type_ids"]]), torch.ones_like(ids, dtype=torch.bool))
        assert (cls(**pair).logits - ours).abs().max() <= 1e-5


def test_one_token_type_with_two_segment_rows_fails_in_one_line(tiny_data, tmp_path, capsys):
    assert main(["pretrain", "--preset", "tiny", "--data", str(tiny_data), "--out", str(tmp_path / "x"), *TINY_RUN,
                 "model.type_vocab_size=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra: error:") and "\n" not in err and "packing=electra" in err


def test_a_narrow_generator_as_bert_names_the_setting_that_fixes_it(tiny_data, tmp_path):
    from electra.api import export
    from electra.api import pretrain as run
    from electra.config import apply_overrides
    from electra.errors import CheckpointError
    from tests.conftest import TINY_RUN

    out = tmp_path / "run"  # embeddings as wide as the discriminator, the generator half as wide
    run(apply_overrides(preset("tiny"), [*TINY_RUN, "model.embedding_size=32", "train.steps=1"]), out=out, data=tiny_data)
    export(out, tmp_path / "d", fmt="bert")  # the discriminator has no projection: it exports
    with pytest.raises(CheckpointError, match=r"generator \(embeddings 32, its width 16\).*objective.generator_size=1.0"):
        export(out, tmp_path / "g", part="generator", fmt="bert")
