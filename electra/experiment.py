"""The paper's experiments as grids of pre-training runs: a spec (base preset, shared overrides,
data, cells, fine-tuning tasks) and a resumable runner over the Python API; the report is
electra.experiment_report.

    electra experiment run ablations --data DATA --glue-dir GLUE --out runs/ablations
    electra experiment report runs/ablations     # report.md, report.json, PNGs (plot extra)

Every cell pre-trains into OUT/cells/NAME and is evaluated into OUT/cells/NAME/eval; a rerun
skips finished cells, re-evaluates cells whose pre-training finished and resumes the others.
The random-init control (finetune.control, on by default) is fine-tuned once into OUT/control."""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electra.api import evaluate as api_evaluate
from electra.api import export_run
from electra.api import pretrain as api_pretrain
from electra.config import PretrainConfig, apply_overrides, load_json, preset, to_dict
from electra.config_io import override_key
from electra.errors import ConfigError
from electra.experiment_report import CONTROL, cell_file
from electra.files import write_text_atomic
from electra.finetuning.config import FinetuneConfig, seed_list
from electra.finetuning.report import Sources, read_all
from electra.finetuning.select import Selection, parse_selection, split_heldout
from electra.finetuning.tasks import resolve_tasks
from electra.train import checkpoint as ckpt
from electra.train.state import run_end

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One pre-training run of the grid: its directory name and its own overrides."""

    name: str
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name.endswith(".json"):
            raise ConfigError(f"cell name {self.name!r} must be letters, digits, '.', '_' or '-', not ending "
                              "in .json (it names a directory, beside which NAME.json holds its settings)")


@dataclass(frozen=True, kw_only=True)
class FinetuneSpec:
    """What every cell is evaluated on: tasks x seeds, their data, fine-tuning overrides."""

    tasks: str = "glue"  # as `electra evaluate --tasks`
    seeds: tuple[int, ...] = (0, 1, 2)
    glue_dir: str | None = None
    conll: str | None = None
    squad: str | None = None
    overrides: tuple[str, ...] = ()  # FinetuneConfig fields, e.g. train.train_examples=2000
    # also fine-tune a randomly initialised encoder (the first cell's architecture and tokenizer)
    # the same way: the no-pre-training row every cell is read against
    control: bool = True
    # as `electra evaluate --select`: each encoder chooses every task's setting among these on
    # held-out training examples (["optim.lr=3e-4,1e-3"]); select_size as --select-size
    select: tuple[str, ...] = ()
    select_size: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.control, bool):
            raise ConfigError(f"finetune.control={self.control!r} must be true or false")
        if not isinstance(self.select_size, int) or isinstance(self.select_size, bool):
            raise ConfigError(f"finetune.select_size={self.select_size!r} must be an integer")
        seed_list(list(self.seeds), "finetune.seeds")
        resolve_tasks(self.tasks)
        self.selection()

    def config(self) -> FinetuneConfig:
        """The fine-tuning config every cell (and the control) is evaluated under."""
        return apply_overrides(FinetuneConfig(), list(self.overrides))

    def selection(self) -> Selection | None:
        return parse_selection(list(self.select), self.select_size, self.config(), self.overrides)

    def evaluate_kwargs(self) -> dict[str, Any]:
        """`api.evaluate`'s fine-tuning arguments, the same for every cell and the control."""
        return {"seeds": list(self.seeds), "glue_dir": self.glue_dir, "squad": self.squad,
                "conll_dir": self.conll, "overrides": list(self.overrides), "select": list(self.select),
                "select_size": self.select_size}


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    """A grid: base preset + shared overrides + data + cells + fine-tuning."""

    name: str
    preset: str = "small"
    data: str | None = None  # shards written by `electra preprocess` (relative: to the working dir)
    overrides: tuple[str, ...] = ()
    cells: tuple[Cell, ...]
    finetune: FinetuneSpec = FinetuneSpec()

    def __post_init__(self) -> None:
        preset(self.preset)  # an unknown preset fails here, with a suggestion
        if not self.cells:
            raise ConfigError(f"experiment {self.name!r} has no cells; add [[cells]] tables")
        names = [c.name for c in self.cells]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError(f"experiment {self.name!r}: cell names must be unique ({', '.join(dup)} repeated)")
        for c in self.cells:  # unknown keys and bad values fail before any run starts
            try:
                cfg = apply_overrides(preset(self.preset), [*self.overrides, *c.overrides])
            except ConfigError as e:
                raise ConfigError(f"cell {c.name}: {e}") from None
            if cfg.train.stop_at:  # its export would pass for the finished cell and be evaluated
                raise ConfigError(f"cell {c.name}: train.stop_at does not slice a grid (the cell would be "
                                  "evaluated half-trained); stop the runner with SIGTERM and run it again "
                                  "to resume")

    def cell_overrides(self, cell: Cell) -> list[str]:
        return [*self.overrides, *cell.overrides]


