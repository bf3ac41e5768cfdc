"""Tokenizer training (`electra tokenizer train --kind wordpiece|bpe|unigram`) and the wrapper.

The wrapper sits over a Hugging Face `tokenizers.Tokenizer` and is the one place that knows the
special tokens, the casing and the `fingerprint` used to check that shards, checkpoints and a
tokenizer belong together. Saved directories load unchanged with `transformers`
(`AutoTokenizer.from_pretrained`), and BERT/ELECTRA model dirs with only `vocab.txt` load too. The
three pipelines themselves are in `tokenizer_models.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, processors

from electra.config import TokenizerConfig
from electra.data.fast_wordpiece import FastWordPiece, encode_rust
from electra.data.tokenizer_models import (
    CJK_MARK,
    MODEL_KINDS,
    ROLES,
    SPECIALS,
    build_pipeline,
    canonical_model,
    canonical_wordpiece_vocab,
    new_model,
    new_trainer,
)
from electra.data.words import continuation_table
from electra.errors import DataError, TokenizerError
from electra.files import atomic_dir, write_text_atomic

log = logging.getLogger(__name__)

PAD, UNK, CLS, SEP, MASK = SPECIALS["wordpiece"]
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # training puts them at ids 0..4 in this order
_canonical_vocab = canonical_wordpiece_vocab  # the name tests and notes use
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
MODEL_MAX_LENGTH = 512
_BATCH_LINES = 1000  # lines per batch handed to the trainer; batches are faster than single lines


class Tokenizer:
    """A WordPiece, byte-level BPE or Unigram tokenizer with ELECTRA's special tokens (pad, unk,
    cls, sep, mask; spelled [CLS] or <s> etc. as the kind has them)."""

    def __init__(self, tok: HFTokenizer, *, lowercase: bool, strip_accents: bool | None) -> None:
        self.tok = tok
        self.lowercase = lowercase
        self.strip_accents = strip_accents  # None: follow `lowercase`, as BERT
        self._vocab = tok.get_vocab(with_added_tokens=True)
        spec = json.loads(tok.to_str())
        self.kind = MODEL_KINDS.get((spec.get("model") or {}).get("type"), "wordpiece")
        norm, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
        # a Unicode form before BERT's normalizer (tokenizer.unicode): [form, BertNormalizer]
        self.unicode_form = (norm["normalizers"][0]["type"].lower()
                             if self.kind == "wordpiece" and norm.get("type") == "Sequence" else None)
        if self.unicode_form:
            norm = norm["normalizers"][-1]
        self.cjk_chars = (bool(norm.get("handle_chinese_chars")) if self.kind == "wordpiece"
                          else CJK_MARK in json.dumps(pre))  # Unigram always has another Split
        # role -> spelling: the kind's own first, then any other kind's (a BPE vocabulary with [CLS])
        self.specials = {role: next((s[i] for s in (SPECIALS[self.kind], *SPECIALS.values())
                                     if s[i] in self._vocab), SPECIALS[self.kind][i])
                         for i, role in enumerate(ROLES)}
        self._fast: FastWordPiece | None | bool = False  # built on first encode_lines

    # -- loading and saving ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load `tokenizer.json`, or build the BERT tokenizer from `vocab.txt` (+ casing from
        `tokenizer_config.json`) for model dirs that ship only the vocabulary."""
        p = Path(path)
        if not p.exists():
            raise TokenizerError(f"tokenizer {p} does not exist; train one with `electra tokenizer "
                                 "train` or pass a directory holding tokenizer.json or vocab.txt")
        if p.is_dir():
            if (p / "tokenizer.json").is_file():
                return cls._from_json(p / "tokenizer.json")
            if (p / "vocab.txt").is_file():
                return cls._from_vocab(p / "vocab.txt")
            raise TokenizerError(f"{p} holds neither tokenizer.json nor vocab.txt; pass a tokenizer "
                                 "directory (from `electra tokenizer train` or a BERT/ELECTRA model)")
        if p.name.endswith(".txt"):
            return cls._from_vocab(p)
        return cls._from_json(p)

    @classmethod
    def _from_json(cls, file: Path) -> Tokenizer:
        try:
            tok = HFTokenizer.from_file(str(file))
        except Exception as e:  # the rust side raises plain Exceptions for any parse problem
            raise TokenizerError(f"{file} is not a valid tokenizer.json ({_first_line(e)}); "
                                 "re-create it with `electra tokenizer train`") from e
        norm = json.loads(tok.to_str()).get("normalizer") or {}
        if norm.get("type") == "Sequence":  # a Unicode form before BERT's normalizer: read the latter
            norm = next((n for n in norm.get("normalizers", []) if n.get("type") == "BertNormalizer"), norm)
        if norm.get("type") == "BertNormalizer":
            lowercase, strip = bool(norm.get("lowercase")), norm.get("strip_accents")
        else:
            lowercase, strip = "Lowercase" in json.dumps(norm), "StripAccents" in json.dumps(norm)
        return cls(tok, lowercase=lowercase, strip_accents=strip)

    @classmethod
    def _from_vocab(cls, file: Path) -> Tokenizer:
        cfg = _read_json(file.parent / "tokenizer_config.json") or {}
        lowercase = bool(cfg.get("do_lower_case", True))
        strip = cfg.get("strip_accents")
        try:
            vocab = _read_vocab(file)
        except UnicodeDecodeError as e:
            raise TokenizerError(f"{file} is not a UTF-8 vocabulary file; pass a BERT-style "
                                 "vocab.txt (one token per line)") from e
        if UNK not in vocab:
            raise TokenizerError(f"{file} has no {UNK} token; pass a BERT-style vocab.txt")
        tok = build_pipeline("wordpiece", models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##"),
                             lowercase=lowercase, strip_accents=strip,
                             cjk_chars=bool(cfg.get("tokenize_chinese_chars", True)))
        tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in vocab])
        out = cls(tok, lowercase=lowercase, strip_accents=strip)
        _set_post_processor(out)
        return out

    def save(self, out_dir: str | Path) -> Path:
        """Write tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json."""
        return _write_dir(Path(out_dir), self)

    # -- identity -------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return max(self._vocab.values(), default=-1) + 1

    def _special(self, role: str) -> int:
        token = self.specials[role]
        if token not in self._vocab:
            raise TokenizerError(f"the tokenizer has no {token} token; ELECTRA needs "
                                 f"{', '.join(self.specials.values())} in the vocabulary")
        return self._vocab[token]

    @property
    def pad_id(self) -> int:
        return self._special("pad")

    @property
    def unk_id(self) -> int:
        return self._special("unk")

    @property
    def cls_id(self) -> int:
        return self._special("cls")

    @property
    def sep_id(self) -> int:
        return self._special("sep")

    @property
    def mask_id(self) -> int:
        return self._special("mask")

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self._special(r) for r in ROLES)

    def vocab_tokens(self) -> list[str]:
        """All tokens in id order (what vocab.txt holds)."""
        tokens = [""] * self.vocab_size
        for t, i in self._vocab.items():
            tokens[i] = t
        return tokens

    @property
    def fingerprint(self) -> str:
        """sha256 of the vocabulary (id order) and the normalizer settings: equal exactly when two
        tokenizers map text to the same ids, however they were stored. BPE and Unigram hash their
        whole pipeline (merges and scores decide the ids too)."""
        h = hashlib.sha256()
        if self.kind != "wordpiece":
            spec = json.loads(self.tok.to_str())
            h.update(json.dumps({k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "model")},
                                sort_keys=True).encode())
            return h.hexdigest()
        strip = self.lowercase if self.strip_accents is None else self.strip_accents
        settings = {"model": "wordpiece", "lowercase": self.lowercase, "strip_accents": bool(strip)}
        if not self.cjk_chars:
            settings["cjk"] = "none"  # only when set: fingerprints of earlier tokenizers stand
        if self.unicode_form:
            settings["unicode"] = self.unicode_form
        h.update(json.dumps(settings, sort_keys=True).encode())
        for t in self.vocab_tokens():
            h.update(b"\n" + t.encode())
        return h.hexdigest()

    # -- encoding -------------------------------------------------------------------------------

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        """Token ids of each line, without special tokens (the pre-training packer adds them).

        A literal "[SEP]" or "[MASK]" in raw text is tokenized as text, as G-EL's BERT tokenizer
        does, so corpus text can never inject special ids into the rows."""
        if self._fast is False:
            self._fast = (FastWordPiece.for_tokenizer(self.tok, self.lowercase)
                          if self.kind == "wordpiece" else None)
        if self._fast is None:
            return encode_rust(self.tok, lines)
        return self._fast.encode_lines(lines)  # same ids, ~3x faster

    def encode(self, text: str, pair: str | None = None) -> dict[str, list[int]]:
        """`[CLS] text [SEP] (pair [SEP])` ids and segment ids, as BERT inputs."""
        enc = self.tok.encode(text, pair, add_special_tokens=True)
        return {"input_ids": enc.ids, "token_type_ids": enc.type_ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tok.id_to_token(int(i)) or self.specials["unk"] for i in ids]

    def encode_with_offsets(self, lines: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """`encode_lines` ids with each token's character span in its line, to align tokens with
        a word segmentation of the text."""
        self.tok.encode_special_tokens = True  # "[SEP]" in raw text is text, as encode_lines
        try:
            encs = self.tok.encode_batch(lines, add_special_tokens=False)
        finally:
            self.tok.encode_special_tokens = False
        return [(e.ids, e.offsets) for e in encs]

    def word_continuation_table(self) -> list[bool]:
        """Per id: the token continues the word before it ("##" WordPiece pieces, BPE pieces
        without "Ġ", Unigram pieces without "▁"; never a special token), for whole-word masking."""
        return continuation_table(self.vocab_tokens(), self.kind, self.special_ids, self.cjk_chars)

    def __repr__(self) -> str:
        return (f"Tokenizer(kind={self.kind}, vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"fingerprint={self.fingerprint[:12]})")


def train_tokenizer(documents: Iterable[list[str]], out_dir: str | Path, cfg: TokenizerConfig, *,
                    overwrite: bool = False) -> Tokenizer:
    """Train a `cfg.kind` vocabulary (WordPiece, byte-level BPE or Unigram) on `documents` (lists
    of lines, e.g. from `data.corpus.iter_documents`) and save it to `out_dir` (atomically).
    Documents stream in batches, so memory stays bounded whatever the corpus size. A tokenizer
    already in `out_dir` is replaced only with `overwrite` (shards and models made with it would
    no longer match)."""
    out = Path(out_dir)
    _check_target(out)
    if _is_tokenizer_dir(out) and not overwrite:
        raise TokenizerError(f"{out} already holds a tokenizer; pass --force to replace it or "
                             "choose another --out")
    start = time.perf_counter()
    options = {"lowercase": cfg.lowercase, "strip_accents": cfg.strip_accents, "cjk_chars": cfg.cjk == "chars",
               "unicode": cfg.unicode}
    tok = build_pipeline(cfg.kind, new_model(cfg.kind), **options)

    lines = 0
    sample: list[str] = []  # the first batch: checked for unknown characters after training

    def batches() -> Iterator[list[str]]:
        nonlocal lines, sample
        batch: list[str] = []
        for doc in documents:
            batch.extend(doc)
            if len(batch) >= _BATCH_LINES:
                lines += len(batch)
                sample = sample or batch
                yield batch
                batch = []
        if batch:
            lines += len(batch)
            sample = sample or batch
            yield batch

    tok.train_from_iterator(batches(), trainer=new_trainer(cfg.kind, cfg))
    if lines == 0:
        raise DataError("the corpus has no text; check --corpus and --text-field")
    # a fresh pipeline around the canonical model: replacing the model keeps trainer state behind
    tok = build_pipeline(cfg.kind, canonical_model(cfg.kind, json.loads(tok.to_str())["model"]), **options)
    tok.add_special_tokens(list(SPECIALS[cfg.kind]))
    out_tok = Tokenizer(tok, lowercase=cfg.lowercase, strip_accents=cfg.strip_accents)
    _set_post_processor(out_tok)
    if cfg.kind == "wordpiece":
        _warn_unknown(out_tok, sample, cfg.limit_alphabet)
    out_tok.save(out)
    log.info("trained %s tokenizer: vocab %d (asked %d), lowercase=%s, %.1fs -> %s", cfg.kind,
             out_tok.vocab_size, cfg.vocab_size, cfg.lowercase, time.perf_counter() - start, out)
    return out_tok


# ----------------------------------------------------------------------------------------------
# construction and files


def _set_post_processor(tok: Tokenizer) -> None:
    """BERT's layout for every kind (`cls A sep B sep`, token types 0/1): the packer, the loader's
    token types and fine-tuning all read rows so."""
    cls, sep = tok.specials["cls"], tok.specials["sep"]
    tok.tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.cls_id), (sep, tok.sep_id)])


