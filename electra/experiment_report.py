"""The report of an experiment grid (`electra experiment report DIR`): one row per cell with the
compute it spent, its context gains and its fine-tuning scores (median and spread over seeds),
read against the random-init control when the grid has one; report.md, report.json and PNGs.

It only reads what `electra experiment run` wrote (OUT/cells/NAME, OUT/control), so a report can
be redrawn at any time, also from grids joined by hand."""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from electra.errors import ConfigError
from electra.files import write_text_atomic

log = logging.getLogger(__name__)

CONTROL = "control"  # OUT/control/eval: the random-init encoder, fine-tuned as every cell is


def cell_file(cell_dir: Path) -> Path:
    """The cell's settings, beside its run directory (which `electra pretrain` wants empty)."""
    return cell_dir.parent / f"{cell_dir.name}.json"


def read_scores(eval_dir: Path) -> tuple[dict[str, dict], float | None, bool]:
    """Per task: median, min and max x100 over seeds (and n, metric); the grid's one score: the
    GLUE average of medians, or the mean of the task medians; and whether that score is a task's
    own median again (a GLUE average over one task)."""
    f = eval_dir / "results.json"
    if not f.is_file():
        return {}, None, False
    results = json.loads(f.read_text())
    tasks = {}
    for name, t in results["tasks"].items():
        s = t["summary"].get(t["main_metric"])
        if s:
            tasks[name] = {"median": 100 * s["median"], "min": 100 * s["min"], "max": 100 * s["max"],
                           "n": s["n"], "metric": t["main_metric"],
                           "chosen": (t.get("selection") or {}).get("chosen")}  # evaluate --select
    glue = results.get("glue_average") or {}
    if glue.get("score") is not None:
        return tasks, 100 * glue["score"], len(glue.get("tasks", [])) == 1
    meds = [t["median"] for t in tasks.values()]
    return tasks, (statistics.mean(meds) if meds else None), len(meds) == 1


def read_cell(cell_dir: Path) -> dict[str, Any]:
    """One report row: objective, compute spent, final context gains, task scores x100."""
    cfg = json.loads((cell_dir / "config.json").read_text()) if (cell_dir / "config.json").is_file() else {}
    setup = json.loads(cell_file(cell_dir).read_text()) if cell_file(cell_dir).is_file() else {}
    train, valid = _metrics(cell_dir)
    last = train[-1] if train else {}
    obj = cfg.get("objective", {})
    tasks, score, repeats = read_scores(cell_dir / "eval")
    return {"cell": cell_dir.name, "kind": obj.get("kind"), "variant": variant(obj),
            "hidden_size": cfg.get("model", {}).get("hidden_size"), "generator_size": generator_size(obj),
            "budget": cfg.get("train", {}).get("budget_flops") or None,
            "overrides": setup.get("cell", []), "flops": last.get("flops"), "tokens": last.get("tokens"),
            "step": last.get("step"), "gain_mlm_loss": valid[-1].get("gain_mlm_loss") if valid else None,
            "gain_disc_auc": valid[-1].get("gain_disc_auc") if valid else None,
            "curve": [_at_flops(v, train) for v in valid], "tasks": tasks, "score": score,
            "score_repeats_a_task": repeats}


def read_control(out: Path) -> dict[str, Any] | None:
    """The random-init row, if the grid has evaluated one."""
    tasks, score, _ = read_scores(out / CONTROL / "eval")
    if not tasks:
        return None
    meta = out / f"{CONTROL}.json"
    source = json.loads(meta.read_text()).get("architecture_of") if meta.is_file() else None
    return {"cell": "random init", "architecture_of": source, "tasks": tasks, "score": score}


def variant(obj: dict[str, Any]) -> str | None:
    """The objective kind, with its training algorithm and loss weighting where not the default
    (the report's plot draws one line per variant)."""
    parts = [obj.get("kind"), obj.get("algorithm", "joint"), obj.get("loss_weighting", "fixed")]
    return "/".join(p for p in parts if p not in ("joint", "fixed")) if parts[0] else None


def generator_size(obj: dict[str, Any]) -> float | None:
    """The generator's width as a fraction of the discriminator's (the x axis of the paper's
    Figure 3, left); None for objectives without a generator."""
    if obj.get("kind") in (None, "mlm"):
        return None
    return 1.0 if obj.get("sharing") == "all" else obj.get("generator_size")


