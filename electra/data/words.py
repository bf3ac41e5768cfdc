"""Word boundaries for whole-word and n-gram masking.

Two sources: the vocabulary (`continuation_table`: a WordPiece "##" piece, a byte-level BPE piece
without the leading-space marker "Ġ", a Unigram piece without "▁" continues the word before it),
and, where the vocabulary cannot tell (Chinese, one token per character), a word segmentation of
the text (`jieba` at preprocessing time, or a reference file of space-separated words, as
Chinese-BERT-wwm) aligned to the tokens by character offsets (`token_continuation`).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from electra.errors import DataError

# CJK ideographs as BERT's `_is_chinese_char` (and tokenizer_models.CJK_CHARS) define them
_CJK = re.compile("[\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002A6DF\U0002A700-\U0002B73F"
                  "\U0002B740-\U0002B81F\U0002B820-\U0002CEAF\uF900-\uFAFF\U0002F800-\U0002FA1F]")


def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's table), inverted."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b], extra = chr(256 + extra), extra + 1
    return {c: b for b, c in table.items()}


_BYTES = _byte_decoder()


def _bpe_starts_cjk(piece: str) -> bool:
    """A byte-level piece that begins with a CJK ideograph (or its first bytes: ideographs are
    split off one by one, so such a piece starts one)."""
    data = bytes(_BYTES.get(c, 0) for c in piece)
    width = 3 if 0xE0 <= data[0] <= 0xEF else 4 if 0xF0 <= data[0] <= 0xF4 else 0
    if not width:
        return False
    if len(data) >= width:
        return bool(_CJK.match(data[:width].decode("utf-8", errors="replace")))
    return 0xE4 <= data[0] <= 0xE9 or (width == 4 and len(data) > 1 and 0xA0 <= data[1] <= 0xAF)


def continuation_table(tokens: Sequence[str], kind: str, special: frozenset[int],
                       cjk_chars: bool) -> list[bool]:
    """Per vocabulary id: the piece continues the word before it. Special tokens never do; with
    `cjk_chars` a piece starting with an ideograph starts a word (each character is a word, as
    BERT-Chinese), since Unigram and BPE mark only words that followed a space."""
    out = []
    for i, t in enumerate(tokens):
        if i in special or not t:
            out.append(False)
        elif kind == "wordpiece":
            out.append(t.startswith("##"))
        elif kind == "bpe":
            out.append(not t.startswith("Ġ") and not (cjk_chars and _bpe_starts_cjk(t)))
        else:
            out.append(not t.startswith("▁") and not (cjk_chars and bool(_CJK.match(t))))
    return out


# ----------------------------------------------------------------------------------------------
# a word segmentation of the text


def word_marks(line: str, words: Sequence[str], where: str = "") -> list[bool]:
    """Per non-space character of `line`: True where one of `words` begins. The words, spaces
    dropped, must spell the line's non-space characters (a segmentation of this very line). A run
    of letters and digits outside CJK, with no space in it, stays one word whatever the
    segmenter says (jieba cuts 'Gödel' into 'G', 'ö', 'del'), as the vocabulary's '##' pieces do."""
    marks: list[bool] = []
    for w in words:
        n = sum(1 for c in w if not c.isspace())
        if n:
            marks += [True] + [False] * (n - 1)
    spelled = "".join(c for w in words for c in w if not c.isspace())
    if spelled != "".join(c for c in line if not c.isspace()):
        raise DataError(f"the word segmentation{where} does not spell its corpus line "
                        f"({spelled[:30]!r}... vs {line[:30]!r}...); it must hold the same text "
                        "with spaces between words, one line per corpus line")
    k, prev = 0, ""
    for c in line:
        if c.isspace():
            prev = ""
            continue
        if _in_word(c) and _in_word(prev):
            marks[k] = False
        prev, k = c, k + 1
    return marks


def _in_word(c: str) -> bool:
    """A letter, digit or combining mark (NFD's "o" + U+0308) outside CJK."""
    return bool(c) and (c.isalnum() or unicodedata.category(c).startswith("M")) and not _CJK.match(c)


def split_marks(parts: Sequence[str], marks: list[bool]) -> list[list[bool]]:
    """The `marks` of a line cut into `parts` (its sentences): a cut drops only whitespace, so
    the non-space characters stay in order and each part takes the next slice."""
    out, k = [], 0
    for s in parts:
        n = sum(1 for c in s if not c.isspace())
        out.append(marks[k:k + n])
        k += n
    return out


def token_continuation(line: str, offsets: Sequence[tuple[int, int]], marks: list[bool]) -> list[int]:
    """Per token (character `offsets` into `line`): 1 where it continues the word before it, that
    is, its first non-space character is not where a word begins, or is the same character as
    the previous token's (byte-level pieces of one ideograph), or the previous token is a bare
    space marker ("▁", "Ġ": it opens the word that follows, as in the vocabulary table)."""
    index, k = [], 0
    for c in line:  # character -> its index among the non-space characters (-1: a space)
        index.append(-1 if c.isspace() else k)
        k += not c.isspace()
    out, prev, blank = [], -1, False
    for start, end in offsets:
        first = next((index[i] for i in range(start, min(end, len(line))) if index[i] >= 0), -1)
        out.append(int(first >= 0 and (first == prev or not marks[first] or blank)))
        prev, blank = first, first < 0
    return out


def jieba_segmenter() -> Callable[[str], list[str]]:
    """jieba's default (accurate mode, HMM for unknown words) cut of a line into words."""
    try:
        import jieba
    except ImportError as e:
        raise DataError("preprocess.word_segmentation=jieba needs the jieba package: "
                        "pip install 'electra[zh]'") from e
    jieba.setLogLevel(logging.WARNING)
    return lambda line: list(jieba.cut(line))


def reference_lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, words) of each non-blank line of a reference segmentation file, in order;
    they pair up with the corpus lines `iter_documents` yields (blank lines skipped on both sides)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"preprocess.segmentation_file={p} does not exist; pass the segmented text "
                        "(one line per corpus line, words separated by spaces)")
    with open(p, encoding="utf-8-sig") as f:  # as the corpus is read: a byte-order mark is not a word
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line.split()


def with_reference_words(docs: Iterable[list[str]], path: str | Path
                         ) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Each document with the reference file's words for each of its lines, checked here so a
    misaligned file fails naming its line."""
    refs = reference_lines(path)
    for doc in docs:
        words = []
        for line in doc:
            number, ref = next(refs, (None, None))
            if ref is None:
                raise DataError(f"preprocess.segmentation_file={path} has fewer lines than the "
                                "corpus; it must hold one line per corpus line")
            word_marks(line, ref, f" on line {number} of {path}")
            words.append(ref)
        yield doc, words
    if next(refs, None) is not None:
        raise DataError(f"preprocess.segmentation_file={path} has more lines than the corpus; it "
                        "must hold one line per corpus line")
