"""Shard files and manifest.json: round trip, random access, corruption detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from electra.data.shards import (
    Manifest,
    ShardReader,
    ShardWriter,
    SplitInfo,
    dtype_for_vocab,
    read_manifest,
    write_manifest,
)
from electra.errors import DataError, TokenizerError

SEQ = 8


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.integers(5, 1000, size=(n, SEQ))
    rows[:, -2:] = 0  # padding
    return rows


def _write(tmp_path: Path, rows: np.ndarray, rows_per_shard: int = 4) -> Manifest:
    w = ShardWriter(tmp_path, "train", SEQ, "uint16", rows_per_shard, pad_id=0)
    for part in np.array_split(rows, 3):  # several write calls crossing shard boundaries
        w.write(part)
    shards = w.close()
    split = SplitInfo(shards=shards, rows=sum(s.rows for s in shards),
                      tokens=sum(s.tokens for s in shards), documents=3)
    m = Manifest(seq_len=SEQ, dtype="uint16", vocab_size=1000, tokenizer_fingerprint="f" * 64,
                 special_ids={"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}, packing="electra",
                 preprocess={"seq_len": SEQ}, splits={"train": split, "valid": SplitInfo()},
                 totals={"rows": split.rows, "tokens": split.tokens, "documents": 3},
                 created="2026-01-01T00:00:00+00:00")
    write_manifest(tmp_path, m)
    return m


def test_round_trip_and_take(tmp_path: Path) -> None:
    rows = _rows(11)
    m = _write(tmp_path, rows)
    assert [s.rows for s in m.splits["train"].shards] == [4, 4, 3]
    assert [s.file for s in m.splits["train"].shards] == ["train_00000.bin", "train_00001.bin",
                                                          "train_00002.bin"]
    assert m.splits["train"].tokens == 11 * (SEQ - 2)
    assert read_manifest(tmp_path) == m
    r = ShardReader(tmp_path, "train")
    assert len(r) == 11 and r.seq_len == SEQ
    idx = np.array([10, 0, 5, 5, 3, 7, 4])
    got = r.take(idx)
    assert got.dtype == np.int64 and got.shape == (7, SEQ)
    np.testing.assert_array_equal(got, rows[idx])
    np.testing.assert_array_equal(r.take(np.arange(11)), rows)
    assert r.take(np.array([], dtype=np.int64)).shape == (0, SEQ)
    with pytest.raises(IndexError):
        r.take(np.array([11]))
    r.verify()
    assert len(ShardReader(tmp_path, "valid")) == 0


def test_truncated_shard(tmp_path: Path) -> None:
    _write(tmp_path, _rows(11))
    f = tmp_path / "train_00001.bin"
    f.write_bytes(f.read_bytes()[:-3])
    with pytest.raises(DataError, match=r"shard .*train_00001.bin is truncated \(61 bytes, expected 64\)"):
        ShardReader(tmp_path, "train")


def test_shard_longer_than_its_manifest_is_not_called_truncated(tmp_path: Path) -> None:
    _write(tmp_path, _rows(11))
    f = tmp_path / "train_00001.bin"
    f.write_bytes(f.read_bytes() + b"\0\0\0")  # e.g. appended to by another tool
    with pytest.raises(DataError, match=r"train_00001.bin is longer than its manifest says \(67 bytes, "
                                        r"expected 64\); re-run electra preprocess") as e:
        ShardReader(tmp_path, "train")
    assert "truncated" not in str(e.value)


def test_checksum_mismatch(tmp_path: Path) -> None:
    _write(tmp_path, _rows(11))
    f = tmp_path / "train_00002.bin"
    data = bytearray(f.read_bytes())
    data[0] ^= 1
    f.write_bytes(bytes(data))
    r = ShardReader(tmp_path, "train")  # same size: only verify() can tell
    with pytest.raises(DataError, match="train_00002.bin does not match its checksum"):
        r.verify()


def test_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no manifest.json in .*; run `electra preprocess` first"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(DataError, match="manifest.json in .* is corrupt .*re-run electra preprocess"):
        read_manifest(tmp_path)
    m = _write(tmp_path, _rows(3))
    data = m.to_dict()
    del data["seq_len"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="is corrupt"):
        read_manifest(tmp_path)
    with pytest.raises(DataError, match="has no 'test' split"):
        ShardReader(tmp_path, "test", manifest=m)
    with pytest.raises(TokenizerError, match="different tokenizer .* than mine .*; redo it"):
        m.check_tokenizer("0" * 64, tmp_path, "mine", "redo it")


def test_dtype_for_vocab() -> None:
    assert dtype_for_vocab(30522) == np.uint16 and dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(65537) == np.uint32


def test_a_validation_split_of_a_few_rows_is_warned_of(tiny_data, caplog, monkeypatch):
    import logging

    from electra.data.shards import read_manifest
    from electra.data.tokenizer import Tokenizer
    from electra.train import state

    rows = read_manifest(tiny_data).splits["valid"].rows  # 63
    for least, warned in ((rows + 1, True), (rows, False)):
        monkeypatch.setattr(state, "MIN_VALID_ROWS", least)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            state.RunData.open(tiny_data, Tokenizer.load(tiny_data / "tokenizer"), "t")
        assert (f"the validation split holds {rows} row(s)" in caplog.text) == warned
