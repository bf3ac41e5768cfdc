"""The small interface every pre-training objective implements.

The training loop, validation, checkpoints and `plan` only see this: a module whose forward
takes a batch of original rows, masks them itself (dynamic masking on the device), and returns
the loss to back-propagate plus additive on-device statistics for logging. A new objective
(MLM, Replace-MLM, ...) is a sibling of `electra.py` that implements it."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn

from electra.model.layers import Encoder


@dataclass(frozen=True)
class TokenIds:
    """The ids an objective needs from the tokenizer."""

    mask_id: int
    special_ids: tuple[int, ...]  # never picked for masking: [PAD] [UNK] [CLS] [SEP] [MASK]
    # per id, the token continues the previous word (whole-word masking); (): unknown, every
    # token is a word of its own
    word_continuation: tuple[bool, ...] = ()

    @classmethod
    def standard(cls) -> TokenIds:
        """The layout `electra tokenizer train` writes (ids 0-4), for shape-only uses (plan,
        benchmarks) that never see a tokenizer."""
        return cls(mask_id=4, special_ids=(0, 1, 2, 3, 4))


@dataclass(frozen=True)
class ObjectiveOutput:
    loss: torch.Tensor  # scalar, what is back-propagated
    stats: torch.Tensor  # [K] float32, additive statistics named by the objective's STAT_NAMES


class PretrainingObjective(nn.Module, abc.ABC):
    """forward(input_ids, token_type_ids, attention_mask) -> ObjectiveOutput, all [B, T]."""

    STAT_NAMES: tuple[str, ...] = ()

    @property
    @abc.abstractmethod
    def encoder(self) -> Encoder:
        """The encoder that fine-tuning and export take (ELECTRA: the discriminator)."""

    @property
    def has_idle_parameters(self) -> bool:
        """Some parameters get no gradient in some steps (DDP must be told)."""
        return False

    def set_word_bits(self, continues_word: torch.Tensor | None) -> None:
        """Called by the loop before each forward with the batch's word bits ([B, T] bool, from
        shards preprocessed with a word segmentation; None: none stored). Objectives that mask
        whole words use them instead of their vocabulary table; the rest ignore them."""

    def set_step(self, step: int) -> None:
        """Called by the loop before each update: objectives with schedules (a temperature
        anneal, training phases) read the step here; a function of the step keeps resume exact."""

    @abc.abstractmethod
    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        """Metrics (losses, accuracies) from `stats` summed over `micro_batches` forwards."""
