"""Packing (G-EL ExampleBuilder rules), the preprocess command, determinism and its errors."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from electra.config import PreprocessConfig, TokenizerConfig
from electra.data import preprocess as pp
from electra.data.corpus import iter_documents
from electra.data.shards import ShardReader, read_manifest
from electra.data.tokenizer import Tokenizer, train_tokenizer
from electra.errors import DataError, TokenizerError

CLS, SEP, PAD = 2, 3, 0


class GelExampleBuilder:
    """google-research/electra build_pretraining_dataset.ExampleBuilder, transcribed with
    pre-tokenized lines (None = blank line) and an injected RNG; the reference to match."""

    def __init__(self, max_length, rng, single_prob=0.1, short_prob=0.05):
        self._current_sentences, self._current_length = [], 0
        self._max_length = self._target_length = max_length
        self.rng, self.single_prob, self.short_prob = rng, single_prob, short_prob

    def add_line(self, tokids):
        if tokids is None and self._current_length != 0:
            return self._create_example()
        tokids = tokids or []
        self._current_sentences.append(tokids)
        self._current_length += len(tokids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self):
        if self.rng.random() < self.single_prob:
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self._target_length - 3) // 2
        first_segment, second_segment = [], []
        for sentence in self._current_sentences:
            if (len(first_segment) == 0 or
                    len(first_segment) + len(sentence) < first_segment_target_length or
                    (len(second_segment) == 0 and
                     len(first_segment) < first_segment_target_length and
                     self.rng.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
        self._current_sentences, self._current_length = [], 0
        if self.rng.random() < self.short_prob:
            self._target_length = self.rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return first_segment, second_segment


def _random_docs(rng: random.Random, n: int) -> list[list[list[int]]]:
    def sentence() -> list[int]:
        k = rng.choice([0, 1, 3, 7, 12, 20, 33, 70])  # empty and over-long sentences too
        return [rng.randrange(5, 500) for _ in range(k)]
    return [[sentence() for _ in range(rng.randint(1, 15))] for _ in range(n)]


@pytest.mark.parametrize(("seq_len", "single", "short"), [(32, 0.1, 0.05), (24, 0.5, 0.5), (128, 0.1, 0.05)])
def test_build_examples_matches_gel(seq_len: int, single: float, short: float) -> None:
    docs = _random_docs(random.Random(seq_len), 200)
    ref_builder = GelExampleBuilder(seq_len, random.Random(7), single, short)
    expected = []
    for doc in docs:  # G-EL reads lines; a blank line ends a document
        for line in [*doc, None]:
            ex = ref_builder.add_line(line)
            if ex:
                expected.append(ex)
    got = [(f, s) for _, f, s in pp.build_examples(docs, seq_len, random.Random(7), single, short)]
    assert got == expected
    assert len(got) > 100


class _Scripted:
    """An RNG that returns pre-set draws, to walk one hand-made case through the rules."""

    def __init__(self, draws: list[float], ints: list[int]) -> None:
        self.draws, self.ints = draws, ints

    def random(self) -> float:
        return self.draws.pop(0)

    def randint(self, a: int, b: int) -> int:
        return self.ints.pop(0)


def test_build_examples_hand_made_case() -> None:
    s = [[10 + i] * 5 for i in range(6)]  # six 5-token sentences
    docs = [[s[0], s[1], s[2], s[3]], [s[4], s[5]], [s[0], s[0], s[1]]]
    rng = _Scripted(
        draws=[
            0.5, 0.9, 0.99,  # A reaches 20 >= 16: two segments (first target 6); s1 would overflow
                             # the first segment and the coin says no: s1-s3 go to the second
            0.05, 0.01,      # B ends: single segment; short-length draw -> next target randint = 9
            0.5, 0.5,        # C reaches 10 >= 9: first target (9-3)//2 = 3, so s0 | s0
            0.5, 0.5,        # C ends with s1 alone
        ],
        ints=[9],
    )
    got = list(pp.build_examples(docs, 16, rng, 0.1, 0.05))
    assert got == [
        (0, s[0], (s[1] + s[2] + s[3])[:8]),  # second trimmed so 1 + 5 + 1 + 8 + 1 = 16
        (1, s[4] + s[5], []),
        (2, s[0], s[0]),
        (2, s[1], []),
    ]
    assert rng.draws == [] and rng.ints == []


def _rows(data_dir: Path, split: str = "train") -> np.ndarray:
    r = ShardReader(data_dir, split)
    return r.take(np.arange(len(r)))


def test_rows_follow_electra_layout(tiny_tokenizer: Path, tmp_path: Path, write_corpus) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    words = [t for t in tok.vocab_tokens() if t.isalpha() and len(t) >= 4][:12]
    assert len(words) >= 6
    rng = random.Random(0)
    docs = []  # each document repeats one word, so a row mixing documents would mix words
    for i in range(150):
        w = words[i % len(words)]
        docs.append([" ".join([w] * rng.randint(1, 40)) for _ in range(rng.randint(1, 8))])
    corpus = write_corpus(tmp_path / "c.txt", docs)
    m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "data",
                      PreprocessConfig(seq_len=32, workers=1, valid_fraction=0.0, rows_per_shard=50))
    rows = _rows(tmp_path / "data")
    assert len(rows) == m.totals["rows"] == m.splits["train"].rows and len(m.splits["train"].shards) > 1
    assert m.splits["valid"].rows == 0 and m.totals["documents"] == 150
    singles = 0
    for row in rows:
        n = int(np.count_nonzero(row != PAD))
        assert (row[n:] == PAD).all() and (row[:n] != PAD).all() and n <= 32
        assert row[0] == CLS and row[n - 1] == SEP
        seps = np.flatnonzero(row == SEP)
        assert len(seps) in (1, 2) and tok.cls_id not in row[1:]
        singles += len(seps) == 1
        body = row[(row != PAD) & (row != CLS) & (row != SEP)]
        assert len(body) > 0 and len(set(body.tolist())) == 1  # one document per row
        assert (row < tok.vocab_size).all()
    assert 0 < singles < len(rows)
    assert m.totals["tokens"] == int(np.count_nonzero(rows))
    assert m.tokenizer_fingerprint == tok.fingerprint
    assert Tokenizer.load(tmp_path / "data" / "tokenizer").fingerprint == tok.fingerprint
    assert m.special_ids == {"pad": 0, "cls": 2, "sep": 3, "mask": 4, "unk": 1}
    assert m.dtype == "uint16" and read_manifest(tmp_path / "data") == m


def test_workers_do_not_change_output(tiny_tokenizer: Path, tmp_path: Path, make_documents,
                                      write_corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pp, "CHUNK_LINES", 40)  # many chunks from a small corpus
    corpus = write_corpus(tmp_path / "c.txt", make_documents(120, seed=3))
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        pp.preprocess([corpus], tiny_tokenizer, out,
                      PreprocessConfig(seq_len=24, workers=workers, valid_fraction=0.2, rows_per_shard=64))
        outs.append(out)
    files = sorted(p.name for p in outs[0].glob("*.bin"))
    assert files == sorted(p.name for p in outs[1].glob("*.bin")) and len(files) > 2
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    m1, m2 = (json.loads((o / "manifest.json").read_text()) for o in outs)
    for m in (m1, m2):
        m.pop("created"), m["preprocess"].pop("workers")
    assert m1 == m2
    assert m1["splits"]["valid"]["rows"] > 0 and m1["splits"]["train"]["rows"] > 0


def test_valid_split_is_stable_and_never_empty(tiny_tokenizer: Path, tmp_path: Path, make_documents,
                                               write_corpus, caplog: pytest.LogCaptureFixture) -> None:
    docs = make_documents(40, seed=5)
    picked = [pp.is_valid_document(d, 0.3) for d in docs]
    assert picked == [pp.is_valid_document(d, 0.3) for d in docs] and 0 < sum(picked) < len(docs)
    corpus = write_corpus(tmp_path / "c.txt", docs[:3])
    with caplog.at_level(logging.INFO, logger="electra.data.preprocess"):
        m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "data",
                          PreprocessConfig(seq_len=32, workers=1, valid_fraction=1e-9))
    assert m.splits["valid"].documents == 1 and m.splits["valid"].rows > 0
    assert m.splits["train"].documents == 2 and m.splits["train"].rows > 0
    assert "picked no document" in caplog.text and "valid 1 documents" in caplog.text
    # the held-out rows are the last document's
    tok = Tokenizer.load(tiny_tokenizer)
    valid_ids = _rows(tmp_path / "data", "valid")
    last_doc = [i for line in tok.encode_lines(docs[2]) for i in line]
    assert valid_ids[0][1] == last_doc[0]


def test_existing_out_dir_is_refused_and_untouched(tiny_corpus: Path, tiny_tokenizer: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    for overwrite in (False, True):  # not shards: never deleted, not even with --overwrite
        with pytest.raises(DataError, match=r"holds files that are not shards; choose another --out"):
            pp.preprocess([tiny_corpus], tiny_tokenizer, out, PreprocessConfig(workers=1),
                          overwrite=overwrite)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_earlier_shards_are_replaced_only_with_overwrite(tiny_corpus: Path, tiny_tokenizer: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = pp.preprocess([tiny_corpus], tiny_tokenizer, out, PreprocessConfig(workers=1, seq_len=32))
    with pytest.raises(DataError, match=r"already holds shards; .*--overwrite"):
        pp.preprocess([tiny_corpus], tiny_tokenizer, out, PreprocessConfig(workers=1, seq_len=64))
    assert read_manifest(out).seq_len == first.seq_len == 32
    pp.preprocess([tiny_corpus], tiny_tokenizer, out, PreprocessConfig(workers=1, seq_len=64),
                  overwrite=True)
    assert read_manifest(out).seq_len == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temp dir left


def test_errors(tiny_tokenizer: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n")
    with pytest.raises(DataError, match="the corpus has no text"):
        pp.preprocess([blank], tiny_tokenizer, tmp_path / "a", PreprocessConfig(workers=1))
    with pytest.raises(TokenizerError, match="does not exist"):
        pp.preprocess([blank], tmp_path / "no_tok", tmp_path / "b", PreprocessConfig(workers=1))
    with pytest.raises(DataError, match="does not exist; check --corpus"):
        pp.preprocess([tmp_path / "nope"], tiny_tokenizer, tmp_path / "c", PreprocessConfig(workers=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.txt"]  # nothing left behind


def test_enwiki_shard(tmp_path: Path) -> None:
    path = Path("/work/shared/data/pretrain/enwiki-2021/wiki_00.gz")
    if not path.exists():
        pytest.skip("shared enwiki-2021 data not available")
    tok_dir = tmp_path / "tok"
    train_tokenizer(iter_documents([path]), tok_dir, TokenizerConfig(vocab_size=1000))
    m = pp.preprocess([path], tok_dir, tmp_path / "data", PreprocessConfig(seq_len=128, workers=2))
    # 620 documents with text, ~144k words: about 1.4k rows of 128 with these rules
    assert m.totals["documents"] == 620
    assert 1000 < m.totals["rows"] < 4000
    assert 0.5 < m.totals["tokens"] / (m.totals["rows"] * 128) <= 1.0
    assert m.splits["valid"].rows > 0 and m.splits["train"].rows > 0.9 * m.totals["rows"]
    r = ShardReader(tmp_path / "data", "train")
    r.verify()
    rows = r.take(np.arange(len(r)))
    assert (rows[:, 0] == 2).all() and rows.max() < 1000


def test_one_line_corpus_is_kept_whole_and_held_out_from(tiny_tokenizer: Path, tmp_path: Path,
                                                         caplog) -> None:
    words = "the river crossed a new bridge and the town grew along its banks".split()
    rng = random.Random(0)
    corpus = tmp_path / "one.txt"  # a whole corpus on one line: no sentence breaks, one document
    corpus.write_text(" ".join(rng.choice(words) for _ in range(3000)) + "\n")
    with caplog.at_level(logging.WARNING):
        m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "d", PreprocessConfig(workers=1, seq_len=32))
    assert m.splits["valid"].rows >= 1  # validation is not silently skipped
    assert "rows of its only document" in caplog.text
    assert m.totals["rows"] >= 3000 // 30  # the line became row-sized pieces, not one cut row
    assert "dropped" not in caplog.text


def test_a_large_last_document_gives_validation_its_last_rows_not_the_corpus(
        tiny_tokenizer: Path, tmp_path: Path, caplog) -> None:
    words = "the river crossed a new bridge and the town grew along its banks".split()
    rng = random.Random(2)
    corpus = tmp_path / "c.txt"  # a one-line preface, then one large document
    corpus.write_text("A short preface line.\n\n" + "".join(
        " ".join(rng.choice(words) for _ in range(12)) + ".\n" for _ in range(600)))
    with caplog.at_level(logging.WARNING):
        m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "d",
                          PreprocessConfig(workers=1, seq_len=32, valid_fraction=0.01))
    assert 1 <= m.splits["valid"].rows <= 0.02 * m.totals["rows"] + 1 < m.splits["train"].rows
    assert "rows of its last document" in caplog.text


def test_a_last_chunk_without_rows_leaves_the_fallback_on_the_chunk_with_rows(
        tiny_tokenizer: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pp, "CHUNK_LINES", 8)
    words = "the river crossed a new bridge and the town grew along its banks".split()
    rng = random.Random(3)
    body = "".join(" ".join(rng.choice(words) for _ in range(12)) + ".\n" for _ in range(40))
    (tmp_path / "a.txt").write_text(body)  # one document, then b.txt in a chunk of its own
    (tmp_path / "b.txt").write_text("\u200b\n")  # a document with no tokens: a last chunk with no rows
    m = pp.preprocess([tmp_path / "a.txt", tmp_path / "b.txt"], tiny_tokenizer, tmp_path / "d",
                      PreprocessConfig(workers=1, seq_len=32, valid_fraction=1e-9))
    assert m.splits["valid"].rows >= 1 and m.splits["train"].rows > m.splits["valid"].rows


def test_trimmed_text_is_reported(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        pp._warn_packing(kept=40, tokenized=100, filled=60, rows=1, cfg=PreprocessConfig(seq_len=64))
    assert "60% of the tokenized text was dropped" in caplog.text


def test_rows_of_a_short_document_corpus_are_mostly_padding_unless_packed_across_documents(
        tiny_tokenizer: Path, tmp_path: Path, caplog) -> None:
    words = "the river crossed a new bridge and the town grew along its banks".split()
    rng = random.Random(1)
    corpus = tmp_path / "task.tsv"  # one short example per row, as a task's training file
    corpus.write_text("text\tlabel\n" + "".join(" ".join(rng.choice(words) for _ in range(6)) + "\t1\n"
                                                for _ in range(400)))
    with caplog.at_level(logging.WARNING):
        per_doc = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "a", PreprocessConfig(workers=1, seq_len=64))
    assert per_doc.totals["documents"] == 400 and "of the packed rows is padding" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        joined = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "b",
                               PreprocessConfig(workers=1, seq_len=64, packing="full_sentences"))
    assert "padding" not in caplog.text and joined.totals["rows"] * 3 < per_doc.totals["rows"]


def test_electra_preprocess_prints_the_trimming_warning(tiny_tokenizer: Path, tmp_path: Path) -> None:
    """Through the command, as a user sees it on stderr: 30-token sentences against 32-token rows
    leave no room for a second segment, so G-EL packing drops about half the text."""
    import os
    import subprocess
    import sys

    line = " ".join(["the"] * 29) + "."
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join("\n".join([line] * 6) for _ in range(10)) + "\n")
    proc = subprocess.run([sys.executable, "-m", "electra.cli", "preprocess", "--corpus", str(corpus),
                           "--tokenizer", str(tiny_tokenizer), "--seq-len", "32", "--workers", "1",
                           "--out", str(tmp_path / "d")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "48% of the tokenized text was dropped" in proc.stderr and "a longer --seq-len" in proc.stderr


def test_sentences_longer_than_a_row_become_pieces() -> None:
    assert pp.split_long([[1, 2], [3]], 4) == [[1, 2], [3]]
    assert pp.split_long([[1, 2, 3, 4, 5, 6, 7, 8, 9], [1]], 4) == [[1, 2, 3, 4], [5, 6, 7, 8], [9], [1]]


# ----------------------------------------------------------------------------------------------
# RoBERTa packing: full_sentences, doc_sentences

SEP_ID = 3


def _disjoint_docs(rng: random.Random, n: int) -> list[list[list[int]]]:
    """Document d's sentences use only ids 100*d+10 .. 100*d+59, so any row shows its documents."""
    return [[[rng.randrange(100 * d + 10, 100 * d + 60) for _ in range(rng.randint(1, 12))]
             for _ in range(rng.randint(1, 6))] for d in range(n)]


