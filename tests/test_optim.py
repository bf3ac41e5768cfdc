import math

import pytest
import torch
from torch import nn

from electra.config import OptimConfig
from electra.train.optim import AdamW, build_optimizer, build_scheduler, lr_factor, param_groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)


def test_no_decay_on_bias_and_layernorm():
    groups = {g["weight_decay"]: set(g["names"]) for g in param_groups(Net(), 0.01)}
    assert groups[0.01] == {"emb.weight", "lin.weight"}
    assert groups[0.0] == {"lin.bias", "norm.weight", "norm.bias"}


def test_adam_without_bias_correction_matches_g_el_formula():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5))
    ref = p.detach().clone()
    opt = AdamW([{"params": [p], "weight_decay": 0.01}], lr=0.1, betas=(0.9, 0.999), eps=1e-6)
    m = torch.zeros(5)
    v = torch.zeros(5)
    for _ in range(3):
        g = torch.randn(5)
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.1 * (m / (v.sqrt() + 1e-6) + 0.01 * ref)
    assert torch.allclose(p.detach(), ref, atol=1e-6)


def test_bias_correction_uses_torch_adamw():
    opt = build_optimizer(Net(), OptimConfig(bias_correction=True))
    assert type(opt) is torch.optim.AdamW
    assert type(build_optimizer(Net(), OptimConfig(bias_correction=False))) is AdamW


def test_original_schedule_multiplies_warmup_and_decay():
    assert lr_factor(0, 100, 10, "original") == 0.0
    assert math.isclose(lr_factor(5, 100, 10, "original"), 0.5 * 0.95)
    assert math.isclose(lr_factor(10, 100, 10, "original"), 0.9)  # already decayed at peak
    assert math.isclose(lr_factor(50, 100, 10, "original"), 0.5)


@pytest.mark.parametrize("schedule, at_mid", [("linear", 0.5), ("cosine", 0.5), ("constant", 1.0)])
def test_warmup_then_decay(schedule, at_mid):
    assert math.isclose(lr_factor(5, 110, 10, schedule), 0.5)
    assert math.isclose(lr_factor(10, 110, 10, schedule), 1.0)
    assert math.isclose(lr_factor(60, 110, 10, schedule), at_mid, abs_tol=1e-9)


def test_scheduler_applies_per_group_lr_scale():
    net = Net()
    scale = {"lin.weight": 0.5}
    opt = build_optimizer(net, OptimConfig(lr=1.0, warmup_steps=0, schedule="constant"), scale)
    build_scheduler(opt, OptimConfig(lr=1.0, warmup_steps=0, schedule="constant"), 10)
    lrs = {n: g["lr"] for g in opt.param_groups for n in g["names"]}
    assert lrs["lin.weight"] == 0.5 and lrs["emb.weight"] == 1.0