def _metrics(cell_dir: Path) -> tuple[list[dict], list[dict]]:
    f = cell_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.is_file() else []
    return [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "valid"]


def _at_flops(v: dict, train: list[dict]) -> dict:
    """A validation record's gains with the FLOPs spent by its step (the run's rate so far)."""
    seen = [t for t in train if t["step"] <= v["step"]] or train[:1]
    flops = seen[-1]["flops"] * v["step"] / seen[-1]["step"] if seen else None
    return {"step": v["step"], "flops": flops, "gain_mlm_loss": v.get("gain_mlm_loss"),
            "gain_disc_auc": v.get("gain_disc_auc"), "mlm_loss": v.get("mlm_loss"), "rtd_loss": v.get("rtd_loss")}


def report(out: str | Path) -> dict[str, Any]:
    """report.md, report.json and (with matplotlib) PNGs in `out`; returns the report."""
    out = Path(out)
    if not (out / "cells").is_dir():
        raise ConfigError(f"{out} holds no experiment (no cells/); pass the --out of electra experiment run")
    order = [c["name"] for c in json.loads((out / "experiment.json").read_text())["cells"]] \
        if (out / "experiment.json").is_file() else []
    dirs = sorted((d for d in (out / "cells").iterdir() if d.is_dir()),
                  key=lambda d: (order.index(d.name) if d.name in order else len(order), d.name))
    rows = [read_cell(d) for d in dirs]
    control = read_control(out)
    rep = {"dir": str(out), "cells": rows, "control": control, "figures": []}
    write_text_atomic(out / "report.md", markdown(rows, control))
    try:
        import matplotlib  # noqa: F401 - the optional `plot` extra
    except ImportError:
        log.info("matplotlib is not installed (pip install 'electra[plot]'): no figures")
    else:
        rep["figures"] = [str(p) for p in plot(rows, control, out)]
    write_text_atomic(out / "report.json", json.dumps(rep, indent=2) + "\n")
    return rep


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _score_cell(t: dict | None) -> str:
    if t is None:
        return "–"
    spread = f" [{t['min']:.2f}, {t['max']:.2f}]" if t["n"] > 1 else ""
    return f"{t['median']:.2f}{spread}"


def markdown(rows: list[dict], control: dict | None = None) -> str:
    everyone = [*rows, *([control] if control else [])]
    tasks = sorted({t for r in everyone for t in r["tasks"]})
    lines = ["# Experiment report", "",
             "Pre-training FLOPs and tokens at the run's end; context gains from its last validation "
             "(G: context-free MLM loss − model's, D: AUC − context-free AUC); task scores ×100: median "
             "over fine-tuning seeds [min, max]; score: GLUE average of medians (or mean of tasks).", "",
             "| cell | kind / overrides | FLOPs | tokens | G gain | D gain | " + "".join(f"{t} | " for t in tasks)
             + "score |", "|---|---|---:|---:|---:|---:|" + "---:|" * (len(tasks) + 1)]
    for r in rows:
        over = " ".join(o for o in r["overrides"] if not o.startswith("objective.kind="))
        scores = "".join(f"{_score_cell(r['tasks'].get(t))} | " for t in tasks)
        lines.append(f"| {r['cell']} | {r['kind'] or '–'}{' · ' + over if over else ''} | {_fmt(r['flops'], '.3g')} | "
                     f"{_fmt(r['tokens'], ',')} | {_fmt(r['gain_mlm_loss'], '+.3f')} | "
                     f"{_fmt(r['gain_disc_auc'], '+.3f')} | {scores}{_fmt(r['score'], '.2f')} |")
    if control:
        scores = "".join(f"{_score_cell(control['tasks'].get(t))} | " for t in tasks)
        source = f"architecture of {control['architecture_of']}" if control["architecture_of"] else "no pre-training"
        lines.append(f"| **random init** | {source} | 0 | 0 | – | – | {scores}{_fmt(control['score'], '.2f')} |")
    chosen = [f"- {r['cell']}: " + "; ".join(f"{t} {', '.join(r['tasks'][t]['chosen'])}" for t in tasks
                                             if r["tasks"].get(t, {}).get("chosen"))
              for r in everyone if any(t.get("chosen") for t in r["tasks"].values())]
    if chosen:  # the settings each encoder chose per task, so a setting's effect is not read as the encoder's
        lines += ["", "Fine-tuning settings each row chose per task on held-out training examples:", *chosen]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], control: dict | None, out: Path) -> list[Path]:
    """score_vs_flops.png (the shape of the paper's Figure 1: one line per objective variant, i.e.
    kind with algorithm / loss weighting where not the default), context_gains.png and losses.png
    (validation curves against FLOPs, one line per cell), and generator_size.png (the paper's
    Figure 3, left) when the cells try more than one generator size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {"score_vs_flops.png": _panel_figure(plt, rows, "flops", lambda r: r["variant"] or "?",
                                                   control=control, xlabel="pre-training FLOPs", log_x=True),
               "context_gains.png": _curve_figure(plt, rows, (
                   ("gain_mlm_loss", "generator: context-free MLM loss − model's"),
                   ("gain_disc_auc", "discriminator: AUC − context-free AUC")), zero_line=True),
               "losses.png": _curve_figure(plt, rows, (("mlm_loss", "validation MLM loss"),
                                                        ("rtd_loss", "validation RTD loss")), zero_line=False)}
    if len({r["generator_size"] for r in rows if r["generator_size"] and r["tasks"]}) > 1:
        figures["generator_size.png"] = _panel_figure(plt, [r for r in rows if r["generator_size"]],
                                                      "generator_size", _size_group, control=control,
                                                      xlabel="generator size / discriminator size", log_x=False)
    paths = []
    for name, fig in figures.items():
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths


def _value(row: dict, panel: str) -> dict | None:
    """A panel's point for one row: a task's median and seed range, or the grid's one score."""
    if panel == "score":
        return None if row["score"] is None else {"median": row["score"], "min": row["score"], "max": row["score"]}
    return row["tasks"].get(panel)


