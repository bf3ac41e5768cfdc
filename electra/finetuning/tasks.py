"""The one task registry: task name -> `TaskSpec` (family, labels, metrics, epochs, files).

GLUE (CoLA ... WNLI), SQuAD 1.1/2.0 and CoNLL-2003 have fixed formats and labels; the user's own
data comes in as `classification`, `regression` or `tagging` with columns named in the config.
`load_data` finds a task's files from `--data` (a task directory, a data root holding it, or a
HF `datasets` directory) or explicit `--train/--dev` files."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from electra.errors import ConfigError
from electra.finetuning import glue, ner, squad
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.features import Family
from electra.finetuning.glue import TsvColumns


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    name: str
    title: str  # as printed in tables
    family: Family
    kind: str  # classification | regression | tagging | span
    labels: tuple[str, ...] = ()  # fixed label set in model-output order; (): learned from train
    metrics: tuple[str, ...]  # computed on each dev split; the first is the task's main metric
    epochs: float = 3.0  # paper default (RTE, STS-B: 10; SQuAD: 2)
    double_unordered: bool = False  # sentence order carries no meaning (MRPC, STS-B)
    in_glue_average: bool = False  # the paper's GLUE average leaves WNLI out
    dir_name: str = ""  # the task's directory under a data root (GLUE layout)
    train_file: str = ""
    dev_files: tuple[tuple[str, str, str], ...] = (("dev", "", ""),)  # (split, file, metric prefix)
    test_files: tuple[tuple[str, str], ...] = ()  # (test file, GLUE submission file name)
    columns: TsvColumns | None = None  # GLUE TSV layout; None: the user's columns from the config
    value_range: tuple[float, float] | None = None  # regression targets (normalised, clipped)
    version2: bool = False  # SQuAD 2.0: unanswerable questions
    pred_suffix: str = ".tsv"

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def metric_names(self) -> list[str]:
        return [prefix + m for _, _, prefix in self.dev_files for m in self.metrics]


def _glue(name: str, title: str, columns: TsvColumns, *, labels: tuple[str, ...] = ("0", "1"),
          metrics: tuple[str, ...] = ("acc",), **kw) -> TaskSpec:
    return TaskSpec(name=name, title=title, family=glue.FAMILY, kind=kw.pop("kind", "classification"),
                    labels=labels, metrics=metrics, dir_name=title, train_file="train.tsv",
                    dev_files=kw.pop("dev_files", (("dev", "dev.tsv", ""),)),
                    test_files=kw.pop("test_files", (("test.tsv", f"{title}.tsv"),)),
                    columns=columns, in_glue_average=kw.pop("in_glue_average", True), **kw)


NLI = ("entailment", "not_entailment")
PAIR = ("sentence1", "sentence2")
CONLL_TAGS = ("O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER")

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _glue("cola", "CoLA", TsvColumns(text="sentence", positions=(3, None, 1)), metrics=("mcc", "acc")),
    _glue("sst2", "SST-2", TsvColumns(text="sentence")),
    _glue("mrpc", "MRPC", TsvColumns(text="#1 String", pair="#2 String", label="Quality", hf=PAIR),
          metrics=("acc", "f1"), double_unordered=True),
    _glue("stsb", "STS-B", TsvColumns(text="sentence1", pair="sentence2", label="score", hf=PAIR),
          kind="regression", labels=(), metrics=("spearman", "pearson"), epochs=10.0,
          double_unordered=True, value_range=(0.0, 5.0)),
    _glue("qqp", "QQP", TsvColumns(text="question1", pair="question2", label="is_duplicate", index="id",
                                   hf=("question1", "question2"), skip_bad_rows=True), metrics=("acc", "f1")),
    _glue("mnli", "MNLI", TsvColumns(text="sentence1", pair="sentence2", label="gold_label",
                                     hf=("premise", "hypothesis")),
          labels=("contradiction", "entailment", "neutral"),
          dev_files=(("dev_matched", "dev_matched.tsv", ""), ("dev_mismatched", "dev_mismatched.tsv", "mm_")),
          test_files=(("test_matched.tsv", "MNLI-m.tsv"), ("test_mismatched.tsv", "MNLI-mm.tsv"))),
    _glue("qnli", "QNLI", TsvColumns(text="question", pair="sentence", hf=("question", "sentence")), labels=NLI),
    _glue("rte", "RTE", TsvColumns(text="sentence1", pair="sentence2", hf=PAIR), labels=NLI, epochs=10.0),
    _glue("wnli", "WNLI", TsvColumns(text="sentence1", pair="sentence2", hf=PAIR), in_glue_average=False),
    TaskSpec(name="squad", title="SQuAD 1.1", family=squad.FAMILY, kind="span", metrics=("exact", "f1"),
             epochs=2.0, train_file="train-v1.1.json", dev_files=(("dev", "dev-v1.1.json", ""),),
             pred_suffix=".json"),
    TaskSpec(name="squad2", title="SQuAD 2.0", family=squad.FAMILY, kind="span", metrics=("exact", "f1"),
             epochs=2.0, train_file="train-v2.0.json", dev_files=(("dev", "dev-v2.0.json", ""),),
             version2=True, pred_suffix=".json"),
    TaskSpec(name="conll2003", title="CoNLL-2003 NER", family=ner.FAMILY, kind="tagging", labels=CONLL_TAGS,
             metrics=("f1", "precision", "recall", "accuracy"), train_file="eng.train",
             dev_files=(("dev", "eng.testa", ""),), test_files=(("eng.testb", "conll2003.txt"),),
             pred_suffix=".txt"),
    # the user's own data (columns / fields from FinetuneConfig.data)
    TaskSpec(name="classification", title="classification", family=glue.FAMILY, kind="classification",
             metrics=("acc", "f1_macro")),
    TaskSpec(name="regression", title="regression", family=glue.FAMILY, kind="regression",
             metrics=("pearson", "spearman", "mse")),
    TaskSpec(name="tagging", title="tagging", family=ner.FAMILY, kind="tagging",
             metrics=("f1", "precision", "recall", "accuracy"), pred_suffix=".txt"),
]}
ALIASES = {"sst-2": "sst2", "sst": "sst2", "sts-b": "stsb", "sts": "stsb", "ner": "conll2003",
           "conll": "conll2003", "squad1": "squad", "squadv1": "squad", "squad1.1": "squad",
           "squadv2": "squad2", "squad2.0": "squad2"}
USER_TASKS = ("classification", "regression", "tagging")  # the user's own files, columns from the config
GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
GLUE_GROUP = tuple(t for t in GLUE_TASKS if TASKS[t].in_glue_average)  # `--tasks glue`
PROBE_TASKS = GLUE_TASKS


def get_task(name: str) -> TaskSpec:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in TASKS:
        near = [ALIASES.get(n, n) for n in difflib.get_close_matches(key, [*TASKS, *ALIASES], n=1)]
        raise ConfigError(f"unknown task {name!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                          + f" (tasks: {', '.join(TASKS)})")
    return TASKS[key]


def resolve_tasks(text: str) -> list[TaskSpec]:
    """`glue`, `cola,sst2`, `glue,squad`: `glue` is the paper's eight (no WNLI)."""
    out: list[TaskSpec] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for spec in ([TASKS[t] for t in GLUE_GROUP] if part.lower() == "glue" else [get_task(part)]):
            if spec not in out:
                out.append(spec)
    if not out:
        raise ConfigError("--tasks is empty; name tasks, e.g. --tasks glue or --tasks cola,sst2")
    return out


