"""DeBERTa and DeBERTaV3 (`model.family=deberta`, `objective.sharing=gdes`): log buckets, parity with
stock `transformers.DebertaV2*` both ways (padded input), the enhanced mask decoder, GDES's
gradient property and merged export, and a 3-step pre-training run that stock HF loads."""

import dataclasses
import json
import logging

import pytest
import torch

transformers = pytest.importorskip("transformers")

import electra  # noqa: E402
from electra.api import apply_init_config  # noqa: E402
from electra.cli import main  # noqa: E402
from electra.config import ModelConfig, apply_overrides, preset  # noqa: E402
from electra.errors import CheckpointError, ConfigError  # noqa: E402
from electra.experiment import load_spec  # noqa: E402
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf  # noqa: E402
from electra.model.build import build_encoder  # noqa: E402
from electra.model.deberta import log_bucket, relative_row  # noqa: E402
from electra.objective import ElectraModel, TokenIds  # noqa: E402
from electra.objective.losses import rtd_loss  # noqa: E402
from electra.train.flops import electra_train_flops, emd_flops, encoder_train_flops  # noqa: E402
from electra.train.optim import layerwise_lr_scales  # noqa: E402
from electra.train.state import InitFrom, load_init_weights  # noqa: E402
from tests.conftest import TINY_RUN  # noqa: E402
from tests.test_model import TINY, batch  # noqa: E402

DEBERTA = [*TINY, "model.family=deberta", "model.relative_buckets=8", "model.max_relative_positions=32"]


def model(*extra: str, base: str = "tiny") -> ElectraModel:
    """A perturbed tiny pre-training model: every weight off its init, so a wrong mapping shows."""
    torch.manual_seed(0)
    m = ElectraModel.from_config(apply_overrides(preset(base), [*DEBERTA, *extra]), TokenIds.standard())
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def padded_batch():
    ids, types, attn = batch(B=4, T=28)  # row 1 ends in 5 [PAD]s
    attn[2, 9:] = False  # and row 2 in 19
    ids[2, 9:] = 0
    return ids, types & attn, attn


def test_log_buckets_match_hand_computed_values():
    # 8 buckets (exact within +-4), spaced for distance 63: beyond 4, 4 + ceil(3 ln(|r|/4) / ln(63/4))
    rel = torch.tensor([0, 1, -3, 4, -4, 5, 10, 11, -16, 30, 100])
    assert log_bucket(rel, 8, 64).tolist() == [0, 1, -3, 4, -4, 5, 5, 6, -6, 7, 8]
    cfg = ModelConfig(family="deberta", relative_buckets=8, max_relative_positions=64)
    assert relative_row(rel, cfg).tolist() == [8, 9, 5, 12, 4, 13, 13, 14, 2, 15, 15]  # + 8, clamped to 15
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position
    every = torch.arange(-600, 601)
    for buckets, limit in ((8, 64), (256, 512), (64, 128)):
        assert torch.equal(log_bucket(every, buckets, limit), make_log_bucket_position(every, buckets, limit).long())


