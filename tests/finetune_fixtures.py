"""Tiny fine-tuning data in the exact layouts of ../shared/data (see its README): GLUE TSVs
(CoLA without header, MRPC with a BOM, STS-B's 10 columns, RTE/QNLI/WNLI, MNLI/QQP by their
official column names), SQuAD 1.1/2.0 JSON, CoNLL-2003 with -DOCSTART-, and user CSV/TSV/JSONL.

Labels follow a keyword at the start of each sentence, so a tiny model learns them quickly."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import _sentence

POS, NEG = "It was widely praised.", "Critics disagreed about its value."


def labelled(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.random() < 0.5
        out.append((f"{POS if y else NEG} {_sentence(rng)}", int(y)))
    return out


def _tsv(path: Path, header: list[str] | None, rows: list[list[object]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def write_glue(root: Path, n_train: int = 48, n_dev: int = 16) -> Path:
    nli = ("not_entailment", "entailment")
    mnli = ("contradiction", "entailment")
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        ex = labelled(n, seed)
        pairs = [(s, _sentence(random.Random(i)), y) for i, (s, y) in enumerate(ex)]
        _tsv(root / "CoLA" / f"{split}.tsv", None, [["gj04", y, "" if y else "*", s] for s, y in ex])
        _tsv(root / "SST-2" / f"{split}.tsv", ["sentence", "label"], [[s.lower() + " ", y] for s, y in ex])
        _tsv(root / "MRPC" / f"{split}.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
             [[y, 100 + i, 200 + i, a, b] for i, (a, b, y) in enumerate(pairs)], bom=True)
        _tsv(root / "STS-B" / f"{split}.tsv",
             ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
              "sentence2", "score"],
             [[i, "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", a, b,
               f"{4.2 * y + 0.1 * (i % 5):.3f}"] for i, (a, b, y) in enumerate(pairs)])
        for task in ("RTE", "WNLI"):
            _tsv(root / task / f"{split}.tsv", ["index", "sentence1", "sentence2", "label"],
                 [[i, a, b, nli[y] if task == "RTE" else y] for i, (a, b, y) in enumerate(pairs)])
        _tsv(root / "QNLI" / f"{split}.tsv", ["index", "question", "sentence", "label"],
             [[i, b + "?", a, nli[y]] for i, (a, b, y) in enumerate(pairs)])
        rows = [[i, b, a, y] for i, (a, b, y) in enumerate(pairs)]
        _tsv(root / "QQP" / f"{split}.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
             [[i, 2 * i, 2 * i + 1, q1, q2, y] for i, q1, q2, y in rows] + ([["999", "bad row"]] if split == "train" else []))
        mnli_header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                       "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
        mrows = [[i, i, f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, mnli[y], mnli[y]]
                 for i, (a, b, y) in enumerate(pairs)]
        names = ["train.tsv"] if split == "train" else ["dev_matched.tsv", "dev_mismatched.tsv"]
        for name in names:
            _tsv(root / "MNLI" / name, mnli_header, mrows)
    ex = labelled(6, 3)
    _tsv(root / "CoLA" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(ex)])
    _tsv(root / "SST-2" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(ex)])
    _tsv(root / "MRPC" / "test.tsv", ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
         [[i, 1, 2, s, s] for i, (s, _) in enumerate(ex)], bom=True)
    return root


PEOPLE, PLACES = ["Maria", "Zoë", "Müller"], ["Paris", "Berlin", "Lisbon"]


def conll_sentences(n: int, seed: int, iob2: bool = False) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first = rng.choice(PEOPLE)
        sent = [(first, "B-PER" if iob2 else "I-PER"), ("Smith", "I-PER"), ("visited", "O"),
                ("the", "O"), ("harbour", "O"), ("in", "O")]
        if rng.random() < 0.5:  # two touching LOC entities: IOB1 marks the second with B-
            sent += [(rng.choice(PLACES), "B-LOC" if iob2 else "I-LOC"), (rng.choice(PLACES), "B-LOC")]
        else:
            sent += [(rng.choice(PLACES), "B-LOC" if iob2 else "I-LOC")]
        out.append(sent + [(".", "O")])
    return out


def write_conll(root: Path, n_train: int = 24, n_dev: int = 8, iob2: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("eng.train", n_train, 1), ("eng.testa", n_dev, 2)):
        lines = ["-DOCSTART- -X- -X- O", ""]
        for i, sent in enumerate(conll_sentences(n, seed, iob2)):
            lines += [f"{w} NNP I-NP {t}" for w, t in sent] + [""]
            if i == n // 2:
                lines += ["-DOCSTART- -X- -X- O", ""]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_squad(path: Path, n_articles: int = 6, questions: int = 4, v2: bool = False) -> Path:
    rng = random.Random(0)
    data = []
    for a in range(n_articles):
        sents = [_sentence(rng) for _ in range(6)]
        context = " ".join(sents)
        qas = []
        for q in range(questions):
            target = rng.choice(sents).split(" ")[0:2]  # e.g. "The river" / "Maria built"
            text = " ".join(target)
            start = context.index(text)
            qas.append({"id": f"a{a}q{q}", "question": f"Who did {sents[q % 6].split(' ')[-1]}",
                        "answers": [{"text": text, "answer_start": start}] * (1 if q % 2 else 3)})
            if v2:
                qas[-1]["is_impossible"] = False
        if v2:
            qas.append({"id": f"a{a}none", "question": "What is the colour of the moon?",
                        "answers": [], "is_impossible": True,
                        "plausible_answers": [{"text": "river", "answer_start": 0}]})
        data.append({"title": f"Article_{a}", "paragraphs": [{"context": context, "qas": qas}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "v2.0" if v2 else "1.1", "data": data}), encoding="utf-8")
    return path


def write_user(root: Path) -> Path:
    """classification CSV (quoted commas), TSV and JSONL; regression JSONL; tagging JSONL."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 40, 1), ("dev", 12, 2)):
        ex = labelled(n, seed)
        names = ["negative", "positive"]
        csv_lines = ["review,stars,sentiment"] + [f'"{s.replace(",", ", and")}, yes",{3 + y},{names[y]}'
                                                  for s, y in ex]
        (root / f"{split}.csv").write_text("\n".join(csv_lines) + "\n")
        (root / f"{split}.tsv").write_text("text\tlabel\n" + "".join(f'{s} "q"\t{names[y]}\n' for s, y in ex))
        (root / f"{split}.jsonl").write_text("".join(json.dumps({"a": s, "b": s[::-1], "y": 2.5 * y + 0.1})
                                                     + "\n" for s, y in ex))
        tags = conll_sentences(n // 2, seed, iob2=True)
        (root / f"{split}_tags.jsonl").write_text("".join(
            json.dumps({"tokens": [w for w, _ in s], "tags": [t for _, t in s]}) + "\n" for s in tags))
    return root
