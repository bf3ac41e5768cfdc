"""Exact, faster encoding of raw text lines for BERT WordPiece tokenizers (pre-training data).

The rust pipeline spends most of its time normalizing and tracking offsets we never use. BERT's
normalizer is a per-character map, so we ask the rust normalizer once per distinct character and
apply the map with `str.translate`; pre-tokenizing is then a regex, and WordPiece runs once per
distinct word (words repeat: Zipf). Output is identical to the rust pipeline (tests check it).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from itertools import chain
from typing import Any

from tokenizers import Tokenizer as HFTokenizer

# BertPreTokenizer once text is normalized: runs of non-space, non-punctuation characters, and each
# ASCII punctuation character alone (BERT counts every ASCII symbol !-/ :-@ [-` {-~ as punctuation;
# non-ASCII punctuation is padded with spaces by the character table)
_WORD = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # what BertNormalizer deletes in ASCII
_SLOW = "\x00"  # table output for characters whose normalization is not per-character; the
#                 normalizer deletes NUL, so it never appears otherwise
_WORD_CACHE_SIZE = 200_000


def encode_rust(tok: HFTokenizer, lines: list[str]) -> list[list[int]]:
    """The reference: rust pipeline, no special tokens added, "[SEP]" in raw text is text."""
    tok.encode_special_tokens = True
    try:
        encs = tok.encode_batch_fast(lines, add_special_tokens=False)
    finally:
        tok.encode_special_tokens = False
    return [e.ids for e in encs]


class _Memo(dict):
    """A dict that computes missing entries; `str.translate` and `map` use it at C speed."""

    def __init__(self, compute: Callable[[Any], Any], max_size: int | None = None) -> None:
        super().__init__()
        self.compute, self.max_size = compute, max_size

    def __missing__(self, key: Any) -> Any:
        if self.max_size is not None and len(self) >= self.max_size:
            self.clear()  # bounded memory; frequent keys come straight back
        value = self[key] = self.compute(key)
        return value


class FastWordPiece:
    """`encode_lines` with exactly the ids of `encode_rust(tok, lines)`, for BERT tokenizers."""

    def __init__(self, tok: HFTokenizer, lowercase: bool) -> None:
        self.tok, self.lowercase = tok, lowercase
        self.model, self.normalizer, self.pre = tok.model, tok.normalizer, tok.pre_tokenizer
        self.chars = _Memo(lambda cp: self._char(chr(cp)))  # code point -> normalized text
        self.words = _Memo(lambda w: [t.id for t in self.model.tokenize(w)], _WORD_CACHE_SIZE)

    @classmethod
    def for_tokenizer(cls, tok: HFTokenizer, lowercase: bool) -> FastWordPiece | None:
        """None unless `tok` is a plain BERT pipeline (the fast path's precondition)."""
        spec = json.loads(tok.to_str())
        norm = spec.get("normalizer") or {}
        ok = (norm.get("type") == "BertNormalizer" and norm.get("clean_text")
              and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
              and (spec.get("model") or {}).get("type") == "WordPiece"
              and all(t.get("special") for t in spec.get("added_tokens") or []))
        return cls(tok, lowercase) if ok else None

    def _char(self, c: str) -> str:
        # marks can reorder under NFD with their neighbours: not per-character, leave to rust
        if unicodedata.category(c).startswith("M"):
            return _SLOW
        out = []
        for ch in self.normalizer.normalize_str(c):
            if ch == " " or ch.isascii():
                out.append(ch)  # whitespace was mapped to " "; ASCII punctuation is in _WORD
                continue
            if ch.isspace():
                return _SLOW  # `\s` in _WORD would split where rust does not
            pieces = len(self.pre.pre_tokenize_str(f"a{ch}a"))
            if pieces == 1:
                out.append(ch)  # part of a word
            elif pieces == 3:
                out.append(f" {ch} ")  # punctuation: a word of its own
            else:
                return _SLOW
        return "".join(out)

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        out: list[list[int]] = []
        slow_idx: list[int] = []
        chars, lower, findall, word_ids = self.chars, self.lowercase, _WORD.findall, self.words.__getitem__
        for i, line in enumerate(lines):
            if line.isascii():
                # for clean ASCII the table is str.lower() (or nothing), which is faster
                text = line.translate(chars) if _CONTROL.search(line) else (
                    line.lower() if lower else line)
            else:
                text = line.translate(chars)
                if _SLOW in text:
                    slow_idx.append(i)
                    out.append([])
                    continue
            out.append(list(chain.from_iterable(map(word_ids, findall(text)))))
        if slow_idx:
            for i, ids in zip(slow_idx, encode_rust(self.tok, [lines[i] for i in slow_idx]), strict=True):
                out[i] = ids
        return out
