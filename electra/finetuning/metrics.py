"""Evaluation metrics, each matching the reference implementation the literature reports with.

GLUE: accuracy, binary F1, Matthews correlation (CoLA), Pearson/Spearman (STS-B). SQuAD: the
official evaluate-v1.1/v2.0 answer normalisation, EM/F1 and v2.0's best no-answer threshold.
NER: a line-by-line port of conlleval's chunk counting (IOB1, IOB2, IOE, brackets), so F1 is
the number `conlleval` prints. All functions return fractions in [0, 1], not percentages."""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence

import numpy as np

# ---- classification and regression -------------------------------------------------------


def accuracy(pred: Sequence, gold: Sequence) -> float:
    return float(np.mean([p == g for p, g in zip(pred, gold, strict=True)])) if len(gold) else 0.0


def f1_binary(pred: Sequence, gold: Sequence, positive: object = 1) -> float:
    tp = sum(p == positive and g == positive for p, g in zip(pred, gold, strict=True))
    fp = sum(p == positive and g != positive for p, g in zip(pred, gold, strict=True))
    fn = sum(p != positive and g == positive for p, g in zip(pred, gold, strict=True))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def f1_macro(pred: Sequence, gold: Sequence) -> float:
    classes = sorted(set(gold) | set(pred), key=str)
    return float(np.mean([f1_binary(pred, gold, c) for c in classes])) if classes else 0.0


