"""The transfer curve: fine-tuning score against pre-training minutes, from `electra evaluate`
results, as a Markdown table and (with the `plot` extra) a PNG.

    python studies/transfer_curve.py --point 0:ft/random --point 15:ft/ckpt15 --point 51:ft/final \
        --plot transfer_curve.png

Each `--point MINUTES:DIR` is one `electra evaluate --out DIR` (0 = the `--random-init` control);
several evaluations of the same checkpoint (one per task) may share a MINUTES value.
Every task found in the results becomes a column (median over seeds, with the seed count, since
a one-seed point is weaker evidence than a three-seed one) and a line in the plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(point: str) -> tuple[float, dict[str, tuple[float, int]]]:
    minutes, _, path = point.partition(":")
    results = json.loads((Path(path) / "results.json").read_text())
    scores = {}
    for task in results["tasks"].values():
        summary = task.get("summary", {}).get(task["main_metric"])
        if summary:
            scores[task["title"]] = (100 * summary["median"], summary["n"])
    return float(minutes), scores


def table(points: list[tuple[float, dict[str, tuple[float, int]]]]) -> str:
    tasks = sorted({t for _, s in points for t in s})
    lines = ["| pre-training minutes | " + " | ".join(tasks) + " |",
             "|---:|" + "---:|" * len(tasks)]
    for minutes, scores in points:
        cells = [f"{scores[t][0]:.2f} ({scores[t][1]} seed{'s' if scores[t][1] > 1 else ''})"
                 if t in scores else "–" for t in tasks]
        label = "0 (random init)" if minutes == 0 else f"{minutes:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(points: list[tuple[float, dict[str, tuple[float, int]]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for task in sorted({t for _, s in points for t in s}):
        xs = [m for m, s in points if task in s]
        ax.plot(xs, [s[task][0] for _, s in points if task in s], marker="o", label=task)
    ax.set_xlabel("pre-training minutes (CPU, as measured; 0 = random init)")
    ax.set_ylabel("dev score x100 (median over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--point", action="append", required=True, help="MINUTES:EVALUATE_OUT_DIR")
    p.add_argument("--plot", help="write a PNG here")
    args = p.parse_args()
    merged: dict[float, dict[str, tuple[float, int]]] = {}
    for minutes, scores in map(load, args.point):  # one point may come from several evaluations
        merged.setdefault(minutes, {}).update(scores)
    points = sorted(merged.items())
    print(table(points))
    if args.plot:
        plot(points, Path(args.plot))


if __name__ == "__main__":
    main()