# ---- built-in grids (the paper's Figure 1, Table 2 ablations, Figure 3 sharing, sizes and ----
# ---- training algorithms; our loss weightings) ----------------------------------------------

BUDGETS = (1e16, 1e17, 1e18)  # ELECTRA-Small's full run is ~1.4e18 FLOPs (paper Table 1)


def _electra_vs_bert(budgets: Sequence[float]) -> list[Cell]:
    return [Cell(name=f"{kind}-{b:.0e}".replace("+", ""), overrides=(f"objective.kind={kind}",
                                                                     f"train.budget_flops={b:g}"))
            for b in budgets for kind in ("electra", "mlm")]


def _one_budget(budgets: Sequence[float], variants: dict[str, list[str]]) -> list[Cell]:
    if len(budgets) != 1:
        raise ConfigError(f"this built-in grid runs at one budget; pass one value to --budgets (got {len(budgets)})")
    return [Cell(name=n, overrides=(*o, f"train.budget_flops={budgets[0]:g}")) for n, o in variants.items()]


BUILTINS: dict[str, Callable[[Sequence[float] | None], list[Cell]]] = {
    "electra_vs_bert": lambda b: _electra_vs_bert(b or BUDGETS),
    "ablations": lambda b: _one_budget(b or BUDGETS[1:2], {
        k: [f"objective.kind={k}"] for k in ("electra", "electra15", "replace_mlm", "all_tokens_mlm", "mlm")}),
    "sharing": lambda b: _one_budget(b or BUDGETS[1:2], {
        f"sharing-{s}": ["objective.sharing=" + s, "objective.generator_size=1.0"]
        for s in ("none", "embeddings", "all")}),
    "generator_size": lambda b: _one_budget(b or BUDGETS[1:2], {
        f"generator-{g}": [f"objective.generator_size={g}"] for g in ("0.25", "0.5", "1.0")}),
    # DeBERTaV3's comparison: no sharing (NES), shared embeddings (ES), gradient-disentangled (GDES)
    "gdes": lambda b: _one_budget(b or BUDGETS[1:2], {
        name: [f"objective.sharing={mode}"] for name, mode in
        (("nes", "none"), ("es", "embeddings"), ("gdes", "gdes"))}),
    "algorithms": lambda b: _algorithms(b or BUDGETS),
    "loss_weighting": lambda b: _one_budget(b or BUDGETS[1:2], {
        "lambda-50": ["objective.loss_weighting=fixed", "objective.disc_weight=50"],
        "uncertainty": ["objective.loss_weighting=uncertainty", "objective.disc_weight=50"],
        # lambda 1 -> 50 over the first 2,000 updates (then fixed at 50)
        "schedule": ["objective.loss_weighting=schedule", "objective.disc_weight=50",
                     "objective.disc_weight_start=1", "objective.disc_weight_steps=2000"]}),
}


def _algorithms(budgets: Sequence[float]) -> list[Cell]:
    """The paper's Figure 3 (right): joint ELECTRA, two-stage (same-size generator, its switch at
    half of each budget) and adversarial ELECTRA, at each budget."""
    variants = {"joint": ["objective.algorithm=joint"],
                "two_stage": ["objective.algorithm=two_stage", "objective.generator_size=1.0",
                              "objective.sharing=none"],
                "adversarial": ["objective.algorithm=adversarial"]}
    return [Cell(name=f"{name}-{b:.0e}".replace("+", ""), overrides=(*o, f"train.budget_flops={b:g}"))
            for b in budgets for name, o in variants.items()]

# built-in grids that run on a recipe preset instead of `small` (--preset still replaces it)
BUILTIN_PRESETS = {"gdes": "debertav3"}

_TOP_KEYS = {"name", "preset", "data", "overrides", "cells", "finetune"}
_CELL_KEYS = {"name", "overrides"}
_FINETUNE_KEYS = {f.name for f in dataclasses.fields(FinetuneSpec)}


