"""Packed rows on disk: raw `[rows, seq_len]` shards read by np.memmap, plus `manifest.json`.

A data dir holds `{split}_{k:05d}.bin` (uint16, or uint32 for vocabularies over 65,536), the
tokenizer it was built with (`tokenizer/`) and `manifest.json` (seq_len, dtype, tokenizer
fingerprint, special ids, per-shard rows/tokens/sha256). Readers check the manifest so a stale or
truncated shard fails loudly instead of training on garbage. Data preprocessed with a word
segmentation also holds `{split}_{k:05d}.words.bin` per shard: per token one bit, "continues
the previous word" (np.packbits along each row), listed with its own sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import DataError, TokenizerError, first_line
from electra.files import sha256_file, write_text_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "valid")


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


@dataclass(kw_only=True)
class ShardInfo:
    file: str  # name relative to the data dir
    rows: int
    tokens: int  # non-pad tokens
    bytes: int
    sha256: str
    words: str | None = None  # the parallel word-bits file, when preprocessed with a segmentation
    words_sha256: str | None = None


@dataclass(kw_only=True)
class SplitInfo:
    shards: list[ShardInfo] = field(default_factory=list)
    rows: int = 0
    tokens: int = 0
    documents: int = 0


@dataclass(kw_only=True)
class Manifest:
    version: int = FORMAT_VERSION
    seq_len: int
    dtype: str  # "uint16" | "uint32"
    vocab_size: int
    tokenizer_fingerprint: str
    special_ids: dict[str, int]  # pad, cls, sep, mask, unk
    packing: str
    preprocess: dict[str, Any]
    splits: dict[str, SplitInfo]
    totals: dict[str, int]  # rows, tokens, documents
    created: str

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for split in data["splits"].values():  # no word-bit keys in manifests without them
            for shard in split["shards"]:
                if shard["words"] is None:
                    del shard["words"], shard["words_sha256"]
        return data

    @property
    def has_words(self) -> bool:
        """The shards carry per-token word bits (preprocess.word_segmentation)."""
        shards = [s for split in self.splits.values() for s in split.shards]
        return bool(shards) and all(s.words is not None for s in shards)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        splits = {name: SplitInfo(shards=[ShardInfo(**s) for s in info["shards"]],
                                  **{k: v for k, v in info.items() if k != "shards"})
                  for name, info in data["splits"].items()}
        return cls(**{**data, "splits": splits})

    def digest(self) -> str:
        """What the rows are, whatever directory holds them: a digest of every shard's sha256 in
        split order (a resumed run checks it is given the shards it trained on)."""
        listed = [[name, [s.sha256 for s in split.shards]] for name, split in sorted(self.splits.items())]
        return hashlib.sha256(json.dumps(listed).encode()).hexdigest()

    def check_tokenizer(self, fingerprint: str, data_dir: str | Path, tokenizer: str, fix: str) -> None:
        """The one check that shards and a tokenizer (by `Tokenizer.fingerprint`) belong together."""
        if fingerprint != self.tokenizer_fingerprint:
            raise TokenizerError(f"the shards in {data_dir} were made with a different tokenizer "
                                 f"({self.tokenizer_fingerprint[:12]}) than {tokenizer} "
                                 f"({fingerprint[:12]}); {fix}")


def write_manifest(data_dir: str | Path, manifest: Manifest) -> Path:
    return write_text_atomic(Path(data_dir) / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(data_dir: str | Path) -> Manifest:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no {MANIFEST} in {data_dir}; run `electra preprocess` first")
    try:
        m = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
        _check(m)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # incl. JSON and UTF-8 errors
        raise DataError(f"{MANIFEST} in {data_dir} is corrupt ({type(e).__name__}: {first_line(e)}); "
                        "re-run electra preprocess") from e
    if m.version != FORMAT_VERSION:
        raise DataError(f"{MANIFEST} in {data_dir} has format version {m.version}, this electra "
                        f"reads {FORMAT_VERSION}; re-run electra preprocess")
    return m


def _check(m: Manifest) -> None:
    """The types and ranges the readers rely on, so a damaged or hand-edited manifest fails here
    rather than as a wrong shape or a stray file read later."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(what)

    need(all(type(v) is int for v in (m.version, m.seq_len, m.vocab_size)) and m.seq_len >= 1,
         "version, seq_len and vocab_size must be integers and seq_len >= 1")
    need(m.dtype in ("uint16", "uint32"), f"dtype {m.dtype!r} is not uint16 or uint32")
    need(isinstance(m.tokenizer_fingerprint, str), "tokenizer_fingerprint is not a string")
    need(isinstance(m.special_ids, dict) and all(type(v) is int for v in m.special_ids.values()),
         "special_ids is not a map of names to token ids")
    need(isinstance(m.totals, dict), "totals is not a map")
    for split in m.splits.values():
        for s in split.shards:
            need(isinstance(s.file, str) and s.file == Path(s.file).name and s.file not in ("", ".", ".."),
                 f"shard file {s.file!r} is not a file name inside the data directory")
            need(type(s.rows) is int and s.rows >= 1 and isinstance(s.sha256, str),
                 f"shard {s.file}: rows is not an integer >= 1 or sha256 is not a string")
            need(s.words is None or (isinstance(s.words, str) and s.words == Path(s.words).name
                                     and s.words not in ("", ".", "..") and isinstance(s.words_sha256, str)),
                 f"shard {s.file}: words {s.words!r} is not a file name with a sha256")


