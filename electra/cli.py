"""The `electra` command: one subcommand per job, each = preset + overrides -> config -> one call.

    electra pretrain                                # built-in corpus, `quick` preset, < 15 min CPU
    electra tokenizer train --corpus PATHS --vocab-size N --out DIR [--kind wordpiece|bpe|unigram]
    electra preprocess --corpus PATHS --tokenizer DIR --seq-len 128 --out DIR
    electra pretrain --data DIR --preset small [section.field=value ...]
    electra export RUN_OR_CHECKPOINT --out DIR [--part discriminator|generator] [--format bert|roberta]
    electra export FINETUNED_DIR --out DIR          # AutoModelForSequenceClassification etc.
    electra finetune CHECKPOINT --task sst2 --data GLUE_DIR [--out DIR] [--seed N] [optim.lr=...]
    electra evaluate CHECKPOINT --tasks glue --seeds 5 --glue-dir DIR --out DIR
    electra predict FINETUNED_DIR --input test.tsv --out predictions.tsv
    electra doctor RUN_DIR                          # health, checkpoints, data, next command
    electra inspect CHECKPOINT
    electra experiment run ablations --data DIR --glue-dir DIR --out DIR   # or a TOML spec
    electra experiment report DIR                   # report.md, report.json, PNGs

User errors print one line (`electra: error: ...`) and exit with status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from electra import __version__
from electra import cli_checks as checks
from electra import cli_options as options
from electra.config import (
    CJK_MODES,
    DEFAULT_PRESET,
    PACKING_MODES,
    PRESETS,
    TOKENIZER_KINDS,
    UNICODE_MODES,
    PreprocessConfig,
    PretrainConfig,
    TokenizerConfig,
    apply_overrides,
    load_json,
    preset,
    to_dict,
)
from electra.errors import ElectraError
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.metrics import format_scores

log = logging.getLogger("electra")

TEXT_FIELD_HELP = "the JSONL field or CSV/TSV column(s, joined by commas) holding the text (default text)"


def _from_flags(cls: type, args: argparse.Namespace, flags: dict[str, str]) -> Any:
    """A config from `--config FILE` (or the defaults), then the flags the user gave, then any
    `section.field=value` overrides: the same order for every command, so a printed config
    (`--print-config`) run again with `--config` repeats the run exactly."""
    base = load_json(cls, args.config) if getattr(args, "config", None) else cls()
    given = {field: getattr(args, flag) for field, flag in flags.items() if getattr(args, flag) is not None}
    cfg = dataclasses.replace(base, **given) if given else base
    section = cls.__name__.removesuffix("Config").lower() + "."
    overrides = [o.removeprefix(section) for o in getattr(args, "overrides", [])]
    return apply_overrides(cfg, overrides, section) if overrides else cfg


def _print_config(cfg: Any) -> None:
    print(json.dumps(to_dict(cfg), indent=2))


def _tokenizer_train(args: argparse.Namespace) -> None:
    from electra.data.corpus import iter_documents
    from electra.data.tokenizer import train_tokenizer

    cfg = _from_flags(TokenizerConfig, args, {"kind": "kind", "vocab_size": "vocab_size", "lowercase": "lowercase",
                                              "min_frequency": "min_frequency", "text_field": "text_field", "limit_alphabet": "limit_alphabet",
                                              "cjk": "cjk", "unicode": "unicode"})
    if args.strip_accents is not None:  # "auto" means None, so it cannot go through _from_flags
        strip = {"auto": None, "yes": True, "no": False}[args.strip_accents]
        cfg = dataclasses.replace(cfg, strip_accents=strip)
    if args.print_config:
        return _print_config(cfg)
    tok = train_tokenizer(iter_documents(args.corpus, cfg.text_field), args.out, cfg,
                          overwrite=args.force)
    print(f"wrote {args.out}/tokenizer.json ({tok.kind}, {tok.vocab_size} tokens)")
    field = "" if cfg.text_field == "text" else f" --text-field {shlex.quote(cfg.text_field)}"
    print(f"next: electra preprocess --corpus {shlex.join(args.corpus)}{field} --tokenizer {shlex.quote(args.out)} "
          "--seq-len 128 --out DATA_DIR")


def _preprocess(args: argparse.Namespace) -> None:
    from electra.data.preprocess import preprocess

    cfg = _from_flags(PreprocessConfig, args, {"seq_len": "seq_len", "workers": "workers",
                                               "text_field": "text_field",
                                               "valid_fraction": "valid_fraction", "seed": "seed",
                                               "packing": "packing"})
    if args.print_config:
        return _print_config(cfg)
    m = preprocess(args.corpus, args.tokenizer, args.out, cfg, overwrite=args.force)
    print(f"wrote {args.out}: {m.totals['rows']} rows of {m.seq_len} tokens "
          f"({m.splits['train'].rows} train / {m.splits['valid'].rows} valid), {m.totals['tokens']} tokens")
    print(f"next: electra pretrain --data {shlex.quote(args.out)} --preset mini   (on a CPU; "
          "--preset small is the paper's ELECTRA-Small, for a GPU)")


def _pretrain(args: argparse.Namespace) -> None:
    from electra import api
    from electra.train.state import InitFrom

    checks.check_pretrain_args(args)
    init = None
    if args.init_from:
        init = InitFrom(Path(args.init_from), Path(args.init_generator_from) if args.init_generator_from else None)
    if args.resume:
        if args.print_config:
            return _print_config(api.load_run_config(Path(args.out), args.overrides))
        res = api.pretrain(out=args.out, data=args.data, corpus=args.corpus, resume=True, init=init,
                           overrides=args.overrides)
    else:
        base = load_json(PretrainConfig, args.config) if args.config else preset(args.preset or DEFAULT_PRESET)
        field = [f"preprocess.text_field={args.text_field}"] if args.text_field else []  # the tokenizer's too
        cfg = apply_overrides(base, [*field, *args.overrides])
        if args.print_config:  # as the run would be: shape from --init-from, vocabulary and rows from --data
            return _print_config(api.planned_config(cfg, data=args.data, init=init))
        args.out = args.out or str(api.default_run_dir(cfg.preset))  # an interrupt names it
        res = api.pretrain(cfg, out=args.out, data=args.data, corpus=args.corpus, init=init)
    if res.train.preempted:
        print(f"stopped by SIGTERM at step {res.train.step}; checkpoint {res.train.checkpoint}\n"
              f"continue with: electra pretrain --resume --out {res.train.run_dir}")
        return
    if not res.exports:
        return  # not the main process
    from electra.summaries import print_pretrain_summary

    print_pretrain_summary(res)


def _export(args: argparse.Namespace) -> None:
    from electra import api
    from electra.finetuning.export import is_finetuned

    if is_finetuned(args.checkpoint):
        if args.part or args.format != "electra":
            raise ElectraError(f"{args.checkpoint} is a fine-tuned model; it exports as its task model, "
                               "drop --part/--format (they are for pre-training runs)")
        res = api.export_finetuned(args.checkpoint, args.out, overwrite=args.force)
        for note in res.notes:
            print(f"note: {note}")
        print(f"wrote {res.path} ({res.task}, {res.architecture}); load with "
              f"transformers.{res.auto_class}.from_pretrained('{res.path}')")
        return
    part = args.part or "discriminator"
    trained = api.load(args.checkpoint)
    out = api.export(trained, args.out, part, overwrite=args.force, fmt=args.format)
    cls = json.loads((out / "config.json").read_text())["architectures"][0]
    print(f"wrote {out} ({part}, step {trained.meta['step']}); load with "
          f"transformers.{cls}.from_pretrained('{out}')")


def _finetune_config(args: argparse.Namespace) -> FinetuneConfig:
    if args.config and args.size:
        raise ElectraError("pass either --size or --config (a full config), not both")
    base = load_json(FinetuneConfig, args.config) if args.config else FinetuneConfig(size=args.size or "auto")
    cfg = apply_overrides(base, args.overrides)
    data = {f: getattr(args, f) for f in checks.COLUMN_FLAGS if getattr(args, f) is not None}
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data))


def _finetune(args: argparse.Namespace) -> None:
    import time

    from electra import api
    from electra.finetuning.export import AUTO_CLASSES
    from electra.finetuning.tasks import USER_TASKS, get_task

    spec = get_task(args.task)
    if spec.name not in USER_TASKS:
        checks.check_column_flags(args, f"task {spec.name}")
    if args.print_config:
        return _print_config(_finetune_config(args))
    out = Path(args.out) if args.out else Path("runs") / f"finetune-{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    res = api.finetune(args.checkpoint, args.task, data=args.data, train=args.train, dev=args.dev,
                       out=out, seed=args.seed, config=_finetune_config(args), overwrite=args.overwrite,
                       random_init=args.random_init, split_by_article=args.split_by_article)
    print(f"\n{spec.title} (seed {res.seed}, {res.steps} steps, {res.seconds:.0f}s): {format_scores(res.metrics)}")
    if res.note:
        print(f"  data: {res.note}")
    print(f"  model and dev predictions in {out}")
    if (out / "hf" / "config.json").is_file():
        print(f"  for transformers: {AUTO_CLASSES[spec.kind]}.from_pretrained('{out / 'hf'}')")
    print(f"next: electra predict {shlex.quote(str(out))} --input TEST_FILE --out predictions{spec.pred_suffix}")


def _evaluate(args: argparse.Namespace) -> None:
    from electra import api

    checks.check_column_flags(args, "evaluate's every task")
    if args.print_config:
        return _print_config(_finetune_config(args))
    results = api.evaluate(args.checkpoint, args.tasks, args.out, seeds=checks.parse_seeds(args.seeds),
                           glue_dir=args.glue_dir, squad=args.squad, conll_dir=args.conll,
                           split_by_article=args.split_by_article, config=_finetune_config(args),
                           save_models=args.save_models, random_init=args.random_init,
                           overwrite=args.overwrite, select=args.select or (), select_size=args.select_size,
                           overrides=args.overrides)  # already in config: passed to refuse a key also --select-ed
    print("\n" + (Path(args.out) / "results.md").read_text())
    g = results.get("glue_average") or {}
    print(f"wrote {Path(args.out) / 'results.json'} and results.md" +
          (f" (GLUE average of medians {100 * g['score']:.2f})" if g.get("score") is not None else ""))


def _predict(args: argparse.Namespace) -> None:
    from electra.finetuning.run import finetuned_config, predict_file

    # the fine-tuned model's own settings (or --config), then overrides: batch size, device, columns
    base = load_json(FinetuneConfig, args.config) if args.config else finetuned_config(args.model)
    cfg = apply_overrides(base, args.overrides)
    if args.print_config:
        return _print_config(cfg)
    n, metrics = predict_file(args.model, Path(args.input), Path(args.out), cfg, overwrite=args.overwrite)
    print(f"wrote {n} predictions to {args.out}" + (f" ({format_scores(metrics)})" if metrics else ""))


def _doctor(args: argparse.Namespace) -> int:
    from electra.diagnose import doctor

    report = doctor(Path(args.run))
    print(report.text())
    return 1 if report.problems else 0  # scripts and CI can act on a damaged or unhealthy run


def _inspect(args: argparse.Namespace) -> None:
    from electra.diagnose import inspect

    print("\n".join(inspect(Path(args.checkpoint))))


def _experiment_run(args: argparse.Namespace) -> None:
    from electra import experiment
    from electra.summaries import experiment_run_line

    spec = experiment.load_spec(checks.experiment_spec_arg(args), budgets=checks.parse_budgets(args.budgets))
    seeds = None if args.seeds is None else checks.parse_seeds(args.seeds)
    spec = experiment.with_options(spec, data=args.data, preset_name=args.preset, tasks=args.tasks, seeds=seeds,
                                   glue_dir=args.glue_dir, conll=args.conll, squad=args.squad, overrides=args.overrides)
    if args.print_config:
        return _print_config(spec)
    done = experiment.run(spec, args.out)
    print(experiment_run_line(done, Path(args.out) / "cells"))
    if not experiment.preempted(done):
        _experiment_report(argparse.Namespace(dir=args.out))


def _experiment_report(args: argparse.Namespace) -> None:
    from electra import experiment_report

    rep = experiment_report.report(args.dir)
    print("\n" + (Path(args.dir) / "report.md").read_text())
    print(f"wrote {Path(args.dir) / 'report.json'}" + "".join(f", {f}" for f in rep["figures"]))


def _plan(args: argparse.Namespace) -> None:
    from electra import plan

    checks.check_plan_args(args)
    if args.config:
        vocab = [f"model.vocab_size={args.vocab_size}"] if args.vocab_size is not None else []
        cfg = apply_overrides(load_json(PretrainConfig, args.config), [*vocab, *args.overrides])
    else:
        cfg = plan.preset_with_vocab(args.preset, args.vocab_size, args.overrides)
    if args.print_config:
        return _print_config(cfg)
    seq = cfg.preprocess.seq_len
    if args.gpu:
        tput = plan.assumed(cfg, seq, args.gpu, args.mfu)
    else:
        tput = plan.measure(cfg, seq, args.micro_batch or min(cfg.train.batch_size, 8), args.measure_steps)
    budget = plan.parse_duration(args.budget) if args.budget else None
    p = plan.make_plan(cfg, tput, tokens=args.tokens, steps=args.steps, seconds=budget)
    from electra.summaries import print_plan

    rows = plan.budget_table(tput, budget, args.vocab_size) if budget else []
    print_plan(p, tput, args.budget, rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="electra", description="Pre-train, export and evaluate ELECTRA encoders.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"electra {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    tok = sub.add_parser("tokenizer", help="train a tokenizer").add_subparsers(dest="action", required=True)
    t = tok.add_parser("train", help="train a WordPiece, byte-level BPE or Unigram vocabulary on text files")
    t.add_argument("--corpus", nargs="+", required=True, help="files, directories or globs")
    t.add_argument("--kind", choices=TOKENIZER_KINDS, help="wordpiece (default), bpe (RoBERTa byte-level) or unigram")
    t.add_argument("--cjk", choices=CJK_MODES, help="chars (default): each CJK ideograph is a token, as BERT-Chinese")
    t.add_argument("--unicode", choices=UNICODE_MODES, help="normal form applied first (auto: NFKC for unigram only)")
    t.add_argument("--vocab-size", type=int, help="default 30522")
    t.add_argument("--out", required=True)
    t.add_argument("--cased", dest="lowercase", action="store_const", const=False, help="keep case (default: lower)")
    t.add_argument("--strip-accents", choices=("auto", "yes", "no"),
                   help="auto (default): strip when lower-casing (BERT uncased)")
    t.add_argument("--min-frequency", type=int, help="default 2")
    t.add_argument("--limit-alphabet", type=int, help="WordPiece: characters kept (default 1000; Chinese needs more)")
    t.add_argument("--text-field", help=TEXT_FIELD_HELP)
    t.add_argument("--force", "--overwrite", dest="force", action="store_true", help="replace a tokenizer already in --out")
    options.add_config_options(t, "tokenizer")
    t.set_defaults(fn=_tokenizer_train)

    pp = sub.add_parser("preprocess", help="tokenize and pack a corpus into shards")
    pp.add_argument("--corpus", nargs="+", required=True, help="files, directories or globs")
    pp.add_argument("--tokenizer", required=True, help="directory with tokenizer.json or vocab.txt")
    pp.add_argument("--seq-len", type=int, help="tokens per row (default 128)")
    pp.add_argument("--packing", choices=PACKING_MODES,
                    help="electra (default: G-EL's A/B segments), full_sentences or doc_sentences (RoBERTa)")
    pp.add_argument("--out", required=True)
    pp.add_argument("--workers", type=int, help="processes (default 0 = all cores)")
    pp.add_argument("--valid-fraction", type=float, help="share of documents held out (default 0.01)")
    pp.add_argument("--text-field", help=TEXT_FIELD_HELP)
    pp.add_argument("--seed", type=int, help="default 12345")
    pp.add_argument("--force", "--overwrite", dest="force", action="store_true",
                    help="replace the shards already in --out (once the new ones are complete)")
    options.add_config_options(pp, "preprocessing")
    pp.add_argument("overrides", nargs="*", help="preprocess.field=value")
    pp.set_defaults(fn=_preprocess)

    pt = sub.add_parser("pretrain", help="pre-train an ELECTRA generator + discriminator",
                        description="With no --data, trains a tokenizer and packs --corpus (default: "
                                    "the built-in Wikipedia sample) first.")
    pt.add_argument("--data", help="shards written by electra preprocess")
    pt.add_argument("--corpus", nargs="+", help="raw text to tokenize and pack first (instead of --data)")
    pt.add_argument("--text-field", help=TEXT_FIELD_HELP)
    pt.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default {DEFAULT_PRESET})")
    pt.add_argument("--out", help="run directory (default runs/<preset>-<time>)")
    pt.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    pt.add_argument("--init-from", help="local HF ELECTRA/BERT discriminator directory to warm-start from")
    pt.add_argument("--init-generator-from", help="local HF ELECTRA generator directory (for a one-encoder "
                    "run, objective.sharing=all: its masked-LM head)")
    options.add_config_options(pt, "pre-training")
    pt.add_argument("overrides", nargs="*", help="section.field=value, e.g. train.steps=1000")
    pt.set_defaults(fn=_pretrain)

    ex = sub.add_parser("export", help="write a Hugging Face model directory")
    ex.add_argument("checkpoint", help="run directory (latest checkpoint), checkpoint directory, or a "
                                       "directory written by electra finetune")
    ex.add_argument("--out", required=True)
    ex.add_argument("--part", choices=("discriminator", "generator"),
                    help="pre-training runs: which model (default discriminator)")
    ex.add_argument("--format", choices=("electra", "bert", "roberta"), default="electra",
                    help="pre-training runs: ELECTRA classes (default), or the part's encoder (+ its MLM "
                         "head, objective.kind=mlm) as BertForMaskedLM / RobertaForMaskedLM")
    ex.add_argument("--force", "--overwrite", dest="force", action="store_true", help="replace an existing export in --out")
    ex.set_defaults(fn=_export)

    pl = sub.add_parser("plan", help="estimate time, FLOPs, memory and disk of a pre-training run",
                        description="Measures a few training steps on this machine (or assumes an MFU "
                                    "on a named GPU) and turns them into a plan for the run.")
    pl.add_argument("--preset", default="small", help=f"one of {', '.join(PRESETS)}")
    pl.add_argument("--tokens", type=float, help="tokens to train on (e.g. 1e10)")
    pl.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    pl.add_argument("--budget", help="a time budget (e.g. 8h): how many steps fit, per preset")
    pl.add_argument("--gpu", help="assume this GPU instead of measuring (a100, h100, ...)")
    pl.add_argument("--mfu", type=float, default=0.4, help="assumed MFU with --gpu (default 0.4)")
    pl.add_argument("--vocab-size", type=int, help="vocabulary size (default: the preset's)")
    pl.add_argument("--micro-batch", type=int, default=0, help="rows per measured step (default min(batch, 8))")
    pl.add_argument("--measure-steps", type=int, default=3)
    options.add_config_options(pl, "pre-training")
    pl.add_argument("overrides", nargs="*", help="section.field=value")
    pl.set_defaults(fn=_plan)

    ft = sub.add_parser("finetune", help="fine-tune a checkpoint on one task (one seed)",
                        description="Tasks: cola sst2 mrpc stsb qqp mnli qnli rte wnli squad squad2 "
                                    "conll2003, or your own data: classification regression tagging.")
    ft.add_argument("checkpoint", help="run or checkpoint directory, or a local HF ELECTRA/BERT directory")
    ft.add_argument("--task", required=True)
    ft.add_argument("--data", help="the task's directory (or a GLUE root / HF datasets directory)")
    ft.add_argument("--train", help="training file (instead of --data)")
    ft.add_argument("--dev", help="evaluation file (instead of --data)")
    ft.add_argument("--out", help="where the fine-tuned model goes (default runs/finetune-<task>-<time>)")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--random-init", action="store_true",
                    help="same architecture and tokenizer, fresh weights (the no-pre-training control)")
    options.add_finetune_options(ft)
    ft.set_defaults(fn=_finetune)

    ev = sub.add_parser("evaluate", help="fine-tune every task with several seeds; report medians",
                        description="Writes OUT/results.json and OUT/results.md; re-running resumes.")
    ev.add_argument("checkpoint", help="run or checkpoint directory, or a local HF ELECTRA/BERT directory")
    ev.add_argument("--tasks", default="glue", help="glue (the paper's 8), or e.g. cola,sst2,mrpc,squad")
    ev.add_argument("--seeds", default="5", help="a count (5 -> seeds 0..4) or a list (0,1,2)")
    ev.add_argument("--glue-dir", help="GLUE root holding CoLA/, SST-2/, MRPC/, ...")
    ev.add_argument("--squad", help="SQuAD directory, or one JSON file with --split-by-article N")
    ev.add_argument("--conll", help="CoNLL-2003 directory (eng.train, eng.testa)")
    ev.add_argument("--out", required=True)
    ev.add_argument("--save-models", action="store_true", help="keep every fine-tuned model")
    ev.add_argument("--random-init", action="store_true",
                    help="same architecture and tokenizer, fresh weights (the no-pre-training control)")
    options.add_select_options(ev)
    options.add_finetune_options(ev)
    ev.set_defaults(fn=_evaluate)

    pr = sub.add_parser("predict", help="predict a file with a fine-tuned model")
    pr.add_argument("model", help="a directory written by electra finetune")
    pr.add_argument("--input", required=True, help="a file in the task's format (labels optional)")
    pr.add_argument("--out", required=True, help="GLUE tasks: the submission TSV (index, prediction)")
    pr.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                    help="replace an existing --out file (never the input or a file of the model)")
    options.add_config_options(pr, "fine-tuning (default: the model's own)")
    pr.add_argument("overrides", nargs="*", help="section.field=value, e.g. train.eval_batch_size=64")
    pr.set_defaults(fn=_predict)
    dr = sub.add_parser("doctor", help="diagnose a pre-training run: health, checkpoints, data, next step "
                        "(exit status 1 when it finds a problem)")
    dr.add_argument("run", help="the run directory (--out of electra pretrain)")
    dr.set_defaults(fn=_doctor)

    ins = sub.add_parser("inspect", help="print what a checkpoint holds and whether it is intact")
    ins.add_argument("checkpoint", help="a checkpoint directory, or a run directory (its newest)")
    ins.set_defaults(fn=_inspect)

    exp = sub.add_parser("experiment", help="the paper's experiments: grids of pre-training + evaluation"
                         ).add_subparsers(dest="action", required=True)
    er = exp.add_parser("run", help="pre-train and evaluate every cell of a grid (resumes)",
                        description="SPEC: a TOML file or a built-in grid (electra_vs_bert, ablations, "
                                    "sharing, generator_size, algorithms, loss_weighting, gdes). Overrides apply to every cell; "
                                    "finetune.section.field=value ones to fine-tuning.")
    er.add_argument("spec", nargs="?", help="TOML file or built-in grid name (or --config)")
    options.add_config_options(er, "experiment spec (JSON)")
    er.add_argument("--out", required=True, help="experiment directory (cells/NAME per cell)")
    er.add_argument("--data", help="shards written by electra preprocess (overrides the spec's)")
    er.add_argument("--preset", help="base preset (overrides the spec's)")
    er.add_argument("--budgets", help="built-in grids: FLOP budgets, e.g. 1e14,1e15,1e16")
    er.add_argument("--tasks", help="fine-tuning tasks (overrides the spec's), e.g. glue or sst2,rte")
    er.add_argument("--seeds", help="fine-tuning seeds: a count (3) or a list (0,1,2)")
    er.add_argument("--glue-dir", help="GLUE root holding CoLA/, SST-2/, ...")
    er.add_argument("--conll", help="CoNLL-2003 directory")
    er.add_argument("--squad", help="SQuAD directory")
    er.add_argument("overrides", nargs="*", help="section.field=value (pre-training) or finetune.section.field=value")
    er.set_defaults(fn=_experiment_run)
    rp = exp.add_parser("report", help="table (report.md, report.json) and plots of an experiment")
    rp.add_argument("dir", help="the --out of electra experiment run")
    rp.set_defaults(fn=_experiment_report)
    return p


def main(argv: list[str] | None = None) -> int:
    from electra.train.distributed import cleanup
    from electra.train.log import setup_logging

    parser = build_parser()
    # overrides may come before or after options (`pretrain train.steps=9 --out x`): argparse
    # leaves the later ones unparsed, so collect every `key=value` left over
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    setup_logging(args.verbose)
    try:
        if getattr(args, "out", None) and not getattr(args, "print_config", False):
            checks.check_out(args.out, file=args.command == "predict")
        return args.fn(args) or 0
    except ElectraError as e:
        print(f"electra: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(checks.interrupted_line(args, sys.argv[1:] if argv is None else list(argv)), file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions, ...
        print(f"electra: error: {checks.os_error_line(e)}", file=sys.stderr)
        return 2
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
