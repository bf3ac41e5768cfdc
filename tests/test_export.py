import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from electra.errors import CheckpointError  # noqa: E402
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf  # noqa: E402
from electra.model.layers import Encoder  # noqa: E402
from tests.test_model import batch, tiny_model  # noqa: E402


def perturbed(*extra):
    m = tiny_model(*extra).eval()
    with torch.no_grad():  # move every weight off its init so a wrong mapping cannot hide
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("extra", [(), ("model.embedding_size=32",)])
@pytest.mark.parametrize("part", ["discriminator", "generator"])
def test_export_loads_in_transformers_with_identical_outputs(tmp_path, part, extra):
    m = perturbed(*extra)
    config, tensors = pretrained_to_hf(m, part)
    out = save_hf(tmp_path / part, config, tensors)
    cls = transformers.ElectraForPreTraining if part == "discriminator" else transformers.ElectraForMaskedLM
    hf, info = cls.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    ids, types, attn = batch()
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).logits
        ours = (m.discriminator_logits(ids, types, attn) if part == "discriminator"
                else m.generator_logits(ids, types, attn, None))
    assert (theirs - ours).abs().max().item() <= 1e-5


def test_hf_round_trip_restores_our_weights(tmp_path):
    m = perturbed()
    config, tensors = pretrained_to_hf(m, "discriminator")
    ck = HFCheckpoint(save_hf(tmp_path / "d", config, tensors))
    assert ck.config == m.disc_cfg
    for k, v in m.discriminator.state_dict().items():
        assert torch.equal(ck.encoder_state[k], v), k
    for k, v in m.discriminator_head.state_dict().items():
        assert torch.equal(ck.discriminator_head[k], v)


def test_reads_a_bert_checkpoint(tmp_path):
    cfg = transformers.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    bert.save_pretrained(tmp_path / "bert")
    ck = HFCheckpoint(tmp_path / "bert")
    enc = Encoder(ck.config).eval()
    enc.load_state_dict(ck.encoder_state)
    ids, types, attn = batch()
    with torch.no_grad():
        ref = bert(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
        assert (enc(ids, types, attn) - ref).abs().max() <= 1e-5


def test_bad_hf_dirs_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        HFCheckpoint(tmp_path)
    m = perturbed()
    config, tensors = pretrained_to_hf(m, "discriminator")
    d = save_hf(tmp_path / "d", config, tensors)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        HFCheckpoint(d)
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="only ELECTRA, BERT, RoBERTa"):
        HFCheckpoint(tmp_path / "gpt")


def test_save_hf_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    m = perturbed()
    with pytest.raises(CheckpointError, match="not an exported model"):
        save_hf(tmp_path, *pretrained_to_hf(m, "discriminator"))
    assert (tmp_path / "notes.txt").read_text() == "mine"
