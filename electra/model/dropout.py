"""Dropout whose masks come from packed random bits: the same distribution, a third of the cost.

On CPU, `torch.nn.Dropout` draws one Bernoulli per element with a per-element random-number
call, and in the paper's `small` step that costs about a third of the time (BENCHMARKS.md).
Here one 64-bit draw gives four 16-bit keep/drop decisions: keep where the 16-bit value is
at or above a threshold, so p is exact to 1/65536 (0.1 becomes 6554/65536 = 0.100006) and
the kept values are scaled by 1 / (1 - that p), keeping E[output] = input exactly. The mask
is saved for backward as a bool tensor, as torch's own dropout does. The random stream
differs from torch's, so runs that must repeat an older run bit for bit keep
`train.dropout_kernel=torch`."""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16


def quantized_p(p: float) -> float:
    """The drop probability the packed masks realise."""
    return round(p * _LEVELS) / _LEVELS


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Bool keep-mask with P(keep) = 1 - quantized_p(p), from n/4 64-bit draws."""
    n = 1
    for s in shape:
        n *= s
    # the full signed range: random_() without bounds leaves the top bit of every word 0
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), (1 << 63) - 1)
    halves = words.view(torch.int16)[:n]  # uniform over [-32768, 32767]
    return (halves >= round(p * _LEVELS) - (_LEVELS // 2)).view(shape)


class _PackedDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        keep = keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - quantized_p(p))
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def packed_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    return _PackedDropout.apply(x, p)


class PackedDropout(nn.Module):
    """Drop-in for `nn.Dropout` (no parameters, so state dicts are unchanged)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, packed"


def resolve_dropout_kernel(requested: str, device: torch.device) -> str:
    """`auto`: packed on CPU, torch's on GPUs (whose Bernoulli is cheap and whose fused
    attention kernels apply dropout inside)."""
    if requested != "auto":
        return requested
    return "packed" if device.type == "cpu" else "torch"


def use_dropout_kernel(model: nn.Module, kernel: str) -> int:
    """Switch every dropout in `model` to `kernel` (torch | packed), attention included;
    returns how many modules changed. Swapping modules keeps the model code plain."""
    changed = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if kernel == "packed" and type(child) is nn.Dropout and child.p > 0:
                setattr(parent, name, PackedDropout(child.p))
                changed += 1
            elif kernel == "torch" and isinstance(child, PackedDropout):
                setattr(parent, name, nn.Dropout(child.p))
                changed += 1
        if hasattr(parent, "dropout_kernel") and parent.dropout_kernel != kernel:
            parent.dropout_kernel = kernel
            changed += 1
    return changed
