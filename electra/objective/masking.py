"""Dynamic masking as a pure function on the training device.

A fresh mask every time a row is seen (RoBERTa's dynamic masking), with G-EL's exact rule: per
row, round(mask_prob * n_tokens) positions (at least 1, at most `max_predictions`), never a
special token, returned in a fixed-size [B, P] layout so shapes are static (no host sync, and
the generator head can gather exactly P positions per row).

`masking=whole_word` and `ngram` pick whole units instead of tokens (Google's and
Chinese-BERT-wwm's whole-word masking; ALBERT's n-grams of whole words), from a per-token
"continues the previous word" bit, all as tensor operations on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from electra.config import ObjectiveConfig


@dataclass(frozen=True)
class MaskSpec:
    """How positions are picked and corrupted; one per run, from the objective config and the
    tokenizer. Of the picked positions, `mask_token_prob` get [MASK], `random_token_prob` a
    uniformly random id and the rest keep the original (G-EL: 85/0/15; BERT: 80/10/10)."""

    mask_id: int
    vocab_size: int
    mask_prob: float = 0.15
    max_predictions: int | None = None  # None: int((mask_prob + 0.005) * T), as G-EL
    mask_token_prob: float = 0.85
    random_token_prob: float = 0.0
    unit: str = "token"  # token | whole_word | ngram (objective.masking)
    max_ngram: int = 3  # ngram: spans of 1..max_ngram whole words, p(n) ~ 1/n

    @classmethod
    def from_config(cls, cfg: ObjectiveConfig, mask_id: int, vocab_size: int) -> MaskSpec:
        mask_token_prob, random_token_prob = cfg.corruption()
        return cls(mask_id=mask_id, vocab_size=vocab_size, mask_prob=cfg.mask_prob,
                   max_predictions=cfg.max_predictions, mask_token_prob=mask_token_prob,
                   random_token_prob=random_token_prob, unit=cfg.masking,
                   max_ngram=cfg.max_ngram)

    def predictions_for(self, seq_len: int) -> int:
        """P, the fixed number of prediction slots per row of `seq_len` tokens."""
        if self.max_predictions is not None:
            return min(self.max_predictions, seq_len)
        return max(1, int((self.mask_prob + 0.005) * seq_len))


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: torch.Tensor  # [B, T] the generator's input: [MASK]/random/original at picks
    positions: torch.Tensor  # [B, P] long, the picked positions first, then filler slots
    targets: torch.Tensor  # [B, P] original ids at `positions`
    weights: torch.Tensor  # [B, P] float, 1.0 for a real pick, 0.0 for a filler slot


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor,
                spec: MaskSpec, generator: torch.Generator | None = None,
                continues_word: torch.Tensor | None = None) -> MaskedBatch:
    """Pick and corrupt positions. `special_ids`: 1-D tensor of ids never to pick ([CLS], ...).
    `continues_word` [B, T] bool: the token continues the word before it (whole_word / ngram
    units; None: every token is a word)."""
    # input_ids, attention_mask: [B, T]
    B, T = input_ids.shape
    P = spec.predictions_for(T)
    dev = input_ids.device
    candidates = attention_mask & ~torch.isin(input_ids, special_ids)  # [B, T]
    n_tokens = attention_mask.sum(1)  # [B], counts [CLS]/[SEP] too, as G-EL
    n_pick = torch.round(n_tokens.float() * spec.mask_prob).long().clamp(1, P)
    n_pick = torch.minimum(n_pick, candidates.sum(1))  # [B]

    if spec.unit == "token":
        # exact-count sampling without replacement: the P smallest random scores, non-candidates last
        scores = torch.rand(B, T, device=dev, generator=generator)
        scores = scores.masked_fill(~candidates, 2.0)
        positions = scores.topk(P, dim=1, largest=False, sorted=True).indices  # [B, P]
        weights = (torch.arange(P, device=dev)[None, :] < n_pick[:, None])  # [B, P] bool
    else:
        continues = torch.zeros_like(candidates) if continues_word is None else continues_word
        starts = word_starts(continues, candidates)  # [B, T]
        if spec.unit == "ngram":
            starts = ngram_starts(starts, candidates, spec.max_ngram, generator)
        picked = pick_units(starts, candidates, n_pick, generator)  # [B, T]
        positions, weights = picked_positions(picked, P)
    targets = torch.gather(input_ids, 1, positions)  # [B, P]

    u = torch.rand(B, P, device=dev, generator=generator)
    random_ids = torch.randint(spec.vocab_size, (B, P), device=dev, generator=generator)
    keep_after = spec.mask_token_prob + spec.random_token_prob
    replacement = torch.where(u < spec.mask_token_prob, torch.full_like(targets, spec.mask_id),
                              torch.where(u < keep_after, random_ids, targets))
    replacement = torch.where(weights, replacement, targets)  # filler slots write back the original
    masked = input_ids.scatter(1, positions, replacement)
    return MaskedBatch(input_ids=masked, positions=positions, targets=targets,
                       weights=weights.to(torch.float32))


def picked_tokens(masked: MaskedBatch, shape: torch.Size) -> torch.Tensor:
    """[B, T] bool: the positions actually picked (filler slots excluded)."""
    picked = torch.zeros(shape, dtype=torch.bool, device=masked.positions.device)
    return picked.scatter(1, masked.positions, masked.weights > 0)


# ----------------------------------------------------------------------------------------------
# whole units: words and n-grams of words

UNIT_PASSES = 4  # fill passes of `pick_units`; each one gets past one unit too long for the budget


def word_starts(continues_word: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """[B, T] bool, the tokens that begin a word. Special tokens and padding are words of their
    own, so a word never reaches across [CLS]/[SEP] even when a row starts mid-word."""
    # continues_word, candidates: [B, T] bool
    prev_candidate = F.pad(candidates[:, :-1], (1, 0), value=False)
    return ~(continues_word & candidates & prev_candidate)


def ngram_starts(word_start: torch.Tensor, candidates: torch.Tensor, max_ngram: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, T] bool, the tokens that begin an n-gram: each row's words cut into consecutive spans
    of n whole words, n drawn i.i.d. with p(n) ~ 1/n (ALBERT), so spans never overlap and a
    picked span is picked whole. A special token still ends a span early."""
    # word_start, candidates: [B, T] bool
    B, T = word_start.shape
    dev = word_start.device
    p = 1.0 / torch.arange(1, max_ngram + 1, device=dev, dtype=torch.float64)
    cdf = (p.cumsum(0) / p.sum()).to(torch.float32)
    cdf[-1] = 1.0
    u = torch.rand(B, T, device=dev, generator=generator)
    n = torch.searchsorted(cdf, u.contiguous(), right=True).clamp_max(max_ngram - 1) + 1  # [B, T]
    first_word = (n.cumsum(1) - n).clamp_max(T)  # word index where each n-gram begins: 0, n1, ...
    gram_start = torch.zeros(B, T + 1, dtype=torch.bool, device=dev).scatter_(1, first_word, True)
    word_index = word_start.long().cumsum(1) - 1  # [B, T], 0 at position 0 (always a start)
    prev_candidate = F.pad(candidates[:, :-1], (1, 0), value=False)
    forced = ~candidates | ~prev_candidate  # specials and the token after one
    return word_start & (gram_start[:, :T].gather(1, word_index) | forced)


