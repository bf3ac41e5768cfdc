"""What the commands print when they finish: the pre-training summary and the run plan. Kept
out of the argument handling in `cli.py` so each reads on its own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from electra.api import PipelineResult
from electra.config import PretrainConfig, load_json
from electra.experiment import CellOutcome, preempted
from electra.plan import Plan, Throughput
from electra.train.log import format_count, format_duration
from electra.train.state import run_end
from electra.train.validate import learned_context


def print_pretrain_summary(res: PipelineResult) -> None:
    """Where everything is, whether the run learned context, and the commands that come next."""
    t, run_dir = res.train, res.train.run_dir
    print(f"\ndone in {format_duration(res.seconds)}: {t.step} steps, {format_count(t.tokens)} tokens")
    v = t.valid
    if v:
        print(f"  generator     MLM loss {v['mlm_loss']:.3f} vs {v['nocontext_mlm_loss']:.3f} without "
              f"context ({v['gain_mlm_loss']:+.3f}); accuracy {v['gen_acc']:.3f} vs "
              f"{v['nocontext_gen_acc']:.3f}")
        has_rtd = v["disc_auc"] == v["disc_auc"]  # NaN: an objective without RTD (mlm, ...)
        if has_rtd:
            print(f"  discriminator AUC {v['disc_auc']:.3f} vs {v['nocontext_disc_auc']:.3f} without context "
                  f"({v['gain_disc_auc']:+.3f}); accuracy {v['disc_acc']:.4f} vs {v['nocontext_disc_acc']:.4f} "
                  f"(all-original {v['baseline_acc']:.4f})")
        gen_ok, disc_ok = learned_context(v)
        verdict = {(True, True): "yes: both models use context beyond token frequencies",
                   (True, False): "the generator does; the discriminator does not yet (it scores "
                                  "tokens by identity only): train longer",
                   (False, True): "the discriminator does; the generator not yet",
                   (False, False): "no: both models score like context-free baselines; train "
                                   "longer or see RESULTS.md for CPU-scale recipes"}[(gen_ok, disc_ok)]
        if not has_rtd:
            verdict = ("yes: the masked LM uses context beyond token frequencies" if gen_ok else
                       "no: it scores like a context-free baseline; train longer")
        print(f"  learned context? {verdict}")
    print(f"  checkpoint    {t.checkpoint}")
    print(f"  HF model      {res.exports['discriminator']}  (generator: {res.exports['generator']})")
    for fmt, cls in (("bert", "BertForMaskedLM"), ("roberta", "RobertaForMaskedLM")):
        if fmt in res.exports:  # a masked-LM run (hf/bert.py)
            print(f"  {fmt:<13} {res.exports[fmt]}  (transformers.{cls})")
    print(f"  metrics       {run_dir / 'metrics.jsonl'}" +
          (f"  (tensorboard --logdir {run_dir / 'tensorboard'})" if (run_dir / "tensorboard").exists() else ""))
    print("next: fine-tune and evaluate it (GLUE TSV directories, median over seeds):\n"
          f"  electra evaluate {run_dir} --tasks cola,sst2,mrpc,stsb,rte --glue-dir PATH/TO/glue --seeds 3 "
          f"--out {run_dir / 'eval'}\n"
          "or load it in transformers:\n"
          f"  python -c \"from transformers import {_architecture(res)} as M; "
          f"print(M.from_pretrained('{res.exports['discriminator']}'))\"\n"
          f"or train it longer: electra pretrain --resume --out {run_dir}{_longer(t.checkpoint, t.step)}")


def _longer(checkpoint: Path, step: int) -> str:
    """The overrides that extend a run past `step`: none where it stopped before its end (train.stop_at),
    a larger budget where train.budget_flops ended it, else twice the steps."""
    cfg = load_json(PretrainConfig, checkpoint / "config.json")  # the config this run was trained under
    tc, end = cfg.train, run_end(cfg)
    if step < end:
        return ""
    if end < tc.steps:
        return f" train.budget_flops={2 * tc.budget_flops:g} train.steps={max(tc.steps, 2 * step)}"
    return f" train.steps={2 * step}"


def _architecture(res: PipelineResult) -> str:
    """The transformers class of the exported discriminator (ELECTRA, ALBERT, DeBERTa...)."""
    config = json.loads((res.exports["discriminator"] / "config.json").read_text())
    return config.get("architectures", ["ElectraForPreTraining"])[0]


def print_plan(p: Plan, tput: Throughput, budget: str | None,
               budget_rows: list[tuple[str, int, int, float]]) -> None:
    """The plan of `electra plan`; `budget_rows`: (preset, steps, recipe steps, fraction)."""
    gib = 2**30
    print(f"preset {p.preset}: {format_count(p.params)} parameters (generator + discriminator), "
          f"seq {p.seq_len}, batch {p.batch_size}")
    print(f"  FLOPs           {p.flops_per_token / 1e6:.1f} M per token (training), {p.total_flops:.3g} in total")
    print(f"  throughput      {format_count(tput.tokens_per_s)} tokens/s = {tput.flops_per_s / 1e12:.3g} TFLOP/s "
          f"({tput.source})")
    print(f"  run             {p.steps:,} steps = {format_count(p.tokens)} tokens -> {format_duration(p.seconds)}"
          + (f" (budget {budget})" if budget else ""))
    print(f"  memory          {p.state_bytes / gib:.2f} GiB weights + grads + Adam state (fp32)" +
          (f"; measured peak {tput.peak_memory_bytes / gib:.2f} GiB at micro-batch {tput.micro_batch}"
           if tput.peak_memory_bytes else ""))
    print(f"  checkpoints     {p.checkpoint_bytes / gib:.2f} GiB each x keep_last {p.keep_last} = "
          f"{p.checkpoint_bytes * p.keep_last / gib:.2f} GiB")
    if budget_rows:
        print(f"  in {budget} at the same FLOP rate:")
        for name, steps, recipe, frac in budget_rows:
            note = "full recipe fits" if frac >= 1 else f"{100 * frac:.2g}% of its {recipe:,}-step recipe"
            print(f"    {name:6s} {steps:>12,} steps  ({note})")


def experiment_run_line(done: Sequence[CellOutcome], cells_dir: Path) -> str:
    """What `electra experiment run` says when it returns: how far the grid got, or where SIGTERM
    stopped it (the report waits for the grid to be whole)."""
    if preempted(done):
        return (f"stopped by SIGTERM in cell {done[-1].name} (checkpoint saved); run the same command "
                "again to resume the grid")
    return f"{len(done)} cell(s) in {cells_dir}; {sum(c.evaluate == 'ran' for c in done)} evaluated in this invocation"
