"""Every task x seed, reported as the paper does (medians): `electra evaluate CKPT --tasks glue --seeds 5`.

Each run writes `runs/<task>/seed<k>/result.json` when it ends, so an interrupted evaluation
resumes; `results.json` and `results.md` (median, mean ± std, min, max, GLUE average of medians,
wall time per task) are rewritten after every task."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from electra.config import to_dict
from electra.config_io import apply_overrides
from electra.errors import ConfigError, DivergedError
from electra.files import is_atomic_tmp, write_text_atomic
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.run import Backbone, finetune, load_backbone
from electra.finetuning.select import (
    Selection,
    choose,
    markdown_lines,
    point_dir_name,
    split_heldout,
)
from electra.finetuning.tasks import TASKS, TaskData, TaskSpec, load_data
from electra.train.log import format_duration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """Where each task family's data lives."""

    glue_dir: Path | None = None  # GLUE root: CoLA/, SST-2/, ... (or one HF datasets dir per task)
    squad: Path | None = None  # a SQuAD directory (train/dev JSON) or, with split_by_article, one file
    split_by_article: int = 0
    conll_dir: Path | None = None  # eng.train, eng.testa, eng.testb


def data_kwargs(spec: TaskSpec, sources: Sources) -> dict:
    if spec.kind == "span":
        if sources.squad is None:
            raise ConfigError(f"task {spec.name} needs --squad (a SQuAD directory, or a JSON file with "
                              "--split-by-article N)")
        return {"data": sources.squad, "split_by_article": sources.split_by_article}
    if spec.name == "conll2003":
        if sources.conll_dir is None:
            raise ConfigError("task conll2003 needs --conll DIR (eng.train, eng.testa)")
        return {"data": sources.conll_dir}
    if spec.columns is None:
        raise ConfigError(f"`electra evaluate` runs named tasks; fine-tune your own {spec.name} data "
                          "with `electra finetune --task ...`")
    if sources.glue_dir is None:
        raise ConfigError(f"task {spec.name} needs --glue-dir DIR (holding {spec.dir_name}/)")
    return {"data": sources.glue_dir}


def read_all(specs: list[TaskSpec], cfg: FinetuneConfig, sources: Sources) -> dict[str, TaskData]:
    """Every task's data, read first: a wrong path fails before hours of fine-tuning (or of
    pre-training, for an experiment's cells)."""
    return {spec.name: load_data(spec, cfg, **data_kwargs(spec, sources)) for spec in specs}


def summarize(values: list[float]) -> dict[str, float]:
    """Median (the paper's statistic), mean, sample std, min and max over seeds."""
    a = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(a)), "mean": float(a.mean()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()),
            "max": float(a.max()), "n": len(a)}


def evaluate(checkpoint: str | Path, specs: list[TaskSpec], seeds: list[int], cfg: FinetuneConfig,
             sources: Sources, out: Path, *, save_models: bool = False, random_init: bool = False,
             overwrite: bool = False, selection: Selection | None = None) -> dict:
    """Every task x seed; with `selection`, each task first chooses its setting on held-out
    training examples (`select/<task>/<setting>/seed<k>`), then runs the seeds with it."""
    out = Path(out)
    backbone = load_backbone(checkpoint, random_init=random_init)
    datasets = read_all(specs, cfg, sources)  # before anything is written to `out`
    heldout = {s.name: split_heldout(s, datasets[s.name], selection) for s in specs} if selection else {}
    resolved = cfg.resolved(backbone.model_cfg.hidden_size)
    # `source`: the checkpoint the path resolves to now, with its step (a run trained further is
    # another model); tasks may be added to an --out, so their data paths are not part of the key
    setup = {"checkpoint": str(Path(checkpoint).resolve()), "source": backbone.source,
             "config": to_dict(resolved), "random_init": random_init}
    check_resume(out, setup | ({"select": selection.key()} if selection else {}), overwrite)
    results = {"checkpoint": str(checkpoint), "source": backbone.source, "seeds": seeds,
               "model": {"hidden_size": backbone.model_cfg.hidden_size,
                         "num_layers": backbone.model_cfg.num_layers,
                         "encoder_parameters": sum(t.numel() for t in backbone.encoder_state.values())},
               "config": to_dict(resolved), **({"select": selection.key()} if selection else {}), "tasks": {}}
    progress = _Progress(len(specs) * len(seeds) * (1 + (len(selection.points) if selection else 0)))
    for spec in specs:
        data, task_cfg, chosen, root = datasets[spec.name], cfg, None, out / "runs" / spec.name
        if selection:
            chosen = _select(backbone, spec, heldout[spec.name], cfg, seeds, selection, out / "select" / spec.name,
                             progress)
            task_cfg, root = apply_overrides(cfg, chosen["chosen"]), root / point_dir_name(tuple(chosen["chosen"]))
        runs = _seed_runs(backbone, spec, data, task_cfg, seeds, root, progress, save_models)
        results["tasks"][spec.name] = task_summary(spec, runs, data.note) | ({"selection": chosen} if chosen else {})
        results["glue_average"] = glue_average(results["tasks"])
        write_results(out, results)
    return results