def _doc_of(token: int) -> int:
    return token // 100


def test_doc_sentences_rows_never_hold_two_documents() -> None:
    docs = _disjoint_docs(random.Random(1), 60)
    rows = list(pp.pack_sentences(docs, 30, SEP_ID, cross_documents=False))
    for d, content in rows:
        assert len(content) <= 30 and SEP_ID not in content
        assert {_doc_of(t) for t in content} == {d}
    # whole sentences in order, nothing dropped: the rows are the documents' tokens, in order
    assert [t for _, c in rows for t in c] == [t for doc in docs for s in doc for t in s]
    assert len({d for d, _ in rows}) == len(docs)


def test_full_sentences_rows_are_full_and_separate_documents_with_sep() -> None:
    docs = _disjoint_docs(random.Random(2), 60)
    rows = list(pp.pack_sentences(docs, 30, SEP_ID, cross_documents=True))
    longest = max(len(s) for doc in docs for s in doc)
    for i, (d, content) in enumerate(rows):
        assert len(content) <= 30 and content[0] != SEP_ID != content[-1]
        if i < len(rows) - 1:
            assert len(content) > 30 - longest - 1  # the next sentence (+ [SEP]) did not fit
        # a [SEP] exactly where one document ends and the next begins
        for a, b in zip(content, content[1:], strict=False):
            if SEP_ID not in (a, b):
                assert _doc_of(a) == _doc_of(b)
        for k in np.flatnonzero(np.array(content) == SEP_ID):
            assert _doc_of(content[k + 1]) == _doc_of(content[k - 1]) + 1
        assert _doc_of(content[0]) == d
    tokens = [t for _, c in rows for t in c if t != SEP_ID]
    assert tokens == [t for doc in docs for s in doc for t in s]
    assert sum(c.count(SEP_ID) for _, c in rows) > 0
    fill = sum(len(c) for _, c in rows) / (30 * len(rows))
    assert fill > 0.8
    assert len(rows) < len(list(pp.pack_sentences(docs, 30, SEP_ID, cross_documents=False)))


