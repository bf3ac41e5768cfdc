"""The optimised paths give the same numbers as the plain ones (fp32): gathered generator head,
fused-QKV SDPA attention, in-place Gumbel noise, gradient checkpointing, fused CPU AdamW; packed-bit dropout
and inverse-CDF sampling (their own random streams) give the same distributions, and the same
math with the same mask."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from electra.model.dropout import (
    PackedDropout,
    keep_from_halves,
    packed_dropout,
    quantized_p,
    random_halves,
    resolve_dropout_kernel,
    scaled_keep_mask,
    use_dropout_kernel,
)
from electra.objective.losses import mlm_loss, rtd_loss, top1_hits
from electra.objective.sampling import cdf_sample, gumbel_sample, resolve_sample_kernel
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


def _frequencies(sampler, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    s = sampler(logits, temperature, torch.Generator().manual_seed(11))
    return torch.bincount(s.flatten(), minlength=logits.shape[-1]).double() / s.numel()


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_inverse_cdf_samples_follow_the_softmax_as_gumbel_max_does(temperature):
    V, n = 40, 200_000
    logits = torch.randn(V, generator=torch.Generator().manual_seed(0)) * 3
    logits[7] = float("-inf")  # an excluded token (objectives that never sample specials)
    rows = logits.expand(n, V)
    p = torch.softmax(logits.double() / temperature, 0)
    tol = 5 * torch.sqrt(p * (1 - p) / n) + 1e-12  # 5 sigma per token
    for sampler in (cdf_sample, gumbel_sample):
        freq = _frequencies(sampler, rows, temperature)
        assert ((freq - p).abs() <= tol).all(), sampler.__name__
        assert freq[7] == 0


def test_inverse_cdf_sampling_keeps_shapes_streams_and_extremes():
    logits = torch.randn(3, 5, 301, generator=torch.Generator().manual_seed(1)) * 4
    a = cdf_sample(logits, 1.0, torch.Generator().manual_seed(2))
    b = cdf_sample(logits, 1.0, torch.Generator().manual_seed(2))
    assert a.shape == (3, 5) and a.dtype == torch.int64 and torch.equal(a, b)  # exact resume
    assert ((a >= 0) & (a < 301)).all()
    cold = cdf_sample(logits, 1e-3)  # a near-zero temperature is the argmax
    assert torch.equal(cold, logits.argmax(-1))
    one_hot = torch.full((4, 9), float("-inf"))
    one_hot[torch.arange(4), torch.tensor([0, 3, 8, 8])] = 0.0  # every mass on one (edge) token
    assert cdf_sample(one_hot).tolist() == [0, 3, 8, 8]
    half = torch.tensor([[0.0, 0.0] + [float("-inf")] * 6]).expand(50_000, 8).bfloat16()
    freq = _frequencies(cdf_sample, half)  # bf16 logits are sampled in fp32
    assert abs(freq[0] - 0.5) < 0.01 and freq[2:].sum() == 0


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_inverse_cdf_scaling_after_the_shift_draws_what_dividing_first_drew(temperature):
    """The plain formulation divides the logits by the temperature before the shift; the sampler
    scales the shifted buffer instead. For powers of two both are exact: the same samples."""
    logits = torch.randn(64, 301, generator=torch.Generator().manual_seed(4)) * 4
    logits[:, 5] = float("-inf")
    x = logits / temperature
    cdf = torch.exp(x - x.amax(-1, keepdim=True)).cumsum(-1)
    u = torch.rand(64, 1, generator=torch.Generator().manual_seed(9))
    plain = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=300).squeeze(1)
    assert torch.equal(cdf_sample(logits, temperature, torch.Generator().manual_seed(9)), plain)


def test_top1_hits_is_argmax_equal_to_the_target():
    logits = torch.randn(4, 6, 301, generator=torch.Generator().manual_seed(5))
    targets = logits.argmax(-1)
    targets[0] = (targets[0] + 1) % 301  # some misses
    assert torch.equal(top1_hits(logits, targets), logits.argmax(-1) == targets)
    tied = torch.zeros(2, 5)
    tied[1, 3] = 1.0
    assert top1_hits(tied, torch.tensor([4, 3])).tolist() == [True, True]
    assert top1_hits(tied, torch.tensor([4, 2])).tolist() == [True, False]
    half = torch.tensor([[1.0, 1.001, 0.5]]).bfloat16()  # the two first round to one bf16 value
    assert top1_hits(half, torch.tensor([1])).tolist() == [False]  # argmax says 0: no tie counted


def test_sample_kernel_is_a_checked_config_value_used_by_the_training_runtime(tmp_path):
    from electra.config import ConfigError, apply_overrides, preset
    with pytest.raises(ConfigError, match="train.sample_kernel"):
        apply_overrides(preset("tiny"), ["train.sample_kernel=multinomial"])
    assert resolve_sample_kernel("auto", torch.device("cpu")) == "cdf"
    assert resolve_sample_kernel("auto", torch.device("cuda")) == "gumbel"
    assert resolve_sample_kernel("gumbel", torch.device("cpu")) == "gumbel"
    m = tiny_model()
    ids, types, attn = batch()
    mb = masked(ids, attn)
    outs = {}
    for kernel in ("gumbel", "cdf"):
        m.sample_kernel = kernel
        outs[kernel] = m(ids, types, attn, mb, generator=torch.Generator().manual_seed(4)).corrupted
    assert not torch.equal(outs["gumbel"], outs["cdf"])  # the setting reaches the objective
    untouched = ~torch.zeros_like(ids, dtype=torch.bool).scatter(1, mb.positions, mb.weights > 0)
    assert torch.equal(outs["gumbel"][untouched], outs["cdf"][untouched])


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


# packed-bit dropout (model/dropout.py): the same distribution as torch's, its own random stream

def test_packed_dropout_keeps_at_the_quantised_rate_and_preserves_the_mean():
    torch.manual_seed(0)
    x = torch.ones(1 << 20)
    y = packed_dropout(x, 0.1)
    p = quantized_p(0.1)
    assert abs(p - 0.1) < 1 / (1 << 16)
    kept = (y != 0).float().mean().item()
    sigma = math.sqrt(p * (1 - p) / x.numel())
    assert abs(kept - (1 - p)) < 5 * sigma
    assert torch.equal(y.unique(), torch.tensor([0.0, 1 / (1 - p)]))  # kept values scaled exactly
    for q in (0.25, 0.5, 0.9):  # other rates land where asked
        assert abs((packed_dropout(x, q) != 0).float().mean().item() - (1 - q)) < 0.005


def test_packed_dropout_masks_are_independent_across_elements_and_calls():
    torch.manual_seed(1)
    a = packed_dropout(torch.ones(1 << 18), 0.5) != 0
    b = packed_dropout(torch.ones(1 << 18), 0.5) != 0
    assert abs((a & b).float().mean().item() - 0.25) < 0.005  # calls independent
    assert abs((a[:-1] & a[1:]).float().mean().item() - 0.25) < 0.005  # neighbours (same 64-bit word)
    assert abs((a[:-4] & a[4:]).float().mean().item() - 0.25) < 0.005  # across words


@pytest.mark.parametrize("p", [1e-6, 1 / (1 << 16), 0.1, 0.5, 0.9, 1 - 1 / (1 << 16)])
def test_the_float_mask_keeps_exactly_the_halves_at_or_above_the_threshold(p):
    halves = torch.arange(-(1 << 15), 1 << 15).to(torch.int16)  # every value a draw can take
    keep = halves >= round(p * (1 << 16)) - (1 << 15)
    assert abs(1 - keep.double().mean().item() - quantized_p(p)) < 1e-12  # the realised rate, exactly
    for dtype in (torch.float32, torch.float64):
        scale = torch.tensor(1 / (1 - quantized_p(p)), dtype=dtype)
        assert torch.equal(keep_from_halves(halves, p, dtype), keep.to(dtype) * scale)
    with pytest.raises(ValueError, match="float32 or float64"):
        keep_from_halves(halves, p, torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_packed_dropout_equals_the_bool_mask_kernel_on_the_same_draws(dtype):
    x = torch.randn(3, 1001, dtype=dtype, requires_grad=True)  # not a multiple of 4 elements
    g = torch.randn(3, 1001, dtype=dtype)
    torch.manual_seed(4)
    y = packed_dropout(x, 0.1)
    y.backward(g)
    torch.manual_seed(4)  # the same draws, applied the plain way: bool mask, multiply, scale
    keep = (random_halves(x.numel(), x.device) >= round(0.1 * (1 << 16)) - (1 << 15)).view(x.shape)
    scale = 1 / (1 - quantized_p(0.1))
    assert y.dtype == x.grad.dtype == dtype
    assert torch.equal(y, (x.detach() * keep).mul_(scale))
    assert torch.equal(x.grad, (g * keep).mul_(scale))


def test_a_drop_rate_that_rounds_to_one_keeps_one_value_in_65536_not_a_division_by_zero():
    p = 1 - 1 / (1 << 18)  # valid (< 1), but p * 65536 rounds to 65536
    assert quantized_p(p) == 1 - 1 / (1 << 16)
    halves = torch.arange(-(1 << 15), 1 << 15).to(torch.int16)
    keep = keep_from_halves(halves, p)
    assert torch.isfinite(keep).all() and int((keep != 0).sum()) == 1 and keep.max().item() == 1 << 16
    torch.manual_seed(5)
    y = packed_dropout(torch.ones(1 << 16), p)
    assert torch.isfinite(y).all()


def test_packed_dropout_backward_uses_the_forward_mask():
    torch.manual_seed(2)
    x = torch.randn(7, 33, requires_grad=True)  # not a multiple of 4 elements
    y = packed_dropout(x, 0.3)
    y.backward(torch.ones_like(y))
    scale = 1 / (1 - quantized_p(0.3))
    assert torch.equal(x.grad, (y != 0).float() * scale)
    assert torch.allclose(y, x.detach() * (y != 0) * scale)


def test_bf16_attention_on_cpu_takes_the_math_path_and_matches_fp32(monkeypatch):
    import electra.model.layers as layers
    m = tiny_model().eval()
    att = m.discriminator.layers[0].attention
    x = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    mask = mask[:, None, None, :]
    ref = att(x, mask)  # fp32: torch's fused kernel
    q, k, v = (torch.randn(2, 4, 9, 8) for _ in range(3))
    assert torch.allclose(layers.attention_math(q, k, v, mask, 0.0),
                          F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6)
    fused = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", lambda *a, **kw: fused.append(1) or real(*a, **kw))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = att(x, mask)
    assert not fused  # the fused kernel is 2.6x slower in bf16
    assert (got.float() - ref).abs().max() <= 0.02 * ref.abs().max()  # bf16 rounding, not another result
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    assert torch.allclose(layers.attention_math(qb, kb, vb, mask, 0.0).float(),
                          real(qb, kb, vb, attn_mask=mask).float(), atol=2e-2)
    att(x, mask)
    assert fused == [1]  # fp32 keeps the fused kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masking_scores_gives_masked_fills_outputs_and_gradients_bit_for_bit(dtype):
    from electra.model.layers import attention_math

    def masked_fill_attention(q, k, v, mask):  # the plain path the bias replaced
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
        return scores.masked_fill(~mask, torch.finfo(dtype).min).softmax(-1) @ v

    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(3, 4, 17, 8, generator=g).mul(4).to(dtype).requires_grad_() for _ in range(3))
    keys = torch.rand(3, 1, 1, 17, generator=g) > 0.4  # padded keys, as ELECTRA's mask
    keys[..., 0] = True
    pairs = keys & keys.transpose(-1, -2)  # DeBERTa's: padded queries mask every key
    assert not keys.all() and not pairs[0, 0].any(-1).all()
    grad_out = torch.randn(3, 4, 17, 8, generator=g).to(dtype)
    no_keys = keys.clone()
    no_keys[1] = False  # an empty row: its queries attend nowhere
    for mask in (keys, pairs, no_keys):
        outs = []
        for fn in (masked_fill_attention, lambda *a: attention_math(*a, 0.0)):
            y = fn(q, k, v, mask)
            outs.append((y, *torch.autograd.grad(y, (q, k, v), grad_out)))
        for plain, fast in zip(*outs, strict=True):
            assert torch.equal(plain, fast)
        # a query that may attend nowhere averages v, as the fill gives, in fp16 too (s + min overflows)
        empty = (~mask.any(-1)).expand(3, 1, 17).squeeze(1)  # [B, T]
        uniform = v.float().mean(-2, keepdim=True).expand_as(v).transpose(1, 2)
        assert mask is keys or empty.any()
        assert torch.allclose(outs[1][0].float().transpose(1, 2)[empty], uniform[empty], atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_top1_hits_in_half_precision_is_argmax_with_its_ties_broken_by_the_first_index(dtype):
    g = torch.Generator().manual_seed(8)
    logits = torch.randint(0, 4, (6, 9, 50), generator=g).to(dtype)  # most rows tie at their maximum
    targets = torch.randint(0, 50, (6, 9), generator=g)
    first = logits.argmax(-1)
    targets[::2] = first[::2]  # hits
    targets[1, :4] = (logits[1] == logits[1].amax(-1, keepdim=True)).float().flip(-1).argmax(-1)[:4]
    targets[1, :4] = 49 - targets[1, :4]  # the last index at the maximum: a tie argmax does not pick
    expected = first == targets
    assert expected.any() and not expected.all()
    assert ((logits.gather(-1, targets[..., None]).squeeze(-1) == logits.amax(-1)) & ~expected).any()
    assert torch.equal(top1_hits(logits, targets), expected)
    assert not top1_hits(logits[:, :0].reshape(0, 50), targets[:, :0].reshape(0)).numel()


def test_packed_dropout_is_the_identity_in_eval_and_at_p_zero():
    x = torch.randn(5, 8)
    state = torch.get_rng_state()
    assert packed_dropout(x, 0.0) is x and packed_dropout(x, 0.5, training=False) is x
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn


def test_packed_attention_dropout_is_the_textbook_math_with_the_same_mask():
    m = tiny_model("model.attention_dropout=0.2").train()
    use_dropout_kernel(m, "packed")
    att = m.discriminator.layers[0].attention
    assert att.dropout_kernel == "packed"
    x = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    torch.manual_seed(9)
    got = att(x, mask[:, None, None, :])
    H, nh = 32, att.num_heads
    q, k, v = F.linear(x, att.qkv.weight, att.qkv.bias).split(H, dim=-1)
    split = lambda t: t.view(2, 9, nh, H // nh).transpose(1, 2)  # noqa: E731
    probs = (split(q) @ split(k).transpose(-1, -2) / math.sqrt(H // nh)).masked_fill(
        ~mask[:, None, None, :], float("-inf")).softmax(-1)
    torch.manual_seed(9)
    keep = scaled_keep_mask(probs.shape, 0.2, probs.device)
    y = ((probs * keep) @ split(v)).transpose(1, 2).reshape(2, 9, H)
    assert torch.allclose(got, F.linear(y, att.out.weight, att.out.bias), atol=1e-6)


def test_packed_kernel_changes_nothing_without_dropout_or_in_eval():
    ids, types, attn = batch()
    outs = []
    for kernel in ("torch", "packed"):
        m = tiny_model("model.dropout=0.1", "model.attention_dropout=0.1")
        changed = use_dropout_kernel(m, kernel)
        assert changed == 0 if kernel == "torch" else changed > 0
        swapped = any(isinstance(x, PackedDropout) for x in m.modules())
        assert swapped == (kernel == "packed") and not any(type(x) is torch.nn.Dropout and swapped
                                                           for x in m.modules())
        outs.append(m.eval().discriminator_logits(ids, types, attn))
    assert torch.equal(outs[0], outs[1])
    m = tiny_model()  # the tiny preset has no dropout: nothing to swap, the golden run is unchanged
    assert not any(isinstance(x, PackedDropout) for x in m.modules())
    use_dropout_kernel(m, "packed")
    assert not any(isinstance(x, PackedDropout) for x in m.modules())


def test_packed_dropout_trains_like_torch_dropout():
    """Same model, same data, 30 steps: the loss curves agree within noise (different masks)."""
    def losses(kernel: str) -> list[float]:
        m = tiny_model("model.dropout=0.1", "model.attention_dropout=0.1").train()
        use_dropout_kernel(m, kernel)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        ids, types, attn = batch(B=8, T=32)
        torch.manual_seed(4)
        out = []
        for _ in range(30):
            loss = m(ids, types, attn, masked(ids, attn), generator=torch.Generator().manual_seed(1)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out
    a, b = losses("torch"), losses("packed")
    assert a[-1] < 0.8 * a[0] and b[-1] < 0.8 * b[0]
    assert abs(sum(a[-10:]) - sum(b[-10:])) / sum(a[-10:]) < 0.1


def test_dropout_kernel_and_allocator_are_checked_config_values():
    from electra.config import ConfigError, apply_overrides, preset
    with pytest.raises(ConfigError, match="train.dropout_kernel"):
        apply_overrides(preset("tiny"), ["train.dropout_kernel=fast"])
    with pytest.raises(ConfigError, match="train.allocator"):
        apply_overrides(preset("tiny"), ["train.allocator=jemalloc"])
    assert resolve_dropout_kernel("auto", torch.device("cpu")) == "packed"
    assert resolve_dropout_kernel("auto", torch.device("cuda")) == "torch"


def test_fused_mlm_loss_equals_autograd_cross_entropy_in_value_and_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 301) * 4).requires_grad_()
    targets = torch.randint(0, 301, (3, 7))
    weights = (torch.rand(3, 7) > 0.3).float()  # zero-weight picks (padding) included
    fused = mlm_loss(logits, targets, weights)
    (g_fused,) = torch.autograd.grad(fused * 2.5, logits)
    plain_ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    plain = (plain_ce * weights.flatten()).sum() / (weights.sum() + 1e-6)
    (g_plain,) = torch.autograd.grad(plain * 2.5, logits)
    assert torch.allclose(fused, plain, rtol=1e-6, atol=1e-6)
    assert torch.allclose(g_fused, g_plain, rtol=1e-5, atol=1e-7)
    assert torch.count_nonzero(g_fused[weights == 0]) == 0  # ignored picks get no gradient


def test_fused_cpu_adamw_updates_like_the_foreach_path():
    from electra.config_sections import OptimConfig
    from electra.train.optim import build_optimizer, param_groups

    fused_model, plain_model = tiny_model(), tiny_model()
    plain_model.load_state_dict(fused_model.state_dict())
    start = {n: p.detach().clone() for n, p in fused_model.named_parameters()}
    cfg = OptimConfig(lr=1e-3, weight_decay=0.01)
    fused = build_optimizer(fused_model, cfg)
    plain = torch.optim.AdamW(param_groups(plain_model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                              eps=cfg.eps, foreach=True)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=g) * 1e-2
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters(), strict=True):
        assert not torch.equal(a, start[name]), name  # every tensor was updated (5 steps of lr 1e-3)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name


def test_a_checkpoint_from_the_foreach_optimizer_resumes_on_the_fused_kernel():
    from electra.config_sections import OptimConfig
    from electra.train.optim import build_optimizer, load_optimizer_state, param_groups

    cfg = OptimConfig(lr=1e-3, weight_decay=0.01)
    old_model, new_model = tiny_model(), tiny_model()
    new_model.load_state_dict(old_model.state_dict())
    old = torch.optim.AdamW(param_groups(old_model, cfg.weight_decay), lr=cfg.lr, eps=cfg.eps)  # foreach, as saved before
    for p in old_model.parameters():
        p.grad = torch.full_like(p, 1e-2)
    old.step()
    saved = copy.deepcopy(old.state_dict())  # as read back from a checkpoint: no tensors shared with `old`
    assert all(g["fused"] is None for g in saved["param_groups"])
    new = build_optimizer(new_model, cfg)
    new_model.load_state_dict(old_model.state_dict())
    load_optimizer_state(new, saved)
    assert all(g["fused"] is True and not g["foreach"] for g in new.param_groups)
    for opt, model in ((old, old_model), (new, new_model)):  # the same next update on either kernel
        for p in model.parameters():
            p.grad = torch.full_like(p, -1e-2)
        opt.step()
    for a, b in zip(old_model.parameters(), new_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