def load_spec(spec: str | Path, *, budgets: Sequence[float] | None = None) -> ExperimentSpec:
    """A built-in grid by name (`budgets` rescales its FLOP budgets), a TOML file, or a JSON file
    (a resolved spec, as `--print-config` prints it and a run saves it in experiment.json)."""
    text = str(spec)
    if text in BUILTINS:
        return ExperimentSpec(name=text, preset=BUILTIN_PRESETS.get(text, "small"),
                              cells=tuple(BUILTINS[text](budgets)))
    path = Path(spec)
    if not path.is_file():
        hint = difflib.get_close_matches(text, BUILTINS, n=1)
        raise ConfigError(f"experiment spec {text!r} is neither a spec file (TOML or JSON) nor a built-in grid" +
                          (f"; did you mean {hint[0]!r}?" if hint else f" ({', '.join(BUILTINS)})"))
    if budgets:
        raise ConfigError("--budgets rescales a built-in grid; a TOML spec sets train.budget_flops per cell")
    raw = _read_json(path) if path.suffix == ".json" else _read_toml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a spec is a table of keys (name, preset, cells, ...)")
    try:
        return spec_from_dict(raw, default_name=path.stem)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path}: not valid JSON ({e})") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser as a package
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("TOML experiment specs need Python >= 3.11 or `pip install tomli`") from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def spec_from_dict(raw: dict[str, Any], *, default_name: str = "experiment") -> ExperimentSpec:
    _check_keys(raw, _TOP_KEYS, "")
    cells = raw.get("cells", [])
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ConfigError("cells must be an array of tables ([[cells]] with name and overrides)")
    for c in cells:
        _check_keys(c, _CELL_KEYS, "cells.")
        if "name" not in c:
            raise ConfigError("every [[cells]] table needs a name")
    ft = raw.get("finetune", {})
    if not isinstance(ft, dict):
        raise ConfigError("finetune must be a table ([finetune] with tasks, seeds, glue_dir, ...)")
    _check_keys(ft, _FINETUNE_KEYS, "finetune.")
    seeds = seed_list(ft.get("seeds", 3), "finetune.seeds")
    tasks = ft.get("tasks", "glue")
    return ExperimentSpec(
        name=_str(raw, "name", default_name), preset=_str(raw, "preset", "small"), data=raw.get("data"),
        overrides=_strings(raw, "overrides", ""),
        cells=tuple(Cell(name=_str(c, "name", ""), overrides=_strings(c, "overrides", "cells."))
                    for c in cells),
        finetune=FinetuneSpec(tasks=",".join(tasks) if isinstance(tasks, list) else str(tasks),
                              seeds=tuple(int(s) for s in seeds), glue_dir=ft.get("glue_dir"),
                              conll=ft.get("conll"), squad=ft.get("squad"),
                              overrides=_strings(ft, "overrides", "finetune."),
                              control=ft.get("control", True), select=_strings(ft, "select", "finetune."),
                              select_size=ft.get("select_size", 0)))


