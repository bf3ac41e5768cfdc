"""The paper's objectives (`objective.kind`), each tested for the property that defines it, their
FLOP counts, and the compute budgets that make them comparable."""

import json

import pytest
import torch
from transformers import ElectraForMaskedLM, ElectraForPreTraining

from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import ConfigError
from electra.objective import (
    AllTokensMLMModel,
    Electra15Model,
    MaskedLMModel,
    ReplaceMLMModel,
    TokenIds,
    build_objective,
)
from electra.objective.losses import copy_distribution, copy_log_probs
from electra.objective.masking import picked_tokens
from electra.train import checkpoint as ckpt
from electra.train.flops import electra_train_flops, encoder_train_flops
from tests.conftest import TINY_RUN

KINDS = ("electra", "electra15", "mlm", "replace_mlm", "all_tokens_mlm")
IDS = TokenIds(mask_id=4, special_ids=(0, 1, 2, 3, 4))


def small(kind, *extra):
    return apply_overrides(preset("tiny"), [*TINY_RUN, "tokenizer.vocab_size=100", "model.vocab_size=100",
                                            f"objective.kind={kind}", *extra])


def batch(seed=0, B=4, T=32):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    return ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool)


def model_for(kind, *extra):
    torch.manual_seed(0)
    return build_objective(small(kind, *extra), IDS).eval()


def test_each_kind_builds_its_own_module():
    types = {k: type(model_for(k)) for k in KINDS}
    assert types["electra15"] is Electra15Model and types["mlm"] is MaskedLMModel
    assert types["replace_mlm"] is ReplaceMLMModel and types["all_tokens_mlm"] is AllTokensMLMModel


def test_electra15_puts_no_rtd_weight_on_unmasked_positions():
    m = model_for("electra15")
    ids, tt, am = batch()
    masked = m.mask(ids, am, torch.Generator().manual_seed(1))
    picked = picked_tokens(masked, ids.shape)
    assert 0 < picked.sum() < am.sum()

    def run_with(shift):
        handle = m.discriminator_head.register_forward_hook(lambda mod, args, out: out + shift)
        try:
            return m(ids, tt, am, masked=masked, generator=torch.Generator().manual_seed(2))
        finally:
            handle.remove()

    base = run_with(torch.zeros(ids.shape))
    moved = run_with(torch.where(picked, 0.0, 100.0 * torch.randn(ids.shape)))
    assert torch.equal(base.loss, moved.loss) and torch.equal(base.rtd_loss, moved.rtd_loss)
    changed = run_with(torch.where(picked, 3.0, 0.0))  # the masked positions do count
    assert not torch.equal(base.rtd_loss, changed.rtd_loss)
    assert base.disc_count == picked.sum()  # its statistics count the masked positions only
    full = model_for("electra")  # ELECTRA (same weights) scores every token
    assert full(ids, tt, am, masked=masked).disc_count == am.sum()


def test_all_tokens_mlm_gives_a_copy_gated_distribution_at_every_position():
    m = model_for("all_tokens_mlm")
    ids, tt, am = batch()
    with torch.no_grad():
        p = m.token_distribution(ids, tt, am)  # [B, T, V]
        vocab, gate = m.token_logits(ids, tt, am)
    assert p.shape == (*ids.shape, 100)
    torch.testing.assert_close(p.sum(-1), torch.ones(ids.shape))
    d = torch.sigmoid(gate)[..., None]
    expected = d * torch.nn.functional.one_hot(ids, 100) + (1 - d) * torch.softmax(vocab, -1)
    torch.testing.assert_close(p, expected)
    # the loss reads the same distribution: log p(target), copied or not
    targets = torch.where(torch.rand(ids.shape) < 0.5, ids, (ids + 1) % 100)
    torch.testing.assert_close(copy_log_probs(vocab, gate, ids, targets),
                               p.gather(-1, targets[..., None]).squeeze(-1).log())
    # a gate fully open copies the input, fully closed gives the softmax
    open_ = copy_distribution(vocab, torch.full(ids.shape, 50.0), ids)
    assert torch.equal(open_.argmax(-1), ids)
    torch.testing.assert_close(copy_distribution(vocab, torch.full(ids.shape, -50.0), ids),
                               torch.softmax(vocab, -1))
    out = m(ids, tt, am, generator=torch.Generator().manual_seed(0))
    assert out.loss > out.mlm_loss  # the generator's MLM plus every token's identity


