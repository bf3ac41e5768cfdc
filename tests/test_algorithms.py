"""Training algorithms (`objective.algorithm`: two_stage, adversarial) and loss weightings
(`objective.loss_weighting`: uncertainty, schedule), each tested for the property that defines
it, their FLOP counts, resume across two-stage's switch, and the built-in grids that run them."""

import json
import math

import pytest
import torch

from electra import experiment, experiment_report
from electra.api import load_run_config
from electra.api import pretrain as run
from electra.config import apply_overrides, preset
from electra.errors import ConfigError
from electra.objective import TokenIds, build_objective
from electra.objective.adversarial import AdversarialElectraModel, reinforce_loss
from electra.objective.losses import mlm_loss, rtd_loss
from electra.objective.masking import MaskSpec, mask_tokens
from electra.objective.two_stage import TwoStageElectraModel
from electra.objective.weighting import disc_weight_at
from electra.train import checkpoint as ckpt
from electra.train.flops import electra_train_flops, flop_rate, resolve_two_stage
from electra.train.optim import build_optimizer, build_scheduler, optimizer_step
from tests.conftest import TINY_RUN

IDS = TokenIds(mask_id=4, special_ids=(0, 1, 2, 3, 4))
TWO_STAGE = ["objective.algorithm=two_stage", "objective.generator_size=1.0", "objective.sharing=none"]


def small(*extra):
    return apply_overrides(preset("tiny"), [*TINY_RUN, "tokenizer.vocab_size=100", "model.vocab_size=100",
                                            *extra])


def model_for(*extra):
    torch.manual_seed(0)
    return build_objective(small(*extra), IDS)


def batch(seed=0, B=4, T=32):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    return ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool)


def fixed_mask(ids, attn, seed=0):
    spec = MaskSpec(mask_id=4, vocab_size=100, mask_prob=0.15, max_predictions=5, mask_token_prob=0.85)
    return mask_tokens(ids, attn, torch.tensor(IDS.special_ids), spec, torch.Generator().manual_seed(seed))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def records(run_dir, kind="train"):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["kind"] == kind}


# ---- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["objective.algorithm=two_stage", "objective.sharing=none"],
     "must be the same size: set objective.generator_size=1.0"),
    (["objective.algorithm=two_stage", "objective.generator_size=1.0"], "set objective.sharing=none"),
    ([*TWO_STAGE, "objective.two_stage_steps=6"], "no discriminator phase before train.steps=6"),
    (["objective.algorithm=adversarial", "objective.kind=electra15"], "use objective.kind=electra"),
    (["objective.algorithm=adversarial", "objective.sharing=all", "objective.generator_size=1.0"],
     "use objective.sharing=none"),
    (["objective.two_stage_steps=3"], "set objective.algorithm=two_stage"),
    (["objective.algorithm=adversarial", "objective.loss_weighting=uncertainty"],
     "use objective.loss_weighting=fixed"),
    (["objective.loss_weighting=schedule"], "set it >= 1"),
    (["objective.loss_weighting=uncertainty", "objective.kind=mlm"], "use objective.kind=electra or electra15"),
])
def test_invalid_algorithm_combinations_are_one_line_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message) as e:
        small(*extra)
    assert "\n" not in str(e.value)


# ---- two-stage -----------------------------------------------------------------------------

