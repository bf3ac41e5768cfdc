"""An independent ELECTRA pre-training loop on stock Hugging Face models, to check the recipe.

    python studies/hf_loop.py --data /work/study/d64 --out DIR --steps 4000 --sharing all \
        --disc-weight 1 --unigram-bias-init

A context gain measured with `electra pretrain` could be an artefact of our own model, masking,
sampling, losses or optimizer. This loop shares none of them: the generator is HF's
`ElectraForMaskedLM`, the discriminator HF's `ElectraForPreTraining`; masking, sampling, losses,
AdamW, schedule (plain linear warm-up then decay), clipping and the unigram bias init are its own.
Only rows (`ShardReader`, `batch_from_rows`) and the context-free references (`objective.
baselines`: one yardstick for both loops) come from `electra`. A lever of the `mini` recipe (one
shared encoder, lambda = 1, unigram bias init) is the recipe's when it moves the gains here the
same way. Validation follows `train/validate.py`: fixed rows, masks and samples; the unigram
from 20,000 evenly spaced training rows; per-token replaced rates from 4x as many training rows
corrupted by the current generator."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from electra.config import preset
from electra.data.loader import Batch, batch_from_rows, is_one_segment
from electra.data.shards import ShardReader, read_manifest
from electra.errors import ElectraError
from electra.objective import baselines as ref
from electra.train.validate import evenly_spaced

MASK_PROB, MASK_TOKEN_PROB = 0.15, 0.85  # G-EL: 85% of picks show [MASK], 15% the original
UNIGRAM_ROWS = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    m = preset("mini").model  # tiny and mini share the model; sizes overridable for tests
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="shard dir from `electra preprocess`")
    p.add_argument("--out", type=Path, required=True)
    for name, default in (("steps", 4000), ("batch", 16), ("warmup", 400), ("eval-every", 1000),
                          ("eval-rows", 256), ("log-every", 200), ("threads", 1), ("seed", 0),
                          ("hidden", m.hidden_size), ("layers", m.num_layers), ("heads", m.num_heads),
                          ("ffn", m.intermediate_size), ("embedding", m.embedding_size),
                          ("max-positions", m.max_position_embeddings)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sharing", choices=("all", "embeddings", "none"), default="all",
                   help="all: the generator is the discriminator's encoder with its own MLM head")
    p.add_argument("--generator-size", type=float, default=0.5,
                   help="the generator's width fraction (not with --sharing all)")
    p.add_argument("--disc-weight", type=float, default=1.0, help="lambda in MLM + lambda * RTD")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--unigram-bias-init", action="store_true")
    return p.parse_args(argv)


@dataclass(frozen=True)
class Setup:
    gen: ElectraForMaskedLM
    disc: ElectraForPreTraining
    pad: int
    sep: int
    mask: int
    special: torch.Tensor  # 1-D, ids never picked for masking
    one_segment: bool  # RoBERTa-style rows: token types all 0
    train: ShardReader
    valid_rows: np.ndarray  # [eval_rows, T] the first validation rows
    ref_rows: np.ndarray  # [4 x eval_rows, T] training rows for the replaced-rate reference
    unigram: np.ndarray  # [V] the context-free generator's log p(token)

    def batch(self, rows: np.ndarray) -> Batch:
        return batch_from_rows(rows, self.pad, self.sep, one_segment=self.one_segment)


def hf_config(a: argparse.Namespace, vocab: int, pad_id: int, frac: float) -> ElectraConfig:
    hidden, heads = max(1, round(a.hidden * frac)), max(1, round(a.heads * frac))
    while hidden % heads:
        heads -= 1
    return ElectraConfig(vocab_size=vocab, embedding_size=a.embedding, hidden_size=hidden,
                         num_hidden_layers=a.layers, num_attention_heads=heads,
                         intermediate_size=max(1, round(a.ffn * frac)), pad_token_id=pad_id,
                         max_position_embeddings=a.max_positions, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)


def build_models(a: argparse.Namespace, vocab: int, pad_id: int
                 ) -> tuple[ElectraForMaskedLM, ElectraForPreTraining]:
    torch.manual_seed(a.seed)
    disc = ElectraForPreTraining(hf_config(a, vocab, pad_id, 1.0))
    frac = 1.0 if a.sharing == "all" else a.generator_size
    gen = ElectraForMaskedLM(hf_config(a, vocab, pad_id, frac))
    if a.sharing == "all":
        gen.electra = disc.electra
    elif a.sharing == "embeddings":
        gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = gen.electra.embeddings.word_embeddings.weight  # tied output
    return gen, disc


def unigram_bias(rows: np.ndarray, vocab: int, special_ids: list[int]) -> np.ndarray:
    """log p(token) over `rows`, add-one smoothed; special ids (never a target) at the smallest
    real value, not -inf, so the softmax stays finite."""
    counts = np.bincount(rows.ravel(), minlength=vocab)[:vocab] + 1.0
    real = np.ones(vocab, dtype=bool)
    real[special_ids] = False
    logp = np.log(counts / counts[real].sum())
    logp[~real] = logp[real].min()
    return logp


def mask_rows(ids: torch.Tensor, attn: torch.Tensor, special: torch.Tensor, mask_id: int,
              rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(picked [B, T] bool, generator input [B, T]): round(15% of each row's tokens) non-special
    positions, at most int(0.155 T), 85% of them shown as [MASK] and the rest unchanged."""
    B, T = ids.shape
    cand = attn & ~torch.isin(ids, special)
    cap = max(1, int((MASK_PROB + 0.005) * T))
    n = torch.minimum(torch.round(attn.sum(1) * MASK_PROB).long().clamp(1, cap), cand.sum(1))  # [B]
    rank = torch.rand(B, T, generator=rng).masked_fill(~cand, 2.0).argsort(1).argsort(1)
    picked = rank < n[:, None]
    shown_mask = picked & (torch.rand(B, T, generator=rng) < MASK_TOKEN_PROB)
    return picked, ids.masked_fill(shown_mask, mask_id)


