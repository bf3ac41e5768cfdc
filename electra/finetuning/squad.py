"""Extractive QA (SQuAD 1.1/2.0 JSON): BERT/G-EL windows (`[CLS] question [SEP] window [SEP]`,
doc stride, max-context rule), n-best span decoding mapped back to whole words of the context
through character offsets, official EM/F1. SQuAD 2.0: an example's no-answer odds are the smallest
"unanswerable" logit over its windows (G-EL), thresholded as the official best_exact/best_f1."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from electra.errors import ConfigError, DataError, first_line
from electra.finetuning import metrics as M
from electra.finetuning.features import Batch, Encoded, Family
from electra.model.heads import SpanHead, SpanLogits

if TYPE_CHECKING:
    from electra.data.tokenizer import Tokenizer
    from electra.finetuning.config import FinetuneConfig
    from electra.finetuning.tasks import TaskSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QAExample:
    qid: str
    article: int  # position of the article in its file (for --split-by-article)
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (text, character start); training uses the first
    impossible: bool


@dataclass(frozen=True)
class QAPrediction:
    qid: str
    text: str  # best non-empty span
    null_odds: float | None  # SQuAD 2.0: above the threshold, the answer is ''


def read(spec: TaskSpec, path: Path, split: str, cfg: FinetuneConfig) -> list[QAExample]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; pass a SQuAD JSON file") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{path} is not valid JSON ({first_line(e)}); pass a SQuAD JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path} is not SQuAD JSON (no top-level 'data' list of articles)")
    out = []
    for ai, article in enumerate(data["data"]):
        for pi, para in enumerate(_get(path, article, "paragraphs", list, f"data[{ai}]")):
            where = f"data[{ai}].paragraphs[{pi}]"
            context = _get(path, para, "context", str, where)
            for qi, qa in enumerate(_get(path, para, "qas", list, where)):
                at = f"{where}.qas[{qi}]"
                answers = tuple((_get(path, a, "text", str, f"{at}.answers[{i}]"),
                                 _get(path, a, "answer_start", int, f"{at}.answers[{i}]"))
                                for i, a in enumerate(_get(path, qa, "answers", list, at, [])))
                out.append(QAExample(qid=str(_get(path, qa, "id", (str, int), at)), article=ai,
                                     question=_get(path, qa, "question", str, at), context=context,
                                     answers=answers,
                                     impossible=_get(path, qa, "is_impossible", bool, at, False)))
    if not out:
        raise DataError(f"{path} holds no questions")
    if split == "train":
        missing = [e.qid for e in out if not e.impossible and not e.answers]
        if missing:
            raise DataError(f"{path}: question {missing[0]!r} has no answer and is not marked "
                            "is_impossible; a training file needs answers")
    return out


_REQUIRED = object()


def _get(path: Path, obj: object, key: str, kind: type | tuple[type, ...], where: str,
         default: object = _REQUIRED) -> Any:
    """`obj[key]` checked against `kind` (a bool is not an int here), or a DataError naming it."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = obj.get(key, default) if isinstance(obj, dict) else _REQUIRED
    if value is _REQUIRED or not isinstance(value, kinds) or (type(value) is bool and bool not in kinds):
        what = (f"{where} is a {type(obj).__name__}, not an object" if not isinstance(obj, dict)
                else f"{where}.{key} is missing" if value is _REQUIRED
                else f"{where}.{key} is a {type(value).__name__}, not {'/'.join(k.__name__ for k in kinds)}")
        raise DataError(f"{path} is not SQuAD JSON: {what}; expected data[].paragraphs[] with "
                        "context and qas[] (id, question, answers)")
    return value


def split_by_article(examples: list[QAExample], n_train: int, source: str
                     ) -> tuple[list[QAExample], list[QAExample], str]:
    """The first `n_train` articles train, the rest evaluate; the note labels the result."""
    n_articles = max(e.article for e in examples) + 1
    if not 0 < n_train < n_articles:
        raise ConfigError(f"--split-by-article {n_train} must be between 1 and {n_articles - 1} "
                          f"({source} has {n_articles} articles)")
    train = [e for e in examples if e.article < n_train]
    dev = [e for e in examples if e.article >= n_train]
    note = (f"article split of {Path(source).name}: first {n_train} articles train "
            f"({len(train)} questions), last {n_articles - n_train} evaluate ({len(dev)}); "
            "not comparable with SQuAD dev scores")
    return train, dev, note