@dataclass
class TaskData:
    train: list
    dev: dict[str, list]  # split -> examples
    prefixes: dict[str, str] = field(default_factory=dict)  # split -> metric-name prefix
    note: str = ""  # how the data was split, when it is not the standard split


def _find(root: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in (".tsv", ".csv", ".jsonl", ".json", ".txt", ""):
            if (root / f"{stem}{suffix}").is_file():
                return root / f"{stem}{suffix}"
    return None


def _subdir(root: Path, name: str) -> Path | None:
    """`root`/`name` in any letter case and with or without its hyphen (glue/sst2 and glue/sst-2
    as well as GLUE/SST-2)."""
    return next((c for c in sorted(root.iterdir()) if c.is_dir() and _dir_key(c.name) == _dir_key(name)), None)


def _dir_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _check_task_dir(spec: TaskSpec, root: Path) -> None:
    """`root` is neither a GLUE root holding this task's directory nor another task's directory
    (CoLA's reader takes SST-2's sentence/label files and trained on them)."""
    others = {_dir_key(t.dir_name): t for t in TASKS.values() if t.dir_name and t.dir_name != spec.dir_name}
    if _dir_key(root.name) in others:
        raise ConfigError(f"{root} is the {others[_dir_key(root.name)].title} directory; task {spec.name} reads "
                          f"its own {spec.dir_name}/ (pass the GLUE root that holds both, or that directory)")
    if others.keys() & {_dir_key(c.name) for c in root.iterdir() if c.is_dir()}:
        raise ConfigError(f"{root} holds GLUE task directories but no {spec.dir_name}/ for task {spec.name}; "
                          f"add it there, or pass the {spec.dir_name} directory itself")


def load_data(spec: TaskSpec, cfg: FinetuneConfig, *, data: Path | None = None, train: Path | None = None,
              dev: Path | None = None, split_by_article: int = 0) -> TaskData:
    read = spec.family.read
    if split_by_article:
        if spec.kind != "span":
            raise ConfigError(f"--split-by-article is for SQuAD tasks, not {spec.name}")
        source = data or dev or train
        if source is not None and source.is_dir():
            source = source / spec.dev_files[0][1]
        if source is None:
            raise ConfigError("--split-by-article needs the SQuAD JSON file (--data FILE)")
        tr, dv, note = squad.split_by_article(read(spec, source, "dev", cfg), split_by_article, str(source))
        return TaskData(tr, {"dev": dv}, {"dev": ""}, note)
    root = Path(data) if data is not None else None
    if root is not None and root.is_dir() and spec.dir_name:
        own = _subdir(root, spec.dir_name)  # a GLUE root holding every task's directory
        if own is not None:
            root = own
        else:
            _check_task_dir(spec, root)
    if root is not None and root.is_file():
        raise ConfigError(f"--data {root} is a file; pass the task's directory, or --train FILE --dev FILE")
    if root is not None and not root.exists():
        raise ConfigError(f"--data {root} does not exist")
    hf = root is not None and glue.is_hf_dataset(root)

    def locate(explicit: Path | None, file_name: str, stems: tuple[str, ...]) -> Path:
        if explicit is not None:
            return Path(explicit)
        if root is None:
            raise ConfigError(f"task {spec.name} needs --data DIR (or --train FILE and --dev FILE)")
        if hf:
            return root
        found = root / file_name if file_name else _find(root, stems)
        if found is None:
            raise ConfigError(f"{root} has no {'/'.join(stems)} file; pass --train FILE and --dev FILE")
        return found

    splits = spec.dev_files[:1] if dev is not None else spec.dev_files
    dev_examples = {split: read(spec, locate(dev, name, ("dev", "validation", "valid")), split, cfg)
                    for split, name, _ in splits}
    train_examples = read(spec, locate(train, spec.train_file, ("train",)), "train", cfg)
    return TaskData(train_examples, dev_examples, {split: prefix for split, _, prefix in splits})
