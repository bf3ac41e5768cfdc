"""What the `electra` command checks around every subcommand: that `--out` is a place it can
write (before any work, so a typo costs nothing), and the one line it prints when a command is
interrupted or the OS refuses a file operation. Apart from cli.py, which stays a table of
commands."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
from pathlib import Path

from electra.errors import ConfigError


def check_out(out: str | Path, *, file: bool = False) -> None:
    """`--out` names a directory (with `file`, a file) that can be created or written: no part
    of its path is a file and the nearest existing folder is writable. The OS would otherwise
    answer mid-command with `[Errno 20] Not a directory` or a misleading `[Errno 17] File exists`."""
    out = Path(out)
    here = out
    while not here.exists() and here != here.parent:  # `a/b` under a file `a`: b "does not exist"
        here = here.parent
    if here == out and file and out.is_dir():
        raise ConfigError(f"--out {out} is a directory; pass a file path for the output")
    if here == out and not file and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory (a new or empty one)")
    if here != out and not here.is_dir():
        raise ConfigError(f"--out {out}: {here} is a file, not a directory; choose another --out")
    if not os.access(here, os.W_OK | (0 if here == out and file else os.X_OK)):
        raise ConfigError(f"--out {out}: {here} is not writable (permission denied); choose another "
                          f"--out or make it writable (chmod u+w {shlex.quote(str(here))})")


def check_pretrain_args(args: argparse.Namespace) -> None:
    """Flags of `electra pretrain` that contradict each other."""
    if args.data and args.corpus:
        raise ConfigError("pass either --data (existing shards) or --corpus (raw text), not both")
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
    if args.resume and (args.corpus or args.init_from):
        raise ConfigError("--resume continues a run on its own data and weights; drop --corpus/--init-from "
                          "(they would be ignored, and the overrides after --corpus with them)")
    if args.resume and (args.preset is not None or args.config):
        raise ConfigError("--resume continues a run under its own config; drop --preset/--config "
                          "(change settings with section.field=value, e.g. train.steps=...)")
    if args.preset is not None and args.config:
        raise ConfigError("pass either --preset or --config (a full config), not both")
    if args.init_generator_from and not args.init_from:
        raise ConfigError("--init-generator-from needs --init-from (the discriminator)")
    if args.text_field and not args.corpus:
        raise ConfigError("--text-field names the text in --corpus files (JSONL, CSV, TSV); pass --corpus "
                          "or drop --text-field")


def experiment_spec_arg(args: argparse.Namespace) -> str:
    """`electra experiment run`: its SPEC, or --config (the same spec as JSON)."""
    if (args.spec is None) == (args.config is None):
        raise ConfigError("pass a spec (TOML file or built-in grid) or --config FILE (a spec printed "
                          "by --print-config), one of the two")
    return args.spec or args.config


def check_plan_args(args: argparse.Namespace) -> None:
    """`electra plan`'s numbers, before anything is built (0 divided, negatives made tensors)."""
    if sum(x is not None for x in (args.tokens, args.steps, args.budget)) > 1:
        raise ConfigError("pass at most one of --tokens, --steps and --budget")
    bad = [f"--{name.replace('_', '-')} {value}" for name, value, ok in (
        ("mfu", args.mfu, 0 < args.mfu <= 1), ("tokens", args.tokens, args.tokens is None or 1 <= args.tokens < float("inf")),
        ("steps", args.steps, args.steps is None or args.steps >= 1),
        ("micro_batch", args.micro_batch, args.micro_batch >= 0), ("measure_steps", args.measure_steps, args.measure_steps >= 1),
    ) if not ok]
    if bad:
        raise ConfigError(f"{bad[0]} is out of range: --mfu is a fraction in (0, 1] (0.4 = 40%), --tokens, --steps "
                          "and --measure-steps are >= 1, --micro-batch >= 1 (0: the default)")


def parse_budgets(text: str | None) -> list[float] | None:
    try:
        return [float(b) for b in text.split(",")] if text else None
    except ValueError:
        raise ConfigError(f"--budgets {text!r}: give FLOP numbers, e.g. --budgets 1e15,1e16") from None


def parse_seeds(text: str) -> list[int]:
    """`--seeds`: a count (5 -> 0..4) or a list of distinct seeds (0,1,2)."""
    from electra.finetuning.config import seed_list

    try:
        value: object = [int(s) for s in text.split(",")] if "," in text else int(text)
    except ValueError:
        value = text
    return seed_list(value, "--seeds")


def interrupted_line(args: argparse.Namespace, argv: list[str]) -> str:
    """What to run after Ctrl-C. A pre-training run with a checkpoint continues with --resume
    (plus the overrides a resumed run was given, as config.json does not hold them, except
    `train.stop_at`, which belongs to one invocation); one stopped before its first checkpoint
    has nothing to resume, and the same command starts it again in the same directory (it is
    reused). The directory is always named, the default one too."""
    out = getattr(args, "out", None)
    if args.command != "pretrain" or out is None or args.print_config:
        return "electra: interrupted"
    from electra.train.checkpoint import list_checkpoints  # torch: only once a run was under way

    if list_checkpoints(Path(out) / "checkpoints"):
        kept = [o for o in args.overrides if not o.startswith("train.stop_at=")] if args.resume else []
        cmd = ["pretrain", "--resume", "--out", str(out), *kept]
        return f"electra: interrupted (continue the run with: electra {shlex.join(cmd)})"
    given = any(a == "--out" or a.startswith("--out=") for a in argv)
    cmd = [*argv, *([] if given else ["--out", str(out)])]
    return (f"electra: interrupted before the first checkpoint, nothing to resume (start it again "
            f"with: electra {shlex.join(cmd)})")


def os_error_line(e: OSError) -> str:
    """An OSError as one line naming the path and a way on (the OS's own words name no fix)."""
    where = e.filename if e.filename is not None else "a file"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot access {where}: {e.strerror}; fix its permissions or choose another path"
    if e.errno == errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a directory; choose another path"
    if e.errno == errno.ENOSPC:
        return f"{e}; free some space and run the command again (a pre-training run with --resume)"
    return str(e)


COLUMN_FLAGS = ("text_column", "pair_column", "label_column", "tokens_field", "tags_field")


def check_column_flags(args: argparse.Namespace, named_task: str) -> None:
    """The column flags describe the user's own files; a named task has its own format."""
    given = [f"--{f.replace('_', '-')}" for f in COLUMN_FLAGS if getattr(args, f) is not None]
    if given:
        raise ConfigError(f"{given[0]} is for your own data (--task classification, regression or tagging); "
                           f"{named_task} reads its standard format, so drop it")