def _check_keys(table: dict, allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            raise ConfigError(f"unknown key {prefix}{key}" + (f"; did you mean {prefix}{hint[0]}?" if hint
                                                              else f" (expected {', '.join(sorted(allowed))})"))


def _str(table: dict, key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _strings(table: dict, key: str, prefix: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise ConfigError(f"{prefix}{key} must be a list of \"section.field=value\" strings")
    return tuple(value)


def with_options(spec: ExperimentSpec, *, data: str | None = None, preset_name: str | None = None,
                 tasks: str | None = None, seeds: Sequence[int] | None = None,
                 glue_dir: str | None = None, conll: str | None = None, squad: str | None = None,
                 overrides: Sequence[str] = ()) -> ExperimentSpec:
    """The spec with command-line choices on top; `finetune.`-prefixed overrides go to
    fine-tuning, the others are shared by every pre-training cell."""
    ft_over = [o.removeprefix("finetune.") for o in overrides if o.startswith("finetune.")]
    pre_over = [o for o in overrides if not o.startswith("finetune.")]
    ft = spec.finetune
    control, select, select_size = ft.control, list(ft.select), ft.select_size
    for o in [o for o in ft_over if override_key(o) in ("control", "select", "select_size")]:
        key = override_key(o)  # the spec's own keys, not FinetuneConfig fields
        _, eq, value = o.partition("=")
        if not eq:
            raise ConfigError(f"finetune.{o} needs a value: finetune.{o}=...")
        if key == "control":
            control = _flag(o)
        elif key == "select":  # finetune.select=optim.lr=3e-4,1e-3, one per key of the grid
            name = override_key(value)
            if any(override_key(s) == name for s in select):  # a restated key keeps its place (the grid's order)
                select = [value if override_key(s) == name else s for s in select]
            else:
                select.append(value)
        else:
            select_size = _integer(o)
        ft_over.remove(o)
    ft = dataclasses.replace(ft, tasks=tasks or ft.tasks, seeds=tuple(seeds) if seeds else ft.seeds,
                             glue_dir=glue_dir or ft.glue_dir, conll=conll or ft.conll,
                             squad=squad or ft.squad, overrides=(*ft.overrides, *ft_over), control=control,
                             select=tuple(select), select_size=select_size)
    return dataclasses.replace(spec, data=data or spec.data, preset=preset_name or spec.preset,
                               overrides=(*spec.overrides, *pre_over), finetune=ft)


def _integer(override: str) -> int:
    try:
        return int(override.split("=", 1)[1])
    except ValueError:
        raise ConfigError(f"finetune.{override} must be an integer") from None


def _flag(override: str) -> bool:
    value = override.split("=", 1)[1].strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"finetune.{override} must be finetune.control=true or finetune.control=false")
    return value == "true"


# ---- the runner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CellOutcome:
    name: str
    pretrain: str  # "ran", "resumed", "exported" (trained before, export missing), "done" (found finished) or "preempted" (SIGTERM; the grid stops)
    evaluate: str  # "ran", "done" or "not run"


def run(spec: ExperimentSpec, out: str | Path) -> list[CellOutcome]:
    """Pre-train and evaluate every unfinished cell of `spec` into `out`/cells/NAME."""
    out = Path(out)
    if not spec.data:
        raise ConfigError(f"experiment {spec.name!r} names no data; pass --data DIR (shards written by "
                          "electra preprocess) or set data = \"DIR\" in the spec")
    if not Path(spec.data).is_dir():
        raise ConfigError(f"data {spec.data} does not exist; pass the directory written by electra preprocess")
    specs, ft = resolve_tasks(spec.finetune.tasks), spec.finetune
    tasks = [t.name for t in specs]
    evaluated = {c.name for c in spec.cells if _evaluated(out / "cells" / c.name / "eval", tasks, ft)}
    # the cells' fine-tuning data, read now: a wrong --glue-dir fails before hours of pre-training
    # (a grid whose every cell is evaluated needs none)
    if len(evaluated) < len(spec.cells):
        glue, squad, conll = (Path(p) if p else None for p in (ft.glue_dir, ft.squad, ft.conll))
        datasets = read_all(specs, ft.config(), Sources(glue_dir=glue, squad=squad, conll_dir=conll))
        if (selection := ft.selection()) is not None:  # a training set too small to hold examples out
            for task_spec in specs:
                split_heldout(task_spec, datasets[task_spec.name], selection)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "experiment.json", json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    outcomes = []
    for i, cell in enumerate(spec.cells, 1):
        cell_dir = out / "cells" / cell.name
        _check_cell(cell_dir, spec, cell)
        tag = f"[{i}/{len(spec.cells)}] cell {cell.name}"
        if cell.name in evaluated:
            log.info("%s: done (%s)", tag, cell_dir / "eval" / "results.json")
            outcomes.append(CellOutcome(cell.name, "done", "done"))
            continue
        pretrain = _pretrain_cell(tag, cell_dir, spec, cell)
        if pretrain == "preempted":  # a half-trained encoder is never evaluated as the cell's
            log.warning("%s: stopped by SIGTERM with a checkpoint; run the same command again to "
                        "resume the grid", tag)
            outcomes.append(CellOutcome(cell.name, "preempted", "not run"))
            break
        log.info("%s: evaluating %s x %d seed(s) ...", tag, ",".join(tasks), len(ft.seeds))
        api_evaluate(cell_dir, ft.tasks, cell_dir / "eval", **ft.evaluate_kwargs())
        outcomes.append(CellOutcome(cell.name, pretrain, "ran"))
    if spec.finetune.control and not preempted(outcomes):
        _evaluate_control(spec, out, tasks)
    return outcomes


def preempted(outcomes: Sequence[CellOutcome]) -> bool:
    """Whether SIGTERM stopped the grid (in its last cell): nothing after it ran."""
    return bool(outcomes) and outcomes[-1].pretrain == "preempted"


def _evaluate_control(spec: ExperimentSpec, out: Path, tasks: list[str]) -> None:
    """Fine-tune a random-init encoder of the first cell's architecture (and tokenizer) with the
    cells' fine-tuning settings, once; a rerun resumes or skips it like a cell's evaluation."""
    ft, first = spec.finetune, out / "cells" / spec.cells[0].name
    if _evaluated(out / CONTROL / "eval", tasks, ft):
        log.info("control (random init): done (%s)", out / CONTROL / "eval" / "results.json")
        return
    # the run directory (its newest checkpoint) as every earlier control was measured, or its
    # export where the checkpoints were deleted: the architecture and tokenizer are the same
    source = first if any((first / "checkpoints").glob("step_*")) else first / "export" / "discriminator"
    if not source.is_dir():
        raise ConfigError(f"the random-init control needs cell {first.name}'s run ({first}) or its export; "
                          "run the grid again to pre-train it, or set control = false under [finetune]")
    log.info("control: fine-tuning a random-init encoder of %s's architecture on %s x %d seed(s) ...",
             first.name, ",".join(tasks), len(ft.seeds))
    api_evaluate(source, ft.tasks, out / CONTROL / "eval", random_init=True, **ft.evaluate_kwargs())
    write_text_atomic(out / f"{CONTROL}.json", json.dumps({"architecture_of": first.name}, indent=2) + "\n")


def _check_cell(cell_dir: Path, spec: ExperimentSpec, cell: Cell) -> None:
    """A cell directory is reused only for the same pre-training settings."""
    setup = {"preset": spec.preset, "shared": list(spec.overrides), "cell": list(cell.overrides)}
    f = cell_file(cell_dir)
    if f.is_file() and json.loads(f.read_text()) != setup:
        raise ConfigError(f"{cell_dir} holds cell {cell.name} with other settings; rename the cell or "
                          "delete the directory to start it over")
    f.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(f, json.dumps(setup, indent=2) + "\n")


def _pretrain_cell(tag: str, cell_dir: Path, spec: ExperimentSpec, cell: Cell) -> str:
    if (cell_dir / "export" / "discriminator" / "config.json").is_file():
        log.info("%s: pre-training done, re-evaluating", tag)
        return "done"
    if any((cell_dir / "checkpoints").glob("*")):
        newest = ckpt.latest_checkpoint(cell_dir / "checkpoints")
        if ckpt.read_meta(newest)["step"] >= run_end(load_json(PretrainConfig, newest / "config.json")):
            log.info("%s: pre-training finished before its export (stopped or killed then); exporting ...", tag)
            export_run(newest, cell_dir, verify=False)  # latest_checkpoint has just hashed it
            return "exported"
        log.info("%s: resuming pre-training from %s ...", tag, cell_dir / "checkpoints")
        res = api_pretrain(out=cell_dir, resume=True)
        return "preempted" if res.train.preempted else "resumed"
    log.info("%s: pretraining (%s) ...", tag, " ".join(cell.overrides) or "base settings")
    res = api_pretrain(spec.preset, out=cell_dir, data=spec.data, overrides=spec.cell_overrides(cell))
    return "preempted" if res.train.preempted else "ran"


def _evaluated(eval_dir: Path, tasks: list[str], ft: FinetuneSpec) -> bool:
    """Every task x seed of the spec is in `eval_dir`; an evaluation under other fine-tuning
    settings is refused, never mixed into one report with the new ones."""
    f = eval_dir / "results.json"
    if not f.is_file():
        return False
    done, seeds = json.loads(f.read_text()), ft.seeds
    hidden = done.get("model", {}).get("hidden_size")
    want = to_dict(ft.config().resolved(hidden)) if hidden else None
    selection = ft.selection()
    if (want is not None and done.get("config") not in (None, want)
            or done.get("select") != (selection.key() if selection else None)):
        raise ConfigError(f"{eval_dir} was evaluated under other fine-tuning settings than the spec's [finetune] "
                          f"overrides; delete {eval_dir} to evaluate it again, or run the grid into another --out")
    return (done.get("seeds") == list(seeds) and
            all(len(done["tasks"].get(t, {}).get("runs", [])) == len(seeds) for t in tasks))
