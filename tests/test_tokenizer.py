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
    third = train_tokenizer(iter_documents([tiny_corpus]), out, TokenizerConfig(kind="bpe", vocab_size=300,
                                                                                 min_frequency=1), overwrite=True)
    assert not (out / "vocab.txt").exists()  # the WordPiece vocabulary does not outlive it
    assert Tokenizer.load(out).fingerprint == third.fingerprint and third.kind == "bpe"


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


# ----------------------------------------------------------------------------------------------
# byte-level BPE and Unigram (tokenizer.kind), CJK characters

CHINESE = Path("/work/shared/seeds/000_27dee03336e5f5a3.txt")  # a Chinese article (Google AI blog)


def _is_cjk(c: str) -> bool:
    return 0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF or 0xF900 <= ord(c) <= 0xFAFF


def _train(tmp_path: Path, kind: str, docs: list[list[str]], name: str = "tok", **kw) -> Tokenizer:
    cfg = TokenizerConfig(kind=kind, vocab_size=kw.pop("vocab_size", 400), min_frequency=1, **kw)
    return train_tokenizer(iter(docs), tmp_path / name, cfg)


@pytest.fixture(scope="module")
def corpus_docs(tiny_corpus: Path) -> list[list[str]]:
    return list(iter_documents([tiny_corpus]))


@pytest.mark.parametrize("kind, specials", [("bpe", ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]),
                                            ("unigram", list(SPECIAL_TOKENS))])
def test_bpe_and_unigram_keep_the_special_roles_at_ids_0_to_4_and_load_in_transformers(
        kind: str, specials: list[str], corpus_docs, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tok = _train(tmp_path, kind, corpus_docs, lowercase=False)
    loaded = Tokenizer.load(tmp_path / "tok")
    assert loaded.kind == kind and loaded.fingerprint == tok.fingerprint
    assert (loaded.pad_id, loaded.unk_id, loaded.cls_id, loaded.sep_id, loaded.mask_id) == (0, 1, 2, 3, 4)
    assert loaded.convert_ids_to_tokens(range(5)) == specials
    assert not (tmp_path / "tok" / "vocab.txt").exists()  # it would load as a WordPiece vocabulary
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert (hf.cls_token_id, hf.sep_token_id, hf.mask_token_id, hf.pad_token_id) == (2, 3, 4, 0)
    for text in TEXTS:
        ours, theirs = loaded.encode(text, "a pair"), hf(text, "a pair")
        assert ours["input_ids"] == theirs["input_ids"], text
        assert ours["token_type_ids"] == theirs["token_type_ids"]
        ids = ours["input_ids"]
        assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
    # raw pre-training text never yields special ids, even if it spells one out
    lines = loaded.encode_lines([f"the river {specials[3]} {specials[4]}"])
    assert not set(lines[0]) & {loaded.pad_id, loaded.cls_id, loaded.sep_id, loaded.mask_id}


def test_byte_level_bpe_encodes_any_text_without_unknown_tokens(corpus_docs, tmp_path: Path) -> None:
    tok = _train(tmp_path, "bpe", corpus_docs, lowercase=False)
    texts = ["The café owner visited Zoë", "中文 and emoji 🙂\tcontrol\x01", "  two  spaces ", "Ωmega"]
    for ids, text in zip(tok.encode_lines(texts), texts, strict=True):
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text  # byte for byte


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_bpe_and_unigram_ids_do_not_depend_on_the_trainers_hash_order(kind: str, corpus_docs,
                                                                       tmp_path: Path) -> None:
    """Unigram's pieces come out in hash order with scores that differ in the last bits; the saved
    tokenizer must be the same file every time."""
    texts = [(tmp_path / f"t{i}" / "tokenizer.json") for i in range(3)]
    for i in range(3):
        _train(tmp_path, kind, corpus_docs, name=f"t{i}")
    assert texts[0].read_text() == texts[1].read_text() == texts[2].read_text()


def test_canonical_bpe_orders_ids_by_merge_and_keeps_the_merges() -> None:
    from electra.data.tokenizer_models import canonical_bpe
    merges = [("t", "h"), ("th", "e"), ("a", "b")]
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<mask>", "the", "b", "th",
                                         "t", "ab", "e", "h", "a"])}
    canon, kept = canonical_bpe(vocab, merges)
    assert kept == merges
    assert list(canon) == ["<pad>", "<unk>", "<s>", "</s>", "<mask>", "a", "b", "e", "h", "t", "th",
                           "the", "ab"]
    assert sorted(canon.values()) == list(range(len(vocab)))


def test_fingerprint_differs_between_kinds(corpus_docs, tmp_path: Path) -> None:
    prints = {_train(tmp_path, kind, corpus_docs, name=kind).fingerprint
              for kind in ("wordpiece", "bpe", "unigram")}
    assert len(prints) == 3


@pytest.mark.parametrize("kind", ["wordpiece", "unigram", "bpe"])
def test_chinese_characters_become_single_tokens_and_round_trip(kind: str, tmp_path: Path) -> None:
    if not CHINESE.is_file():
        pytest.skip("the Chinese seed article is not available")
    lines = [line for line in CHINESE.read_text(encoding="utf-8").splitlines() if line.strip()]
    tok = _train(tmp_path, kind, [lines], vocab_size=3000, lowercase=False, strip_accents=False)
    hanzi = [c for c in "".join(lines) if _is_cjk(c)]
    assert len(hanzi) > 1000
    for line, ids in zip(lines, tok.encode_lines(lines), strict=True):
        pieces = tok.convert_ids_to_tokens(ids)
        if kind != "bpe":  # byte-level pieces spell bytes, not characters
            assert tok.unk_id not in ids
            for p in pieces:
                if any(_is_cjk(c) for c in p):
                    assert len(p.removeprefix("▁").removeprefix("##")) == 1, (p, line)
        # each ideograph is one token: as many tokens hold ideographs as the line has ideographs
        per_piece = [tok.decode([i]) for i in ids]
        assert sum(any(_is_cjk(c) for c in p) for p in per_piece) == sum(map(_is_cjk, line))
        decoded = tok.decode(ids)
        assert [c for c in decoded if _is_cjk(c)] == [c for c in line if _is_cjk(c)]
        if kind == "bpe":
            assert decoded == line


