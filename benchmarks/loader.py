"""Is the data pipeline ever the bottleneck? Loader tokens/s vs training-step tokens/s.

    python benchmarks/loader.py --presets tiny,small

Packs the built-in corpus (8,192-token WordPiece, 128-token rows), then times, in the same run,
(a) `PretrainLoader.next_batch()` including the shard reads, token-type/mask derivation and the
vocabulary check, and (b) one full training step of each preset at the same batch size. The
ratio must stay far above 1 (the issue's target: >= 20x)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import make_config, ours_step_fn  # noqa: E402
from report import machine_meta, write_results  # noqa: E402

from electra.api import default_corpus  # noqa: E402
from electra.config import PreprocessConfig, TokenizerConfig  # noqa: E402
from electra.data.corpus import iter_documents  # noqa: E402
from electra.data.loader import PretrainLoader  # noqa: E402
from electra.data.preprocess import preprocess  # noqa: E402
from electra.data.shards import ShardReader  # noqa: E402
from electra.data.tokenizer import train_tokenizer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--loader-batches", type=int, default=200)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--corpus-files", type=int, default=10, help="how many built-in corpus files to pack")
    p.add_argument("--out")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = default_corpus()[: args.corpus_files]
        tok = train_tokenizer(iter_documents(files), Path(tmp) / "tok", TokenizerConfig(vocab_size=8192))
        preprocess(files, Path(tmp) / "tok", Path(tmp) / "data", PreprocessConfig(seq_len=128, workers=1))
        loader = PretrainLoader(ShardReader(Path(tmp) / "data", "train"), args.batch, seed=0,
                                pad_id=tok.pad_id, sep_id=tok.sep_id, vocab_size=tok.vocab_size)
        loader.next_batch()
        t = time.perf_counter()
        tokens = sum(loader.next_batch().input_ids.numel() for _ in range(args.loader_batches))
        loader_tps = tokens / (time.perf_counter() - t)
        print(f"loader: {loader_tps / 1e6:.1f} M tokens/s (batches of {args.batch} x 128)", flush=True)
        for name in args.presets.split(","):
            cfg = make_config(name, 128, [])
            step, prec = ours_step_fn(cfg, args.batch, 128, torch.device("cpu"), "auto")
            step()
            t = time.perf_counter()
            for _ in range(args.steps):
                step()
            train_tps = args.steps * args.batch * 128 / (time.perf_counter() - t)
            rows.append({"preset": name, "precision": prec, "train_tokens_per_s": train_tps,
                         "loader_tokens_per_s": loader_tps, "ratio": loader_tps / train_tps})
            print(f"{name:6s} training step {train_tps:8.0f} tokens/s -> loader is {loader_tps / train_tps:,.0f}x faster",
                  flush=True)
    write_results(args.out, machine_meta(batch=args.batch), rows)


if __name__ == "__main__":
    main()
