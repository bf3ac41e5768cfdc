"""Tokens/s, peak memory and MFU of one full RTD training step: ours vs a HF `transformers` loop.

    python benchmarks/pretrain_step.py --configs tiny:128,small:128,small:512,base:128 --batch 16

The reference is what people write with stock HF classes: `ElectraForMaskedLM` generator and
`ElectraForPreTraining` discriminator sharing embeddings, full-vocabulary generator logits,
Gumbel sampling at the masked positions, torch AdamW, clipping 1.0. Both run in the same
invocation, each configuration in a fresh subprocess (so peak memory is its own), and the
result is reported as a ratio. MFU uses the FLOP counter of the training logs (`electra.flops`)
against this machine's matmul peak measured in the same run."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import machine_meta, run_child, write_results  # noqa: E402

from electra.config import apply_overrides, preset  # noqa: E402
from electra.objective import TokenIds, build_objective  # noqa: E402
from electra.objective.masking import MaskSpec, mask_tokens  # noqa: E402
from electra.objective.sampling import gumbel_sample  # noqa: E402
from electra.train.cpu_runtime import setup_allocator  # noqa: E402
from electra.train.flops import electra_train_flops  # noqa: E402
from electra.train.optim import build_optimizer, build_scheduler, optimizer_step, param_groups  # noqa: E402
from electra.train.precision import Precision, resolve_precision  # noqa: E402
from electra.train.state import use_process_settings, use_speed_settings  # noqa: E402

FOREACH = "bench.adamw=foreach"  # a variant's marker, not a config override
VOCAB = {"tiny": 8192, "mini": 8192, "quick": 8192}  # the others use BERT's 30522


def make_config(name: str, seq: int, overrides: list[str]):
    vocab = VOCAB.get(name, 30522)
    return apply_overrides(preset(name), [f"model.vocab_size={vocab}", f"tokenizer.vocab_size={vocab}",
                                          f"preprocess.seq_len={seq}", *overrides])


def fake_batch(B: int, T: int, V: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, V, (B, T), generator=g)
    ids[:, 0], ids[:, T // 2], ids[:, -1] = 2, 3, 3
    types = torch.zeros_like(ids)
    types[:, T // 2 + 1:] = 1
    return ids.to(device), types.to(device), torch.ones_like(ids, dtype=torch.bool).to(device)


def ours_step_fn(cfg, B, T, device, precision_name, foreach_adamw=False):
    use_process_settings(cfg.train)
    model = build_objective(cfg, TokenIds.standard()).to(device).train()
    use_speed_settings(model, cfg.train, device)
    opt = build_optimizer(model, cfg.optim)
    if foreach_adamw:  # the variant timing torch's foreach AdamW, the CPU default before the fused one
        opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps, foreach=True)
    sched = build_scheduler(opt, cfg.optim, cfg.train.steps)
    prec = Precision.resolve(precision_name, device)
    ids, types, attn = fake_batch(B, T, cfg.model.vocab_size, device)
    fn = torch.compile(model) if cfg.train.compile else model

    def step():  # exactly the training loop's step: masking inside the objective, optimizer_step
        with prec.autocast():
            out = fn(ids, types, attn)
        prec.scaler.scale(out.loss).backward()
        optimizer_step(model, opt, sched, prec.scaler, cfg.optim.clip_norm)
    return step, prec.name


def hf_step_fn(cfg, B, T, device, precision_name):
    import transformers

    from electra.hf import hf_config

    def build(mcfg, cls):
        c = hf_config(mcfg, cls.__name__)
        c.pop("architectures"), c.pop("model_type"), c.pop("torch_dtype")
        return cls(transformers.ElectraConfig(**c))

    setup_allocator(cfg.train.allocator)  # the plain reference runs with train.allocator=system
    gen = build(cfg.generator_model(), transformers.ElectraForMaskedLM).to(device).train()
    disc = build(cfg.model, transformers.ElectraForPreTraining).to(device).train()
    disc.electra.embeddings = gen.electra.embeddings  # shared token/position/type embeddings
    params = list({id(p): p for p in [*gen.parameters(), *disc.parameters()]}.values())
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, eps=1e-6, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    prec = Precision.resolve(precision_name, device)
    ids, types, attn = fake_batch(B, T, cfg.model.vocab_size, device)
    special = torch.tensor(TokenIds.standard().special_ids, device=device)
    spec = MaskSpec.from_config(cfg.objective, TokenIds.standard().mask_id, cfg.model.vocab_size)

    def step():
        m = mask_tokens(ids, attn, special, spec)
        is_masked = torch.zeros_like(attn).scatter(1, m.positions, m.weights > 0)
        labels = ids.masked_fill(~is_masked, -100)
        with prec.autocast():
            g = gen(input_ids=m.input_ids, attention_mask=attn, token_type_ids=types, labels=labels)
            sampled = gumbel_sample(g.logits[is_masked].detach())  # full logits, then pick
            corrupted = ids.clone()
            corrupted[is_masked] = sampled
            replaced = (corrupted != ids).long()
            d = disc(input_ids=corrupted, attention_mask=attn, token_type_ids=types, labels=replaced)
            loss = g.loss + 50.0 * d.loss
        prec.scaler.scale(loss).backward()
        optimizer_step(torch.nn.ModuleList([gen, disc]), opt, sched, prec.scaler, 1.0)
    return step, prec.name


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10, trials: int = 5) -> float:
    """Best of `trials` timings of n x n matmuls: the machine's achievable dense peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(trials):
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_step_seconds(step, warmup: int, steps: int, device: torch.device) -> float:
    """Median wall time of `steps` calls after `warmup` (CUDA: synchronised, peak memory reset
    after the warm-up, so it is the measured steps' own)."""
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(args) -> dict:
    """One configuration, in this (fresh) process."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    name, seq = args.one.split(":")
    cfg = make_config(name, int(seq), [o for o in args.override if o != FOREACH])
    if args.impl == "ours":
        step, prec = ours_step_fn(cfg, args.batch, int(seq), device, args.precision, FOREACH in args.override)
    else:
        step, prec = hf_step_fn(cfg, args.batch, int(seq), device, args.precision)
    median = median_step_seconds(step, args.warmup, args.steps, device)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"impl": args.impl, "config": args.one, "batch": args.batch, "precision": prec,
            "overrides": args.override, "step_s": median, "tokens_per_s": args.batch * int(seq) / median,
            "peak_mem_bytes": peak, "flops_per_token": electra_train_flops(cfg, int(seq))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tiny:128,small:128,small:512,base:128")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="repeat and keep each implementation's best")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--variants", default="default",
                   help="comma list of 'ours' variants: default, nodrop (dropout 0), compile, "
                        "ckpt (gradient checkpointing), gumbel (Gumbel-max samples instead of the "
                        "inverse CDF), foreach (torch's foreach AdamW instead of the fused one), plain (torch's "
                        "dropout kernel, the system allocator and Gumbel-max: the defaults before the "
                        "CPU speed work)")
    p.add_argument("--hf-keepmem", action="store_true",
                   help="also run the HF reference with our allocator setting (train.allocator=auto)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--override", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:  # child process
        print(json.dumps(measure(args)))
        return

    device = torch.device(args.device)
    dtype = torch.bfloat16 if resolve_precision(args.precision, device) == "bf16" else torch.float32
    peak = matmul_peak(device, dtype)
    extra = {"default": [], "nodrop": ["model.dropout=0", "model.attention_dropout=0"],
             "compile": ["train.compile=true"], "ckpt": ["train.gradient_checkpointing=true"],
             "gumbel": ["train.sample_kernel=gumbel"], "foreach": [FOREACH],
             "plain": ["train.dropout_kernel=torch", "train.allocator=system", "train.sample_kernel=gumbel"],
             "nodrop+plain": ["model.dropout=0", "model.attention_dropout=0", "train.allocator=system",
                              "train.sample_kernel=gumbel"]}
    hf_runs = [("hf", ["train.allocator=system"])] + ([("hf", [])] if args.hf_keepmem else [])
    rows = []
    for conf in args.configs.split(","):
        runs = hf_runs + [("ours", extra[v]) for v in args.variants.split(",")]
        best: dict[int, dict] = {}
        for _ in range(args.rounds):  # alternate the implementations; keep each one's best round
            for i, (impl, overrides) in enumerate(runs):
                cmd = [sys.executable, __file__, "--one", conf, "--impl", impl, "--batch", str(args.batch),
                       "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device,
                       "--precision", args.precision] + [f"--override={o}" for o in overrides]
                row = run_child(cmd, f"{impl} {conf}")
                if i not in best or row["tokens_per_s"] > best[i]["tokens_per_s"]:
                    best[i] = row
        base = best[0]
        for i, (impl, overrides) in enumerate(runs):
            row = best[i]
            row["variant"] = (("hf-reference" if overrides else "hf+keepmem") if impl == "hf" else
                              "+".join([v for v, o in extra.items() if o == overrides] or ["default"]))
            row["mfu"] = row["tokens_per_s"] * row["flops_per_token"] / peak
            row["ratio"] = row["tokens_per_s"] / base["tokens_per_s"]
            rows.append(row)
            print(f"{conf:10s} {row['variant']:13s} {row['precision']:5s} {row['tokens_per_s']:9.0f} tok/s "
                  f"x{row['ratio']:.2f}  peak {row['peak_mem_bytes'] / 2**20:7.0f} MiB  "
                  f"MFU {100 * row['mfu']:.1f}%", flush=True)
    meta = machine_meta(device=args.device, matmul_peak_flops=peak, peak_dtype=str(dtype),
                        batch=args.batch, steps=args.steps, rounds=args.rounds)
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name()
    print(f"matmul peak ({dtype}): {peak / 1e9:.0f} GFLOP/s")
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