def electra_step(s: Setup, b: Batch, a: argparse.Namespace, rng: torch.Generator
                 ) -> dict[str, torch.Tensor]:
    """One forward of MLM + lambda * RTD; the generator's logits only at picked positions."""
    ids, attn, types = b.input_ids, b.attention_mask, b.token_type_ids  # [B, T]
    picked, g_in = mask_rows(ids, attn, s.special, s.mask, rng)
    h = s.gen.electra(g_in, attention_mask=attn.long(), token_type_ids=types).last_hidden_state
    logits = s.gen.generator_lm_head(s.gen.generator_predictions(h[picked])).float()  # [N, V]
    targets = ids[picked]  # [N]
    mlm = F.cross_entropy(logits, targets)
    probs = torch.softmax(logits.detach() / a.temperature, -1)
    corrupted = ids.masked_scatter(picked, torch.multinomial(probs, 1, generator=rng).squeeze(1))
    replaced = (corrupted != ids) & attn  # a sample equal to the original is not a replacement
    d = s.disc(corrupted, attention_mask=attn.long(), token_type_ids=types).logits.float()  # [B, T]
    rtd = F.binary_cross_entropy_with_logits(d[attn], replaced[attn].float())
    return {"loss": mlm + a.disc_weight * rtd, "mlm": mlm, "rtd": rtd, "logits": logits,
            "targets": targets, "shown": g_in[picked], "score": d[attn], "replaced": replaced[attn],
            "corrupted": corrupted[attn]}


@torch.no_grad()
def corrupt_rows(s: Setup, rows: np.ndarray, a: argparse.Namespace, seed: int
                 ) -> dict[str, np.ndarray]:
    """Fixed-seed masks and samples over `rows`; per-pick and per-token arrays for the metrics."""
    rng, parts = torch.Generator().manual_seed(seed), []
    for start in range(0, len(rows), a.batch):
        o = electra_step(s, s.batch(rows[start:start + a.batch]), a, rng)
        o["nll"] = F.cross_entropy(o["logits"], o["targets"], reduction="none")
        o["hit"] = o["logits"].argmax(-1) == o["targets"]
        parts.append({k: v for k, v in o.items() if v.dim() == 1})
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def validate(s: Setup, a: argparse.Namespace) -> dict[str, float]:
    """The model's figures beside the context-free references on the same masks and samples."""
    s.gen.eval(), s.disc.eval()
    v = corrupt_rows(s, s.valid_rows, a, a.seed + 999)
    t = corrupt_rows(s, s.ref_rows, a, a.seed + 1000)  # other rows, other draws
    s.gen.train(), s.disc.train()
    mlm_ref = ref.context_free_mlm(v["targets"], v["shown"], s.mask, s.unigram,
                                   ref.copy_probability(MASK_TOKEN_PROB, 0.0))
    rates = ref.replaced_rate_by_token(t["corrupted"], t["replaced"], len(s.unigram))
    rtd_ref = ref.context_free_rtd(v["corrupted"], v["replaced"], rates)
    score, replaced = torch.from_numpy(v["score"]), torch.from_numpy(v["replaced"])
    r = {"mlm_loss": float(v["nll"].mean()), "gen_acc": float(v["hit"].mean()),
         "rtd_loss": float(F.binary_cross_entropy_with_logits(score, replaced.float())),
         "disc_acc": float(((v["score"] > 0) == v["replaced"]).mean()),
         "disc_auc": ref.roc_auc(v["score"], v["replaced"]), "replaced_frac": float(replaced.float().mean()),
         "nocontext_mlm_loss": mlm_ref.loss, "nocontext_gen_acc": mlm_ref.acc, "rows": len(s.valid_rows),
         "nocontext_disc_auc": rtd_ref.auc, "nocontext_disc_acc": rtd_ref.acc}
    r["gain_mlm_loss"] = r["nocontext_mlm_loss"] - r["mlm_loss"]  # > 0: the generator uses context
    r["gain_gen_acc"] = r["gen_acc"] - r["nocontext_gen_acc"]
    r["gain_disc_auc"] = r["disc_auc"] - r["nocontext_disc_auc"]  # > 0: so does the discriminator
    return r


