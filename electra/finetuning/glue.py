"""Sentence(-pair) classification/regression: GLUE TSVs, HF `datasets` dirs, the user's CSV/TSV/JSONL.

GLUE TSVs are read without CSV quoting (sentences hold literal `"`), BOM stripped (MRPC), columns
by official header name or, for CoLA's header-less files, by position. MRPC/STS-B use
`double_unordered`: both sentence orders in training (as G-EL), both orders averaged at eval."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer as HFTokenizer
from torch import nn

from electra.data.tables import DELIMITERS, column_indices, table_rows
from electra.errors import DataError
from electra.finetuning import metrics as M
from electra.finetuning.features import Batch, Encoded, Family
from electra.model.heads import ClassificationHead, ElectraClassificationHead

if TYPE_CHECKING:
    from electra.data.tokenizer import Tokenizer
    from electra.finetuning.config import FinetuneConfig
    from electra.finetuning.tasks import TaskSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextExample:
    guid: str  # the file's index/id column, else the row number (GLUE submissions need it)
    text: str
    pair: str | None
    label: str | float | None  # None on unlabelled (test) files


@dataclass(frozen=True)
class TsvColumns:
    """Where a GLUE TSV keeps its fields: official header names, `positions` (text, pair, label)
    for files without a header (CoLA train/dev), and the HF `datasets` GLUE column names."""

    text: str
    pair: str | None = None
    label: str = "label"
    index: str = "index"
    positions: tuple[int, int | None, int] | None = None
    hf: tuple[str, str | None] = ("sentence", None)
    skip_bad_rows: bool = False  # QQP's train file has a few truncated lines; GLUE loaders skip them


# ---- reading -------------------------------------------------------------------------------


def read(spec: TaskSpec, path: Path, split: str, cfg: FinetuneConfig) -> list[TextExample]:
    if is_hf_dataset(path):
        return read_hf(spec, path, split, cfg)
    if spec.columns is not None:
        return read_glue_tsv(spec, path, split)
    return read_user(spec, path, split, cfg)


def read_lines(path: Path) -> list[str]:
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass the data file itself (or the directory with --data)")
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path given for the task's data")
    try:
        text = path.read_text(encoding="utf-8-sig")  # utf-8-sig drops MRPC's byte-order mark
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; convert it to UTF-8") from None
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path} is empty; pass a file with examples")
    return lines


def _label(spec: TaskSpec, raw: object, where: str) -> str | float:
    if isinstance(raw, (list, dict)) or raw is None:
        raise DataError(f"{where}: label {str(raw)[:40]!r} is not a single value; put one label per example")
    if spec.kind == "regression":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: label {raw!r} is not a number; {spec.name} is a regression task") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: label {raw!r} is not a finite number; fix or drop that example")
        return value
    label = str(raw).strip()
    if spec.labels and label not in spec.labels:
        raise DataError(f"{where}: unknown label {label!r} for {spec.name} (expected one of "
                        f"{', '.join(spec.labels)}); is this the {spec.name} file?")
    return label


def read_glue_tsv(spec: TaskSpec, path: Path, split: str) -> list[TextExample]:
    cols = spec.columns
    rows = [ln.split("\t") for ln in read_lines(path)]
    header = [h.strip() for h in rows[0]]
    if cols.text in header:
        body, first_line = rows[1:], 2
        text_i = header.index(cols.text)
        pair_i = _column(header, cols.pair, path, spec) if cols.pair else None
        label_i = header.index(cols.label) if cols.label in header else None
        index_i = header.index(cols.index) if cols.index in header else None
    elif cols.positions is not None:
        body, first_line = rows, 1
        text_i, pair_i, label_i = cols.positions
        index_i = None
    else:
        _column(header, cols.text, path, spec)  # raises: names the columns there are
    if label_i is None and split != "test":
        raise DataError(f"{path} has no label column {cols.label!r}; a {split} file needs labels")
    need = max(i for i in (text_i, pair_i, label_i, index_i) if i is not None)
    out, skipped = [], 0
    for n, row in enumerate(body):
        where = f"{path}:{n + first_line}"
        width = len(header) if first_line == 2 else need + 1
        if len(row) <= need or len(row) > width:
            if cols.skip_bad_rows:
                skipped += 1
                continue
            if len(row) > width:  # a tab inside a sentence shifts every later field
                raise DataError(f"{where} has {len(row)} tab-separated fields, the file has {width}; "
                                "remove the tab inside its text (TSV has no quoting)")
            raise DataError(f"{where} has {len(row)} tab-separated fields, expected at least "
                            f"{need + 1}; is this the {spec.name} file?")
        label = _label(spec, row[label_i], where) if label_i is not None else None
        out.append(TextExample(guid=row[index_i] if index_i is not None else str(n),
                               text=row[text_i], pair=row[pair_i] if pair_i is not None else None,
                               label=label))
    if skipped:
        log.warning("%s: skipped %d malformed rows", path, skipped)
    if not out:
        raise DataError(f"{path} has a header but no examples")
    return out


def _column(header: list[str], name: str, path: Path, spec: TaskSpec) -> int:
    return column_indices(header, [name], path, f"pass the {spec.name} file in the GLUE TSV layout")[0]


def read_user(spec: TaskSpec, path: Path, split: str, cfg: FinetuneConfig) -> list[TextExample]:
    """CSV (quoted), TSV (no quoting) or JSONL with a header / keys; columns from `cfg.data`."""
    dc = cfg.data
    lines = read_lines(path)
    suffix = path.suffix.lower()
    keys: list[str] | None = None  # a table's header; JSONL: the first record's keys
    if suffix in (".jsonl", ".json"):
        records = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n} is not valid JSON ({e.msg}); JSONL needs one object per line") from None
            if not isinstance(records[-1], dict):
                raise DataError(f"{path}:{n} is a JSON {type(records[-1]).__name__}, not an object; "
                                "JSONL needs one object per line")
    else:
        keys, records = _table_records(path, lines, DELIMITERS.get(suffix, "\t"))
    if not records:
        raise DataError(f"{path} has a header but no examples")
    keys = keys if keys is not None else list(records[0])
    wanted = [(dc.text_column, "text_column")]
    if dc.pair_column:
        wanted.append((dc.pair_column, "pair_column"))
    if split != "test" or dc.label_column in keys:
        wanted.append((dc.label_column, "label_column"))
    for name, field in wanted:  # electra predict takes the columns as overrides, finetune as flags
        column_indices(keys, [name], path, f"pass data.{field}=NAME" if split == "test"
                       else f"pass --{field.replace('_', '-')} NAME")
    # a file to predict may carry an empty label column (a test set's template): unlabelled
    has_label = dc.label_column in keys and (split != "test" or any(r.get(dc.label_column) not in (None, "")
                                                                    for r in records))
    out = []
    for n, r in enumerate(records):
        where = f"{path}: example {n + 1}"
        text = r.get(dc.text_column)
        if not isinstance(text, str):
            raise DataError(f"{where} has no text in column {dc.text_column!r}")
        if dc.pair_column and dc.pair_column not in r:  # a short row, a record without it
            raise DataError(f"{where} has no text in column {dc.pair_column!r}")
        pair = r.get(dc.pair_column) if dc.pair_column else None
        if not isinstance(pair, (str, type(None))):
            raise DataError(f"{where}: column {dc.pair_column!r} holds a {type(pair).__name__}, not text")
        raw = r.get(dc.label_column) if has_label else None
        if has_label and (raw is None or raw == ""):
            raise DataError(f"{where} has no label in column {dc.label_column!r}")
        out.append(TextExample(guid=str(r.get("id", r.get("index", n))), text=text,
                               pair=pair,
                               label=_label(spec, raw, where) if has_label else None))
    return out


def _table_records(path: Path, lines: list[str], delimiter: str) -> tuple[list[str], list[dict]]:
    """(header, one dict per row); a short row's dict lacks its missing cells."""
    rows = table_rows((ln + "\n" for ln in lines), path, delimiter)  # a quoted field may hold line breaks
    header = next(rows, (0, []))[1]
    return header, [dict(zip(header, row)) for _, row in rows]  # noqa: B905 - a short row lacks its last cells


