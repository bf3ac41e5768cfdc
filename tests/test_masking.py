import torch

from electra.objective.masking import MaskSpec, mask_tokens

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIAL = torch.tensor([0, 1, 2, 3, 4])


def make_rows(B=64, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (B, T), generator=g)
    lengths = torch.randint(6, T + 1, (B,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        ids[i, 0], ids[i, n // 2], ids[i, n - 1] = CLS, SEP, SEP
        ids[i, n:] = PAD
    return ids, ids != PAD


def run(ids, attn, **kw):
    args = dict(mask_id=MASK, vocab_size=100, mask_prob=0.15, max_predictions=int(0.155 * ids.shape[1]))
    args.update(kw)
    return mask_tokens(ids, attn, SPECIAL, MaskSpec(**args), generator=torch.Generator().manual_seed(1))


def test_exact_count_and_never_special_or_pad():
    ids, attn = make_rows()
    m = run(ids, attn)
    P = m.positions.shape[1]
    expect = torch.round(attn.sum(1).float() * 0.15).long().clamp(1, P)
    assert torch.equal(m.weights.sum(1).long(), expect)
    picked = m.positions[m.weights.bool()]
    rows = torch.arange(ids.shape[0])[:, None].expand_as(m.positions)[m.weights.bool()]
    orig = ids[rows, picked]
    assert not torch.isin(orig, SPECIAL).any()
    assert torch.equal(m.targets, torch.gather(ids, 1, m.positions))
    # filler slots and unpicked positions are untouched
    changed = m.input_ids != ids
    assert changed.sum() <= m.weights.sum()
    for b in range(ids.shape[0]):
        pos = set(m.positions[b][m.weights[b].bool()].tolist())
        assert set(changed[b].nonzero().flatten().tolist()) <= pos
        assert len(pos) == int(m.weights[b].sum())  # without replacement


def test_g_el_85_15_split_and_bert_80_10_10():
    ids, attn = make_rows(B=2000, T=64)
    m = run(ids, attn)
    new = torch.gather(m.input_ids, 1, m.positions)[m.weights.bool()]
    tgt = m.targets[m.weights.bool()]
    frac_mask = (new == MASK).float().mean().item()
    assert abs(frac_mask - 0.85) < 0.02 and torch.equal(new[new != MASK], tgt[new != MASK])
    m = run(ids, attn, mask_token_prob=0.8, random_token_prob=0.1)
    new = torch.gather(m.input_ids, 1, m.positions)[m.weights.bool()]
    tgt = m.targets[m.weights.bool()]
    assert abs((new == MASK).float().mean().item() - 0.8) < 0.02
    kept = (new == tgt).float().mean().item()
    assert 0.1 < kept < 0.12  # 10% kept + random draws that hit the original (~0.1%)


def test_deterministic_with_generator_and_dynamic_without():
    ids, attn = make_rows()
    a, b = run(ids, attn), run(ids, attn)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.positions, b.positions)
    args = dict(mask_id=MASK, vocab_size=100, mask_prob=0.15, max_predictions=6)
    c = mask_tokens(ids, attn, SPECIAL, MaskSpec(**args))
    d = mask_tokens(ids, attn, SPECIAL, MaskSpec(**args))
    assert not torch.equal(c.input_ids, d.input_ids)  # a fresh mask every time


def test_cap_at_max_predictions():
    ids, attn = make_rows(T=40)
    m = run(ids, attn, max_predictions=3)
    assert m.positions.shape[1] == 3 and m.weights.sum(1).max() <= 3
