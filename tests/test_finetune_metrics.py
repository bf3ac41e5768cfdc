"""Metrics against hand-computed values and against independent re-implementations of the
official SQuAD evaluation scripts (v1.1, v2.0) and of conlleval's chunk counting."""

import collections
import random
import re
import string

import numpy as np
import pytest

from electra.finetuning import metrics as M

# ---- classification / regression: hand-computed -----------------------------------------


def test_binary_metrics_by_hand():
    pred, gold = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]  # tp 2, fp 1, fn 1, tn 1
    assert M.accuracy(pred, gold) == 0.6
    assert M.f1_binary(pred, gold) == pytest.approx(2 / 3)
    assert M.matthews_corrcoef(pred, gold) == pytest.approx((2 * 1 - 1 * 1) / 6)
    assert M.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # empty column: 0 like scikit-learn
    assert M.matthews_corrcoef(["1", "0"], ["1", "0"], "1") == 1.0
    assert M.f1_macro(["a", "b", "b"], ["a", "b", "a"]) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_correlations_by_hand():
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    x, y = [1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0]
    # ties share the mean rank: ranks x = 1, 2.5, 2.5, 4; y = 1, 3, 2, 4
    ref = np.corrcoef([1, 2.5, 2.5, 4], [1, 3, 2, 4])[0, 1]
    assert M.spearman(x, y) == pytest.approx(ref)
    assert M.spearman([1, 5, 9], [0.1, 0.2, 30]) == pytest.approx(1.0)  # monotone, not linear


# ---- SQuAD: the official scripts, re-implemented here as the reference --------------------


def _official_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_v11(dataset, predictions):  # evaluate-v1.1.py: evaluate()
    def f1_score(prediction, ground_truth):
        p, g = _official_normalize(prediction).split(), _official_normalize(ground_truth).split()
        common = collections.Counter(p) & collections.Counter(g)
        num_same = sum(common.values())
        if num_same == 0:
            return 0
        precision, recall = num_same / len(p), num_same / len(g)
        return 2 * precision * recall / (precision + recall)

    def em(prediction, ground_truth):
        return _official_normalize(prediction) == _official_normalize(ground_truth)

    f1 = exact = total = 0
    for qid, answers in dataset.items():
        total += 1
        if qid not in predictions:
            continue
        exact += max(em(predictions[qid], a) for a in answers)
        f1 += max(f1_score(predictions[qid], a) for a in answers)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _official_v2_best(dataset, preds, na_probs):  # evaluate-v2.0.py: find_all_best_thresh
    def get_tokens(s):
        return _official_normalize(s).split() if s else []

    def compute_f1(a_gold, a_pred):
        gold_toks, pred_toks = get_tokens(a_gold), get_tokens(a_pred)
        common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
        num_same = sum(common.values())
        if len(gold_toks) == 0 or len(pred_toks) == 0:
            return int(gold_toks == pred_toks)
        if num_same == 0:
            return 0
        precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
        return 2 * precision * recall / (precision + recall)

    has_ans = {q: bool(a) for q, a in dataset.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in dataset.items():
        gold = [a for a in answers if _official_normalize(a)] or [""]
        exact_raw[qid] = max(int(_official_normalize(a) == _official_normalize(preds[qid])) for a in gold)
        f1_raw[qid] = max(compute_f1(a, preds[qid]) for a in gold)

    def find_best_thresh(scores):
        cur = best = sum(1 for k in has_ans if not has_ans[k])
        best_thresh = 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            diff = scores[qid] if has_ans[qid] else (-1 if preds[qid] else 0)
            cur += diff
            if cur > best:
                best, best_thresh = cur, na_probs[qid]
        return 100.0 * best / len(scores), best_thresh

    (be, bet), (bf, bft) = find_best_thresh(exact_raw), find_best_thresh(f1_raw)
    return {"best_exact": be, "best_exact_thresh": bet, "best_f1": bf, "best_f1_thresh": bft}


GOLD = {
    "q1": ["Denver Broncos", "The Denver Broncos"],
    "q2": ["Santa Clara, California", "Levi's Stadium"],
    "q3": ["2015"],
    "q4": ["an apple a day"],
    "q5": ["Steve Smith's"],
    "q6": ["gold"],
}
PRED = {"q1": "the Denver broncos!", "q2": "Levi's Stadium in the Bay Area", "q3": "2016",
        "q4": "Apple day", "q5": "Steve Smith", "q6": "golden gold"}


def test_squad_v1_matches_the_official_script():
    ref = _official_v11(GOLD, PRED)
    ours = M.squad_v1(PRED, GOLD)
    assert 100 * ours["exact"] == pytest.approx(ref["exact_match"])
    assert 100 * ours["f1"] == pytest.approx(ref["f1"])
    assert ours["exact"] == pytest.approx(2 / 6)  # q1 (article, case, punctuation), q4 (articles)
    missing = {k: v for k, v in PRED.items() if k != "q1"}  # unanswered counts 0
    assert 100 * M.squad_v1(missing, GOLD)["exact"] == pytest.approx(_official_v11(GOLD, missing)["exact_match"])


def test_squad_v1_scores_only_the_questions_that_have_answers(caplog):
    from electra.finetuning import squad
    from electra.finetuning.config import FinetuneConfig
    from electra.finetuning.tasks import get_task
    ex = [squad.QAExample("a", 0, "q?", "Denver won.", (("Denver", 0),), False),
          squad.QAExample("b", 0, "q?", "Denver won.", (), False)]  # a partly labelled file
    preds = [squad.QAPrediction("a", "Denver", None), squad.QAPrediction("b", "won", None)]
    with caplog.at_level("WARNING"):
        assert squad.score(get_task("squad"), ex, preds, FinetuneConfig()) == {"exact": 1.0, "f1": 1.0}
    assert "1 of 2 questions have no gold answer" in caplog.text and "squad2" in caplog.text


def test_squad_normalisation_by_hand():
    assert M.normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert M.normalize_answer("An Apple a day") == "apple day"
    assert M.squad_f1("Levi's Stadium in the Bay Area", "Levi's Stadium") == pytest.approx(2 * (2 / 5) / (2 / 5 + 1))


def test_squad_v2_best_threshold_matches_the_official_script():
    rng = random.Random(0)
    gold = {**GOLD, "n1": [], "n2": [], "n3": []}
    preds = {**PRED, "n1": "something", "n2": "", "n3": "gold"}
    for trial in range(5):
        odds = {q: rng.uniform(-3, 3) for q in gold}
        ref = _official_v2_best(gold, preds, odds)
        ours = M.squad_v2(preds, odds, gold)
        assert 100 * ours["exact"] == pytest.approx(ref["best_exact"]), trial
        assert 100 * ours["f1"] == pytest.approx(ref["best_f1"]), trial
        assert ours["best_f1_thresh"] == ref["best_f1_thresh"]
        assert ours["best_exact_thresh"] == ref["best_exact_thresh"]
    # all questions answerable, no-answer odds low: best == plain v1.1-style scores
    odds = {q: -5.0 for q in GOLD}
    assert M.squad_v2(PRED, odds, GOLD)["exact"] == pytest.approx(M.squad_v1(PRED, GOLD)["exact"])


# ---- conlleval ---------------------------------------------------------------------------


def _reference_chunks(tags):
    """Chunks as conlleval delimits them (its startOfChunk/endOfChunk tables for B/I/O), as a
    set of (first, last, type): an independent way to count what conlleval counts."""
    chunks, start, ctype = set(), None, None
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):
        t, typ = (tag.split("-", 1) + [""])[:2] if tag != "O" else ("O", "")
        ends = (prev in "BI" and (t in "BO" or typ != prev_type))
        starts = (t == "B") or (t == "I" and (prev == "O" or typ != prev_type))
        if start is not None and ends:
            chunks.add((start, i - 1, ctype))
            start = None
        if starts:
            start, ctype = i, typ
        prev, prev_type = t, typ
    return chunks


