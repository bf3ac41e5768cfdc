"""Dropout whose masks come from packed random bits: the same distribution, a third of the cost.

On CPU, `torch.nn.Dropout` draws one Bernoulli per element with a per-element random-number
call, and in the paper's `small` step that costs about a third of the time (BENCHMARKS.md).
Here one 64-bit draw gives four 16-bit keep/drop decisions: keep where the 16-bit value is
at or above a threshold, so p is exact to 1/65536 (0.1 becomes 6554/65536 = 0.100006) and
the kept values are scaled by 1 / (1 - that p), keeping E[output] = input exactly. The mask is
built as floats holding 0 or that scale (an int16 -> float conversion and three in-place passes),
where a bool mask costs a comparison and a mixed bool x float multiply (three times a float
multiply on CPU) in each direction: one dropout call forward + backward is 1.3-1.7x faster
(BENCHMARKS.md 0f). The mask saved for backward takes 4 bytes per element (8 in fp64; bf16 and
fp16 inputs keep an fp32 mask) where a bool mask takes 1. The random stream differs from
torch's, so runs that must repeat an older run bit for bit keep `train.dropout_kernel=torch`."""

from __future__ import annotations

import math

import torch
from torch import nn

_LEVELS = 1 << 16


_MASK_DTYPES = (torch.float32, torch.float64)  # hold every int16, the threshold and 1 / (1 - p) exactly


def _drop_levels(p: float) -> int:
    # at most _LEVELS - 1: a p within 2^-17 of 1 would otherwise round to 1 and its scale to 1 / 0
    return min(round(p * _LEVELS), _LEVELS - 1)


def quantized_p(p: float) -> float:
    """The drop probability the packed masks realise (at most 1 - 2^-16, so kept values stay finite)."""
    return _drop_levels(p) / _LEVELS


def keep_threshold(p: float) -> int:
    """Keep where a random int16 is at or above this: P(drop) = quantized_p(p)."""
    return _drop_levels(p) - (_LEVELS // 2)


def random_halves(n: int, device: torch.device) -> torch.Tensor:
    """n int16 values uniform over [-32768, 32767], four from each 64-bit draw."""
    # the full signed range: random_() without bounds leaves the top bit of every word 0
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), (1 << 63) - 1)
    return words.view(torch.int16)[:n]


def keep_from_halves(halves: torch.Tensor, p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """0 where half < threshold (P = quantized_p(p)), 1 / (1 - quantized_p(p)) elsewhere. Only fp32
    and fp64 hold every int16 and the threshold exactly; half precision would move decisions."""
    if dtype not in _MASK_DTYPES:
        raise ValueError(f"dropout masks are built in float32 or float64, not {dtype}")
    # half - (threshold - 1) is >= 1 where kept and <= 0 where dropped: clamp to {0, 1}, then scale
    return halves.to(dtype).sub_(keep_threshold(p) - 1).clamp_(0, 1).mul_(1.0 / (1.0 - quantized_p(p)))


def scaled_keep_mask(shape: torch.Size, p: float, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mask of 0 (dropped) and 1 / (1 - quantized_p(p)) (kept), from n/4 64-bit draws."""
    return keep_from_halves(random_halves(math.prod(shape), device), p, dtype).view(shape)


class _PackedDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        # half-precision inputs keep an fp32 mask: bf16/fp16 hold neither every int16 nor 1 / (1 - p)
        keep = scaled_keep_mask(x.shape, p, x.device, x.dtype if x.dtype in _MASK_DTYPES else torch.float32)
        ctx.save_for_backward(keep)
        return (x * keep).to(x.dtype)  # no copy where the dtypes agree

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return (grad * keep).to(grad.dtype), None


def packed_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout` with packed masks; in eval or at p = 0 it is the identity and draws nothing, like torch's."""
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
