"""Model inputs for fine-tuning: encoded features, padded batches, and the task-family interface.

Each task family (GLUE-style text classification, tagging, span QA) turns its examples into
`Encoded` features and back into predictions; the one training loop in `run.py` only moves
`Batch`es through the model. Batches are padded to their longest row, not to a fixed length."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

IGNORE = -100  # target of positions that carry no label (padding, non-first sub-tokens)


@dataclass
class Encoded:
    """One split's features; a feature is one model input (an example, a window, a chunk)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    # name -> one value per feature: an int/float, or a list of ints (one per token)
    targets: dict[str, list[Any]] = field(default_factory=dict)
    meta: Any = None  # family-specific bookkeeping to map features back to examples

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, T]
    token_type_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T] bool
    targets: dict[str, torch.Tensor]  # [B] or [B, T] each
    index: list[int]  # feature index of each row

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.token_type_ids.to(device),
                     self.attention_mask.to(device), {k: v.to(device) for k, v in self.targets.items()},
                     self.index)


def collate(enc: Encoded, index: list[int], pad_id: int) -> Batch:
    T = max(len(enc.input_ids[i]) for i in index)
    ids = torch.full((len(index), T), pad_id, dtype=torch.long)
    types = torch.zeros((len(index), T), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(enc.input_ids[i])
        ids[row, :n] = torch.tensor(enc.input_ids[i])
        types[row, :n] = torch.tensor(enc.token_type_ids[i])
    lengths = torch.tensor([len(enc.input_ids[i]) for i in index])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    targets = {}
    for name, values in enc.targets.items():
        first = values[index[0]]
        if isinstance(first, list):  # token-level: pad with IGNORE
            t = torch.full((len(index), T), IGNORE, dtype=torch.long)
            for row, i in enumerate(index):
                t[row, : len(values[i])] = torch.tensor(values[i])
            targets[name] = t
        else:
            dtype = torch.float32 if isinstance(first, float) else torch.long
            targets[name] = torch.tensor([values[i] for i in index], dtype=dtype)
    return Batch(ids, types, mask, targets, list(index))


def batches(enc: Encoded, batch_size: int, pad_id: int, *,
            generator: torch.Generator | None = None) -> Iterator[Batch]:
    """Shuffled batches when a generator is given (training); otherwise batches of similar length
    (evaluation: far less padding, rows are put back in order through `Batch.index`)."""
    if generator is not None:
        order = torch.randperm(len(enc), generator=generator).tolist()
    else:
        order = sorted(range(len(enc)), key=lambda i: len(enc.input_ids[i]))
    for start in range(0, len(order), batch_size):
        yield collate(enc, order[start:start + batch_size], pad_id)


@dataclass(frozen=True)
class Family:
    """What a task family provides; `run.py` calls these and nothing family-specific.

    read(spec, path, split, cfg) -> examples (labels may be None on test files)
    labels(spec, examples) -> label set learned from training data (fixed sets live in the spec)
    encode(spec, examples, tokenizer, labels, cfg, training) -> Encoded
    head(spec, hidden_size, labels, cfg) -> nn.Module on the encoder output
    loss(spec, output, batch, cfg) -> scalar tensor
    unbatch(output, batch) -> one numpy row per feature of the batch
    decode(spec, examples, encoded, rows, labels, cfg) -> one prediction per example
    score(spec, examples, predictions, cfg) -> metrics (fractions, not percentages)
    write(spec, examples, predictions, path, dev_metrics) -> predictions file"""

    read: Callable[..., list]
    labels: Callable[..., tuple[str, ...]]
    encode: Callable[..., Encoded]
    head: Callable[..., torch.nn.Module]
    loss: Callable[..., torch.Tensor]
    unbatch: Callable[..., list]
    decode: Callable[..., list]
    score: Callable[..., dict[str, float]]
    write: Callable[..., None]
