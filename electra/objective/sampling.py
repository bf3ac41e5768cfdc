"""Sampling replacements from the generator: Gumbel-max or inverse CDF, with a temperature.

Sampling happens in fp32 under no-grad: fp16 Gumbel noise misbehaves, and the discriminator's
loss must never reach the generator through the sampled ids. Both kernels draw from
softmax(logits / temperature); they differ in cost and in the random stream they consume."""

from __future__ import annotations

import torch


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample per row of softmax(logits / temperature) via Gumbel-max, in fp32.

    The noise is built in place (log(-log U) in one buffer, then negated and the logits added
    into it): at V = 30k this runs about twice as fast as the textbook expression, which
    allocates five temporaries. (-n) + x is bitwise x - n, so samples are unchanged."""
    # logits: [..., V] -> ids [...]
    u = torch.rand(logits.shape, device=logits.device, dtype=torch.float32, generator=generator)
    neg_gumbel = u.clamp_(min=1e-20).log_().neg_().log_()  # log(-log U) = -Gumbel(0, 1)
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature
    return neg_gumbel.neg_().add_(scaled).argmax(-1)


@torch.no_grad()
def cdf_sample(logits: torch.Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample per row of softmax(logits / temperature) by inverting its running sum, in fp32.

    Gumbel-max draws a uniform number and two logarithms for every vocabulary entry; on CPU that
    noise cost 8-10% of the `small` step and 6-8% of the CPU presets' steps (BENCHMARKS.md).
    Here a row costs one exp, one running sum and a binary search, and one uniform number.
    The sum is left unnormalised (the uniform is scaled by the row's total instead), and
    `right=True` skips entries whose probability underflowed to zero. The temperature scales
    x - max(x) in its own buffer (a power-of-two temperature gives bit for bit the same values as
    dividing the logits first, one [N, V] buffer fewer)."""
    # logits: [..., V] -> ids [...]
    rows = logits.float().reshape(-1, logits.shape[-1])  # [N, V]
    shifted = torch.sub(rows, rows.amax(-1, keepdim=True))
    if temperature != 1.0:
        shifted.div_(temperature)
    cdf = shifted.exp_().cumsum_(-1)
    u = torch.rand(rows.shape[0], 1, device=rows.device, dtype=torch.float32, generator=generator)
    ids = torch.searchsorted(cdf, u.mul_(cdf[:, -1:]), right=True).clamp_(max=rows.shape[-1] - 1)
    return ids.view(logits.shape[:-1])


def resolve_sample_kernel(requested: str, device: torch.device) -> str:
    """`auto`: inverse CDF on CPU, where per-entry random numbers are slow; Gumbel-max on GPUs,
    whose random numbers are cheap (the inverse CDF is not measured there)."""
    if requested != "auto":
        return requested
    return "cdf" if device.type == "cpu" else "gumbel"


SAMPLERS = {"gumbel": gumbel_sample, "cdf": cdf_sample}