def matthews_corrcoef(pred: Sequence, gold: Sequence, positive: object = 1) -> float:
    """Binary MCC; 0 when a row or column of the confusion matrix is empty (as scikit-learn)."""
    tp = sum(p == positive and g == positive for p, g in zip(pred, gold, strict=True))
    tn = sum(p != positive and g != positive for p, g in zip(pred, gold, strict=True))
    fp = sum(p == positive and g != positive for p, g in zip(pred, gold, strict=True))
    fn = sum(p != positive and g == positive for p, g in zip(pred, gold, strict=True))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xc * xc).sum() * (yc * yc).sum()))
    return float((xc * yc).sum() / denom) if denom else 0.0


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    _, inverse, counts = np.unique(x[order], return_inverse=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # ties share the mean rank
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of the ranks, ties averaged (as scipy.stats.spearmanr)."""
    return pearson(_average_ranks(np.asarray(x, dtype=np.float64)),
                   _average_ranks(np.asarray(y, dtype=np.float64)))


# ---- SQuAD (official evaluate-v1.1.py / evaluate-v2.0.py) -----------------------------------


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str, *, v2: bool = True) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if v2 and (not pred_tokens or not gold_tokens):  # v2.0: '' is right only against ''
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], golds: dict[str, list[str]]) -> tuple[dict, dict]:
    """evaluate-v2.0's per-question (exact, f1): max over the gold answers; a question without a
    (non-empty) gold answer is unanswerable, and only '' is right for it."""
    exact, f1 = {}, {}
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        pred = predictions.get(qid, "")
        exact[qid] = max(squad_exact(pred, a) for a in answers)
        f1[qid] = max(squad_f1(pred, a) for a in answers)
    return exact, f1


def squad_v1(predictions: dict[str, str], golds: dict[str, list[str]]) -> dict[str, float]:
    """evaluate-v1.1: mean over questions of the max over gold answers; unanswered scores 0."""
    exact = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        exact += max(squad_exact(predictions[qid], a) for a in answers)
        f1 += max(squad_f1(predictions[qid], a, v2=False) for a in answers)
    n = max(len(golds), 1)
    return {"exact": exact / n, "f1": f1 / n}


def best_threshold(preds: dict[str, str], scores: dict[str, float], na_odds: dict[str, float],
                   has_answer: dict[str, bool]) -> tuple[float, float]:
    """evaluate-v2.0's find_best_thresh: the no-answer odds threshold that maximises the score
    when questions with odds above it are answered ''. Returns (score, threshold)."""
    cur = best = sum(1 for q in has_answer if not has_answer[q])
    thresh = 0.0
    for qid in sorted(na_odds, key=lambda q: na_odds[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur += diff
        if cur > best:
            best, thresh = cur, na_odds[qid]
    return best / max(len(scores), 1), thresh


def squad_v2(predictions: dict[str, str], na_odds: dict[str, float],
             golds: dict[str, list[str]]) -> dict[str, float]:
    """EM/F1 with the no-answer threshold tuned on these questions (the official best_exact /
    best_f1), plus the scores at threshold 0 and the tuned thresholds."""
    has_answer = {q: bool(answers) for q, answers in golds.items()}
    exact_raw, f1_raw = squad_scores(predictions, golds)
    best_exact, exact_thresh = best_threshold(predictions, exact_raw, na_odds, has_answer)
    best_f1, f1_thresh = best_threshold(predictions, f1_raw, na_odds, has_answer)

    def at_zero(raw: dict[str, float]) -> float:  # apply_no_ans_threshold with threshold 0
        return sum(float(not has_answer[q]) if na_odds[q] > 0.0 else v for q, v in raw.items())

    n = max(len(golds), 1)
    return {"exact": best_exact, "f1": best_f1, "best_exact_thresh": exact_thresh,
            "best_f1_thresh": f1_thresh, "exact_at_0": at_zero(exact_raw) / n,
            "f1_at_0": at_zero(f1_raw) / n,
            "has_answer_frac": sum(has_answer.values()) / n}


# ---- conlleval ----------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    # conlleval.pl since 2004-01-26: /^([^-]*)-(.*)$/, so a type may hold hyphens (B-geo-loc: "geo-loc")
    prefix, _, type_ = tag.partition("-")
    return prefix, type_


def _end_of_chunk(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    return ((prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"),
                            ("E", "O")}
            or (prev not in ("O", ".") and prev_type != type_) or prev in ("]", "["))


def _start_of_chunk(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    return ((prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"),
                            ("O", "E")}
            or (tag not in ("O", ".") and prev_type != type_) or tag in ("[", "]"))


def conlleval(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float | dict]:
    """Chunk precision/recall/F1 and token accuracy exactly as conlleval.pl counts them, for
    sentences of gold and predicted tags (a sentence boundary is conlleval's `O O` line)."""
    correct_chunk = found_correct = found_guessed = correct_tags = tokens = 0
    per_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])  # correct, gold, guessed
    in_correct = False
    last_c, last_g, last_ct, last_gt = "O", "O", "", ""
    stream = []
    for g_sent, p_sent in zip(gold, pred, strict=True):
        if len(g_sent) != len(p_sent):
            raise ValueError("gold and predicted sentences differ in length")
        stream.extend((g, p, False) for g, p in zip(g_sent, p_sent, strict=True))
        stream.append(("O", "O", True))  # boundary
    for g_tag, p_tag, boundary in stream:
        c, ct = _split_tag(g_tag)
        g, gt = _split_tag(p_tag)
        end_c = _end_of_chunk(last_c, c, last_ct, ct)
        end_g = _end_of_chunk(last_g, g, last_gt, gt)
        start_c = _start_of_chunk(last_c, c, last_ct, ct)
        start_g = _start_of_chunk(last_g, g, last_gt, gt)
        if in_correct:
            if end_c and end_g and last_gt == last_ct:
                in_correct = False
                correct_chunk += 1
                per_type[last_ct][0] += 1
            elif end_c != end_g or gt != ct:
                in_correct = False
        if start_c and start_g and gt == ct:
            in_correct = True
        if start_c:
            found_correct += 1
            per_type[ct][1] += 1
        if start_g:
            found_guessed += 1
            per_type[gt][2] += 1
        if not boundary:
            correct_tags += c == g and gt == ct
            tokens += 1
        last_c, last_g, last_ct, last_gt = c, g, ct, gt
    if in_correct:
        correct_chunk += 1
        per_type[last_ct][0] += 1

    def prf(correct: int, n_gold: int, n_guessed: int) -> dict[str, float]:
        p = correct / n_guessed if n_guessed else 0.0
        r = correct / n_gold if n_gold else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}

    return {**prf(correct_chunk, found_correct, found_guessed),
            "accuracy": correct_tags / tokens if tokens else 0.0,
            "chunks_gold": found_correct, "chunks_guessed": found_guessed, "chunks_correct": correct_chunk,
            "per_type": {t: prf(*v) for t, v in sorted(per_type.items()) if t}}


def format_scores(metrics: dict[str, float]) -> str:
    """Scores x100 as the tables print them; an error on the label scale (mse) as it is."""
    return ", ".join(f"{k} {v:.4f}" if k.endswith("mse") else f"{k} {100 * v:.2f}"
                     for k, v in metrics.items() if "thresh" not in k)
