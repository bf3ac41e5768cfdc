"""Held-out evaluation of a pre-training run, beside what no context can do.

Masks and generator samples come from fixed seeds (one per batch), so every evaluation of a run
scores the same corrupted inputs and numbers are comparable across steps; the masks, and so the
generator's reference, are also the same whichever kernel samples the replacements. Besides losses it
reports the discriminator's accuracy next to the "everything is original" answer, its ROC AUC,
and the context-free references of `objective.baselines` on the same rows, masks and samples:
the *context gain* (model minus reference) is what pre-training has learned beyond token
frequencies."""

from __future__ import annotations

import numpy as np
import torch

from electra.data.loader import batch_from_rows, is_one_segment
from electra.data.shards import ShardReader
from electra.objective import ElectraModel
from electra.objective import baselines as ref
from electra.train.precision import Precision

# a generator loss this much below the context-free one, or a discriminator AUC this much above
# it, is more than the noise of a few hundred validation rows: the model uses context
LEARNED_MLM_GAIN = 0.05
LEARNED_AUC_GAIN = 0.02


def evenly_spaced(reader: ShardReader, n: int) -> np.ndarray:
    """`n` rows spread over the whole split (the split's order is already shuffled by hash)."""
    n = min(n, len(reader))
    return reader.take(spaced_indices(reader, n)) if n else np.empty((0, 0))


def spaced_indices(reader: ShardReader, n: int) -> np.ndarray:
    return np.linspace(0, len(reader) - 1, min(n, len(reader))).astype(np.int64)


def word_bits(reader: ShardReader, indices: np.ndarray) -> np.ndarray | None:
    """The rows' word bits where the shards hold them (whole-word masking of Chinese)."""
    return reader.take_words(indices) if getattr(reader, "has_words", False) and len(indices) else None


