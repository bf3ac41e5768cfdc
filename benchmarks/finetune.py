"""Examples/s of GLUE-style fine-tuning: ours vs HF `ElectraForSequenceClassification`.

    python benchmarks/finetune.py --configs small,base --batch 32

Both models get the same weights, head (HF's ElectraClassificationHead: `head.kind=electra`),
optimizer (AdamW, eps 1e-6), dropout 0.1 and the same batches: SST-2-like single sentences of
8-64 tokens, padded to the longest in each batch with an attention mask. Training steps
(forward, backward, update) and inference are timed in the same invocation; the result is the
ratio. Run on a quiet machine: other jobs on the same cores distort both sides."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import machine_meta, write_results  # noqa: E402

from electra.config import preset  # noqa: E402
from electra.hf import encoder_to_hf, hf_config  # noqa: E402
from electra.model.dropout import resolve_dropout_kernel, use_dropout_kernel  # noqa: E402
from electra.model.finetuning import FinetuneModel  # noqa: E402
from electra.model.heads import ElectraClassificationHead  # noqa: E402
from electra.model.layers import Encoder, init_weights  # noqa: E402
from electra.train.precision import Precision  # noqa: E402


def make_batches(n: int, B: int, V: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(8, 65, (B,), generator=g)
        T = int(lengths.max())
        ids = torch.randint(5, V, (B, T), generator=g)
        mask = torch.arange(T)[None, :] < lengths[:, None]
        ids[:, 0] = 2
        ids[~mask] = 0
        out.append((ids, torch.zeros_like(ids), mask, torch.randint(0, 2, (B,), generator=g)))
    return out


def build_pair(name: str, vocab: int):
    import transformers

    mcfg = dataclasses.replace(preset(name).model, vocab_size=vocab, dropout=0.1, attention_dropout=0.1)
    torch.manual_seed(0)
    enc = Encoder(mcfg)
    head = ElectraClassificationHead(mcfg.hidden_size, 2, 0.1)
    ours = FinetuneModel(enc, head)
    init_weights(ours, 0.02)
    c = hf_config(mcfg, "ElectraForSequenceClassification")
    for k in ("architectures", "model_type", "torch_dtype"):
        c.pop(k)
    hf = transformers.ElectraForSequenceClassification(transformers.ElectraConfig(**c, num_labels=2))
    state = encoder_to_hf(enc.state_dict(), mcfg.num_layers)
    state |= {"classifier.dense.weight": head.dense.weight, "classifier.dense.bias": head.dense.bias,
              "classifier.out_proj.weight": head.out_proj.weight, "classifier.out_proj.bias": head.out_proj.bias}
    missing = hf.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    assert not missing.unexpected_keys and not [k for k in missing.missing_keys if "position_ids" not in k]
    return ours, hf


def time_steps(step, batches, warmup: int) -> float:
    for b in batches[:warmup]:
        step(b)
    t = time.perf_counter()
    for b in batches[warmup:]:
        step(b)
    return time.perf_counter() - t


def measure(name: str, B: int, n: int, warmup: int, precision_name: str,
            dropout_kernel: str = "auto") -> list[dict]:
    device = torch.device("cpu")
    prec = Precision.resolve(precision_name, device)
    ours, hf = build_pair(name, 30522)
    use_dropout_kernel(ours, resolve_dropout_kernel(dropout_kernel, device))  # ours only: our runtime
    batches = make_batches(n + warmup, B, 30522)
    n_examples = B * n
    rows = []
    for impl, model in (("hf-reference", hf), ("ours", ours)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6)

        def train_step(b, model=model, impl=impl, opt=opt):
            ids, types, mask, labels = b
            with prec.autocast():
                if impl == "ours":
                    logits = model(ids, types, mask)
                else:
                    logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask.long()).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        @torch.no_grad()
        def eval_step(b, model=model, impl=impl):
            ids, types, mask, _ = b
            with prec.autocast():
                if impl == "ours":
                    model(ids, types, mask)
                else:
                    model(input_ids=ids, token_type_ids=types, attention_mask=mask.long())

        model.train()
        t_train = time_steps(train_step, batches, warmup)
        model.eval()
        t_eval = time_steps(eval_step, batches, warmup)
        rows.append({"config": name, "impl": impl, "precision": prec.name, "batch": B,
                     "train_examples_per_s": n_examples / t_train, "eval_examples_per_s": n_examples / t_eval})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="small,base")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="auto")
    p.add_argument("--dropout-kernel", default="auto", help="ours: auto (packed on CPU) | torch | packed")
    p.add_argument("--out")
    args = p.parse_args()
    rows = []
    for name in args.configs.split(","):
        pair = measure(name, args.batch, args.batches, args.warmup, args.precision, args.dropout_kernel)
        ref = pair[0]
        for r in pair:
            r["train_ratio"] = r["train_examples_per_s"] / ref["train_examples_per_s"]
            r["eval_ratio"] = r["eval_examples_per_s"] / ref["eval_examples_per_s"]
            print(f"{name:6s} {r['impl']:13s} {r['precision']:5s} train {r['train_examples_per_s']:7.1f} ex/s "
                  f"x{r['train_ratio']:.2f}   eval {r['eval_examples_per_s']:7.1f} ex/s x{r['eval_ratio']:.2f}",
                  flush=True)
        rows += pair
    write_results(args.out, machine_meta(), rows)


if __name__ == "__main__":
    main()