def words_bytes(rows: int, seq_len: int) -> int:
    return rows * ((seq_len + 7) // 8)


class ShardWriter:
    """Appends `[N, seq_len]` rows to `{split}_{k:05d}.bin` files of `rows_per_shard` rows each,
    hashing as it goes; memory use is one write call's rows. With `words`, each write also takes
    the rows' word bits ([N, seq_len] bool) for the parallel `.words.bin` file."""

    def __init__(self, out_dir: str | Path, split: str, seq_len: int, dtype: str | np.dtype,
                 rows_per_shard: int, *, pad_id: int = 0, words: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.split, self.seq_len, self.dtype = split, seq_len, np.dtype(dtype)
        self.rows_per_shard, self.pad_id, self.words = rows_per_shard, pad_id, words
        self.shards: list[ShardInfo] = []
        self._f = self._fw = None
        self._hash, self._whash = hashlib.sha256(), hashlib.sha256()
        self._rows = self._tokens = 0

    def write(self, rows: np.ndarray, words: np.ndarray | None = None) -> None:
        if rows.ndim != 2 or rows.shape[1] != self.seq_len:
            raise ValueError(f"rows must be [N, {self.seq_len}], got {list(rows.shape)}")
        if self.words != (words is not None) or (words is not None and words.shape != rows.shape):
            raise ValueError("word bits must come with every write (and match the rows) exactly "
                             "when the writer was made with words=True")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        start = 0
        while start < len(rows):
            if self._f is None:
                self._open()
            take = min(len(rows) - start, self.rows_per_shard - self._rows)
            part = rows[start:start + take]
            data = part.tobytes()
            self._f.write(data)
            self._hash.update(data)
            if words is not None:
                bits = np.packbits(words[start:start + take].astype(bool), axis=1).tobytes()
                self._fw.write(bits)
                self._whash.update(bits)
            self._rows += take
            self._tokens += int(np.count_nonzero(part != self.pad_id))
            start += take
            if self._rows == self.rows_per_shard:
                self._finish()

    def close(self) -> list[ShardInfo]:
        if self._f is not None:
            self._finish()
        return self.shards

    def _open(self) -> None:
        name = f"{self.split}_{len(self.shards):05d}"
        self._f = open(self.out_dir / f"{name}.bin", "wb")  # closed in _finish
        self._fw = open(self.out_dir / f"{name}.words.bin", "wb") if self.words else None
        self._hash, self._whash = hashlib.sha256(), hashlib.sha256()
        self._rows = self._tokens = 0

    def _finish(self) -> None:
        assert self._f is not None
        self._f.close()
        words = None
        if self._fw is not None:
            self._fw.close()
            words = Path(self._fw.name).name
        self.shards.append(ShardInfo(
            file=Path(self._f.name).name, rows=self._rows, tokens=self._tokens,
            bytes=self._rows * self.seq_len * self.dtype.itemsize, sha256=self._hash.hexdigest(),
            words=words, words_sha256=self._whash.hexdigest() if words else None))
        self._f = self._fw = None


class ShardReader:
    """All shards of one split as one indexable table of rows (memory-mapped, read-only)."""

    def __init__(self, data_dir: str | Path, split: str, manifest: Manifest | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.manifest = manifest or read_manifest(data_dir)
        if split not in self.manifest.splits:
            raise DataError(f"{data_dir} has no {split!r} split (has: "
                            f"{', '.join(self.manifest.splits)}); re-run electra preprocess")
        self.split = split
        self.seq_len = self.manifest.seq_len
        self.dtype = np.dtype(self.manifest.dtype)
        self.shards = self.manifest.splits[split].shards
        self._maps: list[np.memmap] = []
        self._words: list[np.memmap] = []
        self.has_words = bool(self.shards) and all(s.words is not None for s in self.shards)
        for s in self.shards:
            self._maps.append(self._open(s.file, s.rows * self.seq_len * self.dtype.itemsize,
                                         self.dtype, (s.rows, self.seq_len)))
            if self.has_words:
                self._words.append(self._open(s.words, words_bytes(s.rows, self.seq_len), np.uint8,
                                              (s.rows, (self.seq_len + 7) // 8)))
        # starts[k] = global index of shard k's first row; the last entry is the total
        self._starts = np.cumsum([0] + [s.rows for s in self.shards], dtype=np.int64)

    def _open(self, file: str, expected: int, dtype: np.dtype, shape: tuple[int, int]) -> np.memmap:
        path = self.data_dir / file
        if not path.is_file():
            raise DataError(f"shard {path} is missing; re-run electra preprocess")
        size = path.stat().st_size
        if size != expected:
            what = "truncated" if size < expected else "longer than its manifest says"
            raise DataError(f"shard {path} is {what} ({size} bytes, expected {expected}); "
                            "re-run electra preprocess")
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at global `indices` (any order, repeats allowed) -> int64 [len(indices), seq_len]."""
        return self._gather(self._maps, indices, np.int64, self.seq_len)

    def take_words(self, indices: np.ndarray) -> np.ndarray:
        """The rows' word bits -> bool [len(indices), seq_len], True where a token continues the
        word before it (only when `has_words`)."""
        if not self.has_words:
            raise DataError(f"the shards in {self.data_dir} hold no word bits; re-run electra "
                            "preprocess with preprocess.word_segmentation=jieba (or =file)")
        packed = self._gather(self._words, indices, np.uint8, (self.seq_len + 7) // 8)
        return np.unpackbits(packed, axis=1, count=self.seq_len).astype(bool)

    def _gather(self, maps: list[np.memmap], indices: np.ndarray, dtype: type, width: int) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range [0, {len(self)})")
        out = np.empty((idx.size, width), dtype=dtype)
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(shard):
            sel = np.nonzero(shard == k)[0]
            out[sel] = maps[k][idx[sel] - self._starts[k]]
        return out

    def verify(self) -> None:
        """Re-hash every shard against the manifest (slow: reads all bytes)."""
        for s in self.shards:
            self.verify_one(s)

    def verify_one(self, shard: ShardInfo) -> None:
        for file, sha in ((shard.file, shard.sha256), (shard.words, shard.words_sha256)):
            path = self.data_dir / file if file else None
            if path is not None and sha256_file(path) != sha:
                raise DataError(f"shard {path} does not match its checksum in {MANIFEST} (changed "
                                "or corrupt); re-run electra preprocess")