def test_replace_mlm_reads_generator_samples_and_scores_the_masked_positions_only():
    m = model_for("replace_mlm", "objective.mask_prob=0.5")
    ids, tt, am = batch()
    m.generator_head.bias.data[4] = 1e4  # a generator that would pick [MASK]: never written
    masked = m.mask(ids, am, torch.Generator().manual_seed(1))
    picked = picked_tokens(masked, ids.shape)
    seen = []
    handle = m.discriminator.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    out = m(ids, tt, am, masked=masked, generator=torch.Generator().manual_seed(2))
    handle.remove()
    d_input = seen[-1]
    assert torch.equal(d_input, out.corrupted)
    assert not (d_input == 4).any() and not torch.isin(d_input[picked], torch.tensor(IDS.special_ids)).any()
    assert torch.equal(d_input[~picked], ids[~picked])  # unmasked positions keep the original
    # the discriminator's loss ignores what it would predict at unmasked positions
    h = m.discriminator(d_input, tt, am)
    noise = torch.where(picked[..., None], 0.0, 100.0 * torch.randn(h.shape))
    handle = m.discriminator.register_forward_hook(lambda mod, args, o: o + noise)
    again = m(ids, tt, am, masked=masked, generator=torch.Generator().manual_seed(2))
    handle.remove()
    torch.testing.assert_close(again.loss, out.loss)


def test_mlm_has_no_generator_and_masks_80_10_10():
    m = model_for("mlm")
    assert m.generator is None and m.generator_encoder is m.discriminator
    assert all(not n.startswith("generator.") for n, _ in m.named_parameters())
    spec = m.mask_spec
    assert (spec.mask_token_prob, spec.random_token_prob) == (0.8, 0.1)
    ids = torch.randint(5, 100, (64, 64), generator=torch.Generator().manual_seed(0))
    am = torch.ones_like(ids, dtype=torch.bool)
    masked = m.mask(ids, am, torch.Generator().manual_seed(1))
    shown = masked.input_ids.gather(1, masked.positions)[masked.weights > 0]
    target = masked.targets[masked.weights > 0]
    n = shown.numel()
    assert abs((shown == 4).sum() / n - 0.8) < 0.03
    assert abs((shown == target).sum() / n - 0.1) < 0.03  # kept (a random id rarely hits it)
    out = m(ids[:4, :32], torch.zeros_like(ids[:4, :32]), am[:4, :32])
    assert out.rtd_loss == 0 and torch.equal(out.loss, out.mlm_loss)


@pytest.mark.parametrize(("extra", "message"), [
    (["objective.kind=mlm", "objective.sharing=none"], "sharing"),
    (["objective.kind=mlm", "objective.generator_layers=1"], "generator_layers"),
    (["objective.kind=replace_mlm", "objective.disc_mlm_steps=5"], "disc_mlm_steps"),
    (["objective.kind=bert"], "objective.kind"),
])
def test_invalid_kind_combinations_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(preset("tiny"), extra)


def tiny_flops(kind):
    return electra_train_flops(apply_overrides(preset("tiny"), [f"objective.kind={kind}"]), 128)


def test_flops_per_token_by_kind_match_hand_counts():
    # tiny: D 4 x 128 (FFN 512, E 128 = H: no projection), G 4 x 64 (FFN 256), V 8192, T 128,
    # P = int(0.155 * 128) = 19 picked positions per row
    d_enc = 6 * 4 * (4 * 128 * 128 + 2 * 128 * 512) + 12 * 4 * 128 * 128
    g_enc = 6 * (4 * (4 * 64 * 64 + 2 * 64 * 256) + 128 * 64) + 12 * 4 * 64 * 128
    frac = 19 / 128
    g_head = 6 * (64 * 128 + 128 * 8192) * frac
    d_vocab = 6 * (128 * 128 + 128 * 8192)
    rtd_head = 6 * (128 * 128 + 128)
    assert tiny_flops("electra") == pytest.approx(g_enc + g_head + d_enc + rtd_head)
    assert tiny_flops("electra15") == tiny_flops("electra")  # same passes, fewer loss terms
    assert tiny_flops("mlm") == pytest.approx(d_enc + d_vocab * frac)
    assert tiny_flops("replace_mlm") == pytest.approx(g_enc + g_head + d_enc + d_vocab * frac)
    assert tiny_flops("all_tokens_mlm") == pytest.approx(g_enc + g_head + d_enc + d_vocab + rtd_head)
    assert encoder_train_flops(preset("tiny").model, 128) == d_enc