def batches(s: Setup, size: int, seed: int) -> Iterator[Batch]:
    """Every training row once per epoch, in a seeded order; the ragged tail is dropped."""
    for epoch in range(sys.maxsize):
        order = np.random.default_rng([seed, epoch]).permutation(len(s.train))
        for start in range(0, len(order) - size + 1, size):
            yield s.batch(s.train.take(order[start:start + size]))


def optimizer(s: Setup, a: argparse.Namespace) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
    """AdamW, decay 0.01 except biases and LayerNorms; every shared tensor counted once."""
    params = list({id(p): p for m in (s.gen, s.disc) for p in m.parameters()}.values())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-6), params


def lr_at(step: int, a: argparse.Namespace) -> float:
    """Linear warm-up to --lr over --warmup updates, then linear decay to 0 at --steps."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    return a.lr * max(0.0, 1.0 - (step - a.warmup) / max(1, a.steps - a.warmup))


def setup(a: argparse.Namespace) -> Setup:
    """Rows, token ids, the two HF models (sharing and bias init applied) and the references."""
    if not (a.data / "manifest.json").is_file():
        raise ElectraError(f"--data {a.data} holds no manifest.json; pass a shard dir made by "
                           "`electra preprocess`")
    man = read_manifest(a.data)
    if man.seq_len > a.max_positions:
        raise ElectraError(f"rows of {man.seq_len} tokens exceed --max-positions "
                           f"{a.max_positions}; raise it")
    train, valid = ShardReader(a.data, "train", man), ShardReader(a.data, "valid", man)
    ids, vocab = man.special_ids, man.vocab_size
    sp = sorted(set(ids.values()))
    gen, disc = build_models(a, vocab, ids["pad"])
    unigram_rows = evenly_spaced(train, UNIGRAM_ROWS)  # read once: the head's start and the reference
    if a.unigram_bias_init:
        with torch.no_grad():
            gen.generator_lm_head.bias.copy_(torch.from_numpy(unigram_bias(unigram_rows, vocab, sp)))
    return Setup(gen=gen, disc=disc, pad=ids["pad"], sep=ids["sep"], mask=ids["mask"],
                 special=torch.tensor(sp), one_segment=is_one_segment(train), train=train,
                 valid_rows=valid.take(np.arange(min(a.eval_rows, len(valid)))),
                 ref_rows=evenly_spaced(train, 4 * a.eval_rows),
                 unigram=ref.unigram_log_probs(unigram_rows, vocab, tuple(sp)))


def report(log: TextIO, r: dict) -> None:
    """One JSON line in metrics.jsonl (the trainer's keys, so studies/summarize.py reads it) and
    one console line."""
    log.write(json.dumps(r) + "\n")
    log.flush()
    if r["kind"] == "train":
        print(f"step {r['step']:>6} | loss {r['loss']:.3f} (mlm {r['mlm_loss']:.3f} rtd "
              f"{r['rtd_loss']:.3f}) | lr {r['lr']:.2e} | {r['tokens_per_s']:,.0f} tok/s", flush=True)
    else:
        print(f"valid {r['step']:>6} | G loss {r['mlm_loss']:.3f} vs {r['nocontext_mlm_loss']:.3f} "
              f"no ctx: G gain {r['gain_mlm_loss']:+.3f} | D AUC {r['disc_auc']:.3f} vs "
              f"{r['nocontext_disc_auc']:.3f}: D gain {r['gain_disc_auc']:+.3f}", flush=True)


def run(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads)
    s = setup(a)
    opt, params = optimizer(s, a)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(a).items()}) + "\n")
    rng, stream = torch.Generator().manual_seed(a.seed), batches(s, a.batch, a.seed)
    tokens, interval_tokens, secs, sums, n = 0, 0, 0.0, torch.zeros(3), 0
    with (a.out / "metrics.jsonl").open("w") as log:
        for step in range(1, a.steps + 1):
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = lr_at(step - 1, a)
            b = next(stream)
            o = electra_step(s, b, a, rng)
            opt.zero_grad(set_to_none=True)
            o["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sums += torch.stack([o["loss"], o["mlm"], o["rtd"]]).detach()
            interval_tokens, n = interval_tokens + int(b.attention_mask.sum()), n + 1
            secs += time.perf_counter() - t0  # training time only: validation is left out
            if step % a.log_every == 0 or step == a.steps:  # means over the interval
                tokens += interval_tokens
                report(log, {"kind": "train", "step": step, "lr": opt.param_groups[0]["lr"],
                             **dict(zip(("loss", "mlm_loss", "rtd_loss"), (sums / n).tolist(), strict=True)),
                             "tokens": tokens, "tokens_per_s": interval_tokens / secs, "seconds": secs})
                interval_tokens, secs, sums, n = 0, 0.0, torch.zeros(3), 0
            if step % a.eval_every == 0 or step == a.steps:
                report(log, {"kind": "valid", "step": step, **validate(s, a)})


def main(argv: list[str] | None = None) -> None:
    try:
        run(parse_args(argv))
    except ElectraError as e:
        sys.exit(f"hf_loop: {e}")


if __name__ == "__main__":
    main()