HF_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
             "dev_mismatched": "validation_mismatched", "test": "test"}


def is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def read_hf(spec: TaskSpec, path: Path, split: str, cfg: FinetuneConfig) -> list[TextExample]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path} is a Hugging Face datasets directory; install datasets "
                        "(pip install datasets) to read it, or pass GLUE TSV files") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        name = HF_SPLITS.get(split, split)
        if name not in ds:
            raise DataError(f"{path} has no {name!r} split (it has {', '.join(ds)})")
        ds = ds[name]
    text_col, pair_col = spec.columns.hf if spec.columns else (cfg.data.text_column, cfg.data.pair_column)
    label_col = "label" if spec.columns else cfg.data.label_column
    for col in (text_col, pair_col):
        if col and col not in ds.column_names:
            raise DataError(f"{path} has no column {col!r} (columns: {', '.join(ds.column_names)})")
    names = getattr(ds.features.get(label_col), "names", None)
    by_name = bool(names) and (not spec.labels or set(names) <= set(spec.labels))
    out = []
    for n, r in enumerate(ds):
        raw = r.get(label_col)
        label = None
        if raw is not None and raw != -1:  # HF GLUE test splits carry label -1
            label = _label(spec, names[raw] if by_name else raw, f"{path}: {split} row {n}")
        out.append(TextExample(guid=str(r.get("idx", n)), text=r[text_col],
                               pair=r[pair_col] if pair_col else None, label=label))
    if not out:
        raise DataError(f"{path}: the {split} split is empty")
    return out


