"""Tables and a plot of pre-training runs' context gains, from their metrics.jsonl files.

    python studies/summarize.py RUNS_DIR [--plot out.png] [--runs a,b,c]

For each run: every validation record (step, tokens, minutes of training) with the generator's
and the discriminator's figures beside their context-free references (RESULTS.md tables), and
optionally a PNG of the two context gains against tokens seen (needs the `plot` extra)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def records(run: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "valid"]


def curve(run: Path) -> list[dict]:
    """Validation records with the tokens and training seconds reached at that step."""
    train, valid = records(run)
    out = []
    for v in valid:
        seen = [t for t in train if t["step"] <= v["step"]] or train[:1]
        seconds = sum(t.get("seconds", 0.0) for t in seen)
        last = seen[-1]  # tokens at the validation step, at the run's tokens per step so far
        out.append({**v, "tokens": last["tokens"] * v["step"] / last["step"], "minutes": seconds / 60})
    return out


def fmt(x: float, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(runs: list[Path]) -> str:
    lines = ["| run | step | tokens | G loss (no ctx) | G gain | D AUC (no ctx) | D gain |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        for v in curve(run):
            lines.append(
                f"| {run.name} | {v['step']} | {v['tokens'] / 1e6:.2f}M | "
                f"{fmt(v['mlm_loss'], '.3f')} ({fmt(v.get('nocontext_mlm_loss'), '.3f')}) | "
                f"{fmt(v.get('gain_mlm_loss'), '+.3f')} | {fmt(v['disc_auc'], '.3f')} "
                f"({fmt(v.get('nocontext_disc_auc'), '.3f')}) | {fmt(v.get('gain_disc_auc'), '+.3f')} |")
    return "\n".join(lines)


def plot(runs: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_g, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        c = [v for v in curve(run) if "gain_mlm_loss" in v]
        tokens = [v["tokens"] / 1e6 for v in c]
        ax_g.plot(tokens, [v["gain_mlm_loss"] for v in c], marker="o", label=run.name)
        ax_d.plot(tokens, [v["gain_disc_auc"] for v in c], marker="o", label=run.name)
    for ax, title in ((ax_g, "generator: context-free MLM loss - model's"),
                      (ax_d, "discriminator: AUC - context-free AUC")):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("training tokens (M)")
        ax.set_title(title, fontsize=10)
    ax_d.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs_dir", type=Path)
    p.add_argument("--runs", help="comma-separated run names (default: all with metrics.jsonl)")
    p.add_argument("--plot", type=Path, help="write a PNG of the context gains")
    args = p.parse_args()
    names = args.runs.split(",") if args.runs else None
    runs = sorted(d for d in args.runs_dir.iterdir() if (d / "metrics.jsonl").is_file()
                  and (names is None or d.name in names))
    if names:
        runs.sort(key=lambda d: names.index(d.name))
    print(table(runs))
    if args.plot:
        plot(runs, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
