"""Resumable, rank-sharded, seeded iterator of pre-training batches.

Each epoch visits every training row once in an order fixed by (seed, epoch); rank r of W takes
every W-th row of that order. The loader's whole state is (epoch, cursor), so a checkpoint can
resume the data stream exactly, and token types / attention masks are derived from the row
itself ([CLS] A [SEP] B [SEP] PAD...) instead of being stored. Rows packed RoBERTa-style
(`full_sentences`, `doc_sentences`) are one segment: a [SEP] between documents starts no B."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from electra.errors import DataError


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, T] long
    token_type_ids: torch.Tensor  # [B, T] long: 0 up to the first [SEP], then 1 (one-segment rows: 0)
    attention_mask: torch.Tensor  # [B, T] bool: not [PAD]
    # [B, T] bool, the token continues the previous word (shards with a word segmentation)
    continues_word: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        return Batch(*(None if t is None else t.to(device, non_blocking=nb) for t in
                       (self.input_ids, self.token_type_ids, self.attention_mask, self.continues_word)))


ONE_SEGMENT_PACKINGS = ("full_sentences", "doc_sentences")


def batch_from_rows(rows: np.ndarray, pad_id: int, sep_id: int, *, one_segment: bool = False,
                    words: np.ndarray | None = None) -> Batch:
    # rows: [B, T] integer token ids; words: [B, T] bool word bits or None
    ids = torch.from_numpy(rows.astype(np.int64, copy=False))
    mask = ids != pad_id
    cont = None if words is None else torch.from_numpy(np.ascontiguousarray(words, dtype=bool))
    if one_segment:
        return Batch(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=mask,
                     continues_word=cont)
    is_sep = ids == sep_id
    seps_before = torch.cumsum(is_sep, 1) - is_sep.long()  # [SEP]s strictly before each position
    types = ((seps_before >= 1) & mask).long()
    return Batch(input_ids=ids, token_type_ids=types, attention_mask=mask, continues_word=cont)


def is_one_segment(reader: Any) -> bool:
    """Whether the rows of a `ShardReader` were packed as one segment (by their manifest)."""
    manifest = getattr(reader, "manifest", None)
    return getattr(manifest, "packing", "electra") in ONE_SEGMENT_PACKINGS


class PretrainLoader:
    """Infinite stream of `Batch` over a `ShardReader`, `batch_size` rows per call."""

    def __init__(self, reader: Any, batch_size: int, *, seed: int, pad_id: int, sep_id: int,
                 vocab_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.reader, self.batch_size = reader, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.pad_id, self.sep_id, self.vocab_size = pad_id, sep_id, vocab_size
        self.one_segment = is_one_segment(reader)
        self.per_rank = len(reader) // world_size
        if self.per_rank < batch_size:
            raise DataError(f"the training split has {len(reader)} rows, fewer than one batch of "
                            f"{batch_size} per process; lower train.batch_size or add data")
        self.epoch, self.cursor = 0, 0
        self._order: np.ndarray | None = None

    def _epoch_order(self) -> np.ndarray:
        if self._order is None:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(len(self.reader))
            self._order = order[self.rank::self.world_size][: self.per_rank]
        return self._order

    def next_batch(self) -> Batch:
        if (self.cursor + 1) * self.batch_size > self.per_rank:  # drop the ragged tail
            self.epoch, self.cursor, self._order = self.epoch + 1, 0, None
        idx = self._epoch_order()[self.cursor * self.batch_size:(self.cursor + 1) * self.batch_size]
        self.cursor += 1
        rows = self.reader.take(idx)
        if rows.max(initial=0) >= self.vocab_size:
            raise DataError(f"the shards hold token id {int(rows.max())} >= vocab size {self.vocab_size}; "
                            "they are corrupt or were made with another tokenizer: re-run electra preprocess")
        words = self.reader.take_words(idx) if getattr(self.reader, "has_words", False) else None
        return batch_from_rows(rows, self.pad_id, self.sep_id, one_segment=self.one_segment,
                               words=words)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed,
                "world_size": self.world_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (state["world_size"], state["batch_size"]) != (self.world_size, self.batch_size):
            raise DataError("cannot resume the data stream exactly: the checkpoint was written with "
                            f"{state['world_size']} process(es) x {state['batch_size']} rows, now "
                            f"{self.world_size} x {self.batch_size}; resume with the same layout")
        self.epoch, self.cursor, self.seed = state["epoch"], state["cursor"], state["seed"]
        self._order = None
