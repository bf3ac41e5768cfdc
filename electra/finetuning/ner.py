"""Token tagging (NER): CoNLL column files and JSONL, first-sub-token labelling, conlleval F1.

Tags are read from the last column in IOB1 or IOB2 as given (conlleval's chunk rules score both).
A word's label sits on its first sub-token, the others are ignored; sentences longer than the
window are split between words, so every word is predicted and the F1 covers the whole file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from electra.errors import DataError
from electra.finetuning.features import IGNORE, Batch, Encoded, Family
from electra.finetuning.glue import read_lines
from electra.finetuning.metrics import conlleval
from electra.model.heads import TokenHead

if TYPE_CHECKING:
    from electra.data.tokenizer import Tokenizer
    from electra.finetuning.config import FinetuneConfig
    from electra.finetuning.tasks import TaskSpec


@dataclass(frozen=True)
class TaggedSentence:
    guid: str
    words: tuple[str, ...]
    tags: tuple[str, ...] | None  # None on untagged (test) files


def read(spec: TaskSpec, path: Path, split: str, cfg: FinetuneConfig) -> list[TaggedSentence]:
    if path.suffix.lower() in (".jsonl", ".json"):
        out = read_jsonl(path, split, cfg.data.tokens_field, cfg.data.tags_field)
    else:
        out = read_conll(path, split)
    if spec.labels:
        for s in out:
            bad = [t for t in s.tags or () if t not in spec.labels]
            if bad:
                raise DataError(f"{path}: sentence {int(s.guid) + 1} has unknown tag {bad[0]!r} for "
                                f"{spec.name} (expected {', '.join(spec.labels)})")
    return out


def read_conll(path: Path, split: str) -> list[TaggedSentence]:
    """Whitespace-separated columns, word first and tag last; `-DOCSTART-` lines and blank lines
    end a sentence. A file with a single column holds words only (test input)."""
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    ncols = None

    def flush() -> None:
        if words:
            sentences.append(TaggedSentence(str(len(sentences)), tuple(words),
                                            tuple(tags) if ncols and ncols > 1 else None))
            words.clear()
            tags.clear()

    for n, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            flush()
            continue
        if ncols is None:
            ncols = len(parts)
        elif len(parts) != ncols:
            raise DataError(f"{path}:{n} has {len(parts)} columns but earlier lines have {ncols}; "
                            "every token line needs the same columns (word first, tag last)")
        words.append(parts[0])
        tags.append(parts[-1])
    flush()
    if not sentences:
        raise DataError(f"{path} holds no sentences; expected CoNLL lines `word ... tag`")
    if ncols == 1 and split != "test":
        raise DataError(f"{path} has one column (words only); a {split} file needs the tag in the last column")
    return sentences


def read_jsonl(path: Path, split: str, tokens_field: str, tags_field: str) -> list[TaggedSentence]:
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n} is not valid JSON ({e.msg}); JSONL needs one object per line") from None
        if not isinstance(r, dict):
            raise DataError(f"{path}:{n} is a JSON {type(r).__name__}, not an object; JSONL needs one "
                            "object per line")
        if not _words(r.get(tokens_field)):
            raise DataError(f"{path}:{n} has no list of strings {tokens_field!r} (keys: "
                            f"{', '.join(map(repr, list(r)[:8]))}); pass --tokens-field NAME")
        tokens, tags = r[tokens_field], r.get(tags_field)
        if tags is None and split != "test":
            raise DataError(f"{path}:{n} has no {tags_field!r}; pass --tags-field NAME")
        if tags is not None and not _words(tags):
            raise DataError(f"{path}:{n}: {tags_field!r} is not a list of tags (strings or ids)")
        if tags is not None and len(tags) != len(tokens):
            raise DataError(f"{path}:{n} has {len(tokens)} tokens but {len(tags)} tags")
        if tokens:
            out.append(TaggedSentence(str(len(out)), tuple(map(str, tokens)),
                                      None if tags is None else tuple(map(str, tags))))
    if not out:
        raise DataError(f"{path} holds no sentences")
    tags = {t for sentence in out for t in sentence.tags or ()} - {"O"}
    if tags and not any(t[:2] in ("B-", "I-", "E-", "S-") for t in tags):  # entity F1 would be 0 whatever the model
        raise DataError(f"{path}: no tag names an entity chunk (B-X, I-X, E-X or S-X; tags: "
                        f"{', '.join(sorted(tags)[:5])}); the tagging task scores entity spans, so plain "
                        "per-word tags (part of speech) are not supported, and integer tag ids (as HF datasets "
                        "exports them) must be written as their names")
    return out


def _words(value: object) -> bool:
    """A JSON list of words or tags: strings, or integer ids as HF `datasets` exports tags."""
    return isinstance(value, list) and all(isinstance(v, str) or type(v) is int for v in value)


def learned_labels(spec: TaskSpec, examples: list[TaggedSentence]) -> tuple[str, ...]:
    tags = {t for s in examples for t in s.tags or ()}
    return tuple(sorted(tags, key=lambda t: (t != "O", t)))  # "O" first


@dataclass(frozen=True)
class Chunk:
    """One model input: words [first, first + len(positions)) of a sentence; `positions` holds
    each word's first sub-token position in the input (-1: the word has no sub-tokens)."""

    sentence: int
    first: int
    positions: tuple[int, ...]


