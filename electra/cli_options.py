"""The option sets several `electra` commands share (config files, fine-tuning flags, the
`--select` grid), kept apart from the command handlers in cli.py."""

from __future__ import annotations

import argparse

from electra.finetuning.config import FINETUNE_SIZES


def add_config_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", metavar="FILE",
                   help=f"start from this {what} config (JSON, e.g. saved from --print-config)")
    p.add_argument("--print-config", action="store_true",
                   help="print the config with flags and overrides applied, and exit (fine-tuning: size auto "
                        "and an unset lr are resolved from the model's width when the run starts)")


def add_finetune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=FINETUNE_SIZES,
                   help="lr and layer-wise decay of this size (tiny: CPU presets); auto: from the hidden size")
    p.add_argument("--text-column", help="your data: the text column (default sentence)")
    p.add_argument("--pair-column", help="your data: the second text column of sentence pairs")
    p.add_argument("--label-column", help="your data: the label column (default label)")
    p.add_argument("--tokens-field", help="JSONL tagging: the token list field (default tokens)")
    p.add_argument("--tags-field", help="JSONL tagging: the tag list field (default tags)")
    p.add_argument("--split-by-article", type=int, default=0, metavar="N",
                   help="SQuAD: train on the first N articles of one file, evaluate on the rest")
    p.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                   help="finetune: replace an earlier fine-tuned model in --out; evaluate: replace runs of other "
                        "settings, or write into a --out of other files")
    add_config_options(p, "fine-tuning")
    p.add_argument("overrides", nargs="*", help="section.field=value, e.g. optim.lr=1e-4 train.epochs=2")


def add_select_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--select", action="append", metavar="KEY=V1,V2", help="choose each task's setting "
                   "(e.g. optim.lr=3e-4,1e-3; repeat for a grid) on held-out training examples, then run it")
    p.add_argument("--select-size", type=int, default=0, metavar="N", help="examples held out per task "
                   "for --select (default: a fifth of the training set, at most 2000)")
