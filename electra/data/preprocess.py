"""`electra preprocess`: corpus -> token ids -> packed rows -> shards + manifest.json.

Packing (`preprocess.packing`): `electra` follows google-research/electra's
`build_pretraining_dataset.py` (ExampleBuilder) rule for rule; `full_sentences` and
`doc_sentences` are RoBERTa's one-segment rows of whole sentences, across documents (with a [SEP]
where they meet) or within one. The main process streams documents and cuts them into chunks; a process pool tokenizes
and packs chunks (each with its own seeded RNG, so the output does not depend on the worker
count); results are written in order with a bounded number of chunks in flight. With
`preprocess.word_segmentation` (jieba, or a reference file) each token's "continues the previous
word" bit is packed along with it and written beside the shards, for whole-word masking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import multiprocessing
import os
import random
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from electra.config import PreprocessConfig
from electra.data.corpus import expand_paths, iter_documents
from electra.data.shards import (
    MANIFEST,
    Manifest,
    ShardWriter,
    SplitInfo,
    dtype_for_vocab,
    write_manifest,
)
from electra.data.tokenizer import Tokenizer
from electra.data.words import (
    jieba_segmenter,
    split_marks,
    token_continuation,
    with_reference_words,
    word_marks,
)
from electra.errors import DataError
from electra.files import atomic_dir

log = logging.getLogger(__name__)

WORD_BIT = 1 << 32  # while packing, a token's "continues the previous word" bit rides on its id
CHUNK_LINES = 2048  # lines per work unit; part of the output's definition (RNG seeded per chunk)
SMALL_CORPUS_BYTES = 8 << 20  # below this (on disk), workers=0 (auto) packs in-process
# a sentence ends at . ! ? followed by space and an upper-case letter, digit or opening quote
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(doc: list[str]) -> list[str]:
    """Paragraph lines -> sentence lines. G-EL's builder treats a line as a sentence and trims
    whatever overflows a row, so whole Wikipedia paragraphs as lines lose a quarter of the text."""
    return [s for line in doc for s in _SENTENCE_BREAK.split(line) if s]


# ----------------------------------------------------------------------------------------------
# packing: google-research/electra ExampleBuilder


def build_examples(
    docs: Iterable[Sequence[list[int]]],
    max_length: int,
    rng: random.Random,
    single_segment_prob: float = 0.1,
    short_seq_prob: float = 0.05,
) -> Iterator[tuple[int, list[int], list[int]]]:
    """Yield `(doc_index, first_segment, second_segment)` from tokenized documents (each a list of
    sentences' ids), exactly as G-EL's ExampleBuilder does with blank-line document breaks.

    Sentences accumulate until they reach the target length or the document ends; an example never
    mixes documents. Segments exclude [CLS]/[SEP] and fit `max_length` once those are added."""
    rand = rng.random
    target = max_length
    for d, doc in enumerate(docs):
        sentences: list[list[int]] = []
        length = 0
        last = len(doc) - 1
        for i, sentence in enumerate(doc):
            # G-EL appends empty sentences too, but they never change an example or the RNG
            if sentence:
                sentences.append(sentence)
                length += len(sentence)
            if length and (length >= target or i == last):
                # small chance of one segment only, as in classification inputs
                first_target = 100000 if rand() < single_segment_prob else (target - 3) // 2
                first: list[int] = []
                second: list[int] = []
                for s in sentences:
                    # first segment if it is empty, if s fits, or 50% of the time when s overflows it
                    if (not first or len(first) + len(s) < first_target
                            or (not second and len(first) < first_target and rand() < 0.5)):
                        first += s
                    else:
                        second += s
                first = first[:max_length - 2]
                second = second[:max(0, max_length - len(first) - 3)]
                target = rng.randint(5, max_length) if rand() < short_seq_prob else max_length
                sentences, length = [], 0
                yield d, first, second


# ----------------------------------------------------------------------------------------------
# packing: RoBERTa FULL-SENTENCES / DOC-SENTENCES


def pack_sentences(docs: Sequence[Sequence[list[int]]], capacity: int, sep_id: int, *,
                   cross_documents: bool) -> Iterator[tuple[int, list[int]]]:
    """Yield `(doc_index, content)`: consecutive whole sentences filling up to `capacity` tokens
    (each sentence at most `capacity` long: see `split_long`). `doc_index` is the document the
    content starts in. With `cross_documents` (FULL-SENTENCES) a row runs on into the next
    document after a `sep_id`; without (DOC-SENTENCES) a document's last row ends with it.
    Nothing is dropped: a sentence that does not fit starts the next row."""
    row: list[int] = []
    first = 0
    for d, doc in enumerate(docs):
        if row and not cross_documents:
            yield first, row
            row = []
        new_doc = True
        for sentence in doc:
            if not sentence:
                continue
            sep = [sep_id] if new_doc and row else []
            if len(row) + len(sep) + len(sentence) > capacity:
                yield first, row
                row, sep = [], []
            if not row:
                first = d
            row += sep + sentence
            new_doc = False
    if row:
        yield first, row


@dataclasses.dataclass
class ChunkResult:
    train: np.ndarray  # [rows, seq_len]
    valid: np.ndarray  # [rows, seq_len]
    train_docs: int
    valid_docs: int
    tail_rows: int  # rows of the last document with rows (all in `train` when valid is empty)
    input_tokens: int  # before packing; G-EL's trimming drops what overflows a row
    train_words: np.ndarray | None = None  # [rows, seq_len] bool: continues the previous word
    valid_words: np.ndarray | None = None


def split_long(sentences: list[list[int]], fits: int) -> list[list[int]]:
    """A sentence longer than a whole row becomes row-sized pieces. G-EL's builder would cut it
    at the row's end and drop the rest, which for a corpus with one paragraph (or the whole
    text) per line loses most of it; sentences that fit are left exactly as G-EL packs them.
    `fits` = seq_len: each piece then fills one example by itself, losing only the two tokens
    that make room for [CLS] and [SEP] (a shorter piece would pull in the next one, whose
    overflow the builder drops)."""
    if all(len(s) <= fits for s in sentences):
        return sentences
    return [s[i:i + fits] for s in sentences for i in range(0, max(len(s), 1), fits)]


class Packer:
    """Tokenizes and packs one chunk of documents into padded rows."""

    def __init__(self, tokenizer: Tokenizer, cfg: PreprocessConfig) -> None:
        self.tok = tokenizer
        self.cfg = cfg
        self.dtype = dtype_for_vocab(tokenizer.vocab_size)
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
        self.words = cfg.word_segmentation != "none"
        self.row_dtype = np.dtype(np.int64) if self.words else self.dtype  # ids + WORD_BIT
        self.segment = jieba_segmenter() if cfg.word_segmentation == "jieba" else None

    def pack(self, index: int, docs: list[list[str]], refs: list[list[list[str]]] | None = None
             ) -> ChunkResult:
        """`refs`: per document, per line, the words of a reference segmentation (file mode)."""
        cfg, seq_len = self.cfg, self.cfg.seq_len
        in_valid = [is_valid_document(doc, cfg.valid_fraction) for doc in docs]
        docs, marks = self._sentences(docs, refs)
        lines = [line for doc in docs for line in doc]
        ids = self.tok.encode_lines(lines) if marks is None else self._with_word_bits(lines, marks)
        fits = seq_len if cfg.packing == "electra" else seq_len - 2  # room for [CLS] and [SEP]
        tokenized: list[list[list[int]]] = []
        pos = 0
        for doc in docs:
            tokenized.append(split_long(ids[pos:pos + len(doc)], fits))
            pos += len(doc)
        if cfg.packing != "electra":
            return self._pack_sentences(tokenized, in_valid, sum(len(x) for x in ids))
        pieces = sum(len(doc) for doc in tokenized)
        rows = np.full((max(1, pieces), seq_len), self.pad_id, dtype=self.row_dtype)  # rows <= pieces
        row_valid = np.zeros(len(rows), dtype=bool)
        row_doc = np.zeros(len(rows), dtype=np.int64)
        rng = random.Random(f"{cfg.seed}:{index}")  # a str seed is hashed stably (not PYTHONHASHSEED)
        cls_id, sep_id = self.cls_id, self.sep_id
        n = 0
        for d, first, second in build_examples(tokenized, seq_len, rng, cfg.single_segment_prob,
                                               cfg.short_seq_prob):
            row = [cls_id, *first, sep_id, *second, sep_id] if second else [cls_id, *first, sep_id]
            rows[n, :len(row)] = row
            row_valid[n], row_doc[n] = in_valid[d], d
            n += 1
        rows, row_valid, row_doc = rows[:n], row_valid[:n], row_doc[:n]
        docs_with_rows = np.unique(row_doc)
        n_valid_docs = int(sum(in_valid[d] for d in docs_with_rows))
        tail = int(np.count_nonzero(row_doc == row_doc[-1])) if n else 0
        return self._unfold(ChunkResult(
            train=rows[~row_valid], valid=rows[row_valid], train_docs=len(docs_with_rows) - n_valid_docs,
            valid_docs=n_valid_docs, tail_rows=tail, input_tokens=sum(len(x) for x in ids)))

    def _sentences(self, docs: list[list[str]], refs: list[list[list[str]]] | None
                   ) -> tuple[list[list[str]], list[list[bool]] | None]:
        """Documents as sentence lines, and with a word segmentation each sentence's word marks
        (`words.word_marks`: per non-space character, a word begins here)."""
        split = self.cfg.split_sentences
        if not self.words:
            return ([split_sentences(doc) for doc in docs] if split else docs), None
        out: list[list[str]] = []
        marks: list[list[bool]] = []
        for d, doc in enumerate(docs):
            out.append([])
            for j, line in enumerate(doc):
                words = refs[d][j] if refs is not None else self.segment(line)
                parts = split_sentences([line]) if split else [line]
                out[-1] += parts
                marks += split_marks(parts, word_marks(line, words))
        return out, marks

    def _with_word_bits(self, lines: list[str], marks: list[list[bool]]) -> list[list[int]]:
        """Token ids with WORD_BIT set where a token continues the previous word; packing moves
        ids around as they are, so the bits travel with them into the rows."""
        out = []
        for line, m, (ids, offsets) in zip(lines, marks, self.tok.encode_with_offsets(lines), strict=True):
            bits = token_continuation(line, offsets, m)
            out.append([i + WORD_BIT * b for i, b in zip(ids, bits, strict=True)])
        return out

    def _unfold(self, res: ChunkResult) -> ChunkResult:
        """Rows with WORD_BIT -> token-id rows plus their word bits."""
        if not self.words:
            return res
        return dataclasses.replace(
            res, train=(res.train % WORD_BIT).astype(self.dtype), valid=(res.valid % WORD_BIT).astype(self.dtype),
            train_words=res.train >= WORD_BIT, valid_words=res.valid >= WORD_BIT)


    def _pack_sentences(self, tokenized: list[list[list[int]]], in_valid: list[bool],
                        input_tokens: int) -> ChunkResult:
        """`[CLS] sentences [SEP]` rows, one segment. Training and validation documents are packed
        apart, so the split stays by document even when rows cross documents."""
        seq_len = self.cfg.seq_len
        out: dict[bool, tuple[np.ndarray, list[int], int]] = {}
        for valid in (False, True):
            docs = [d for d in range(len(tokenized)) if in_valid[d] == valid]
            packed = list(pack_sentences([tokenized[d] for d in docs], seq_len - 2, self.sep_id,
                                         cross_documents=self.cfg.packing == "full_sentences"))
            rows = np.full((len(packed), seq_len), self.pad_id, dtype=self.row_dtype)
            for n, (_, content) in enumerate(packed):
                rows[n, :len(content) + 2] = [self.cls_id, *content, self.sep_id]
            with_tokens = sum(1 for d in docs if any(tokenized[d]))
            out[valid] = rows, [docs[first] for first, _ in packed], with_tokens
        (train, train_doc, train_docs), (valid, _, valid_docs) = out[False], out[True]
        # rows that start in the last document hold nothing else: the hold-out fallback's unit
        tail = train_doc.count(train_doc[-1]) if train_doc else 0
        return self._unfold(ChunkResult(train=train, valid=valid, train_docs=train_docs,
                                        valid_docs=valid_docs, tail_rows=tail, input_tokens=input_tokens))


def is_valid_document(doc: list[str], valid_fraction: float) -> bool:
    """Stable split by content hash: the same document lands in the same split in every run."""
    if valid_fraction <= 0:
        return False
    key = f"{doc[0]}\x00{sum(len(line) for line in doc)}".encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return h < valid_fraction * 2**64


# worker-process state: one Packer per process, built once by the pool initializer
_PACKER: Packer | None = None


def _init_worker(tokenizer_dir: str, cfg: PreprocessConfig) -> None:
    global _PACKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the pool is the parallelism
    _PACKER = Packer(Tokenizer.load(tokenizer_dir), cfg)


def _pack_in_worker(index: int, docs: list[list[str]], refs: list[list[list[str]]] | None
                    ) -> ChunkResult:
    assert _PACKER is not None
    return _PACKER.pack(index, docs, refs)


def _auto_workers(corpus_bytes: int) -> int:
    # starting a pool costs ~0.5 s; in-process packs ~1M tokens/s, so small corpora stay in-process
    return 1 if corpus_bytes < SMALL_CORPUS_BYTES else (os.cpu_count() or 1)


Chunk = tuple[list[list[str]], list[list[list[str]]] | None]  # documents, their reference words


def _chunks(docs: Iterable[tuple[list[str], list[list[str]] | None]], chunk_lines: int
            ) -> Iterator[Chunk]:
    chunk: list[list[str]] = []
    refs: list[list[list[str]]] = []
    lines = 0
    for doc, ref in docs:
        chunk.append(doc)
        if ref is not None:
            refs.append(ref)
        lines += len(doc)
        if lines >= chunk_lines:
            yield chunk, refs or None
            chunk, refs, lines = [], [], 0
    if chunk:
        yield chunk, refs or None


def _packed_chunks(chunks: Iterable[Chunk], tokenizer: Tokenizer, tokenizer_dir: Path,
                   cfg: PreprocessConfig, workers: int) -> Iterator[ChunkResult]:
    """Chunk results in input order; at most 2*workers chunks are in flight, so memory is
    bounded (Pool.imap would drain the whole input iterator eagerly)."""
    if workers == 1:
        packer = Packer(tokenizer, cfg)  # in-process: the rust tokenizer may use all cores itself
        for i, (chunk, refs) in enumerate(chunks):
            yield packer.pack(i, chunk, refs)
        return
    # spawn, not fork: forking a process that already runs rust/torch thread pools can deadlock
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(str(tokenizer_dir), cfg))
    try:
        pending: deque[Future[ChunkResult]] = deque()
        for i, (chunk, refs) in enumerate(chunks):
            pending.append(pool.submit(_pack_in_worker, i, chunk, refs))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as e:
        raise DataError("a preprocess worker process died (out of memory, or a script calling "
                        "preprocess() without an `if __name__ == '__main__':` guard); use fewer "
                        "workers (preprocess.workers=1) or add the guard") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------
# the command


def preprocess(corpus: Sequence[str | Path], tokenizer_dir: str | Path, out_dir: str | Path,
               cfg: PreprocessConfig, *, overwrite: bool = False) -> Manifest:
    """Build a self-contained data dir (shards, tokenizer/, manifest.json) at `out_dir`.
    `overwrite` replaces an earlier data dir there (only one: anything else is never deleted),
    and only once the new one is complete."""
    start = time.perf_counter()
    tokenizer = Tokenizer.load(tokenizer_dir)
    out = Path(out_dir)
    if out.is_file():
        raise DataError(f"--out {out} is a file; pass a directory for the shards")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise DataError(f"--out {out} holds files that are not shards; choose another --out")
        if not overwrite:
            raise DataError(f"{out} already holds shards; choose another --out or pass --overwrite")
    files = expand_paths(corpus)
    workers = cfg.workers or _auto_workers(sum(f.stat().st_size for f in files))
    with atomic_dir(out, replace=overwrite) as tmp:
        return _build(files, tokenizer, tmp, cfg, workers, start)


def _hold_out(last: ChunkResult, counts: dict[str, list[int]], cfg: PreprocessConfig) -> ChunkResult:
    """When the hash picked no validation document (a small corpus), hold out the last document
    if it is at most half the rows; otherwise (one document, a corpus with no blank lines, or a
    large last one) the last valid_fraction of the rows, from the last document. Without it the
    run would skip validation and never measure what it learned."""
    if cfg.valid_fraction <= 0 or counts["valid"][1] or len(last.valid):
        return last
    total_docs = counts["train"][0] + last.train_docs
    train_rows = counts["train"][1] + len(last.train)
    if total_docs >= 2 and 2 * last.tail_rows <= train_rows:
        k, docs, what = last.tail_rows, 1, "the last document"
    elif last.tail_rows >= 2:
        k, docs = min(last.tail_rows - 1, max(1, math.ceil(cfg.valid_fraction * train_rows))), 0
        what = (f"the last {k} rows of its only document (documents are separated by blank lines; give "
                "the corpus several for a cleaner split)" if total_docs == 1 else
                f"the last {k} rows of its last document (more than half the corpus)")
    else:
        log.warning("no validation rows: the corpus has a single row; runs on it skip validation")
        return last
    log.warning("valid_fraction=%g picked no document; using %s for validation", cfg.valid_fraction, what)
    words = {} if last.train_words is None else {"train_words": last.train_words[:-k],
                                                 "valid_words": last.train_words[-k:]}
    return dataclasses.replace(last, train=last.train[:-k], valid=last.train[-k:],
                               train_docs=last.train_docs - docs, valid_docs=1, **words)


def _warn_packing(kept: int, tokenized: int, filled: int, rows: int, cfg: PreprocessConfig) -> None:
    """G-EL packing ends a row where it fills and cuts the sentence that overflows it: with long
    lines against short rows that silently drops much of a corpus. Packing that never joins
    documents pads a row per short document (the rows of a CSV/TSV task file): most of each step
    would be padding. `kept` of `tokenized` text tokens are in the rows, `filled` with [CLS]/[SEP]."""
    if tokenized and kept < 0.75 * tokenized:
        log.warning("%.0f%% of the tokenized text was dropped: packing cuts the sentence that overflows each "
                    "%d-token row. Shorter lines (one sentence per line, blank lines between documents) or a "
                    "longer --seq-len keep more", 100 * (1 - kept / tokenized), cfg.seq_len)
    if cfg.packing != "full_sentences" and rows and filled < 0.5 * rows * cfg.seq_len:
        log.warning("%.0f%% of the packed rows is padding: %s packing does not join documents, and these "
                    "average %.0f tokens per row of %d; preprocess.packing=full_sentences packs across documents",
                    100 * (1 - filled / (rows * cfg.seq_len)), cfg.packing, filled / rows, cfg.seq_len)


def _build(files: list[Path], tokenizer: Tokenizer, tmp: Path, cfg: PreprocessConfig,
           workers: int, start: float) -> Manifest:
    tokenizer.save(tmp / "tokenizer")  # data dirs are self-contained
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    writers = {split: ShardWriter(tmp, split, cfg.seq_len, dtype, cfg.rows_per_shard,
                                  pad_id=tokenizer.pad_id, words=cfg.word_segmentation != "none")
               for split in ("train", "valid")}
    docs_read = input_tokens = text_kept = 0
    counts = {"train": [0, 0], "valid": [0, 0]}  # split -> [documents, rows]
    not_text = np.array(sorted({tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}))  # [UNK] is text

    def write(res: ChunkResult) -> None:
        nonlocal input_tokens, text_kept
        input_tokens += res.input_tokens
        for split, rows, words, ndocs in (("train", res.train, res.train_words, res.train_docs),
                                          ("valid", res.valid, res.valid_words, res.valid_docs)):
            text_kept += int(np.isin(rows, not_text, invert=True).sum())  # what packing kept of the text
            writers[split].write(rows, words)
            counts[split][0] += ndocs
            counts[split][1] += len(rows)

    bar = tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True,
               desc="preprocess", file=sys.stderr, mininterval=1.0)
    try:
        def documents() -> Iterator[list[str]]:
            nonlocal docs_read
            for doc in iter_documents(files, cfg.text_field, progress=bar.update):
                docs_read += 1
                yield doc

        last: ChunkResult | None = None  # held back one step for the valid fallback below
        docs = (with_reference_words(documents(), cfg.segmentation_file)
                if cfg.word_segmentation == "file" else ((doc, None) for doc in documents()))
        for res in _packed_chunks(_chunks(docs, CHUNK_LINES), tokenizer, tmp / "tokenizer",
                                  cfg, workers):
            if last is not None and not (len(res.train) or len(res.valid)):
                write(res)  # no rows to hold out from: the fallback stays on the last chunk with rows
                continue
            if last is not None:
                write(last)
            last = res
    finally:
        bar.close()
    if last is None or counts["train"][1] + counts["valid"][1] + len(last.train) + len(last.valid) == 0:
        raise DataError(f"the corpus has no text ({len(files)} files, {docs_read} documents); "
                        "check --corpus and --text-field")
    last = _hold_out(last, counts, cfg)
    write(last)

    splits = {}
    for split, w in writers.items():
        shards = w.close()
        splits[split] = SplitInfo(shards=shards, rows=sum(s.rows for s in shards),
                                  tokens=sum(s.tokens for s in shards), documents=counts[split][0])
    totals = {k: sum(getattr(s, k) for s in splits.values()) for k in ("rows", "tokens", "documents")}
    manifest = Manifest(
        seq_len=cfg.seq_len, dtype=dtype.name, vocab_size=tokenizer.vocab_size,
        tokenizer_fingerprint=tokenizer.fingerprint,
        special_ids={"pad": tokenizer.pad_id, "cls": tokenizer.cls_id, "sep": tokenizer.sep_id,
                     "mask": tokenizer.mask_id, "unk": tokenizer.unk_id},
        packing=cfg.packing, preprocess=dataclasses.asdict(cfg), splits=splits, totals=totals,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_manifest(tmp, manifest)  # last: a data dir with a manifest is complete
    elapsed = time.perf_counter() - start
    tr, va = splits["train"], splits["valid"]
    log.info("split: train %d documents / %d rows, valid %d documents / %d rows (valid_fraction=%g)",
             tr.documents, tr.rows, va.documents, va.rows, cfg.valid_fraction)
    trims = "G-EL packing trims what overflows a row" if cfg.packing == "electra" else f"{cfg.packing} packing"
    log.info("preprocessed %d documents -> %d rows of %d, %d tokens with [CLS]/[SEP]: %d of %d tokens of text "
             "(%.1f%%; %s), %d workers in %.1fs: %.0f tokens/s (%.0f tokenized/s)", totals["documents"],
             totals["rows"], cfg.seq_len, totals["tokens"], text_kept, input_tokens,
             100 * text_kept / max(input_tokens, 1), trims, workers, elapsed,
             totals["tokens"] / max(elapsed, 1e-9), input_tokens / max(elapsed, 1e-9))
    _warn_packing(text_kept, input_tokens, totals["tokens"], totals["rows"], cfg)
    return manifest