def _select(backbone: Backbone, spec: TaskSpec, heldout: TaskData, cfg: FinetuneConfig, seeds: list[int],
            selection: Selection, root: Path, progress: _Progress) -> dict:
    """Every setting x seed on the held-out split (a setting whose loss diverges ranks last and
    the others go on); the chosen setting and every setting's median and mean there."""
    log.info("%s: choosing among %d settings (%s)", spec.name, len(selection.points), heldout.note)
    points = []
    for point in selection.points:
        # every setting scored on the whole held-out split, whatever train.eval_examples says
        point_cfg = apply_overrides(cfg, list(point))
        point_cfg = dataclasses.replace(point_cfg, train=dataclasses.replace(point_cfg.train, eval_examples=0))
        runs = _seed_runs(backbone, spec, heldout, point_cfg, seeds, root / point_dir_name(point), progress,
                          False, diverged_ok=True)
        diverged = any(r.get("diverged") for r in runs)
        stats = None if diverged else summarize([r["metrics"][spec.main_metric] for r in runs])
        points.append({"overrides": list(point), "median": stats and stats["median"], "mean": stats and stats["mean"],
                       "seconds": sum(r["seconds"] for r in runs),
                       "wall_time": format_duration(sum(r["seconds"] for r in runs))})
    best = choose([(tuple(p["overrides"]), p["median"], p["mean"]) for p in points])
    median = next(p["median"] for p in points if tuple(p["overrides"]) == best)
    log.info("%s: chose %s (held-out %s median %s)", spec.name, ", ".join(best), spec.main_metric,
             "diverged" if median is None else f"{median:.4f}")
    return {"note": heldout.note, "chosen": list(best), "points": points,
            "seconds": sum(p["seconds"] for p in points)}