def _read_vocab(file: Path) -> dict[str, int]:
    # the id is the line number, as BERT's load_vocab (a repeated token keeps its last line)
    with open(file, encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f)}


def _read_json(file: Path) -> dict[str, Any] | None:
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{file} is not valid JSON ({e}); fix or delete it") from e
    return data if isinstance(data, dict) else None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _is_tokenizer_dir(p: Path) -> bool:
    return (p / "tokenizer.json").is_file() or (p / "vocab.txt").is_file()


def _warn_unknown(tok: Tokenizer, sample: list[str], limit_alphabet: int) -> None:
    """WordPiece keeps `limit_alphabet` characters: enough for alphabetic scripts, too few for
    Chinese, where every ideograph it drops becomes [UNK] (12% of a 2,759-character text)."""
    ids = [i for line in tok.encode_lines(sample) for i in line]
    unknown = sum(i == tok.unk_id for i in ids) / max(len(ids), 1)
    if unknown > 0.01:
        log.warning("%.1f%% of the tokens of the corpus's first %d lines are %s: the vocabulary keeps "
                    "tokenizer.limit_alphabet=%d characters; for Chinese or other large scripts raise it "
                    "(--limit-alphabet, e.g. 8000)", 100 * unknown, len(sample), tok.specials["unk"],
                    limit_alphabet)


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TokenizerError(f"{out} is a file; choose a directory for the tokenizer")
    if out.is_dir() and any(out.iterdir()) and not _is_tokenizer_dir(out):
        raise TokenizerError(f"{out} is not empty and holds no tokenizer; choose another "
                             "directory or delete it")


