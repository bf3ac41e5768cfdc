"""The `electra` command: one subcommand per job, each = preset + overrides -> config -> one call.

    electra pretrain                                # built-in corpus, `tiny` preset, ~10 min CPU
    electra tokenizer train --corpus PATHS --vocab-size N --out DIR
    electra preprocess --corpus PATHS --tokenizer DIR --seq-len 128 --out DIR
    electra pretrain --data DIR --preset small [section.field=value ...]
    electra export RUN_OR_CHECKPOINT --out DIR [--part discriminator|generator]

User errors print one line (`electra: error: ...`) and exit with status 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from electra.config import (
    PRESETS,
    PreprocessConfig,
    TokenizerConfig,
    apply_overrides,
    preset,
    to_dict,
)
from electra.errors import ElectraError

log = logging.getLogger("electra")


def _tokenizer_train(args: argparse.Namespace) -> None:
    from electra.tokenizer import train_tokenizer

    strip = {"auto": None, "yes": True, "no": False}[args.strip_accents]
    cfg = TokenizerConfig(vocab_size=args.vocab_size, lowercase=not args.cased, strip_accents=strip,
                          min_frequency=args.min_frequency, text_field=args.text_field)
    tok = train_tokenizer(args.corpus, args.out, cfg)
    print(f"wrote {args.out}/tokenizer.json and vocab.txt ({tok.vocab_size} tokens)")
    print(f"next: electra preprocess --corpus {' '.join(args.corpus)} --tokenizer {args.out} "
          f"--seq-len 128 --out DATA_DIR")


def _preprocess(args: argparse.Namespace) -> None:
    from electra.data.preprocess import preprocess

    cfg = PreprocessConfig(seq_len=args.seq_len, workers=args.workers, text_field=args.text_field,
                           valid_fraction=args.valid_fraction, seed=args.seed)
    cfg = apply_overrides(cfg, [o.removeprefix("preprocess.") for o in args.overrides])
    m = preprocess(args.corpus, args.tokenizer, args.out, cfg)
    print(f"wrote {args.out}: {m.totals['rows']} rows of {m.seq_len} tokens "
          f"({m.splits['train'].rows} train / {m.splits['valid'].rows} valid), {m.totals['tokens']} tokens")
    print(f"next: electra pretrain --data {args.out} --preset small")


def _pretrain(args: argparse.Namespace) -> None:
    from electra.pipeline import load_run_config, run
    from electra.pretrain import InitFrom

    if args.data and args.corpus:
        raise ElectraError("pass either --data (existing shards) or --corpus (raw text), not both")
    if args.resume:
        if args.out is None:
            raise ElectraError("--resume needs --out RUN_DIR (the run to continue)")
        cfg = load_run_config(Path(args.out), args.overrides)
    else:
        cfg = apply_overrides(preset(args.preset), args.overrides)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    init = None
    if args.init_from:
        init = InitFrom(Path(args.init_from), Path(args.init_generator_from) if args.init_generator_from else None)
    elif args.init_generator_from:
        raise ElectraError("--init-generator-from needs --init-from (the discriminator)")
    res = run(cfg, out=Path(args.out) if args.out else None, data=Path(args.data) if args.data else None,
              corpus=args.corpus, resume=args.resume, init=init)
    if not res.exports:
        return  # not the main process
    _print_summary(res)


def _print_summary(res) -> None:
    from electra.log import format_count, format_duration

    t, run_dir = res.train, res.train.run_dir
    print(f"\ndone in {format_duration(res.seconds)}: {t.step} steps, {format_count(t.tokens)} tokens")
    v = t.valid
    if v:
        gain = 100 * (v["disc_acc"] - v["baseline_acc"])
        print(f"  validation    discriminator accuracy {v['disc_acc']:.4f} vs {v['baseline_acc']:.4f} for "
              f"'everything is original' ({gain:+.2f} points); AUC {v['disc_auc']:.3f} (chance 0.5); "
              f"generator accuracy {v['gen_acc']:.3f}")
    print(f"  checkpoint    {t.checkpoint}")
    print(f"  HF model      {res.exports['discriminator']}  (generator: {res.exports['generator']})")
    print(f"  metrics       {run_dir / 'metrics.jsonl'}" +
          (f"  (tensorboard --logdir {run_dir / 'tensorboard'})" if (run_dir / "tensorboard").exists() else ""))
    print("next: load it in transformers:\n"
          f"  python -c \"from transformers import ElectraForPreTraining as M; "
          f"print(M.from_pretrained('{res.exports['discriminator']}'))\"\n"
          f"  or continue training: electra pretrain --resume --out {run_dir} train.steps={2 * t.step}")


def _export(args: argparse.Namespace) -> None:
    from electra.checkpoint import load_pretrained
    from electra.export import pretrained_to_hf, save_hf

    model, _, tokenizer, meta = load_pretrained(args.checkpoint)
    config, tensors = pretrained_to_hf(model, args.part)
    out = save_hf(args.out, config, tensors, tokenizer)
    cls = "ElectraForPreTraining" if args.part == "discriminator" else "ElectraForMaskedLM"
    print(f"wrote {out} ({args.part}, step {meta['step']}); load with transformers.{cls}.from_pretrained('{out}')")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="electra", description="Pre-train, export and evaluate ELECTRA encoders.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    tok = sub.add_parser("tokenizer", help="train a WordPiece tokenizer").add_subparsers(dest="action", required=True)
    t = tok.add_parser("train", help="train a WordPiece vocabulary on text files")
    t.add_argument("--corpus", nargs="+", required=True, help="files, directories or globs")
    t.add_argument("--vocab-size", type=int, default=30522)
    t.add_argument("--out", required=True)
    t.add_argument("--cased", action="store_true", help="keep case (default: lower-case)")
    t.add_argument("--strip-accents", choices=("auto", "yes", "no"), default="auto",
                   help="auto: strip when lower-casing (BERT uncased)")
    t.add_argument("--min-frequency", type=int, default=2)
    t.add_argument("--text-field", default="text", help="JSONL field holding the text")
    t.set_defaults(fn=_tokenizer_train)

    pp = sub.add_parser("preprocess", help="tokenize and pack a corpus into shards")
    pp.add_argument("--corpus", nargs="+", required=True, help="files, directories or globs")
    pp.add_argument("--tokenizer", required=True, help="directory with tokenizer.json or vocab.txt")
    pp.add_argument("--seq-len", type=int, default=128)
    pp.add_argument("--out", required=True)
    pp.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    pp.add_argument("--valid-fraction", type=float, default=0.01)
    pp.add_argument("--text-field", default="text", help="JSONL field holding the text")
    pp.add_argument("--seed", type=int, default=12345)
    pp.add_argument("overrides", nargs="*", help="preprocess.field=value")
    pp.set_defaults(fn=_preprocess)

    pt = sub.add_parser("pretrain", help="pre-train an ELECTRA generator + discriminator",
                        description="With no --data, trains a tokenizer and packs --corpus (default: "
                                    "the built-in Wikipedia sample) first.")
    pt.add_argument("--data", help="shards written by electra preprocess")
    pt.add_argument("--corpus", nargs="+", help="raw text to tokenize and pack first (instead of --data)")
    pt.add_argument("--preset", default="tiny", help=f"one of {', '.join(PRESETS)} (default tiny)")
    pt.add_argument("--out", help="run directory (default runs/<preset>-<time>)")
    pt.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    pt.add_argument("--init-from", help="local HF ELECTRA/BERT discriminator directory to warm-start from")
    pt.add_argument("--init-generator-from", help="local HF ELECTRA generator directory")
    pt.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    pt.add_argument("overrides", nargs="*", help="section.field=value, e.g. train.steps=1000")
    pt.set_defaults(fn=_pretrain)

    ex = sub.add_parser("export", help="write a Hugging Face model directory")
    ex.add_argument("checkpoint", help="run directory (latest checkpoint) or checkpoint directory")
    ex.add_argument("--out", required=True)
    ex.add_argument("--part", choices=("discriminator", "generator"), default="discriminator")
    ex.set_defaults(fn=_export)
    return p


def main(argv: list[str] | None = None) -> int:
    from electra.distributed import cleanup
    from electra.log import setup_logging

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
        args.fn(args)
    except ElectraError as e:
        print(f"electra: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("electra: interrupted (a run continues with: electra pretrain --resume --out RUN_DIR)",
              file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions, ...: the OS message names the file
        print(f"electra: error: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