def learned_labels(spec: TaskSpec, examples: list[TextExample]) -> tuple[str, ...]:
    if spec.kind == "regression":
        return ()
    labels = sorted({e.label for e in examples if e.label is not None}, key=str)
    if len(labels) < 2:
        raise DataError(f"the training data has {len(labels)} distinct label(s); classification needs "
                        "at least 2 (check --label-column)")
    if len(labels) > MANY_LABELS and all(_is_number(x) for x in labels):  # a score column read as classes
        log.warning("the training data has %d distinct numeric labels (%s, ...): each becomes a class; for a "
                    "score use --task regression", len(labels), ", ".join(map(str, labels[:3])))
    return tuple(labels)


MANY_LABELS = 20  # more numeric classes than this look like a score


def _is_number(x: object) -> bool:
    try:
        float(str(x))
    except ValueError:
        return False
    return True


# ---- encoding and the model's side ---------------------------------------------------------


def _both_orders(spec: TaskSpec, examples: list[TextExample], cfg: FinetuneConfig) -> bool:
    return spec.double_unordered and cfg.train.double_unordered and examples[0].pair is not None


def label_scale(spec: TaskSpec) -> tuple[float, float]:
    """(low, width) of a regression task's targets: the model predicts (y - low) / width. G-EL
    regresses STS-B scores normalised to [0, 1]; other regression targets stay as they are."""
    lo, hi = spec.value_range or (0.0, 1.0)
    return lo, hi - lo