class Validator:
    """Call with the (unwrapped) pre-training model; returns a flat dict of metrics."""

    def __init__(self, valid: ShardReader, train: ShardReader, *, rows: int, batch_size: int,
                 pad_id: int, sep_id: int, special_ids: tuple[int, ...], device: torch.device,
                 precision: Precision, seed: int, reference_rows: int | None = None,
                 unigram_rows: int = 20_000) -> None:
        valid_idx, train_idx = np.arange(min(rows, len(valid))), spaced_indices(train, reference_rows or 4 * rows)
        self.valid_rows, self.valid_words = valid.take(valid_idx), word_bits(valid, valid_idx)
        self.train_rows, self.train_words = train.take(train_idx), word_bits(train, train_idx)
        self.batch_size, self.pad_id, self.sep_id = batch_size, pad_id, sep_id
        self.one_segment = is_one_segment(valid)  # RoBERTa-style rows: token types all 0
        self.device, self.precision, self.seed = device, precision, seed
        vocab = int(train.manifest.vocab_size)
        self.unigram = ref.unigram_log_probs(evenly_spaced(train, unigram_rows), vocab, special_ids)

    def __len__(self) -> int:
        return len(self.valid_rows)

    @torch.no_grad()
    def _corrupt(self, model: ElectraModel, rows: np.ndarray, words: np.ndarray | None,
                 seed: int) -> dict[str, np.ndarray | float]:
        """Run `model` over `rows` with fixed masks/samples; gather what the metrics need."""
        gen = torch.Generator(device=self.device)
        sums = torch.zeros(7, dtype=torch.float64, device=self.device)
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("score", "replaced", "corrupted",
                                                                "target", "shown")}
        for start in range(0, len(rows), self.batch_size):
            part = slice(start, start + self.batch_size)
            # each batch its own stream: its masks then do not depend on how many random numbers
            # the previous batch's sampler drew (which differs between sampling kernels)
            gen.manual_seed(int(np.random.SeedSequence([seed, start]).generate_state(1)[0]))
            b = batch_from_rows(rows[part], self.pad_id, self.sep_id, one_segment=self.one_segment,
                                words=None if words is None else words[part]).to(self.device)
            model.set_word_bits(b.continues_word)
            with self.precision.autocast():
                out = model(b.input_ids, b.token_type_ids, b.attention_mask, generator=gen)
            sums += torch.stack([out.mlm_loss * out.gen_count, out.rtd_loss * out.disc_count,
                                 out.gen_correct, out.gen_count, out.disc_correct, out.disc_count,
                                 out.replaced_count]).double()
            tok, picked = out.token_mask, out.masked.weights > 0
            parts["score"].append(out.disc_logits[tok].float())
            parts["replaced"].append(out.replaced[tok])
            parts["corrupted"].append(out.corrupted[tok])
            parts["target"].append(out.masked.targets[picked])
            parts["shown"].append(torch.gather(out.masked.input_ids, 1, out.masked.positions)[picked])
        model.set_word_bits(None)
        arrays = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
        return {**arrays, **dict(zip(("mlm_sum", "rtd_sum", "g_ok", "g_n", "d_ok", "d_n", "repl"),
                                     sums.tolist(), strict=True))}

    def __call__(self, model: ElectraModel) -> dict[str, float]:
        was_training = model.training
        model.eval()
        v = self._corrupt(model, self.valid_rows, self.valid_words, self.seed)
        t = self._corrupt(model, self.train_rows, self.train_words, self.seed + 1)  # other rows
        model.train(was_training)

        spec = model.mask_spec
        mlm_ref = ref.context_free_mlm(v["target"], v["shown"], spec.mask_id, self.unigram,
                                       ref.copy_probability(spec.mask_token_prob, spec.random_token_prob))
        rates = ref.replaced_rate_by_token(t["corrupted"], t["replaced"], len(self.unigram))
        rtd_ref = ref.context_free_rtd(v["corrupted"], v["replaced"], rates)
        pred = v["score"] > 0
        tp = float((pred & v["replaced"]).sum())
        g_n, d_n = max(v["g_n"], 1), max(v["d_n"], 1)
        mlm, rtd = v["mlm_sum"] / g_n, v["rtd_sum"] / d_n
        m = {
            "loss": model.objective.mlm_weight * mlm + model.objective.disc_weight * rtd,
            "mlm_loss": mlm, "rtd_loss": rtd,
            "gen_acc": v["g_ok"] / g_n, "disc_acc": v["d_ok"] / d_n,
            "baseline_acc": 1.0 - v["repl"] / d_n,  # predicting "original" everywhere
            "disc_auc": ref.roc_auc(v["score"], v["replaced"]),
            "disc_precision": tp / max(float(pred.sum()), 1.0),
            "disc_recall": tp / max(float(v["replaced"].sum()), 1.0),
            "replaced_frac": v["repl"] / d_n, "rows": len(self.valid_rows),
            "nocontext_mlm_loss": mlm_ref.loss, "nocontext_gen_acc": mlm_ref.acc,
            "nocontext_disc_auc": rtd_ref.auc, "nocontext_disc_acc": rtd_ref.acc,
        }
        m["gain_mlm_loss"] = m["nocontext_mlm_loss"] - mlm  # > 0: the generator uses context
        m["gain_gen_acc"] = m["gen_acc"] - m["nocontext_gen_acc"]
        m["gain_disc_auc"] = m["disc_auc"] - m["nocontext_disc_auc"]  # > 0: so does the discriminator
        m["gain_disc_acc"] = m["disc_acc"] - m["nocontext_disc_acc"]
        if not model.objective.detects_replacements:  # MLM alone, Replace/All-Tokens MLM: no RTD
            m.update({k: float("nan") for k in m if "disc" in k or k in ("rtd_loss", "baseline_acc")})
        return m


def learned_context(m: dict[str, float]) -> tuple[bool, bool]:
    """(generator, discriminator) each clearly beyond its context-free reference."""
    return (m.get("gain_mlm_loss", 0.0) > LEARNED_MLM_GAIN,
            m.get("gain_disc_auc", 0.0) > LEARNED_AUC_GAIN)


def context_line(m: dict[str, float]) -> str:
    """One line a user can read: each model's figure beside its context-free reference (the
    discriminator's part only when the run has one: MLM-only runs report NaN there)."""
    gen = (f"generator MLM loss {m['mlm_loss']:.3f} vs {m['nocontext_mlm_loss']:.3f} without context "
           f"({m['gain_mlm_loss']:+.3f}), acc {m['gen_acc']:.3f} vs {m['nocontext_gen_acc']:.3f}")
    if not m.get("disc_auc", float("nan")) == m.get("disc_auc"):
        return gen
    return (f"{gen} | disc AUC {m['disc_auc']:.3f} vs {m['nocontext_disc_auc']:.3f} without context: "
            f"{m['gain_disc_auc']:+.3f}, acc {m['disc_acc']:.4f} vs {m['nocontext_disc_acc']:.4f} "
            f"(all-original {m['baseline_acc']:.4f})")
