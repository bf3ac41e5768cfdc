"""Fine-tuning settings chosen per task on training examples held out of training, so that no
setting is chosen by reading the dev set it is reported on:
`electra evaluate CKPT --tasks glue --select optim.lr=3e-4,1e-3 --select train.epochs=3,10`.

Why: one learning rate does not suit every task and every encoder (RESULTS.md: a briefly
pre-trained encoder keeps its STS-B transfer at lr 3e-4 and loses it at 1e-3, where SST-2 wants
1e-3), and comparing two encoders at one shared setting can measure the setting, not the
encoders. Each encoder and task gets the setting whose median over seeds scores best on the
held-out examples; only that setting is fine-tuned on the whole training set and scored on dev."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from electra.config import to_dict
from electra.config_io import apply_overrides, override_key
from electra.errors import ConfigError
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.tasks import TaskData, TaskSpec

HELDOUT = "heldout"  # the selection split's name in TaskData.dev
SPLIT_SEED = 2026  # one held-out draw for every encoder and setting: their scores are comparable
DEFAULT_SHARE, DEFAULT_CAP = 5, 2000  # by default a fifth of the training examples, at most 2,000
MIN_TRAIN = 10  # fewer training examples than this leave nothing to hold out
# keys that do not change what is learned (or that the selection fixes itself): choosing among
# them would run identical settings, or score each on other examples
NOT_SELECTABLE = ("seed", "train.train_examples", "train.eval_examples", "train.eval_batch_size", "train.threads",
                  "train.device", "train.log_every", "train.allocator", "train.dropout_kernel")
NOT_SELECTABLE_PREFIX = "data."  # the data are read once, with the base config
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._=+-]{1,120}")


@dataclass(frozen=True)
class Selection:
    """A grid of overrides (every combination of the `--select` values) and the held-out size."""

    keys: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # per key
    size: int = 0  # examples held out per task; 0: a fifth of the training set, at most 2,000

    @property
    def points(self) -> list[tuple[str, ...]]:
        """Each setting as its overrides, in grid order (the first key varies slowest; on equal
        held-out scores the earlier setting wins)."""
        return [tuple(f"{k}={v}" for k, v in zip(self.keys, combo, strict=True))
                for combo in itertools.product(*self.values)]

    def key(self) -> dict:
        """What a resumed evaluation must match to reuse finished runs (in order: the order
        breaks ties)."""
        return {"grid": [[k, list(v)] for k, v in zip(self.keys, self.values, strict=True)], "size": self.size,
                "split_seed": SPLIT_SEED}


def parse_selection(items: Sequence[str], size: int, base: FinetuneConfig,
                    overrides: Sequence[str] = ()) -> Selection | None:
    """`["optim.lr=3e-4,1e-3", "train.epochs=3,10"]` -> a Selection (None for no items); every
    value is checked against the config here, before hours of fine-tuning. A key also fixed by
    one of `overrides` is refused: the report would name the fixed value while every run used
    the chosen one."""
    fixed = {override_key(o) for o in overrides}
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
        if key in keys:
            raise ConfigError(f"--select {key} is given twice; list its values once, comma-separated")
        if key in fixed:
            raise ConfigError(f"{key} is both chosen by --select and set as an override; drop one of them")
        if key.startswith(NOT_SELECTABLE_PREFIX) or key in NOT_SELECTABLE:
            raise ConfigError(f"--select {key}: not a setting to choose per task (it does not change what is "
                              "learned, or the selection fixes it); give it as an override KEY=VALUE")
        listed = tuple(v.strip() for v in text.split(","))
        if "" in listed or len(set(listed)) != len(listed):
            raise ConfigError(f"--select {item!r}: list distinct, non-empty values, comma-separated")
        configs = [to_dict(apply_overrides(base, [f"{key}={v}"])) for v in listed]  # bad keys/values fail now
        for (i, a), (j, b) in itertools.combinations(enumerate(configs), 2):
            if a == b:
                raise ConfigError(f"--select {key}: {listed[i]} and {listed[j]} are the same setting; list it once")
        keys.append(key)
        values.append(listed)
    selection = Selection(tuple(keys), tuple(values), size)
    if len(selection.points) < 2:
        raise ConfigError("--select gives one setting; list at least two values to choose between "
                          "(a single setting is an override: KEY=VALUE)")
    return selection


def heldout_size(selection: Selection, n_train: int, task: str) -> int:
    if n_train < MIN_TRAIN:
        raise ConfigError(f"{task} has {n_train} training examples; --select needs at least {MIN_TRAIN} to hold "
                          "some out (evaluate it without --select)")
    size = selection.size or min(DEFAULT_CAP, n_train // DEFAULT_SHARE)
    if size > n_train - 1:
        raise ConfigError(f"{task} has {n_train} training examples: too few to hold {size} out for --select; "
                          f"pass --select-size between 1 and {n_train - 1}")
    return size


def split_heldout(spec: TaskSpec, data: TaskData, selection: Selection) -> TaskData:
    """The training examples without a seeded draw of `size`, which become the only dev split.
    Question answering holds out whole articles (questions about one paragraph in both halves
    would score the model on text it trained on), at least `size` questions of them."""
    train = data.train
    size = heldout_size(selection, len(train), spec.name)
    rng = random.Random(SPLIT_SEED)
    if spec.kind == "span":
        articles = sorted({e.article for e in train})
        if len(articles) < 2:
            raise ConfigError(f"{spec.name}'s training set holds one article; --select holds out whole articles, "
                              "so it needs at least two (train on more articles, or evaluate without --select)")
        rng.shuffle(articles)
        held_articles = _articles_for(articles, Counter(e.article for e in train), size)
        held = [e.article in held_articles for e in train]
    else:
        chosen = set(rng.sample(range(len(train)), size))
        held = [i in chosen for i in range(len(train))]
    rest = [e for e, h in zip(train, held, strict=True) if not h]
    heldout = [e for e, h in zip(train, held, strict=True) if h]
    return TaskData(rest, {HELDOUT: heldout}, {HELDOUT: ""},
                    f"{len(heldout)} of {len(train)} training examples held out")


def _articles_for(articles: list[int], counts: Counter, size: int) -> set[int]:
    """Articles in the shuffled order until they hold `size` questions; never all of them."""
    held: set[int] = set()
    total = 0
    for a in articles[:-1]:
        if total >= size:
            break
        held.add(a)
        total += counts[a]
    return held


def choose(scored: list[tuple[tuple[str, ...], float | None, float | None]]) -> tuple[str, ...]:
    """The setting with the best median (then mean; then the earlier in the grid). Every task's
    main metric is higher-is-better (accuracy, MCC, F1, Spearman); a setting that diverged
    (None) or scored NaN ranks last."""
    def rank(x: float | None) -> float:
        return -math.inf if x is None or math.isnan(x) else x

    best = max(range(len(scored)), key=lambda i: (rank(scored[i][1]), rank(scored[i][2]), -i))
    return scored[best][0]


def point_dir_name(point: tuple[str, ...]) -> str:
    """The setting's directory: its overrides as written when they make a short, plain name,
    else a digest of them (one directory per setting either way)."""
    name = "+".join(point)
    return name if _PLAIN_NAME.fullmatch(name) else "setting-" + hashlib.sha1(name.encode()).hexdigest()[:12]


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
                     "| task | setting | held-out median | mean | wall time |", "|---|---|---:|---:|---:|"]
        for i, p in enumerate(sel["points"]):
            name = ", ".join(p["overrides"])
            if p["overrides"] == sel["chosen"]:
                name = f"**{name}** (chosen)"
            median, mean = (("diverged", "–") if p["median"] is None else
                            (f"{100 * p['median']:.2f}", f"{100 * p['mean']:.2f}"))
            lines.append(f"| {t['title'] if i == 0 else ''} | {name} | {median} | {mean} | {p['wall_time']} |")
    return lines