def encode(spec: TaskSpec, examples: list[TextExample], tokenizer: Tokenizer, labels: tuple[str, ...],
           cfg: FinetuneConfig, training: bool) -> Encoded:
    tok = HFTokenizer.from_str(tokenizer.tok.to_str())  # a copy: truncation is tokenizer state
    tok.enable_truncation(cfg.train.max_seq_len, strategy="longest_first")  # BERT's pair rule
    tok.no_padding()
    inputs = [e.text if e.pair is None else (e.text, e.pair) for e in examples]
    both = bool(examples) and _both_orders(spec, examples, cfg)
    if both:  # the second half holds the swapped pairs; `meta` says where it starts
        inputs += [(e.pair, e.text) for e in examples]
    encs = tok.encode_batch(inputs)
    enc = Encoded([e.ids for e in encs], [e.type_ids for e in encs], meta=len(examples) if both else None)
    if examples and all(e.label is not None for e in examples):
        if spec.kind == "regression":
            lo, width = label_scale(spec)
            y = [(float(e.label) - lo) / width for e in examples]
        else:
            index = {label: i for i, label in enumerate(labels)}
            unknown = sorted({e.label for e in examples} - set(index), key=str)
            if unknown:
                where = next(e.guid for e in examples if e.label == unknown[0])
                raise DataError(f"label {unknown[0]!r} (example {where} of the file read for evaluation or "
                                f"prediction) does not occur in the training data (labels: "
                                f"{', '.join(map(str, labels))}); fix the file or the label column")
            y = [index[e.label] for e in examples]
        enc.targets["label"] = y * (2 if both else 1)
    return enc


def head(spec: TaskSpec, hidden_size: int, labels: tuple[str, ...], cfg: FinetuneConfig) -> nn.Module:
    n = 1 if spec.kind == "regression" else len(labels)
    cls = ElectraClassificationHead if cfg.head.kind == "electra" else ClassificationHead
    return cls(hidden_size, n, cfg.head.dropout, pooling=cfg.head.pooling)


def loss(spec: TaskSpec, out: torch.Tensor, batch: Batch, cfg: FinetuneConfig) -> torch.Tensor:
    # out: [B, C] logits, or [B, 1] for regression
    if spec.kind == "regression":
        return F.mse_loss(out.squeeze(-1).float(), batch.targets["label"])
    return F.cross_entropy(out.float(), batch.targets["label"])


def unbatch(out: torch.Tensor, batch: Batch) -> list[np.ndarray]:
    return list(out.float().cpu().numpy())  # [C] per example


def decode(spec: TaskSpec, examples: list[TextExample], enc: Encoded, rows: list[np.ndarray],
           labels: tuple[str, ...], cfg: FinetuneConfig) -> list[str | float]:
    logits = np.stack(rows)  # [N, C] (N = 2 x examples with both orders)
    if enc.meta is not None:
        n = enc.meta
        logits = (logits[:n] + logits[n:]) / 2  # double_unordered: average the two orders
    if spec.kind == "regression":
        lo, width = label_scale(spec)
        return [float(v) * width + lo for v in logits[:, 0]]
    return [labels[i] for i in logits.argmax(-1)]


def score(spec: TaskSpec, examples: list[TextExample], predictions: list, cfg: FinetuneConfig) -> dict[str, float]:
    gold = [e.label for e in examples]
    if any(g is None for g in gold):
        return {}
    positive = spec.labels[1] if len(spec.labels) == 2 else "1"  # GLUE: "1" (paraphrase, acceptable)
    fns = {"acc": lambda: M.accuracy(predictions, gold),
           "f1": lambda: M.f1_binary(predictions, gold, positive),
           "f1_macro": lambda: M.f1_macro(predictions, gold),
           "mcc": lambda: M.matthews_corrcoef(predictions, gold, positive),
           "pearson": lambda: M.pearson(predictions, gold),
           "spearman": lambda: M.spearman(predictions, gold),
           "mse": lambda: float(np.mean((np.asarray(predictions) - np.asarray(gold)) ** 2))}
    return {name: fns[name]() for name in spec.metrics}


def write(spec: TaskSpec, examples: list[TextExample], predictions: list, path: Path,
          dev_metrics: dict[str, float] | None = None) -> None:
    """GLUE submission format: `index<TAB>prediction`, labels as in the training files."""
    lines = ["index\tprediction"]
    for e, p in zip(examples, predictions, strict=True):
        if spec.kind == "regression":
            lo, hi = spec.value_range or (-np.inf, np.inf)
            p = f"{min(max(p, lo), hi):.3f}"
        lines.append(f"{e.guid}\t{p}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


FAMILY = Family(read=read, labels=learned_labels, encode=encode, head=head, loss=loss, unbatch=unbatch,
                decode=decode, score=score, write=write)