def _reference_f1(gold, pred):
    correct = found_g = found_p = 0
    for g, p in zip(gold, pred, strict=True):
        cg, cp = _reference_chunks(g), _reference_chunks(p)
        correct += len(cg & cp)
        found_g += len(cg)
        found_p += len(cp)
    return correct, found_g, found_p


def test_conlleval_iob1_and_iob2_by_hand():
    # IOB1 gold: PER(0-1), LOC(3), LOC(4) (B- only where two LOCs touch) = 3 chunks
    gold = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "I-LOC", "I-LOC"]]  # PER ok, one merged LOC(3-4): wrong
    r = M.conlleval(gold, pred)
    assert (r["chunks_correct"], r["chunks_gold"], r["chunks_guessed"]) == (1, 3, 2)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(0.4)
    assert r["accuracy"] == pytest.approx(4 / 5)
    # IOB2 predictions against IOB1 gold: same chunks, so all correct
    r = M.conlleval([["I-PER", "I-PER", "O", "I-ORG"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    assert r["f1"] == 1.0 and r["accuracy"] == pytest.approx(2 / 4)
    # an I- after O starts a chunk; a type change splits one; sentences never merge chunks
    r = M.conlleval([["B-PER", "I-PER"], ["I-PER"]], [["B-PER", "I-LOC"], ["I-PER"]])
    assert (r["chunks_correct"], r["chunks_gold"], r["chunks_guessed"]) == (1, 2, 3)
    assert r["per_type"]["PER"]["recall"] == 0.5 and r["per_type"]["LOC"]["precision"] == 0.0


def test_conlleval_entity_types_may_hold_hyphens():
    # conlleval.pl splits at the first hyphen only: geo-loc and geo-gpe are two types
    r = M.conlleval([["B-geo-loc", "I-geo-gpe"]], [["B-geo-loc", "I-geo-loc"]])
    assert (r["chunks_correct"], r["chunks_gold"], r["chunks_guessed"]) == (0, 2, 1)
    assert set(r["per_type"]) == {"geo-loc", "geo-gpe"}


def test_conlleval_counts_equal_an_independent_chunk_extraction():
    rng = random.Random(1)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    for _ in range(200):
        gold, pred = [], []
        for _ in range(rng.randint(1, 4)):
            n = rng.randint(1, 9)
            gold.append([rng.choice(tags) for _ in range(n)])
            pred.append([rng.choice(tags) if rng.random() < 0.4 else t for t in gold[-1]])
        r = M.conlleval(gold, pred)
        assert (r["chunks_correct"], r["chunks_gold"], r["chunks_guessed"]) == _reference_f1(gold, pred)
