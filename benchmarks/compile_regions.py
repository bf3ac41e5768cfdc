"""Does `torch.compile` win on CPU for a region of the encoder? Same process, interleaved rounds,
ratios against eager: the encoder's forward + backward with (a) eager layers as training runs
them, (b) each layer's feed-forward block compiled (GELU, bias, residual, LayerNorm fused), (c)
each whole layer compiled, (d) the whole encoder compiled.

    python benchmarks/compile_regions.py --configs tiny,small --threads 1 --out benchmarks/results/compile_regions.json

The speed issue asks for compile "per region, not the whole model": this is that measurement.
With --dropout the presets' dropout stays on (eager runs the packed kernel training uses, the
compiled regions torch's dropout, which inductor generates inside its fused kernels). With
--precision the step runs under the autocast training would use (`auto`: the machine's choice),
so the casts around each matmul are part of what a compiled region may fuse."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import best_interleaved, ratio_parser, ratio_rows, run_configs  # noqa: E402

from electra.config import apply_overrides, preset  # noqa: E402
from electra.model.dropout import use_dropout_kernel  # noqa: E402
from electra.model.layers import Encoder  # noqa: E402
from electra.train.precision import Precision  # noqa: E402


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


def bench(name: str, batch: int, seq: int, rounds: int, dropout: bool, precision: str) -> list[dict]:
    over = [] if dropout else ["model.dropout=0.0", "model.attention_dropout=0.0"]
    cfg = apply_overrides(preset(name), over).model
    models = variants(cfg, dropout)
    ids = torch.randint(5, cfg.vocab_size, (batch, seq))
    types = torch.zeros_like(ids)

    cpu = torch.device("cpu")
    prec = Precision.resolve(precision, cpu)

    def step(m: torch.nn.Module) -> None:
        with prec.autocast():
            out = m(ids, types, None)
        out.float().pow(2).mean().backward()

    for m in models.values():  # compile and warm up
        for _ in range(3):
            step(m)
    best = best_interleaved({k: (lambda m=m: step(m)) for k, m in models.items()}, rounds)
    return ratio_rows(best, "eager", "variant", f"{name:6s} dropout={'on ' if dropout else 'off'} {prec.name}",
                      config=name, dropout=dropout, precision=prec.name)


def main() -> None:
    p = ratio_parser(__doc__)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--dropout", action="store_true", help="keep the presets' dropout on")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or auto (the machine's choice)")
    args = p.parse_args()
    run_configs(args, lambda name: bench(name, args.batch, args.seq, args.rounds, args.dropout, args.precision),
                batch=args.batch, seq=args.seq)


if __name__ == "__main__":
    main()
