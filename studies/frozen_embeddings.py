"""`electra` with the word-embedding table frozen at its random initialisation during
pre-training (a study, not a recipe).

    python studies/frozen_embeddings.py pretrain --data runs/default/data --out runs/frozen_emb train.threads=1
    electra evaluate runs/frozen_emb --tasks sst2 ...    # control: the default run's --random-init

The question it answers: RESULTS.md finds that the default run's pre-trained word table alone
loses SST-2 points to a random one (at this scale it encodes frequency and slot, not polarity),
and a random-init encoder reads 3,000 sentences as a bag of nearly orthogonal vectors. With the
table held at its N(0, 0.02) start, fine-tuning gets the random table's bag-of-words reading
and pre-trained layers on top of it: does that beat random initialisation? The table still
serves as the generator's tied output matrix (fixed random word vectors to predict). Only the
optimizer is patched (the table gets no gradient and no update), so checkpoints, exports and
fine-tuning are the `electra` command's own."""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import electra.train.optim as optim  # noqa: E402

_param_groups = optim.param_groups


def param_groups_without_word_table(model: nn.Module, *args, **kwargs):
    for name, p in model.named_parameters():
        if name.endswith("word_embeddings.weight"):
            p.requires_grad_(False)  # param_groups leaves out what needs no gradient
    return _param_groups(model, *args, **kwargs)


if __name__ == "__main__":
    optim.param_groups = param_groups_without_word_table
    from electra.cli import main
    sys.exit(main(sys.argv[1:]))