def _hf_files(tok: Tokenizer) -> dict[str, str]:
    specials = {f"{role}_token": tok.specials[role] for role in ("unk", "sep", "pad", "cls", "mask")}
    if tok.kind == "wordpiece" and not tok.unicode_form:
        config = {"tokenizer_class": "ElectraTokenizer", "do_lower_case": tok.lowercase,
                  "strip_accents": tok.strip_accents, "tokenize_chinese_chars": tok.cjk_chars}
    else:  # tokenizer.json is the whole definition; the generic fast class loads it as it is
        config = {"tokenizer_class": "PreTrainedTokenizerFast",
                  "model_input_names": ["input_ids", "token_type_ids", "attention_mask"]}
    config |= {"model_max_length": MODEL_MAX_LENGTH, **specials}
    files = {
        "tokenizer.json": tok.tok.to_str(pretty=True),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        "special_tokens_map.json": json.dumps(specials, indent=2) + "\n",
    }
    if tok.kind == "wordpiece":  # a BPE or Unigram vocabulary alone would load as WordPiece
        files["vocab.txt"] = "".join(t + "\n" for t in tok.vocab_tokens())
    return files


def _write_dir(out: Path, tok: Tokenizer) -> Path:
    """Write to a temp dir, then rename into place; into an existing tokenizer dir (e.g. a model
    dir with other files) each file is replaced atomically instead."""
    _check_target(out)
    files = _hf_files(tok)
    if out.is_dir() and any(out.iterdir()):
        for name, text in files.items():
            write_text_atomic(out / name, text)
        for name in set(TOKENIZER_FILES) - set(files):  # e.g. a WordPiece vocab.txt beside a new BPE
            (out / name).unlink(missing_ok=True)
        return out
    with atomic_dir(out) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return out
