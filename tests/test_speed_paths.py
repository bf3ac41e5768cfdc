"""The optimised paths give the same numbers as the plain ones (fp32): gathered generator head,
fused-QKV SDPA attention, in-place Gumbel noise, gradient checkpointing."""

import math

import torch
import torch.nn.functional as F

from electra.objective.losses import mlm_loss, rtd_loss
from electra.objective.sampling import gumbel_sample
from tests.test_model import batch, masked, tiny_model


def test_gathered_head_loss_equals_full_vocabulary_path():
    m = tiny_model().eval()
    ids, types, attn = batch()
    mb = masked(ids, attn)
    out = m(ids, types, attn, mb, generator=torch.Generator().manual_seed(7))
    # plain path: logits for every position, then pick the masked ones
    full = m.generator_logits(mb.input_ids, types, attn, None)  # [B, T, V]
    picked = torch.gather(full, 1, mb.positions[..., None].expand(-1, -1, full.shape[-1]))
    plain_mlm = mlm_loss(picked, mb.targets, mb.weights)
    sampled = gumbel_sample(picked, generator=torch.Generator().manual_seed(7))
    corrupted = ids.scatter(1, mb.positions, torch.where(mb.weights > 0, sampled, mb.targets))
    plain_rtd = rtd_loss(m.discriminator_logits(corrupted, types, attn), (corrupted != ids) & attn, attn)
    assert torch.allclose(out.mlm_loss, plain_mlm, atol=1e-6)
    assert torch.allclose(out.rtd_loss, plain_rtd, atol=1e-6)
    assert torch.allclose(out.loss, plain_mlm + 50 * plain_rtd, atol=1e-5)


def test_fused_sdpa_attention_equals_textbook_attention():
    m = tiny_model().eval()
    att = m.discriminator.layers[0].attention
    x = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    H, nh = 32, att.num_heads
    q, k, v = F.linear(x, att.qkv.weight, att.qkv.bias).split(H, dim=-1)
    split = lambda t: t.view(2, 9, nh, H // nh).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(H // nh)
    scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(torch.float32).min)
    y = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(2, 9, H)
    ref = F.linear(y, att.out.weight, att.out.bias)
    assert torch.allclose(att(x, mask[:, None, None, :]), ref, atol=1e-6)


def test_in_place_gumbel_noise_is_the_textbook_noise():
    logits = torch.randn(6, 50)
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(3))
    textbook = (logits - torch.log(-torch.log(u))).argmax(-1)
    assert torch.equal(gumbel_sample(logits, generator=torch.Generator().manual_seed(3)), textbook)


def test_gradient_checkpointing_changes_memory_not_results():
    def run(ckpt: bool):
        m = tiny_model("model.dropout=0.1", "model.attention_dropout=0.1").train()
        m.set_gradient_checkpointing(ckpt)
        ids, types, attn = batch()
        torch.manual_seed(5)  # the same dropout masks; checkpointing replays the RNG state
        out = m(ids, types, attn, masked(ids, attn), generator=torch.Generator().manual_seed(1))
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    (l1, g1), (l2, g2) = run(False), run(True)
    assert torch.equal(l1, l2)
    assert g1.keys() == g2.keys() and all(torch.allclose(g1[k], g2[k], atol=1e-6) for k in g1)
