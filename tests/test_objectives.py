import math

import torch
import torch.nn.functional as F

from electra.objective.losses import mlm_loss, rtd_loss
from electra.objective.sampling import gumbel_sample


def test_mlm_loss_is_weighted_mean_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 3, 7), torch.randint(7, (2, 3))
    weights = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    manual = sum(F.cross_entropy(logits[b, p][None], targets[b, p][None]).item()
                 for b, p in [(0, 0), (0, 1), (1, 0)]) / 3
    assert math.isclose(mlm_loss(logits, targets, weights).item(), manual, rel_tol=1e-5)


def test_rtd_loss_averages_over_mask_only():
    logits = torch.tensor([[2.0, -1.0, 5.0], [0.5, 0.0, 0.0]])
    replaced = torch.tensor([[True, False, False], [False, True, True]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(math.log(p) if y else math.log(1 - p))
    manual = (bce(2, 1) + bce(-1, 0) + bce(5, 0) + bce(0.5, 0)) / 4
    assert math.isclose(rtd_loss(logits, replaced, mask).item(), manual, rel_tol=1e-5)


def test_gumbel_sample_follows_softmax_in_fp32_without_grad():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(200_000, 4).bfloat16().requires_grad_()
    s = gumbel_sample(logits, generator=torch.Generator().manual_seed(0))
    assert not s.requires_grad and s.dtype == torch.int64
    freq = torch.bincount(s, minlength=4).float() / s.numel()
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0, -1.0]), 0)
    assert torch.allclose(freq, expected, atol=0.005)
    cold = gumbel_sample(logits[:1000], temperature=1e-3)
    assert (cold == 0).all()
