"""`electra` with the generator's output matrix untied from the word embeddings (a study, not a
recipe).

    python studies/untied_output.py pretrain --data runs/default/data --out runs/untied train.threads=1
    electra evaluate runs/untied/export/discriminator --tasks sst2 ...   # the export: see below
    python studies/untied_output.py geometry runs/untied/export/discriminator runs/default/export/discriminator

The question it answers: do the tied input/output embeddings of the masked-LM head (ELECTRA's
and BERT's choice) shape the shared word table in a way that costs sentence-level fine-tuning at
CPU scale? A tied softmax pushes every word's vector away from the contexts it does not fit,
which in large models makes the table anisotropic ("representation degeneration", Gao et al.
2019), and the pre-trained table alone loses SST-2 points to a random one here (RESULTS.md).
Here the head gets its own [V, E] matrix (N(0, 0.02), as every weight), so the word table learns
only through the encoder's input. (The patch replaces the head class, so a discriminator-side
masked-LM head, in recipes that have one, is untied too; the default recipe has none.) Everything else is the `electra` command unchanged. The
checkpoints carry the extra matrix, which the project's loaders reject as another model, so
fine-tune the exported discriminator (the shared encoder; its export is exact). `geometry` prints
a word table's effective rank (exp of the entropy of its centred singular-value spectrum) and the
share of its variance in the top direction, over the non-special rows."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import electra.model.heads as heads  # noqa: E402
import electra.objective.electra as electra_objective  # noqa: E402


class UntiedGeneratorHead(heads.GeneratorHead):
    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, eps: float) -> None:
        super().__init__(hidden_size, embedding_size, vocab_size, eps)
        self.output = nn.Parameter(torch.empty(vocab_size, embedding_size).normal_(0.0, 0.02))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return super().forward(h, self.output)  # the word table is not the output matrix


def geometry(export_dir: str, first_word_id: int = 5) -> str:
    tensors = load_file(f"{export_dir}/model.safetensors")
    table = next(t for k, t in tensors.items() if k.endswith("word_embeddings.weight")).float()[first_word_id:]
    s = torch.linalg.svdvals(table - table.mean(0))
    p = s**2 / (s**2).sum()
    rank = torch.exp(-(p * p.clamp_min(1e-12).log()).sum())
    return (f"{export_dir}: std {table.std():.4f}, effective rank {rank:.1f} of {table.shape[1]}, "
            f"top direction {100 * p[0]:.1f}% of the variance")


if __name__ == "__main__":
    if sys.argv[1:2] == ["geometry"]:
        print("\n".join(geometry(d) for d in sys.argv[2:]))
        sys.exit(0)
    electra_objective.GeneratorHead = UntiedGeneratorHead
    from electra.cli import main
    sys.exit(main(sys.argv[1:]))
