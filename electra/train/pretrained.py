"""Load a pre-training run or checkpoint directory as a model, for export and fine-tuning.

Checkpoints are self-contained (config.json and tokenizer/ inside), so a copied checkpoint
directory exports or fine-tunes without its run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electra.config import PretrainConfig, load_json
from electra.data.tokenizer import Tokenizer
from electra.errors import CheckpointError
from electra.objective import ElectraModel, TokenIds, build_objective
from electra.train.checkpoint import (
    check_tokenizer,
    load_model_state,
    load_weights,
    read_meta,
    resolve_checkpoint,
)


def token_ids(tokenizer: Tokenizer) -> TokenIds:
    return TokenIds(mask_id=tokenizer.mask_id, special_ids=tuple(sorted(tokenizer.special_ids)),
                    word_continuation=tuple(tokenizer.word_continuation_table()))


@dataclass(frozen=True)
class Pretrained:
    model: ElectraModel  # on CPU, eval mode not set
    config: PretrainConfig
    tokenizer: Tokenizer
    meta: dict[str, Any]
    path: Path  # the checkpoint directory


def load_pretrained(path: str | Path, *, verify: bool = True) -> Pretrained:
    """A run directory (its newest intact checkpoint) or a checkpoint directory, checked against
    its checksums (`verify=False`: a checkpoint this process has just written and hashed)."""
    p = resolve_checkpoint(path, verify=verify)
    meta = read_meta(p)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p} has no config.json; the checkpoint is incomplete")
    cfg = load_json(PretrainConfig, p / "config.json")
    tokenizer = Tokenizer.load(p / "tokenizer")
    check_tokenizer(p, meta, tokenizer.fingerprint, f"{p / 'tokenizer'}")
    model = build_objective(cfg, token_ids(tokenizer))
    load_model_state(model, load_weights(p), str(p))
    return Pretrained(model, cfg, tokenizer, meta, p)
