import pytest
import torch

from electra.config import apply_overrides, preset
from electra.objective import TokenIds
from electra.objective.electra import ElectraModel
from electra.objective.masking import MaskSpec, mask_tokens

SPECIAL = torch.tensor([0, 1, 2, 3, 4])
TINY = ["model.vocab_size=300", "model.hidden_size=32", "model.embedding_size=16", "model.num_layers=2",
        "model.num_heads=2", "model.intermediate_size=64", "model.max_position_embeddings=64",
        "model.dropout=0.0", "model.attention_dropout=0.0", "preprocess.seq_len=64"]


def tiny_model(*extra):
    torch.manual_seed(0)
    return ElectraModel.from_config(apply_overrides(preset("tiny"), TINY + list(extra)), TokenIds.standard())


def batch(B=4, T=24):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 300, (B, T), generator=g)
    ids[:, 0] = 2
    ids[:, T // 2] = 3
    ids[1, T - 5:] = 0
    attn = ids != 0
    types = torch.zeros_like(ids)
    types[:, T // 2 + 1:] = 1
    return ids, types & attn, attn


def masked(ids, attn, seed=0):
    return mask_tokens(ids, attn, SPECIAL, MaskSpec(mask_id=4, vocab_size=300, mask_prob=0.15, max_predictions=6),
                       generator=torch.Generator().manual_seed(seed))


def test_init_rule():
    m = tiny_model()
    assert torch.all(m.discriminator.layers[0].attention_norm.weight == 1)
    assert torch.all(m.discriminator.layers[0].ffn_in.bias == 0)
    w = m.discriminator.layers[0].ffn_in.weight
    assert abs(w.std().item() - 0.02) < 0.003
    assert torch.all(m.discriminator.embeddings.word_embeddings.weight[0] == 0)  # [PAD] row, as HF


def test_sharing_modes():
    emb = tiny_model()
    assert emb.generator.embeddings is emb.discriminator.embeddings
    assert emb.gen_cfg.hidden_size == 16 and emb.generator_head.bias.shape == (300,)
    none = tiny_model("objective.sharing=none")
    assert none.generator.embeddings is not none.discriminator.embeddings
    alls = tiny_model("objective.sharing=all", "objective.generator_size=1.0")
    assert alls.generator is None and alls.generator_encoder is alls.discriminator
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(none) > n(emb)


def test_gathered_generator_head_equals_full_head_fp32():
    m = tiny_model().eval()
    ids, types, attn = batch()
    mb = masked(ids, attn)
    full = m.generator_logits(mb.input_ids, types, attn, None)  # [B, T, V]
    gathered = m.generator_logits(mb.input_ids, types, attn, mb.positions)  # [B, P, V]
    ref = torch.gather(full, 1, mb.positions[..., None].expand(-1, -1, full.shape[-1]))
    assert torch.allclose(gathered, ref, atol=1e-6)


def test_forward_losses_and_labels():
    m = tiny_model()
    ids, types, attn = batch()
    out = m(ids, types, attn, masked(ids, attn), generator=torch.Generator().manual_seed(0))
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert torch.allclose(out.loss, out.mlm_loss + 50 * out.rtd_loss)
    assert out.disc_logits.shape == ids.shape
    assert not out.replaced[~attn].any()  # padding is never "replaced"
    assert out.replaced.sum() <= 6 * ids.shape[0]


def test_a_correct_sample_counts_as_original():
    m = tiny_model()
    ids, types, attn = batch()
    mb = masked(ids, attn)
    target = int(mb.targets[0, 0])
    with torch.no_grad():
        m.generator_head.bias.fill_(-1e4)
        m.generator_head.bias[target] = 1e4  # the generator always samples `target`
    out = m(ids, types, attn, mb)
    picked = mb.weights.bool()
    expect = torch.zeros_like(ids, dtype=torch.bool)
    for b, p in (picked).nonzero().tolist():
        pos = mb.positions[b, p]
        expect[b, pos] = ids[b, pos] != target
    assert torch.equal(out.replaced, expect)
    assert not out.replaced[0, mb.positions[0, 0]]


def test_rtd_loss_does_not_reach_the_generator():
    m = tiny_model("objective.mlm_weight=0.0")
    ids, types, attn = batch()
    m(ids, types, attn, masked(ids, attn)).loss.backward()
    gen_layer = m.generator.layers[0].ffn_in.weight
    assert gen_layer.grad is None or torch.all(gen_layer.grad == 0)
    assert m.discriminator.layers[0].ffn_in.weight.grad.abs().sum() > 0
    assert m.discriminator.embeddings.word_embeddings.weight.grad.abs().sum() > 0  # shared, via D


@pytest.mark.parametrize("sharing", ["none", "embeddings"])
def test_mlm_loss_trains_the_generator(sharing):
    m = tiny_model(f"objective.sharing={sharing}", "objective.disc_weight=0.0")
    ids, types, attn = batch()
    m(ids, types, attn, masked(ids, attn)).loss.backward()
    assert m.generator.layers[0].ffn_in.weight.grad.abs().sum() > 0
    d_grad = m.discriminator.layers[0].ffn_in.weight.grad
    assert d_grad is None or torch.all(d_grad == 0)


def test_padding_does_not_change_outputs():
    m = tiny_model().eval()
    ids, types, attn = batch()
    short = m.discriminator_logits(ids[1:2, :19], types[1:2, :19], attn[1:2, :19])
    padded = m.discriminator_logits(ids[1:2], types[1:2], attn[1:2])
    assert torch.allclose(short, padded[:, :19], atol=1e-5)


def test_temperature_anneal_follows_the_step():
    from electra.config import ObjectiveConfig

    o = ObjectiveConfig(temperature=1.0, temperature_start=3.0, temperature_steps=100)
    assert [o.temperature_at(s) for s in (0, 50, 100, 500)] == [3.0, 2.0, 1.0, 1.0]
    m = tiny_model("objective.temperature=1.0", "objective.temperature_start=3.0",
                   "objective.temperature_steps=10")
    assert m.temperature == 3.0
    m.set_step(5)
    assert m.temperature == 2.0
    with torch.no_grad():  # a peaked generator, so the temperature changes the argmax
        m.generator_head.bias.copy_(5 * torch.randn(m.generator_head.bias.shape))
    ids, types, attn = batch()
    hot = m(ids, types, attn, masked(ids, attn), generator=torch.Generator().manual_seed(0))
    m.set_step(10)
    cold = m(ids, types, attn, masked(ids, attn), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(hot.corrupted, cold.corrupted)  # the same noise, flatter samples


def test_masked_lm_alone_skips_the_discriminator():
    m = tiny_model("objective.disc_weight=0", "objective.sharing=all", "objective.generator_size=1.0")
    ids, types, attn = batch()
    out = m(ids, types, attn, masked(ids, attn))
    out.loss.backward()
    assert torch.equal(out.loss, out.mlm_loss) and out.replaced_count == 0
    assert m.discriminator_head.dense.weight.grad is None  # never ran
    assert m.discriminator.layers[0].ffn_in.weight.grad.abs().sum() > 0  # the shared encoder learns


def test_discriminator_mlm_warm_start_then_electra():
    m = tiny_model("objective.disc_mlm_steps=2")
    ids, types, attn = batch()
    m.set_step(0)
    out = m(ids, types, attn, masked(ids, attn))
    out.loss.backward()
    assert out.replaced_count == 0 and torch.equal(out.loss, out.mlm_loss)  # MLM only
    assert m.discriminator_mlm_head.dense.weight.grad is not None
    assert m.generator.layers[0].ffn_in.weight.grad is None  # the generator waits
    assert m.discriminator_head.dense.weight.grad is None
    m.zero_grad()
    m.set_step(2)
    out = m(ids, types, attn, masked(ids, attn))
    out.loss.backward()
    assert out.replaced_count > 0 and m.generator.layers[0].ffn_in.weight.grad is not None
    assert m.discriminator_mlm_head.dense.weight.grad is None  # ELECTRA from here on


def test_sinusoidal_position_init_makes_neighbours_similar():
    from electra.config import ModelConfig
    from electra.model.layers import Embeddings, init_positions, init_weights
    cfg = ModelConfig(vocab_size=50, embedding_size=32, hidden_size=32, num_layers=1, num_heads=2,
                      intermediate_size=64, max_position_embeddings=64)
    emb = Embeddings(cfg)
    init_weights(emb, 0.02)
    before = emb.position_embeddings.weight.clone()
    init_positions(emb, "normal", 0.02)
    assert torch.equal(before, emb.position_embeddings.weight)  # the HF rule stays the default
    init_positions(emb, "sinusoidal", 0.02)
    table = emb.position_embeddings.weight
    assert abs(table.std().item() - 0.02) < 1e-3
    cos = torch.nn.functional.cosine_similarity
    near = cos(table[10:11], table[11:12]).item()
    far = cos(table[10:11], table[40:41]).item()
    assert near > 0.9 and near > far + 0.3