def encode(spec: TaskSpec, examples: list[TaggedSentence], tokenizer: Tokenizer, labels: tuple[str, ...],
           cfg: FinetuneConfig, training: bool) -> Encoded:
    body = cfg.train.max_seq_len - 2  # room for [CLS] and [SEP]
    encs = tokenizer.tok.encode_batch([list(s.words) for s in examples], is_pretokenized=True,
                                      add_special_tokens=False)
    tagged = bool(examples) and all(s.tags is not None for s in examples)
    label_id = {t: i for i, t in enumerate(labels)}
    if tagged:
        unknown = sorted({t for s in examples for t in s.tags} - set(label_id))
        if unknown:
            raise DataError(f"tag {unknown[0]!r} does not occur in the training data (tags: "
                            f"{', '.join(labels)}); fix the file")
    enc = Encoded([], [], meta=[])
    targets: list[list[int]] = []
    for si, (s, e) in enumerate(zip(examples, encs, strict=True)):
        pieces: list[list[int]] = [[] for _ in s.words]
        for tid, wid in zip(e.ids, e.word_ids, strict=True):
            if wid is not None:
                pieces[wid].append(tid)
        start = 0
        while start < len(s.words):  # greedy split between words to fit the window
            end, used = start, 0
            while end < len(s.words) and (end == start or used + len(pieces[end]) <= body):
                used += len(pieces[end])
                end += 1
            ids, positions, y = [tokenizer.cls_id], [], [IGNORE]
            for w in range(start, end):
                p = pieces[w][: body - (len(ids) - 1)]  # only a single over-long word is cut
                positions.append(len(ids) if p else -1)
                ids.extend(p)
                if tagged:
                    y.extend([label_id[s.tags[w]]] + [IGNORE] * (len(p) - 1) if p else [])
            ids.append(tokenizer.sep_id)
            y.append(IGNORE)
            enc.input_ids.append(ids)
            enc.token_type_ids.append([0] * len(ids))
            enc.meta.append(Chunk(si, start, tuple(positions)))
            targets.append(y)
            start = end
    if tagged:
        enc.targets["labels"] = targets
    return enc


def head(spec: TaskSpec, hidden_size: int, labels: tuple[str, ...], cfg: FinetuneConfig) -> nn.Module:
    return TokenHead(hidden_size, len(labels), cfg.head.dropout)


def loss(spec: TaskSpec, out: torch.Tensor, batch: Batch, cfg: FinetuneConfig) -> torch.Tensor:
    # out: [B, T, C]; labels: [B, T] with IGNORE off the first sub-tokens
    return F.cross_entropy(out.float().flatten(0, 1), batch.targets["labels"].flatten(), ignore_index=IGNORE)


def unbatch(out: torch.Tensor, batch: Batch) -> list[np.ndarray]:
    lengths = batch.attention_mask.sum(1).tolist()
    return [o[:n] for o, n in zip(out.float().cpu().numpy(), lengths, strict=True)]  # [T_i, C] each


def decode(spec: TaskSpec, examples: list[TaggedSentence], enc: Encoded, rows: list[np.ndarray],
           labels: tuple[str, ...], cfg: FinetuneConfig) -> list[list[str]]:
    out = [["O"] * len(s.words) for s in examples]  # a word without sub-tokens is tagged O
    for chunk, row in zip(enc.meta, rows, strict=True):
        for j, pos in enumerate(chunk.positions):
            if pos >= 0:
                out[chunk.sentence][chunk.first + j] = labels[int(row[pos].argmax())]
    return out


def score(spec: TaskSpec, examples: list[TaggedSentence], predictions: list[list[str]],
          cfg: FinetuneConfig) -> dict[str, float]:
    if any(s.tags is None for s in examples):
        return {}
    result = conlleval([s.tags for s in examples], predictions)
    return {name: result[name] for name in spec.metrics}


def write(spec: TaskSpec, examples: list[TaggedSentence], predictions: list[list[str]], path: Path,
          dev_metrics: dict[str, float] | None = None) -> None:
    """conlleval's input format: `word gold predicted` (or `word predicted`), blank line between
    sentences, so `conlleval < file` re-scores it."""
    lines = []
    for s, pred in zip(examples, predictions, strict=True):
        for i, (w, p) in enumerate(zip(s.words, pred, strict=True)):
            lines.append(f"{w} {s.tags[i]} {p}" if s.tags is not None else f"{w} {p}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


FAMILY = Family(read=read, labels=learned_labels, encode=encode, head=head, loss=loss, unbatch=unbatch,
                decode=decode, score=score, write=write)