@dataclass(frozen=True)
class Window:
    example: int
    doc_start: int  # index of the window's first token among the context's tokens
    ctx_start: int  # input position of the window's first context token
    offsets: tuple[tuple[int, int], ...]  # character span of the word holding each context token
    max_context: tuple[bool, ...]  # the token has its most context in this window


def _is_max_context(spans: list[tuple[int, int]], current: int, position: int) -> bool:
    # BERT's _check_is_max_context: score = min(left, right context) + 0.01 * window length
    best, best_i = None, None
    for i, (start, length) in enumerate(spans):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if best is None or score > best:
                best, best_i = score, i
    return best_i == current


def _word_spans(offsets: list[tuple[int, int]], word_ids: list[int | None]) -> list[tuple[int, int]]:
    """Each token's whole-word character span: an answer starting or ending inside a word
    ("##vant") covers the whole word, as BERT's mapping back to the original words does."""
    first: dict[int | None, int] = {}
    last: dict[int | None, int] = {}
    for (s, t), w in zip(offsets, word_ids, strict=True):
        first.setdefault(w, s)
        last[w] = t
    return [(first[w], last[w]) if w is not None else (s, t)
            for (s, t), w in zip(offsets, word_ids, strict=True)]


def encode(spec: TaskSpec, examples: list[QAExample], tokenizer: Tokenizer, labels: tuple[str, ...],
           cfg: FinetuneConfig, training: bool) -> Encoded:
    sq = cfg.squad
    qs = tokenizer.tok.encode_batch([e.question for e in examples], add_special_tokens=False)
    cs = tokenizer.tok.encode_batch([e.context for e in examples], add_special_tokens=False)
    enc = Encoded([], [], meta=[])
    starts, ends, impossible = [], [], []
    unfound = 0
    for ei, (e, q, c) in enumerate(zip(examples, qs, cs, strict=True)):
        q_ids = q.ids[: sq.max_query_len]
        room = sq.max_seq_len - len(q_ids) - 3  # [CLS] q [SEP] window [SEP]
        spans, start = [], 0
        while True:
            length = min(len(c.ids) - start, room)
            spans.append((start, length))
            if start + length >= len(c.ids):
                break
            start += min(length, sq.doc_stride)
        answer = None  # (first, last) context token of the training answer
        if training and not e.impossible:
            text, a_start = e.answers[0]
            a_end = a_start + len(text)
            inside = [i for i, (s, t) in enumerate(c.offsets) if t > a_start and s < a_end]
            if not inside:  # the answer text is not in the context (a broken example)
                unfound += 1
                continue
            answer = (inside[0], inside[-1])
        words = _word_spans(c.offsets, c.word_ids)
        for wi, (s, length) in enumerate(spans):
            ctx_start = len(q_ids) + 2
            enc.input_ids.append([tokenizer.cls_id, *q_ids, tokenizer.sep_id, *c.ids[s:s + length],
                                  tokenizer.sep_id])
            enc.token_type_ids.append([0] * ctx_start + [1] * (length + 1))
            enc.meta.append(Window(ei, s, ctx_start, tuple(words[s:s + length]),
                                   tuple(_is_max_context(spans, wi, s + j) for j in range(length))))
            if training:
                if answer is not None and s <= answer[0] and answer[1] < s + length:
                    starts.append(answer[0] - s + ctx_start)
                    ends.append(answer[1] - s + ctx_start)
                else:  # no answer in this window: point at [CLS]
                    starts.append(0)
                    ends.append(0)
                impossible.append(float(e.impossible))
    if unfound:
        log.warning("skipped %d training questions whose answer is not in the context", unfound)
    if training:
        enc.targets = {"start": starts, "end": ends}
        if spec.version2:
            enc.targets["impossible"] = impossible
    return enc


def head(spec: TaskSpec, hidden_size: int, labels: tuple[str, ...], cfg: FinetuneConfig) -> nn.Module:
    return SpanHead(hidden_size, answerable=spec.version2)