def test_cjk_none_leaves_chinese_words_to_the_model(tmp_path: Path) -> None:
    docs = [["中文分词很有意思。", "中文分词"] * 20]
    whole = _train(tmp_path, "unigram", docs, name="none", cjk="none", vocab_size=100)
    chars = _train(tmp_path, "unigram", docs, name="chars", vocab_size=100)
    pieces = {t: t.convert_ids_to_tokens(t.encode_lines(["中文分词"])[0]) for t in (whole, chars)}
    assert sum(any(map(_is_cjk, p)) for p in pieces[chars]) == 4  # one token per character
    assert len(pieces[whole]) < len(pieces[chars])  # words learned across characters
    assert whole.fingerprint != chars.fingerprint


def test_cli_trains_each_kind(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from electra.cli import main
    for kind in ("bpe", "unigram"):
        out = tmp_path / kind
        assert main(["tokenizer", "train", "--corpus", str(tiny_corpus), "--kind", kind,
                     "--vocab-size", "400", "--min-frequency", "1", "--out", str(out)]) == 0
        assert Tokenizer.load(out).kind == kind
        assert f"({kind}, " in capsys.readouterr().out
    assert main(["tokenizer", "train", "--corpus", str(tiny_corpus), "--kind", "bpe",
                 "--vocab-size", "200", "--out", str(tmp_path / "small")]) == 2
    assert "byte-level BPE" in capsys.readouterr().err


@pytest.mark.parametrize("kind, auto_folds", [("wordpiece", False), ("bpe", False), ("unigram", True)])
def test_unicode_normal_form_folds_full_width_text(kind: str, auto_folds: bool, corpus_docs,
                                                   tmp_path: Path) -> None:
    wide, narrow = "ＡＢＣ　ｔｅｘｔ１２３", "abc text123"  # full-width Latin, space and digits (NFKC -> ASCII)
    docs = [*corpus_docs[:50], [narrow, wide]]
    ids = {mode: _train(tmp_path, kind, docs, name=mode, unicode=mode) for mode in ("auto", "none", "nfkc")}
    same = {mode: tok.encode(wide)["input_ids"] == tok.encode(narrow)["input_ids"] for mode, tok in ids.items()}
    assert same == {"auto": auto_folds, "none": False, "nfkc": True}
    # the form travels with the tokenizer: reloaded, and in stock transformers, it encodes alike
    nfkc = ids["nfkc"]
    assert Tokenizer.load(tmp_path / "nfkc").encode(wide) == nfkc.encode(wide)
    assert nfkc.fingerprint != ids["auto" if kind != "unigram" else "none"].fingerprint
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "nfkc")
    assert hf(wide)["input_ids"] == nfkc.encode(wide)["input_ids"]


def test_unknown_unicode_form_is_a_config_error() -> None:
    from electra.errors import ConfigError
    with pytest.raises(ConfigError, match="tokenizer.unicode='nfx' is not one of auto, none, nfc, nfkc"):
        TokenizerConfig(unicode="nfx")


def test_a_chinese_corpus_beyond_the_alphabet_limit_is_warned_of_and_the_limit_can_be_raised(tmp_path, caplog):
    import random
    rng = random.Random(0)
    chars = [chr(0x4E00 + i) for i in range(3000)]
    weights = [1 / (i + 1) for i in range(3000)]  # Zipf: many characters, most of them rare
    docs = [["".join(rng.choices(chars, weights, k=40))] for _ in range(400)]
    with caplog.at_level("WARNING"):
        train_tokenizer(iter(docs), tmp_path / "a", TokenizerConfig(vocab_size=30000, min_frequency=1))
    assert "are [UNK]: the vocabulary keeps tokenizer.limit_alphabet=1000 characters" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        tok = train_tokenizer(iter(docs), tmp_path / "b", TokenizerConfig(vocab_size=30000, min_frequency=1,
                                                                          limit_alphabet=5000))
    assert "[UNK]" not in caplog.text and tok.unk_id not in {i for ln in tok.encode_lines(docs[0]) for i in ln}


def test_reloaded_tokenizers_keep_their_casing_and_cjk_settings(tiny_corpus, tmp_path):
    docs = list(iter_documents([tiny_corpus])) + [["北京的天气很好"]]
    for cfg in (TokenizerConfig(vocab_size=200, min_frequency=1, unicode="nfkc"),  # a Sequence normalizer
                TokenizerConfig(kind="unigram", vocab_size=300, cjk="none"),  # Unigram always has a Split
                TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1, cjk="chars")):
        out = tmp_path / f"{cfg.kind}-{cfg.unicode}-{cfg.cjk}"
        trained = train_tokenizer(iter(docs), out, cfg)
        loaded = Tokenizer.load(out)
        assert (loaded.lowercase, loaded.cjk_chars) == (trained.lowercase, cfg.cjk == "chars")
        assert loaded.fingerprint == trained.fingerprint
