"""Context-free references for validation: what a model scores without using any context.

A pre-trained model earns its keep only by the part of its score that these cannot reach:
- generator: at a [MASK] the unigram distribution of the training rows; where the original token
  is visible (kept or randomly replaced picks) copy it with the probability that it is the
  original, unigram otherwise. Its loss is the MLM loss of a model that reads nothing around a
  position.
- discriminator: each token's own replaced rate (how often that id, when it appears in a
  corrupted input, is a replacement), estimated on training rows corrupted by the same
  generator. Its AUC is what "which tokens tend to be replacements" alone is worth.
All functions are pure numpy/torch on CPU arrays, so tests can check them by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def unigram_log_probs(token_ids: np.ndarray, vocab_size: int, special_ids: tuple[int, ...]
                      ) -> np.ndarray:
    """log p(w) over the vocabulary from `token_ids` (any shape), add-one smoothed; special ids
    get probability 0 (they are never masked targets)."""
    counts = np.bincount(token_ids.ravel().astype(np.int64), minlength=vocab_size)[:vocab_size]
    counts = counts.astype(np.float64) + 1.0
    counts[list(special_ids)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def copy_probability(mask_token_prob: float, random_token_prob: float) -> float:
    """P(the original token is the one shown | a picked position does not show [MASK])."""
    keep = 1.0 - mask_token_prob - random_token_prob
    return keep / (keep + random_token_prob) if keep + random_token_prob > 0 else 0.0


@dataclass(frozen=True)
class MlmReference:
    loss: float  # mean -log p(target) over picked positions
    acc: float  # share of picked positions whose argmax is the target


def context_free_mlm(targets: np.ndarray, shown: np.ndarray, mask_id: int,
                     unigram_logp: np.ndarray, copy_prob: float) -> MlmReference:
    """The best context-free generator on picked positions (1-D arrays: original ids `targets`,
    the ids the generator saw there `shown`)."""
    targets, shown = targets.astype(np.int64), shown.astype(np.int64)
    uni = np.exp(unigram_logp)
    visible = shown != mask_id
    p_target = np.where(visible, copy_prob * (targets == shown) + (1 - copy_prob) * uni[targets],
                        uni[targets])
    top = int(np.argmax(unigram_logp))
    copies = visible & (copy_prob >= (1 - copy_prob) * uni.max())
    guess = np.where(copies, shown, top)
    loss = float(-np.log(np.maximum(p_target, 1e-300)).mean()) if targets.size else math.nan
    return MlmReference(loss=loss, acc=float((guess == targets).mean()) if targets.size else math.nan)


def replaced_rate_by_token(corrupted: np.ndarray, replaced: np.ndarray, vocab_size: int,
                           prior_strength: float = 10.0) -> np.ndarray:
    """P(replaced | token id) per id (1-D inputs over real tokens), shrunk towards the overall
    rate with `prior_strength` pseudo-occurrences so rare ids are not scored on one sighting."""
    ids = corrupted.astype(np.int64)
    seen = np.bincount(ids, minlength=vocab_size)[:vocab_size].astype(np.float64)
    hits = np.bincount(ids, weights=replaced.astype(np.float64), minlength=vocab_size)[:vocab_size]
    prior = hits.sum() / max(seen.sum(), 1.0)
    return (hits + prior_strength * prior) / (seen + prior_strength)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, inverse, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(labels.size)
    ranks[order] = avg_rank[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class RtdReference:
    auc: float
    acc: float  # predicting "replaced" where the token's rate exceeds 1/2


def context_free_rtd(corrupted: np.ndarray, replaced: np.ndarray, rates: np.ndarray) -> RtdReference:
    """Score every real token (1-D arrays) by its id's replaced rate alone."""
    scores = rates[corrupted.astype(np.int64)]
    acc = float(((scores > 0.5) == replaced.astype(bool)).mean()) if scores.size else math.nan
    return RtdReference(auc=roc_auc(scores, replaced), acc=acc)