def loss(spec: TaskSpec, out: SpanLogits, batch: Batch, cfg: FinetuneConfig) -> torch.Tensor:
    t = batch.targets
    span = (F.cross_entropy(out.start, t["start"]) + F.cross_entropy(out.end, t["end"])) / 2
    if out.impossible is None:
        return span
    return span + cfg.squad.answerable_weight * F.binary_cross_entropy_with_logits(out.impossible, t["impossible"])


def unbatch(out: SpanLogits, batch: Batch) -> list[tuple]:
    lengths = batch.attention_mask.sum(1).tolist()
    start, end = out.start.float().cpu().numpy(), out.end.float().cpu().numpy()
    imp = out.impossible.float().cpu().numpy() if out.impossible is not None else [None] * len(lengths)
    return [(start[i, :n], end[i, :n], None if imp[i] is None else float(imp[i]))
            for i, n in enumerate(lengths)]


def decode(spec: TaskSpec, examples: list[QAExample], enc: Encoded, rows: list[tuple],
           labels: tuple[str, ...], cfg: FinetuneConfig) -> list[QAPrediction]:
    """BERT's n-best search: the top-n start and end logits of every window, kept when the span
    lies in the context, starts where its token has most context, ends after it starts and is at
    most max_answer_len tokens; the best start + end logit sum wins."""
    sq = cfg.squad
    windows: list[list[int]] = [[] for _ in examples]
    for fi, w in enumerate(enc.meta):
        windows[w.example].append(fi)
    out = []
    for e, feats in zip(examples, windows, strict=True):
        best, best_span, null = -np.inf, None, np.inf
        for fi in feats:
            w, (start, end, imp) = enc.meta[fi], rows[fi]
            if imp is not None:
                null = min(null, imp)
            n = len(w.offsets)
            top_end = np.argsort(-end, kind="stable")[: sq.n_best]
            for s in np.argsort(-start, kind="stable")[: sq.n_best]:
                s_ctx = int(s) - w.ctx_start
                if not (0 <= s_ctx < n and w.max_context[s_ctx]):
                    continue
                for t in top_end:
                    t_ctx = int(t) - w.ctx_start
                    if not (s_ctx <= t_ctx < n and t_ctx - s_ctx + 1 <= sq.max_answer_len):
                        continue
                    if start[s] + end[t] > best:
                        best, best_span = start[s] + end[t], (w.offsets[s_ctx][0], w.offsets[t_ctx][1])
        text = e.context[best_span[0]:best_span[1]] if best_span else ""
        out.append(QAPrediction(e.qid, text, float(null) if spec.version2 else None))
    return out


def score(spec: TaskSpec, examples: list[QAExample], predictions: list[QAPrediction],
          cfg: FinetuneConfig) -> dict[str, float]:
    if not any(e.answers or e.impossible for e in examples):
        return {}  # unlabelled questions
    preds = {p.qid: p.text for p in predictions}
    if spec.version2:
        golds = {e.qid: [a[0] for a in e.answers] for e in examples}
        return M.squad_v2(preds, {p.qid: p.null_odds for p in predictions}, golds)
    golds = {e.qid: [a[0] for a in e.answers] for e in examples if e.answers}
    if len(golds) < len(examples):  # v1.1 has no unanswerable questions: score those that have answers
        log.warning("%d of %d questions have no gold answer; SQuAD 1.1 scores the %d that do (a SQuAD 2.0 "
                    "file? use --task squad2)", len(examples) - len(golds), len(examples), len(golds))
    return M.squad_v1(preds, golds)


def write(spec: TaskSpec, examples: list[QAExample], predictions: list[QAPrediction], path: Path,
          dev_metrics: dict[str, float] | None = None) -> None:
    """The official predictions JSON {id: answer}; for 2.0 the answer is '' where the no-answer
    odds exceed the threshold tuned on dev (best F1), and the odds go to *.null_odds.json."""
    thresh = (dev_metrics or {}).get("best_f1_thresh", 0.0)
    answers = {p.qid: ("" if p.null_odds is not None and p.null_odds > thresh else p.text)
               for p in predictions}
    path.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if spec.version2:
        odds = {p.qid: p.null_odds for p in predictions}
        path.with_suffix(".null_odds.json").write_text(json.dumps(odds, indent=1) + "\n")


FAMILY = Family(read=read, labels=lambda spec, examples: (), encode=encode, head=head, loss=loss,
                unbatch=unbatch, decode=decode, score=score, write=write)
