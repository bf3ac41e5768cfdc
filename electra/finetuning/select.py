"""Fine-tuning settings chosen per task on training examples held out of training, so that no
setting is chosen by reading the dev set it is reported on:
`electra evaluate CKPT --tasks glue --select optim.lr=3e-4,1e-3 --select train.epochs=3,10`.

Why: one learning rate does not suit every task and every encoder (RESULTS.md: a briefly
pre-trained encoder keeps its STS-B transfer at lr 3e-4 and loses it at 1e-3, where SST-2 wants
1e-3), and comparing two encoders at one shared setting can measure the setting, not the
encoders. Each encoder and task gets the setting whose median over seeds scores best on the
held-out examples; only that setting is fine-tuned on the whole training set and scored on dev."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from electra.config_io import apply_overrides
from electra.errors import ConfigError
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.tasks import TaskData, TaskSpec

HELDOUT = "heldout"  # the selection split's name in TaskData.dev
SPLIT_SEED = 2026  # one held-out draw for every encoder and setting: their scores are comparable
DEFAULT_SHARE, DEFAULT_CAP = 5, 2000  # by default a fifth of the training examples, at most 2,000


@dataclass(frozen=True)
class Selection:
    """A grid of overrides (every combination of the `--select` values) and the held-out size."""

    keys: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # per key
    size: int = 0  # examples held out per task; 0: a fifth of the training set, at most 2,000

    @property
    def points(self) -> list[tuple[str, ...]]:
        """Each setting as its overrides, in grid order (the first key varies slowest)."""
        return [tuple(f"{k}={v}" for k, v in zip(self.keys, combo, strict=True))
                for combo in itertools.product(*self.values)]

    def key(self) -> dict:
        """What a resumed evaluation must match to reuse finished runs."""
        return {"grid": {k: list(v) for k, v in zip(self.keys, self.values, strict=True)}, "size": self.size,
                "split_seed": SPLIT_SEED}


def parse_selection(items: Sequence[str], size: int, base: FinetuneConfig) -> Selection | None:
    """`["optim.lr=3e-4,1e-3", "train.epochs=3,10"]` -> a Selection (None for no items); every
    value is checked against the config here, before hours of fine-tuning."""
    if not items:
        if size:
            raise ConfigError("--select-size needs --select KEY=V1,V2 (the settings to choose between)")
        return None
    if size < 0:
        raise ConfigError(f"--select-size {size} must be >= 1 (or 0 for a fifth of the training set, at most 2,000)")
    keys: list[str] = []
    values: list[tuple[str, ...]] = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--select {item!r} is not of the form KEY=V1,V2 (e.g. optim.lr=3e-4,1e-3)")
        key, text = (s.strip() for s in item.split("=", 1))
        if key in ("seed", "train.train_examples") or key in keys:
            raise ConfigError(f"--select {key} " + ("is given twice; list its values once, comma-separated"
                                                     if key in keys else "cannot be chosen per task (use --seeds / an override)"))
        listed = tuple(v.strip() for v in text.split(","))
        if "" in listed or len(set(listed)) != len(listed):
            raise ConfigError(f"--select {item!r}: list distinct, non-empty values, comma-separated")
        for v in listed:
            apply_overrides(base, [f"{key}={v}"])  # unknown keys and bad values fail now
        keys.append(key)
        values.append(listed)
    selection = Selection(tuple(keys), tuple(values), size)
    if len(selection.points) < 2:
        raise ConfigError("--select gives one setting; list at least two values to choose between "
                          "(a single setting is an override: KEY=VALUE)")
    return selection


def heldout_size(selection: Selection, n_train: int, task: str) -> int:
    size = selection.size or min(DEFAULT_CAP, n_train // DEFAULT_SHARE)
    if not 1 <= size <= n_train - 1 or n_train < 2 * DEFAULT_SHARE:
        raise ConfigError(f"{task} has {n_train} training examples: too few to hold {size or 'a fifth'} out "
                          "for --select; pass --select-size N below that, or evaluate without --select")
    return size


def split_heldout(spec: TaskSpec, data: TaskData, selection: Selection) -> TaskData:
    """The training examples without a seeded draw of `size`, which become the only dev split.
    Question answering holds out whole articles (questions about one paragraph in both halves
    would score the model on text it trained on)."""
    train = data.train
    size = heldout_size(selection, len(train), spec.name)
    rng = random.Random(SPLIT_SEED)
    if spec.kind == "span":
        articles = sorted({e.article for e in train})
        rng.shuffle(articles)
        held_articles: set[int] = set()
        held_count = 0
        for a in articles:
            if held_count >= size or len(held_articles) == len(articles) - 1:
                break
            held_articles.add(a)
            held_count += sum(e.article == a for e in train)
        held = [e.article in held_articles for e in train]
    else:
        chosen = set(rng.sample(range(len(train)), size))
        held = [i in chosen for i in range(len(train))]
    rest = [e for e, h in zip(train, held, strict=True) if not h]
    heldout = [e for e, h in zip(train, held, strict=True) if h]
    return TaskData(rest, {HELDOUT: heldout}, {HELDOUT: ""},
                    f"{len(heldout)} of {len(train)} training examples held out to choose settings")


def score(runs: list[dict], metric: str) -> tuple[float, float]:
    """(median, mean) of the metric over seeds: the median chooses, the mean breaks ties."""
    values = sorted(r["metrics"][metric] for r in runs)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return median, sum(values) / n


def choose(scored: list[tuple[tuple[str, ...], float, float]]) -> tuple[str, ...]:
    """The setting with the best median (then mean; then the earlier in the grid). Every task's
    main metric is higher-is-better (accuracy, MCC, F1, Spearman)."""
    best = max(range(len(scored)), key=lambda i: (scored[i][1], scored[i][2], -i))
    return scored[best][0]


def point_dir_name(point: tuple[str, ...]) -> str:
    return "+".join(point).replace("/", "_")


def markdown_lines(tasks: dict[str, dict]) -> list[str]:
    """The selection table of results.md: every setting's held-out score, the chosen one bold."""
    lines: list[str] = []
    for t in tasks.values():
        sel = t.get("selection")
        if not sel:
            continue
        if not lines:
            lines = ["", "Settings chosen per task on training examples held out of training (median over "
                         "seeds of the main metric there; the dev scores above use only the chosen one):", "",
                     "| task | setting | held-out median | mean |", "|---|---|---:|---:|"]
        for i, p in enumerate(sel["points"]):
            name = ", ".join(p["overrides"])
            if p["overrides"] == sel["chosen"]:
                name = f"**{name}** (chosen)"
            lines.append(f"| {t['title'] if i == 0 else ''} | {name} | {100 * p['median']:.2f} | "
                         f"{100 * p['mean']:.2f} |")
    return lines


def config_for(base: FinetuneConfig, point: Sequence[str]) -> FinetuneConfig:
    return apply_overrides(base, list(point))