def pick_units(unit_start: torch.Tensor, candidates: torch.Tensor, n_pick: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, T] bool, whole units picked in a random order until `n_pick` [B] tokens are covered: a
    unit that would overflow the budget is skipped and later, shorter ones still fill it (the rule
    of Google's and Chinese-BERT-wwm's `create_pretraining_data`), for up to UNIT_PASSES skips."""
    # unit_start, candidates: [B, T] bool; n_pick: [B] long
    B, T = unit_start.shape
    dev = unit_start.device
    unit = unit_start.long().cumsum(1) - 1  # [B, T] unit index of each token
    size = torch.zeros(B, T, dtype=torch.long, device=dev).scatter_add_(
        1, unit, torch.ones_like(unit))  # [B, U=T] tokens per unit (0: no such unit)
    slot = torch.where(unit_start, unit, torch.full_like(unit, T))  # non-starts go to a spare slot
    pickable = torch.zeros(B, T + 1, dtype=torch.bool, device=dev).scatter_(
        1, slot, candidates & unit_start)[:, :T]  # [B, U]
    scores = torch.rand(B, T, device=dev, generator=generator).masked_fill(~pickable, 2.0)
    order = scores.argsort(1)  # [B, U] units in random order, unpickable last
    size_o, ok_o = size.gather(1, order), pickable.gather(1, order)
    left = n_pick.clone()  # [B] tokens still to cover
    take = torch.zeros_like(ok_o)
    for _ in range(UNIT_PASSES):
        fits = ok_o & ~take & (size_o <= left[:, None])
        new = fits & ((size_o * fits).cumsum(1) <= left[:, None])  # the prefix that fits
        take |= new
        left = left - (size_o * new).sum(1)
    chosen = torch.zeros_like(take).scatter_(1, order, take)  # [B, U]
    return chosen.gather(1, unit) & candidates


def picked_positions(picked: torch.Tensor, P: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [B, T] pick (at most P per row) in the [B, P] slot layout: picked positions first, in
    order, then distinct filler positions -> (positions [B, P] long, weights [B, P] bool)."""
    T = picked.shape[1]
    index = torch.arange(T, device=picked.device)
    key = torch.where(picked, index, index + T)  # [B, T]
    positions = key.topk(P, dim=1, largest=False, sorted=True).indices  # [B, P]
    weights = torch.arange(P, device=picked.device)[None, :] < picked.sum(1, keepdim=True)
    return positions, weights
