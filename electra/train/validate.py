"""Held-out evaluation of a pre-training run.

Masks and generator samples come from a fixed-seed generator, so every evaluation of a run
scores the same corrupted inputs and numbers are comparable across steps. Besides losses it
reports the discriminator's accuracy next to the trivial "everything is original" baseline and
its ROC AUC (0.5 = chance), which show whether the model learned anything."""

from __future__ import annotations

import numpy as np
import torch

from electra.data.loader import batch_from_rows
from electra.data.shards import ShardReader
from electra.objective import ElectraModel
from electra.train.precision import Precision


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


@torch.no_grad()
def evaluate_pretraining(model: ElectraModel, reader: ShardReader, *, rows: int, batch_size: int,
                         pad_id: int, sep_id: int, device: torch.device, precision: Precision,
                         seed: int) -> dict[str, float]:
    """`model`: the unwrapped pre-training module; `reader`: the validation split."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    n = min(rows, len(reader))
    sums = torch.zeros(7, dtype=torch.float64, device=device)
    logits, labels = [], []
    for start in range(0, n, batch_size):
        b = batch_from_rows(reader.take(np.arange(start, min(n, start + batch_size))), pad_id, sep_id).to(device)
        with precision.autocast():
            out = model(b.input_ids, b.token_type_ids, b.attention_mask, generator=gen)
        sums += torch.stack([out.mlm_loss * out.gen_count, out.rtd_loss * out.disc_count,
                             out.gen_correct, out.gen_count, out.disc_correct, out.disc_count,
                             out.replaced_count]).double()
        logits.append(out.disc_logits[out.token_mask].float().cpu())
        labels.append(out.replaced[out.token_mask].cpu())
    model.train(was_training)
    mlm_sum, rtd_sum, g_ok, g_n, d_ok, d_n, repl = sums.tolist()
    scores, truth = torch.cat(logits).numpy(), torch.cat(labels).numpy()
    pred = scores > 0
    tp = float((pred & truth).sum())
    mlm, rtd = mlm_sum / max(g_n, 1), rtd_sum / max(d_n, 1)
    obj = model.objective
    return {
        "loss": obj.mlm_weight * mlm + obj.disc_weight * rtd,
        "mlm_loss": mlm,
        "rtd_loss": rtd,
        "gen_acc": g_ok / max(g_n, 1),
        "disc_acc": d_ok / max(d_n, 1),
        "baseline_acc": 1.0 - repl / max(d_n, 1),  # predicting "original" everywhere
        "disc_auc": roc_auc(scores, truth),
        "disc_precision": tp / max(float(pred.sum()), 1.0),
        "disc_recall": tp / max(float(truth.sum()), 1.0),
        "replaced_frac": repl / max(d_n, 1),
        "rows": n,
    }
