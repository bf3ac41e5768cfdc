"""`objective.unigram_bias_init`: masked-LM heads start at the unigram distribution of the data.

A fresh head's logits are h . E^T + b with b = 0 and |h . E^T| ~ 0.2, i.e. nearly uniform over
the vocabulary; Adam moves b by about the learning rate per step, so reaching log p(token)
(a ~10-nat range) takes thousands of updates that teach nothing about context. Starting b at
log p makes step 0 as good as a unigram model, and the gradient goes to context at once."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from electra.data.shards import ShardReader
from electra.model.heads import GeneratorHead
from electra.objective.baselines import unigram_log_probs
from electra.train.validate import evenly_spaced

ROWS = 20_000  # as the validator's unigram reference: enough for a stable estimate, < 1 s


@torch.no_grad()
def init_unigram_bias(model: nn.Module, train: ShardReader, special_ids: tuple[int, ...],
                      skip: tuple[nn.Module, ...] = ()) -> int:
    """Set every GeneratorHead's bias but those in `skip` (warm-started ones) to log p(token)
    (add-one smoothed; special tokens, never targets, at the smallest real value rather than
    -inf). Returns how many heads were set."""
    heads = [m for m in model.modules() if isinstance(m, GeneratorHead) and not any(m is s for s in skip)]
    if not heads:
        return 0
    vocab = heads[0].bias.numel()
    logp = unigram_log_probs(evenly_spaced(train, ROWS), vocab, special_ids)
    finite = np.isfinite(logp)
    logp[~finite] = logp[finite].min()
    for head in heads:
        head.bias.copy_(torch.from_numpy(logp).to(head.bias))
    return len(heads)
