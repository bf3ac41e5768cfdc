"""Tokenizer training, loading from tokenizer.json or vocab.txt, HF parity and fingerprints."""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import pytest

from electra.config import TokenizerConfig
from electra.data.corpus import iter_documents
from electra.data.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer
from electra.errors import DataError, TokenizerError

TEXTS = [
    "The café owner visited Zoë [MASK] in 1998!",
    "Professor Müller   described\tthe harbour (near the coast).",
    "中文 text, ünïcödé and CAPITALS",
    "",
]


def test_trained_special_ids_and_files(tiny_tokenizer: Path) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.special_ids == frozenset(range(5))
    assert 100 < tok.vocab_size <= 400
    vocab = (tiny_tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tok.vocab_tokens()
    assert vocab[:5] == list(SPECIAL_TOKENS)
    cfg = json.loads((tiny_tokenizer / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "ElectraTokenizer" and cfg["do_lower_case"] is True
    assert json.loads((tiny_tokenizer / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"


def test_encode_decode(tiny_tokenizer: Path) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    enc = tok.encode("The river crossed", "a new bridge")
    ids, types = enc["input_ids"], enc["token_type_ids"]
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and ids.count(tok.sep_id) == 2
    first_sep = ids.index(tok.sep_id)
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    assert tok.decode(ids) == "the river crossed a new bridge"
    assert tok.convert_ids_to_tokens(ids[:1]) == ["[CLS]"]
    # raw pre-training text never yields special ids, even if it spells one out
    lines = tok.encode_lines(["the river [SEP] [MASK]", "the river"])
    assert not set(lines[0]) & {tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id}
    assert lines[1] == ids[1:3]


def test_hf_electra_tokenizer_matches(tiny_tokenizer: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tok = Tokenizer.load(tiny_tokenizer)
    vocab_only = tmp_path / "vocab_only"
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_tokenizer / name, vocab_only / name)
    for d in (tiny_tokenizer, vocab_only):
        hf = transformers.ElectraTokenizerFast.from_pretrained(str(d))
        for text in TEXTS:
            ours = tok.encode(text, "a pair")
            theirs = hf(text, "a pair")
            assert ours["input_ids"] == theirs["input_ids"], (d, text)
            assert ours["token_type_ids"] == theirs["token_type_ids"]


def test_vocab_txt_loading_matches_tokenizer_json(tiny_tokenizer: Path, tmp_path: Path) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    shutil.copy(tiny_tokenizer / "vocab.txt", tmp_path / "vocab.txt")  # no config: BERT uncased
    from_vocab = Tokenizer.load(tmp_path)
    assert from_vocab.fingerprint == tok.fingerprint
    assert Tokenizer.load(tmp_path / "vocab.txt").fingerprint == tok.fingerprint
    for text in TEXTS:
        assert from_vocab.encode(text) == tok.encode(text)
    # casing from tokenizer_config.json changes the identity
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = Tokenizer.load(tmp_path)
    assert not cased.lowercase and cased.fingerprint != tok.fingerprint
    assert cased.encode("The")["input_ids"] != tok.encode("The")["input_ids"]


def test_bert_style_vocab_ids(tmp_path: Path) -> None:
    # BERT puts [PAD]=0, [UNK]=100, [CLS]=101, ...: ids are looked up by token, not assumed
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase] + ["the"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = Tokenizer.load(tmp_path)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.vocab_size == len(vocab)
    assert tok.encode("The cat")["input_ids"] == [101, vocab.index("the"), vocab.index("c"),
                                                  vocab.index("##a"), vocab.index("##t"), 102]


def test_missing_special_token(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n")
    tok = Tokenizer.load(tmp_path)
    with pytest.raises(TokenizerError, match=r"no \[MASK\] token"):
        _ = tok.mask_id


def test_fingerprint_differs_for_other_vocab_or_casing(tiny_corpus: Path, tiny_tokenizer: Path,
                                                      tmp_path: Path) -> None:
    base = Tokenizer.load(tiny_tokenizer)
    smaller = train_tokenizer(iter_documents([tiny_corpus]), tmp_path / "small",
                              TokenizerConfig(vocab_size=300, min_frequency=1))
    cased = train_tokenizer(iter_documents([tiny_corpus]), tmp_path / "cased",
                            TokenizerConfig(vocab_size=400, min_frequency=1, lowercase=False))
    assert len({base.fingerprint, smaller.fingerprint, cased.fingerprint}) == 3
    assert Tokenizer.load(tmp_path / "cased").fingerprint == cased.fingerprint
    assert cased.encode("The")["input_ids"][1:-1] != base.encode("The")["input_ids"][1:-1]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="does not exist"):
        Tokenizer.load(tmp_path / "missing")
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor vocab.txt"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a valid tokenizer.json"):
        Tokenizer.load(tmp_path)


def test_train_refuses_foreign_dir_and_replaces_a_tokenizer_only_when_forced(tiny_corpus: Path,
                                                                             tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("keep me")
    cfg = TokenizerConfig(vocab_size=200, min_frequency=1)
    with pytest.raises(TokenizerError, match="not empty"):
        train_tokenizer(iter_documents([tiny_corpus]), other, cfg)
    assert (other / "notes.md").read_text() == "keep me"
    out = tmp_path / "tok"
    first = train_tokenizer(iter_documents([tiny_corpus]), out, cfg)
    bigger = TokenizerConfig(vocab_size=250, min_frequency=1)
    with pytest.raises(TokenizerError, match="already holds a tokenizer; pass --force"):
        train_tokenizer(iter_documents([tiny_corpus]), out, bigger)
    assert Tokenizer.load(out).fingerprint == first.fingerprint
    second = train_tokenizer(iter_documents([tiny_corpus]), out, bigger, overwrite=True)
    assert Tokenizer.load(out).fingerprint == second.fingerprint != first.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "tok"]  # no temp dirs left


def test_train_on_corpus_without_text(tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    with pytest.raises(DataError, match="the corpus has no text"):
        train_tokenizer(iter_documents([blank]), tmp_path / "tok", TokenizerConfig(vocab_size=200))
    assert not (tmp_path / "tok").exists()



def test_vocabulary_ids_do_not_depend_on_the_trainers_hash_order():
    """`tokenizers` gives the ## alphabet (and tied merges) ids in hash-map order, which differs
    per process: the same pieces must get the same ids however the trainer numbered them."""
    import random

    from electra.data.tokenizer import SPECIAL_TOKENS, _canonical_vocab
    pieces = ["a", "b", "##a", "##b", "ab", "##ab", "the", "##ing"]
    orders = []
    for seed in range(3):
        shuffled = pieces[:]
        random.Random(seed).shuffle(shuffled)
        vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *shuffled])}
        orders.append(_canonical_vocab(vocab))
    assert orders[0] == orders[1] == orders[2]
    assert list(orders[0])[:len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert list(orders[0])[len(SPECIAL_TOKENS):] == ["a", "b", "##a", "##b", "##ab", "##ing", "ab", "the"]
