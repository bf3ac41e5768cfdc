"""A GLUE task directory whose dev set is held out of its training set, to choose fine-tuning
settings without reading the real dev set (a study tool, not a recipe). For tasks whose
train.tsv has a header naming the text column and whose dev file is dev.tsv (SST-2, QNLI, QQP,
RTE with --text-column sentence1, ...); CoLA (no header) and MNLI (dev_matched.tsv) are refused
or not read as such.

    python studies/heldout_split.py ../shared/data/glue/SST-2 --out sel/SST-2 --size 2000 --min-words 10
    electra evaluate RUN --tasks sst2 --glue-dir sel --out ft/sel-... optim.lr=... train.epochs=...

`OUT/train.tsv` is the task's training file without `--size` rows drawn at random (seeded);
`OUT/dev.tsv` is those rows. `--min-words` draws them only among rows of at least that many words
in `--text-column`: SST-2's training rows are mostly phrases, its dev rows whole sentences.
Headers and row format are the original file's, so every `electra` command reads the result as
the task."""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def split(train_tsv: Path, size: int, min_words: int, seed: int,
          text_column: str = "sentence") -> tuple[str, list[str], list[str]]:
    """(header, rows kept for training, rows held out), in file order."""
    header, *rows = train_tsv.read_text(encoding="utf-8").splitlines()
    columns = header.split("\t")
    if text_column not in columns:
        raise SystemExit(f"{train_tsv} has no header naming column {text_column!r} (first line: {header[:60]!r}); "
                         "pass --text-column, or use a task whose training file has a header")
    col = columns.index(text_column)
    eligible = [i for i, r in enumerate(rows) if len(r.split("\t")[col].split()) >= min_words]
    if len(eligible) < size:
        raise SystemExit(f"{train_tsv} has {len(eligible)} rows of >= {min_words} words; ask for fewer")
    held = set(random.Random(seed).sample(eligible, size))
    return header, [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task_dir", type=Path, help="a GLUE task directory holding train.tsv")
    ap.add_argument("--out", type=Path, required=True, help="the new task directory (train.tsv, dev.tsv)")
    ap.add_argument("--size", type=int, default=2000, help="rows to hold out (default 2000)")
    ap.add_argument("--min-words", type=int, default=0, help="hold out only rows of at least this many words")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--text-column", default="sentence", help="the column --min-words counts (default sentence)")
    args = ap.parse_args()
    header, keep, held = split(args.task_dir / "train.tsv", args.size, args.min_words, args.seed, args.text_column)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.tsv", keep), ("dev.tsv", held)):
        (args.out / name).write_text("".join(f"{r}\n" for r in [header, *rows]), encoding="utf-8")
    print(f"wrote {args.out}: {len(keep)} training rows, {len(held)} held out as dev.tsv")


if __name__ == "__main__":
    main()