def score_panels(rows: list[dict]) -> list[str]:
    """The tasks, and "score" only where it adds a number: with one GLUE task among others (SST-2
    beside CoNLL-2003) the GLUE average is that task's median, a second copy of its panel."""
    tasks = sorted({t for r in rows for t in r["tasks"]})
    if not tasks:
        return ["score"]
    repeats = all(r.get("score_repeats_a_task", False) for r in rows)
    return tasks if len(tasks) == 1 or repeats else [*tasks, "score"]


def _panel_figure(plt: Any, rows: list[dict], x_key: str, group: Callable[[dict], str], *,
                  control: dict | None, xlabel: str, log_x: bool) -> Any:
    """One panel per task (and one for the grid's score where it adds a number), one line
    per group of rows: medians joined, bars from the worst to the best seed, the random-init
    control dashed."""
    panels = score_panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for name in sorted({group(r) for r in rows if r[x_key]}):
            pts = sorted(((r[x_key], v) for r in rows if r[x_key] and group(r) == name
                          and (v := _value(r, panel)) is not None), key=lambda p: p[0])
            if pts:
                med = [v["median"] for _, v in pts]
                ax.errorbar([x for x, _ in pts], med, marker="o", capsize=3, label=name,
                            yerr=[[m - v["min"] for m, (_, v) in zip(med, pts, strict=True)],
                                  [v["max"] - m for m, (_, v) in zip(med, pts, strict=True)]])
        ref = _value(control, panel) if control else None
        if ref is not None:
            ax.axhline(ref["median"], color="grey", ls="--", lw=1, label="random init")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(panel if panel != "score" else "score (GLUE average, or mean of tasks)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel("fine-tuned score ×100 (median over seeds)")
    return fig


def _size_group(row: dict) -> str:
    """The generator-size curve joins cells that differ only in generator size: same objective,
    discriminator width and FLOP budget."""
    budget = f" · {row['budget']:.0e} FLOPs" if row["budget"] else ""
    return f"{row['variant']} · hidden {row['hidden_size']}{budget}"


def _curve_figure(plt: Any, rows: list[dict], panels: tuple[tuple[str, str], ...], *, zero_line: bool) -> Any:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for r in rows:
        c = [p for p in r["curve"] if p["flops"]]
        for ax, (key, _) in zip(axes[0], panels, strict=True):
            pts = [(p["flops"], p[key]) for p in c if p.get(key) is not None and not math.isnan(p[key])]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=r["cell"])
    for ax, (_, title) in zip(axes[0], panels, strict=True):
        if zero_line:
            ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("pre-training FLOPs")
        ax.set_title(title, fontsize=10)
    if axes[0][0].get_legend_handles_labels()[0]:  # the first panel has every cell (MLM cells: no RTD curve)
        axes[0][0].legend(fontsize=7)
    return fig