class _Progress:
    """`[k/n]` over every fine-tuning run of the evaluation, selection runs included."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def next(self) -> str:
        self.done += 1
        return f"[{self.done}/{self.total}]"


def _seed_runs(backbone: Backbone, spec: TaskSpec, data: TaskData, cfg: FinetuneConfig, seeds: list[int],
               root: Path, progress: _Progress, save_models: bool, diverged_ok: bool = False) -> list[dict]:
    """One fine-tuning run per seed, each kept as `root/seed<k>/result.json` when it ends (a
    finished one is read back, so an interrupted evaluation resumes). `diverged_ok`: a run whose
    loss diverges is recorded as such instead of stopping the evaluation."""
    runs = []
    for seed in seeds:
        tag, run_dir = progress.next(), root / f"seed{seed}"
        if (run_dir / "result.json").is_file():
            runs.append(json.loads((run_dir / "result.json").read_text()))
            log.info("%s %s seed %d: already done (%s)", tag, spec.name, seed, run_dir)
            continue
        log.info("%s %s seed %d", tag, spec.name, seed)
        t0 = time.perf_counter()
        try:  # overwrite: a model saved by a run cut off before its result.json is redone in place
            res = finetune(backbone, spec, data, dataclasses.replace(cfg, seed=seed),
                           out=run_dir if save_models else None, overwrite=True)
            record = {"seed": seed, "metrics": res.metrics, "seconds": res.seconds, "steps": res.steps,
                      "history": res.history}
            log.info("%s %s seed %d: %s %.4f (%s)", tag, spec.name, seed, spec.main_metric,
                     res.metrics.get(spec.main_metric, float("nan")), format_duration(res.seconds))
        except DivergedError as e:
            if not diverged_ok:
                raise
            log.warning("%s %s seed %d: %s; this setting ranks last", tag, spec.name, seed, e)
            record = {"seed": seed, "metrics": {}, "seconds": time.perf_counter() - t0, "diverged": str(e)}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps(record, indent=2) + "\n")
        runs.append(record)
    return runs


_OWN = {"evaluate.json", "runs", "select", "results.json", "results.md"}  # what evaluate writes in --out
_SETUP_PARTS = {"checkpoint": "the checkpoint", "source": "the checkpoint", "config": "the fine-tuning settings",
                "random_init": "--random-init", "select": "the --select grid or --select-size"}


def check_resume(out: Path, setup: dict, overwrite: bool = False) -> None:
    """`out` is new, or evaluate's own (it holds evaluate.json): finished runs are reused only
    when they came from the same checkpoint (step included) and config. With `overwrite`, runs of other settings
    are deleted, and a folder of other files is claimed (those files are left alone)."""
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    other = [n for n in names if n not in _OWN and not is_atomic_tmp(n)]
    if other and not overwrite and "evaluate.json" not in names:
        raise ConfigError(f"--out {out} holds files evaluate did not write ({', '.join(other[:3])}); "
                          "choose another --out, or pass --overwrite to write into it")
    f = out / "evaluate.json"
    finished = any(any((out / d).rglob("result.json")) for d in ("runs", "select") if (out / d).is_dir())
    earlier = json.loads(f.read_text()) if f.is_file() else setup
    if finished and earlier != setup:
        what = " and ".join(dict.fromkeys(_SETUP_PARTS.get(k, k) for k in dict.fromkeys([*setup, *earlier])
                                          if earlier.get(k) != setup.get(k)))
        if not overwrite:
            raise ConfigError(f"{out} holds runs of another checkpoint (or step) or config ({what} differ); choose "
                              f"another --out, or pass --overwrite to replace them (or delete {out / 'runs'} and "
                              f"{out / 'select'})")
        log.warning("%s: replacing the runs of another checkpoint (or step) or config (%s differ; --overwrite)",
                    out, what)
        for d in ("runs", "select"):
            shutil.rmtree(out / d, ignore_errors=True)
        for name in ("results.json", "results.md"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(setup, indent=2) + "\n")


def task_summary(spec: TaskSpec, runs: list[dict], note: str) -> dict:
    names = [m for m in spec.metric_names if all(m in r["metrics"] for r in runs)]
    return {"title": spec.title, "main_metric": spec.main_metric, "note": note, "runs": runs,
            "summary": {m: summarize([r["metrics"][m] for r in runs]) for m in names},
            "seconds": sum(r["seconds"] for r in runs)}


def glue_average(tasks: dict[str, dict]) -> dict:
    """The paper's GLUE score: the plain average of each task's main metric (CoLA MCC, STS-B
    Spearman, the others accuracy; WNLI left out), here of the medians over seeds."""
    glue = [t for t, spec in TASKS.items() if spec.in_glue_average]
    have = [t for t in glue if t in tasks and tasks[t]["main_metric"] in tasks[t]["summary"]]
    score = float(np.mean([tasks[t]["summary"][tasks[t]["main_metric"]]["median"] for t in have])) if have else None
    return {"score": score, "tasks": have, "missing": [t for t in glue if t not in have]}


def write_results(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))


def markdown(results: dict) -> str:
    c = results["config"]
    lines = [
        "# Fine-tuning results", "",
        f"Checkpoint `{results['checkpoint']}` ({results['model']['num_layers']} layers, hidden "
        f"{results['model']['hidden_size']}), size `{c['size']}`: lr {c['optim']['lr']:g}, layer-wise "
        f"decay {c['optim']['layerwise_lr_decay']:g} ({c['optim']['llrd_mode']}), batch "
        f"{c['train']['batch_size']}, seeds {', '.join(map(str, results['seeds']))}.",
        "Scores x100 on the dev sets; the median over seeds is the reported number (as the paper).",
        *([f"**Subsets** (not full-data numbers): train.train_examples={c['train']['train_examples']}, "
           f"train.eval_examples={c['train']['eval_examples']}."]
          if c["train"]["train_examples"] or c["train"]["eval_examples"] else []), "",
        "| task | metric | median | mean ± std | min | max | seeds | wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for t in results["tasks"].values():
        title = t["title"] + (" (article split)" if "article split" in t["note"] else "")
        for i, (metric, s) in enumerate(t["summary"].items()):
            lines.append(f"| {title if i == 0 else ''} | {metric} | {100 * s['median']:.2f} | "
                         f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} | {100 * s['min']:.2f} | "
                         f"{100 * s['max']:.2f} | {s['n']} | "
                         f"{format_duration(t['seconds']) if i == 0 else ''} |")
        if t["note"]:
            notes.append(f"- {t['title']}: {t['note']}")
        if t.get("selection"):
            notes.append(f"- {t['title']}: {', '.join(t['selection']['chosen'])} (chosen on "
                         f"{t['selection']['note']}; the header's settings otherwise)")
    g = results.get("glue_average") or {}
    if g.get("score") is not None:
        which = ", ".join(g["tasks"])
        caveat = "" if not g["missing"] else f"; missing {', '.join(g['missing'])}, so not the GLUE score"
        lines += ["", f"**GLUE average of medians**: {100 * g['score']:.2f} ({len(g['tasks'])} tasks: "
                      f"{which}{caveat}; main metrics: CoLA MCC, STS-B Spearman, others accuracy)"]
    lines += markdown_lines(results["tasks"])
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"