def test_electra_small_is_about_70m_flops_per_token():
    assert electra_train_flops(preset("small"), 128) == pytest.approx(70e6, rel=0.01)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_three_steps_and_exports_an_encoder_hf_loads(kind, tiny_data, tmp_path):
    c = apply_overrides(preset("tiny"), [*TINY_RUN, f"objective.kind={kind}", "train.steps=3"])
    res = run(c, out=tmp_path / kind, data=tiny_data)
    assert res.train.step == 3
    records = [json.loads(x) for x in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == 3 and all(r["loss"] == r["loss"] for r in train)
    valid = [r for r in records if r["kind"] == "valid"][-1]
    assert valid["mlm_loss"] > 0 and valid["nocontext_mlm_loss"] > 0
    assert (valid["rtd_loss"] == valid["rtd_loss"]) == (kind in ("electra", "electra15"))  # else NaN
    disc = ElectraForPreTraining.from_pretrained(res.exports["discriminator"])
    gen = ElectraForMaskedLM.from_pretrained(res.exports["generator"])
    assert disc.config.hidden_size == 32
    assert gen.config.hidden_size == (32 if kind == "mlm" else 16)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    assert disc(ids).logits.shape == (1, 5) and gen(ids).logits.shape == (1, 5, 400)


def test_a_flop_budget_stops_at_the_step_that_spends_it(tiny_data, tmp_path):
    base = apply_overrides(preset("tiny"), [*TINY_RUN, "objective.kind=mlm", "model.vocab_size=400"])
    per_step = electra_train_flops(base, 32) * 8 * 32  # batch 8 x seq 32 tokens (vocab: the tokenizer's)
    c = apply_overrides(base, [f"train.budget_flops={2.5 * per_step}", "train.steps=100"])
    res = run(c, out=tmp_path / "budget", data=tiny_data)
    assert res.train.step == 3  # steps 1, 2 spend 2 x per_step < budget; step 3 passes it
    assert (res.exports["discriminator"] / "model.safetensors").is_file()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "budget" / "checkpoints")][-1] == 3
    # the schedule ends at the budget's step (3), not at train.steps=100: the LR reaches 0 there
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()
           if json.loads(line).get("kind", "train") == "train" and "lr" in json.loads(line)]
    assert lrs and lrs[-1] == 0.0


def test_a_time_budget_stops_the_run_with_a_checkpoint(tiny_data, tmp_path):
    c = apply_overrides(preset("tiny"), [*TINY_RUN, "train.budget_minutes=1e-9", "train.steps=100"])
    res = run(c, out=tmp_path / "minutes", data=tiny_data)
    assert res.train.step == 1 and not res.train.preempted
    assert (res.exports["generator"] / "model.safetensors").is_file()


@pytest.mark.parametrize("extra,step", [([], 0), (["objective.disc_mlm_steps=3"], 0), (["objective.disc_mlm_steps=3"], 5),
                                        (["objective.kind=all_tokens_mlm"], 0),
                                        (["model.family=albert", "model.share_layers=all"], 0)])
def test_counted_flops_equal_what_torch_counts_in_a_training_step(extra, step):
    """The accounting against torch's own FLOP counter on one forward + backward (attention on its
    plain math path, which the counter sees): equal compute means equal counted FLOPs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from electra.objective import TokenIds, build_objective
    from electra.train.flops import flop_rate
    cfg = apply_overrides(preset("tiny"), [*TINY_RUN, "model.vocab_size=400", *extra])
    torch.manual_seed(0)
    m = build_objective(cfg, TokenIds.standard()).train()
    m.set_step(step)
    ids = torch.randint(5, 400, (8, 32))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        m(ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool)).loss.backward()
    assert flop_rate(cfg, 32).at(step) == pytest.approx(counter.get_total_flops() / ids.numel(), rel=1e-9)