def hf_twin(tmp_path, m: ElectraModel, part: str):
    config, tensors = pretrained_to_hf(m, part)
    cls = transformers.DebertaV2Model if part == "discriminator" else transformers.DebertaV2ForMaskedLM
    hf, info = cls.from_pretrained(save_hf(tmp_path / part, config, tensors), output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    return hf.eval()


@pytest.mark.parametrize("extra", [(), ("model.embedding_size=32",), ("model.relative_buckets=0",
                                                                       "model.type_vocab_size=0")])
def test_export_gives_stock_DebertaV2Model_our_outputs_with_padding(tmp_path, extra):
    m = model(*extra)
    hf = hf_twin(tmp_path, m, "discriminator")
    ids, types, attn = padded_batch()
    with torch.no_grad():
        ours = m.discriminator(ids, types, attn)  # [B, T, H], padded positions included
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_generator_exports_to_DebertaV2ForMaskedLM_and_names_what_emd_loses(tmp_path, caplog):
    ids, types, attn = padded_batch()
    plain = model("model.emd_layers=0")
    with torch.no_grad():
        theirs = hf_twin(tmp_path / "plain", plain, "generator")(
            input_ids=ids, attention_mask=attn.long(), token_type_ids=types).logits
        assert (theirs - plain.generator_logits(ids, types, attn, None)).abs().max().item() <= 1e-5
    emd = model()  # the family default: 2 EMD passes
    with caplog.at_level(logging.WARNING, logger="electra.hf.deberta"), torch.no_grad():
        theirs = hf_twin(tmp_path / "emd", emd, "generator")(
            input_ids=ids, attention_mask=attn.long(), token_type_ids=types).logits
        ours = emd.generator_logits(ids, types, attn, None)
        without_emd = emd.generator_head(emd.generator(ids, types, attn), emd.generator.embeddings.word_embeddings.weight)
    assert "no enhanced mask decoder" in caplog.text
    assert (theirs - without_emd).abs().max().item() <= 1e-5  # HF = our encoder without the EMD
    assert (theirs - ours).abs().max().item() > 1e-2


def test_emd_adds_absolute_positions_only_before_the_mlm_head():
    enc = model().generator
    ids, types, attn = padded_batch()
    with torch.no_grad():
        before = enc(ids, types, attn), enc.mlm_states(ids, types, attn)
        enc.embeddings.position_embeddings.weight.mul_(2.0)
        after = enc(ids, types, attn), enc.mlm_states(ids, types, attn)
    assert torch.equal(before[0], after[0])  # the encoder itself never reads absolute positions
    assert (before[1] - after[1]).abs().max().item() > 1e-3
    off = model("model.emd_layers=0").generator
    with torch.no_grad():
        assert torch.equal(off(ids, types, attn), off.mlm_states(ids, types, attn))


def test_bf16_disentangled_attention_on_cpu_takes_the_math_path_and_matches_the_fused_kernel(monkeypatch):
    import electra.model.deberta as deberta
    enc = model().discriminator
    ids, types, attn = padded_batch()
    with torch.no_grad():
        ref = enc(ids, types, attn)  # fp32: torch's fused kernel
    fused = []
    real = deberta.F.scaled_dot_product_attention
    monkeypatch.setattr(deberta.F, "scaled_dot_product_attention",
                        lambda *a, **kw: fused.append(1) or real(*a, **kw))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = enc(ids, types, attn)
    assert not fused  # the fused kernel is 2.6x slower in bf16 on CPU
    keep = attn[..., None]  # padded rows attend uniformly in both; compare the tokens
    assert ((got.float() - ref).abs() * keep).max() <= 0.05 * (ref.abs() * keep).max()
    with torch.no_grad():
        enc(ids, types, attn)
    assert fused  # fp32 keeps the fused kernel
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2)) * keep  # tokens only

    def output_and_grads():
        enc.zero_grad()
        out = enc(ids, types, attn)
        (out * weights).sum().backward()
        return [out.detach()] + [p.grad.clone() for p in enc.parameters() if p.grad is not None]
    fused_path = output_and_grads()
    monkeypatch.setattr(deberta, "math_path_is_faster", lambda q: True)  # the math path in fp32: SDPA's
    math_path = output_and_grads()
    assert len(math_path) == len(fused_path) > 10  # the relative-position table and q/k/v among them
    for a, b in zip(fused_path, math_path, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_the_mlm_objective_reads_the_emd_and_checkpointing_changes_nothing():
    m = model("objective.kind=mlm").train()
    ids, types, attn = padded_batch()
    out = m(ids, types, attn, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    table = m.discriminator.embeddings.position_embeddings.weight
    assert table.grad is not None and table.grad.abs().sum() > 0  # absolute positions reach the MLM loss
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m.set_gradient_checkpointing(True)
    again = m(ids, types, attn, generator=torch.Generator().manual_seed(0))
    again.loss.backward()
    assert torch.equal(again.loss, out.loss)
    assert all(torch.allclose(p.grad, grads[n], atol=1e-6) for n, p in m.named_parameters() if p.grad is not None)


def random_hf_deberta(tmp_path, cls, **over):
    cfg = transformers.DebertaV2Config(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, hidden_act="gelu", relative_attention=True, pos_att_type=["p2c", "c2p"],
        position_buckets=8, max_relative_positions=32, norm_rel_ebd="layer_norm", share_att_key=True,
        position_biased_input=False, layer_norm_eps=1e-7, **over)
    torch.manual_seed(1)
    hf = cls(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    return hf, tmp_path / "hf"


@pytest.mark.parametrize("over", [{}, {"type_vocab_size": 2, "embedding_size": 16}])
def test_random_stock_deberta_imports_with_identical_outputs(tmp_path, over):
    hf, path = random_hf_deberta(tmp_path, transformers.DebertaV2ForMaskedLM, **over)
    ck = HFCheckpoint(path)
    assert ck.config.family == "deberta" and ck.config.emd_depth == 0 and ck.generator_head is not None
    enc = build_encoder(ck.config).eval()
    enc.load_state_dict(ck.encoder_state)
    head = model().generator_head.__class__(32, ck.config.embedding_size, 300, 1e-7).eval()
    head.load_state_dict(ck.generator_head)
    ids, types, attn = padded_batch()
    types = types if over else torch.zeros_like(types)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types, output_hidden_states=True)
        h = enc(ids, types, attn)
        logits = head(h, enc.embeddings.word_embeddings.weight)
    assert (h - out.hidden_states[-1]).abs().max().item() <= 1e-5
    assert (logits - out.logits).abs().max().item() <= 1e-5


def test_init_from_a_stock_deberta_under_gdes_keeps_its_outputs(tmp_path):
    hf, path = random_hf_deberta(tmp_path, transformers.DebertaV2Model, type_vocab_size=2)
    ck = HFCheckpoint(path)
    cfg = apply_overrides(preset("debertav3"), ["objective.generator_layers=1", "preprocess.seq_len=64"])
    cfg = apply_init_config(cfg, InitFrom(path))
    assert cfg.model.family == "deberta" and cfg.model.emd_depth == 0 and cfg.objective.sharing == "gdes"
    m = ElectraModel.from_config(cfg, TokenIds.standard()).eval()
    load_init_weights(m, InitFrom(path))
    emb = m.discriminator.embeddings.word_embeddings
    assert torch.equal(emb.source.weight, ck.encoder_state["embeddings.word_embeddings.weight"])
    assert not emb.delta.any()
    ids, types, attn = padded_batch()
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
        assert (m.discriminator(ids, types, attn) - theirs).abs().max().item() <= 1e-5


def test_unsupported_deberta_settings_fail_in_one_line(tmp_path):
    _, path = random_hf_deberta(tmp_path, transformers.DebertaV2Model)
    raw = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(raw | {"position_biased_input": True}))
    with pytest.raises(CheckpointError, match="position_biased_input"):
        HFCheckpoint(path)
    with pytest.raises(ConfigError, match="emd_layers"):
        ModelConfig(emd_layers=2)
    with pytest.raises(ConfigError, match="relative_buckets"):
        ModelConfig(family="deberta", relative_buckets=256, max_relative_positions=128, max_position_embeddings=512)
    with pytest.raises(ConfigError, match="kind=mlm"):
        apply_overrides(preset("tiny"), ["objective.kind=mlm", "objective.sharing=gdes"])


@pytest.mark.parametrize("family", ["electra", "deberta"])
def test_gdes_rtd_loss_does_not_reach_the_generator_embedding(family):
    m = model("objective.sharing=gdes", "objective.generator_size=1.0", f"model.family={family}").train()
    table = m.discriminator.embeddings.word_embeddings
    e_g = m.generator.embeddings.word_embeddings.weight
    assert table.source.weight is e_g
    ids, types, attn = padded_batch()
    rtd = rtd_loss(m.discriminator_logits(ids, types, attn), ids % 2 == 0, attn)
    rtd.backward()
    assert e_g.grad is None  # sg(E_G): RTD moves only E_delta
    assert table.delta.grad is not None and table.delta.grad.abs().sum() > 0
    table.delta.grad = None
    _, _, mlm = m.generator_loss(ids, types, attn, None, torch.Generator().manual_seed(0))
    mlm.backward()
    assert e_g.grad is not None and e_g.grad.abs().sum() > 0  # the MLM loss moves E_G
    assert table.delta.grad is None


def test_gdes_delta_starts_at_zero():
    torch.manual_seed(0)
    m = ElectraModel.from_config(apply_overrides(preset("debertav3"), ["objective.generator_layers=1"]),
                                 TokenIds.standard())
    table = m.discriminator.embeddings.word_embeddings
    assert not table.delta.any() and torch.equal(table.weight, m.generator.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("family", ["electra", "deberta"])
def test_gdes_export_is_the_merged_table_with_in_training_outputs(tmp_path, family):
    m = model("objective.sharing=gdes", "objective.generator_size=1.0", f"model.family={family}")
    table = m.discriminator.embeddings.word_embeddings
    config, tensors = pretrained_to_hf(m, "discriminator")
    key = "deberta.embeddings.word_embeddings.weight" if family == "deberta" else "electra.embeddings.word_embeddings.weight"
    assert torch.equal(tensors[key], table.source.weight + table.delta)
    cls = transformers.DebertaV2Model if family == "deberta" else transformers.ElectraModel
    hf = cls.from_pretrained(save_hf(tmp_path / "d", config, tensors)).eval()
    ids, types, attn = padded_batch()
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
        assert (m.discriminator(ids, types, attn) - theirs).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family,fmt,cls", [("albert", "electra", "AlbertModel"), ("electra", "bert", "BertModel")])
def test_gdes_exports_in_albert_and_bert_formats_hold_the_merged_table(tmp_path, family, fmt, cls):
    m = model("objective.sharing=gdes", "objective.generator_size=1.0", f"model.family={family}",
              "model.embedding_size=32" if family == "electra" else "model.share_layers=all")
    config, tensors = pretrained_to_hf(m, "discriminator", fmt)  # raised KeyError before
    hf = getattr(transformers, cls).from_pretrained(save_hf(tmp_path / "d", config, tensors)).eval()
    ids, types, attn = padded_batch()
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
        assert (m.discriminator(ids, types, attn) - theirs)[attn].abs().max().item() <= 1e-5


def test_deberta_flops_count_relative_scores_and_the_emd():
    cfg = apply_overrides(preset("debertav3"), [])
    d, g = cfg.model, cfg.generator_model()
    electra_d = ModelConfig(**{**d.__dict__, "family": "electra", "emd_layers": None})
    # 64 buckets spaced for 128: bucket(127) = 32 + ceil(31 ln(127/32) / ln(127/32)) = 63, so 128-token
    # rows reach table rows 64 - 63 .. 64 + 63: 127 of the 128
    assert relative_row(torch.tensor([-127, 127]), d).tolist() == [1, 127]
    assert encoder_train_flops(d, 128) - encoder_train_flops(electra_d, 128) == 12.0 * 4 * 128 * 127
    one = encoder_train_flops(ModelConfig(**{**g.__dict__, "num_layers": 1}), 128)
    assert emd_flops(g, 128) == pytest.approx((2 - 2 / 3) * one)  # two passes; the last layer runs no backward
    assert electra_train_flops(cfg, 128) > electra_train_flops(
        apply_overrides(cfg, ["model.emd_layers=0"]), 128) + (2 - 2 / 3) * one - 1


def test_layerwise_decay_puts_the_relative_table_with_the_embeddings():
    names = [f"encoder.{n}" for n, _ in model().discriminator.named_parameters()]
    scales = layerwise_lr_scales(names, 2, 0.5)
    for name in ("encoder.relative.embeddings.weight", "encoder.project.norm.weight", "encoder.embeddings.word_embeddings.weight"):
        assert scales[name] == 0.5 ** 3
    assert scales["encoder.layers.1.attention.query.weight"] == 0.5


def test_gdes_grid_compares_the_three_sharing_modes_on_the_recipe():
    spec = load_spec("gdes", budgets=[1e12])
    assert spec.preset == "debertav3"
    assert [c.name for c in spec.cells] == ["nes", "es", "gdes"]
    assert [c.overrides[0] for c in spec.cells] == [f"objective.sharing={s}" for s in ("none", "embeddings", "gdes")]
    cfg = preset("debertav3")
    g = cfg.generator_model()
    assert (cfg.model.family, cfg.objective.sharing) == ("deberta", "gdes")
    assert (g.hidden_size, g.num_layers) == (cfg.model.hidden_size, cfg.model.num_layers // 2)


def test_three_step_debertav3_run_exports_what_stock_hf_loads(tiny_data, tmp_path):
    out = tmp_path / "run"
    argv = ["pretrain", "--preset", "debertav3", "--data", str(tiny_data), "--out", str(out), *TINY_RUN,
            "objective.generator_size=1.0", "objective.generator_layers=1", "model.relative_buckets=8",
            "train.steps=3"]
    assert main(argv) == 0
    trained = electra.load(out)
    assert trained.config.model.family == "deberta" and trained.config.objective.sharing == "gdes"
    m = trained.model.eval()
    assert m.discriminator.embeddings.word_embeddings.delta.abs().sum() > 0  # RTD moved E_delta
    hf, info = transformers.DebertaV2Model.from_pretrained(out / "export" / "discriminator", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    gen, info = transformers.DebertaV2ForMaskedLM.from_pretrained(out / "export" / "generator", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    back = HFCheckpoint(out / "export" / "discriminator")  # --init-from / fine-tuning read it back whole
    assert back.config == dataclasses.replace(m.disc_cfg, emd_layers=2)  # the family default, made explicit
    assert all(torch.equal(back.encoder_state[k], v) for k, v in m.encoder.state_dict().items())
    ids, types, attn = padded_batch()
    ids = ids % m.disc_cfg.vocab_size
    with torch.no_grad():
        theirs = hf.eval()(input_ids=ids, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
        assert (m.discriminator(ids, types, attn) - theirs).abs().max().item() <= 1e-5