@pytest.mark.parametrize("packing", ["full_sentences", "doc_sentences"])
def test_sentence_packing_shards(packing: str, tiny_tokenizer: Path, tmp_path: Path, write_corpus) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    words = [t for t in tok.vocab_tokens() if t.isalpha() and len(t) >= 4][:12]
    rng = random.Random(0)
    docs = []  # each document repeats one word (one token), so rows show which documents they mix
    for i in range(150):
        w = words[i % len(words)]
        docs.append([" ".join([w] * rng.randint(1, 20)) for _ in range(rng.randint(1, 8))])
    corpus = write_corpus(tmp_path / "c.txt", docs)
    m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "data",
                      PreprocessConfig(seq_len=32, workers=1, valid_fraction=0.2, packing=packing))
    assert m.packing == packing and m.splits["valid"].rows > 0
    assert m.splits["train"].documents + m.splits["valid"].documents == 150
    valid_words = {w for d, w in zip(docs, (words[i % 12] for i in range(150)), strict=True)
                   if pp.is_valid_document(d, 0.2)}
    body_tokens = 0
    for split in ("train", "valid"):
        for row in _rows(tmp_path / "data", split):
            n = int(np.count_nonzero(row != PAD))
            assert row[0] == CLS and row[n - 1] == SEP and (row[n:] == PAD).all()
            inner = row[1:n - 1]
            seps = int(np.count_nonzero(inner == SEP))
            assert seps == 0 if packing == "doc_sentences" else seps >= 0
            body_tokens += len(inner) - seps
            words_in_row = set(tok.convert_ids_to_tokens(inner[inner != SEP]))
            assert (words_in_row <= valid_words) if split == "valid" else True
            if packing == "doc_sentences":
                assert len(words_in_row) == 1
    assert body_tokens == sum(len(line.split()) for doc in docs for line in doc)  # nothing dropped
    if packing == "full_sentences":
        rows = _rows(tmp_path / "data")
        assert np.count_nonzero(rows[:-1] != PAD) / rows[:-1].size > 0.7  # sentences up to 20 of 30
        assert (np.count_nonzero(rows == SEP, axis=1) > 1).any()


def test_one_segment_rows_have_token_type_zero() -> None:
    from electra.data.loader import batch_from_rows
    rows = np.array([[CLS, 7, 8, SEP, 9, SEP, PAD]])
    assert batch_from_rows(rows, PAD, SEP).token_type_ids.tolist() == [[0, 0, 0, 0, 1, 1, 0]]
    assert batch_from_rows(rows, PAD, SEP, one_segment=True).token_type_ids.tolist() == [[0] * 7]


def test_unknown_words_are_kept_text_not_dropped_text(tiny_tokenizer: Path, tmp_path: Path, caplog) -> None:
    """[UNK] is text the rows keep: a corpus the vocabulary covers badly is not 'dropped'."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"the river ωμέγα ψυχή {i} crossed.\n\n" for i in range(40)))
    with caplog.at_level(logging.INFO):
        m = pp.preprocess([corpus], tiny_tokenizer, tmp_path / "d",
                          PreprocessConfig(workers=1, seq_len=64, packing="full_sentences"))
    assert m.totals["rows"] and "of the tokenized text was dropped" not in caplog.text
    assert "(100.0%; full_sentences packing)" in caplog.text