def test_two_stage_trains_the_generator_alone_then_copies_it_into_a_discriminator_and_freezes_it():
    m = model_for(*TWO_STAGE, "objective.two_stage_steps=2").train()
    assert isinstance(m, TwoStageElectraModel)
    c = small(*TWO_STAGE, "objective.two_stage_steps=2")
    opt = build_optimizer(m, c.optim)
    sched = build_scheduler(opt, c.optim, 10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    disc0 = snapshot(m.discriminator)
    gen0 = snapshot(m.generator)
    for step in range(2):  # phase 1: the generator's MLM alone
        m.set_step(step)
        out = m(*batch(step))
        assert torch.equal(out.loss, out.mlm_loss) and out.replaced_count == 0
        out.loss.backward()
        assert all(p.grad is None for p in m.discriminator.parameters())
        optimizer_step(m, opt, sched, scaler, 1.0)
    assert same(snapshot(m.discriminator), disc0) and not same(snapshot(m.generator), gen0)
    m.set_step(2)  # the switch: D starts as a copy of G
    gen_at_switch = snapshot(m.generator)
    assert same(snapshot(m.discriminator), gen_at_switch)
    moments = {k: v.clone() for k, v in opt.state[m.generator.layers[0].ffn_in.weight].items()}
    for step in range(2, 5):  # phase 2: RTD trains D; G gets no gradient, no update, no decay
        m.set_step(step)
        out = m(*batch(step))
        assert out.replaced_count > 0
        assert torch.allclose(out.loss, m.objective.disc_weight * out.rtd_loss)
        out.loss.backward()
        assert all(p.grad is None for p in m.generator.parameters())
        assert all(p.grad is None for p in m.generator_head.parameters())
        optimizer_step(m, opt, sched, scaler, 1.0)
    assert same(snapshot(m.generator), gen_at_switch)
    state = opt.state[m.generator.layers[0].ffn_in.weight]
    assert all(torch.equal(state[k], moments[k]) for k in moments)  # its Adam moments are left alone
    assert not same(snapshot(m.discriminator), gen_at_switch)


def test_two_stage_resumes_bit_for_bit_across_the_switch(tiny_data, tmp_path):
    # switch at step 3 (0 = half of 6 steps); checkpoints at 2 (phase 1), 3 (saved before the
    # copy, which resuming redoes) and 5 (phase 2); dropout on, so RNG restore matters
    base = [*TINY_RUN, *TWO_STAGE, "model.dropout=0.1"]
    straight = tmp_path / "straight"
    run(apply_overrides(preset("tiny"), base), out=straight, data=tiny_data)
    assert json.loads((straight / "config.json").read_text())["objective"]["two_stage_steps"] == 3
    sliced = tmp_path / "sliced"
    run(apply_overrides(preset("tiny"), [*base, "train.stop_at=2"]), out=sliced, data=tiny_data)
    for stop in (3, 5, 6):
        run(load_run_config(sliced, [f"train.stop_at={stop}"]), out=sliced, resume=True)
    a, b = records(straight), records(sliced)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in a:
        for k in ("loss", "mlm_loss", "rtd_loss", "gen_acc", "disc_acc", "tokens", "flops"):
            assert a[step][k] == b[step][k], (step, k)
    wa = ckpt.load_weights(ckpt.resolve_checkpoint(straight))
    wb = ckpt.load_weights(ckpt.resolve_checkpoint(sliced))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the generator froze at the switch: its weights at step 6 are those of the step-3 checkpoint
    w3 = ckpt.load_weights(straight / "checkpoints" / "step_00000003")
    gen = [k for k in wa if k.startswith(("generator.", "generator_head."))]
    assert gen and all(torch.equal(wa[k], w3[k]) for k in gen)
    assert a[1]["rtd_loss"] == 0 and a[4]["rtd_loss"] > 0  # RTD starts at the switch
    rate = flop_rate(load_run_config(straight, []), 32)
    assert a[6]["flops"] == pytest.approx(a[6]["tokens"] * rate.mean(6))


def test_an_unresolved_two_stage_switch_builds_for_planning_but_does_not_train():
    m = model_for(*TWO_STAGE)  # two_stage_steps=0: resolved by electra pretrain against the data
    assert sum(p.numel() for p in m.parameters()) > 0
    with pytest.raises(ConfigError, match="resolved against the data by electra pretrain"):
        m.set_step(0)


def test_two_stage_half_of_a_flop_budget_is_its_switch():
    c = apply_overrides(preset("tiny"), TWO_STAGE)
    first, second = 6453504.0, 7755264.0  # see the FLOPs test
    budget = 10 * (first + second) * 32 * 128
    assert resolve_two_stage(c).objective.two_stage_steps == 400  # no budget: half of 800 steps
    resolved = resolve_two_stage(apply_overrides(c, [f"train.budget_flops={budget}"]))
    assert resolved.objective.two_stage_steps == 10
    with pytest.raises(ConfigError, match="spent before two-stage.s switch at step 25"):
        flop_rate(apply_overrides(c, [f"train.budget_flops={budget}", "objective.two_stage_steps=25"]), 128)


# ---- adversarial -------------------------------------------------------------------------------

def test_reinforce_gradient_is_minus_advantage_times_the_score_function():
    logits = torch.tensor([[[0.0, math.log(2.0), 0.0]]], requires_grad=True)  # p = (1/4, 1/2, 1/4)
    loss = reinforce_loss(logits, torch.tensor([[1]]), torch.tensor([[2.0]]), torch.ones(1, 1))
    loss.backward()
    # d/dz of -A log p_1 = -A (onehot(1) - p) = -2 * (-1/4, 1/2, -1/4)
    assert torch.allclose(logits.grad, torch.tensor([[[0.5, -1.0, 0.5]]]), atol=1e-6)
    assert loss.item() == pytest.approx(2.0 * math.log(2.0), rel=1e-5)


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_raising_a_samples_reward_raises_its_probability_after_a_step(advantage):
    logits = torch.zeros(1, 1, 5, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=0.5)
    reinforce_loss(logits, torch.tensor([[3]]), torch.tensor([[advantage]]), torch.ones(1, 1)).backward()
    opt.step()
    p = torch.softmax(logits.detach(), -1)[0, 0, 3].item()
    assert (p > 0.2) == (advantage > 0) and p != pytest.approx(0.2)


def test_adversarial_generator_moves_only_through_reinforce_and_the_discriminator_only_through_rtd():
    m = model_for("objective.algorithm=adversarial", "objective.sharing=none", "objective.temperature=2.0")
    assert isinstance(m, AdversarialElectraModel)
    m.eval()  # no dropout: the terms below can be recomputed exactly
    ids, types, attn = batch()
    mk = fixed_mask(ids, attn)
    out = m(ids, types, attn, mk, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    # the reward is D's per-token loss at each picked position, and the baseline (eval, no
    # history) is this batch's mean reward
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.disc_logits, out.replaced.float(),
                                                               reduction="none")
    assert torch.allclose(out.reward, bce.gather(1, mk.positions))
    w = mk.weights
    assert torch.allclose(out.baseline, (out.reward * w).sum() / w.sum(), atol=1e-6)
    g_logits = m.generator_logits(mk.input_ids, types, attn, mk.positions)
    # REINFORCE by hand: -sum w (r - b) log softmax(z / T)[sampled] / sum w
    log_p = torch.log_softmax(g_logits / 2.0, -1).gather(-1, out.sampled[..., None])[..., 0]
    surrogate = -((out.reward - out.baseline) * log_p * w).sum() / (w.sum() + 1e-6)
    gen_params = [*m.generator.parameters(), *m.generator_head.parameters()]
    expected = torch.autograd.grad(m.objective.mlm_weight * surrogate, gen_params, allow_unused=True)
    for p, g in zip(gen_params, expected, strict=True):
        assert (p.grad is None) == (g is None) or torch.count_nonzero(p.grad) == 0
        if g is not None:
            assert torch.allclose(p.grad, g, atol=1e-7)
    assert m.generator_head.bias.grad.abs().sum() > 0
    d_logits = m.discriminator_logits(out.corrupted, types, attn)
    rtd = rtd_loss(d_logits, out.replaced, attn)
    d_params = [*m.discriminator.parameters(), *m.discriminator_head.parameters()]
    for p, g in zip(d_params, torch.autograd.grad(m.objective.disc_weight * rtd, d_params), strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6)
    # the MLM loss is still reported but trains nothing
    assert torch.allclose(out.mlm_loss, mlm_loss(g_logits, mk.targets, w))


def test_reward_baseline_is_a_running_mean_of_earlier_batches_saved_with_the_model():
    m = model_for("objective.algorithm=adversarial", "objective.reinforce_baseline_decay=0.5").train()
    d = 0.5
    means = []
    for seed in range(3):
        out = m(*batch(seed))
        w = out.masked.weights
        means.append(((out.reward * w).sum() / (w.sum() + 1e-6)).item())
        if seed == 0:
            assert out.baseline.item() == pytest.approx(means[0], rel=1e-6)  # nothing earlier yet
        if seed == 1:
            assert out.baseline.item() == pytest.approx(means[0], rel=1e-6)  # (1-d) r0 / (1-d)
        if seed == 2:
            assert out.baseline.item() == pytest.approx((d * means[0] + means[1]) / (1 + d), rel=1e-6)
    assert m.state_dict()["reward_mean"][1].item() == 3
    m.eval()
    m(*batch(5))
    assert m.state_dict()["reward_mean"][1].item() == 3  # validation leaves it alone


def test_adversarial_mlm_warm_up_trains_the_generator_by_likelihood_first():
    m = model_for("objective.algorithm=adversarial", "objective.adversarial_mlm_steps=2")
    m.eval()
    ids, types, attn = batch()
    m.set_step(1)
    out = m(ids, types, attn, fixed_mask(ids, attn), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out.loss, out.mlm_loss + m.objective.disc_weight * out.rtd_loss)
    m.set_step(2)
    out = m(ids, types, attn, fixed_mask(ids, attn), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(out.loss, out.mlm_loss + m.objective.disc_weight * out.rtd_loss)


def test_adversarial_run_logs_reward_and_generator_accuracy(tiny_data, tmp_path):
    c = apply_overrides(preset("tiny"), [*TINY_RUN, "objective.algorithm=adversarial", "train.steps=3"])
    res = run(c, out=tmp_path / "adv", data=tiny_data)
    last = records(tmp_path / "adv")[3]
    assert res.train.step == 3 and last["reward"] > 0 and 0 <= last["gen_acc"] <= 1
    assert last["reward_baseline"] > 0
    assert (res.exports["discriminator"] / "model.safetensors").is_file()


# ---- loss weighting ----------------------------------------------------------------------------

def test_scheduled_lambda_moves_linearly_then_stays():
    c = small("objective.loss_weighting=schedule", "objective.disc_weight=50",
              "objective.disc_weight_start=1", "objective.disc_weight_steps=10")
    assert [disc_weight_at(c.objective, s) for s in (0, 5, 10, 100)] == [1.0, 25.5, 50.0, 50.0]
    m = model_for("objective.loss_weighting=schedule", "objective.disc_weight=50",
                  "objective.disc_weight_start=1", "objective.disc_weight_steps=10").eval()
    ids, types, attn = batch()
    m.set_step(5)
    out = m(ids, types, attn, fixed_mask(ids, attn))
    assert torch.equal(out.loss, 1.0 * out.mlm_loss + 25.5 * out.rtd_loss)
    assert m.summarize(dict(zip(m.STAT_NAMES, out.stats.tolist(), strict=True)), 1)["disc_weight"] == 25.5


def test_uncertainty_weighting_starts_at_the_fixed_weights_and_is_never_decayed():
    m = model_for("objective.loss_weighting=uncertainty", "objective.disc_weight=50").eval()
    s = m.loss_weighting.log_vars.detach()
    assert torch.allclose(torch.exp(-s), torch.tensor([1.0, 50.0]))
    ids, types, attn = batch()
    out = m(ids, types, attn, fixed_mask(ids, attn))
    w = torch.exp(-s)
    assert torch.allclose(out.loss, w[0] * out.mlm_loss + w[1] * out.rtd_loss + s.sum())
    opt = build_optimizer(m, small().optim)
    decayed = [p for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    assert all(p is not m.loss_weighting.log_vars for p in decayed)


def test_uncertainty_weights_are_learned_logged_and_resumed_exactly(tiny_data, tmp_path):
    base = [*TINY_RUN, "objective.loss_weighting=uncertainty", "optim.lr=0.05"]
    straight, sliced = tmp_path / "straight", tmp_path / "sliced"
    run(apply_overrides(preset("tiny"), base), out=straight, data=tiny_data)
    run(apply_overrides(preset("tiny"), [*base, "train.stop_at=3"]), out=sliced, data=tiny_data)
    run(load_run_config(sliced, []), out=sliced, resume=True)
    a, b = records(straight), records(sliced)
    assert a[1]["disc_weight"] == pytest.approx(50.0, rel=1e-6) and a[1]["mlm_weight"] == pytest.approx(1.0)
    assert a[6]["disc_weight"] != pytest.approx(50.0, rel=1e-3)  # learned: it moved
    for step in a:
        for k in ("loss", "mlm_weight", "disc_weight", "rtd_loss"):
            assert a[step][k] == b[step][k], (step, k)
    wa = ckpt.load_weights(ckpt.resolve_checkpoint(straight))
    wb = ckpt.load_weights(ckpt.resolve_checkpoint(sliced))
    assert torch.equal(wa["loss_weighting.log_vars"], wb["loss_weighting.log_vars"])
    # step 4's forward used the weights the step-3 checkpoint holds
    w3 = ckpt.load_weights(straight / "checkpoints" / "step_00000003")["loss_weighting.log_vars"]
    assert torch.exp(-w3[1]).item() == pytest.approx(a[4]["disc_weight"], rel=1e-6)


# ---- FLOPs and grids -----------------------------------------------------------------------------

def test_flops_per_algorithm_match_hand_counts():
    # tiny at T=128, generator = discriminator: H=E=128, F=512, L=4, V=8192, 19 of 128 tokens picked
    encoder = 6 * 4 * (4 * 128 * 128 + 2 * 128 * 512) + 12 * 4 * 128 * 128  # 5,505,024
    head = 6 * (128 * 128 + 128 * 8192) * 19 / 128  # the MLM head at the picked positions: 948,480
    rtd_head = 6 * (128 * 128 + 128)  # 99,072
    generator = encoder + head  # phase 1: forward + backward of the generator alone
    second = generator / 3 + encoder + rtd_head  # phase 2: G forward only, D forward + backward
    c = apply_overrides(preset("tiny"), [*TWO_STAGE, "objective.two_stage_steps=100"])
    rate = flop_rate(c, 128)
    assert rate.phases == ((0, pytest.approx(6453504)), (100, pytest.approx(7755264)))
    assert (rate.at(99), rate.at(100)) == (pytest.approx(generator), pytest.approx(second))
    assert electra_train_flops(c, 128) == pytest.approx((100 * generator + 700 * second) / 800)
    joint = apply_overrides(preset("tiny"), ["objective.generator_size=1.0", "objective.sharing=none"])
    assert electra_train_flops(joint, 128) == pytest.approx(generator + encoder + rtd_head)
    adversarial = apply_overrides(preset("tiny"), ["objective.algorithm=adversarial"])
    assert electra_train_flops(adversarial, 128) == electra_train_flops(preset("tiny"), 128)
    per_step = 32 * 128  # tiny: batch 32 x 128 tokens
    budget = 100 * generator * per_step + 2.5 * second * per_step
    assert rate.steps_for(budget, 32, 128) == 103  # the 100 cheap steps, then 3 dearer ones
    assert rate.spent(200, 1000.0) == pytest.approx(1000 * (generator + second) / 2)


def test_builtin_grids_run_the_algorithms_and_loss_weightings():
    algorithms = experiment.load_spec("algorithms", budgets=[1e15])
    assert [c.name for c in algorithms.cells] == ["joint-1e15", "two_stage-1e15", "adversarial-1e15"]
    weighting = experiment.load_spec("loss_weighting")
    assert [c.name for c in weighting.cells] == ["lambda-50", "uncertainty", "schedule"]
    for spec in (algorithms, weighting):
        for cell in spec.cells:  # each cell's overrides make a valid config of the base preset
            c = apply_overrides(preset(spec.preset), spec.cell_overrides(cell))
            assert c.objective.disc_weight == 50
    assert experiment_report.variant({"kind": "electra", "algorithm": "two_stage", "loss_weighting": "fixed"}) \
        == "electra/two_stage"
    assert experiment_report.variant({"kind": "electra"}) == "electra"
