"""Preprocessing throughput and peak memory against corpus size (1x, 4x, 16x).

    python benchmarks/preprocess.py --sizes 1,4,16 --workers 0

The corpus is the built-in Wikipedia sample repeated k times (as k copies of its files), so
every size has the same text statistics; linear time shows as a flat tokens/s column and
bounded memory as a flat peak-RSS column. Each size runs `electra preprocess` in a fresh
subprocess; peak RSS is the largest of the main process and its worker processes."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import machine_meta, run_child, write_results  # noqa: E402

from electra.api import default_corpus  # noqa: E402

CHILD = """
import json, resource, sys, time
from electra.config import PreprocessConfig
from electra.data.preprocess import preprocess
if __name__ == "__main__":
    corpus, tok, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = time.perf_counter()
    m = preprocess([corpus], tok, out, PreprocessConfig(seq_len=128, workers=workers))
    dt = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": dt, "tokens": m.totals["tokens"], "rows": m.totals["rows"],
                      "peak_rss_main_kib": own, "peak_rss_worker_kib": kids}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,4,16")
    p.add_argument("--workers", type=int, default=0, help="0 = all cores (the default of the CLI)")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    from electra.config import TokenizerConfig
    from electra.data.corpus import iter_documents
    from electra.data.tokenizer import train_tokenizer

    files = [Path(f) for f in default_corpus()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = tmp / "tok"
        train_tokenizer(iter_documents(files), tok, TokenizerConfig(vocab_size=args.vocab_size))
        script = tmp / "child.py"
        script.write_text(CHILD)
        for k in (int(s) for s in args.sizes.split(",")):
            corpus = tmp / f"corpus{k}"
            corpus.mkdir()
            for i in range(k):
                for f in files:
                    dest = corpus / f"{i:03d}_{f.name}"
                    try:
                        os.link(f, dest)  # no copy needed: the same bytes k times
                    except OSError:
                        shutil.copy(f, dest)
            mib = sum(f.stat().st_size for f in corpus.iterdir()) / 2**20
            r = run_child([sys.executable, str(script), str(corpus), str(tok), str(tmp / f"out{k}"),
                           str(args.workers)], f"preprocessing {k}x the corpus")
            r.update(size=k, gz_mib=mib, tokens_per_s=r["tokens"] / r["seconds"],
                     peak_rss_mib=max(r["peak_rss_main_kib"], r["peak_rss_worker_kib"]) / 1024)
            rows.append(r)
            print(f"{k:3d}x  {mib:7.1f} MiB gz  {r['tokens'] / 1e6:7.2f} M tokens  {r['seconds']:6.1f} s  "
                  f"{r['tokens_per_s'] / 1e6:5.2f} M tokens/s  peak RSS {r['peak_rss_mib']:6.0f} MiB", flush=True)
            shutil.rmtree(tmp / f"out{k}")
            shutil.rmtree(corpus)
    write_results(args.out, machine_meta(workers=args.workers, vocab_size=args.vocab_size), rows)


if __name__ == "__main__":
    main()
