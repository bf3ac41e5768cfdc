"""Does `torch.compile` win on CPU for a region of the encoder? Same process, interleaved rounds,
ratios against eager: the encoder's forward + backward with (a) eager layers as training runs
them, (b) each layer's feed-forward block compiled (GELU, bias, residual, LayerNorm fused), (c)
each whole layer compiled, (d) the whole encoder compiled.

    python benchmarks/compile_regions.py --configs tiny,small --threads 1 --out benchmarks/results/compile_regions.json

The speed issue asks for compile "per region, not the whole model": this is that measurement.
With --dropout the presets' dropout stays on (eager runs the packed kernel training uses, the
compiled regions torch's dropout, which inductor generates inside its fused kernels)."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import best_interleaved, machine_meta, write_results  # noqa: E402

from electra.config import apply_overrides, preset  # noqa: E402
from electra.model.dropout import use_dropout_kernel  # noqa: E402
from electra.model.layers import Encoder  # noqa: E402


def variants(cfg, dropout: bool) -> dict[str, torch.nn.Module]:
    eager = Encoder(cfg).train()
    if dropout:
        use_dropout_kernel(eager, "packed")
    ffn, layer, whole = (copy.deepcopy(eager) for _ in range(3))
    for m in (ffn, layer, whole):
        use_dropout_kernel(m, "torch")  # what inductor can fuse
    for block in ffn.layers:
        block.feed_forward = torch.compile(block.feed_forward, dynamic=False)
    for i, block in enumerate(layer.layers):
        layer.layers[i] = torch.compile(block, dynamic=False)
    return {"eager": eager, "ffn compiled": ffn, "layer compiled": layer,
            "encoder compiled": torch.compile(whole, dynamic=False)}


def bench(name: str, batch: int, seq: int, rounds: int, dropout: bool) -> list[dict]:
    over = [] if dropout else ["model.dropout=0.0", "model.attention_dropout=0.0"]
    cfg = apply_overrides(preset(name), over).model
    models = variants(cfg, dropout)
    ids = torch.randint(5, cfg.vocab_size, (batch, seq))
    types = torch.zeros_like(ids)

    def step(m: torch.nn.Module) -> None:
        m(ids, types, None).pow(2).mean().backward()

    for m in models.values():  # compile and warm up
        for _ in range(3):
            step(m)
    best = best_interleaved({k: (lambda m=m: step(m)) for k, m in models.items()}, rounds)
    rows = [{"config": name, "variant": k, "dropout": dropout, "ms_per_step": 1e3 * s,
             "speedup_vs_eager": best["eager"] / s} for k, s in best.items()]
    for r in rows:
        print(f"{name:6s} dropout={'on ' if dropout else 'off'} {r['variant']:17s} {r['ms_per_step']:8.1f} ms  "
              f"x{r['speedup_vs_eager']:.2f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="tiny,small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dropout", action="store_true", help="keep the presets' dropout on")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for name in args.configs.split(",")
            for r in bench(name, args.batch, args.seq, args.rounds, args.dropout)]
    write_results(args.out, machine_meta(batch=args.batch, seq=args.seq), rows)


if __name__ == "__main__":
    main()
