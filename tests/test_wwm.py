"""Whole-word and n-gram masking: word boundaries from each tokenizer kind's vocabulary, and from a
word segmentation (a reference file or jieba) stored beside the shards for Chinese."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from electra.config import (
    ObjectiveConfig,
    PreprocessConfig,
    TokenizerConfig,
    apply_overrides,
    preset,
)
from electra.data.corpus import iter_documents
from electra.data.loader import PretrainLoader
from electra.data.preprocess import preprocess
from electra.data.shards import ShardReader, read_manifest
from electra.data.tokenizer import Tokenizer, train_tokenizer
from electra.errors import ConfigError, DataError
from electra.objective.masking import (
    MaskSpec,
    mask_tokens,
    ngram_starts,
    pick_units,
    picked_tokens,
    word_starts,
)

SPECIAL = torch.tensor([0, 1, 2, 3, 4])
# a hand-made Chinese corpus (one document per line) and the words each line is made of
ZH_WORDS = [
    "我们 喜欢 自然语言 处理 。",
    "预训练 模型 可以 学习 语言 知识 。",
    "生成器 负责 替换 部分 词语 。",
    "判别器 判断 每个 词语 是否 被 替换 。",
    "全词 掩码 让 模型 预测 完整 的 词语 。",
    "中文 文本 没有 空格 分隔 词语 。",
    "我们 用 少量 数据 训练 模型 。",
    "这个 判别器 学习 得 很 快 。",
]
ZH_LINES = ["".join(line.split()) for line in ZH_WORDS]


def word_groups(starts: list[bool]) -> list[list[int]]:
    """Positions grouped into words: a word is a start and the non-starts after it."""
    groups: list[list[int]] = []
    for i, s in enumerate(starts):
        if s or not groups:
            groups.append([])
        groups[-1].append(i)
    return groups


def word_picks(picked: torch.Tensor, starts: torch.Tensor) -> tuple[int, int]:
    """(words partly picked, words of two or more tokens picked whole) over all rows."""
    split = multi = 0
    for row_pick, row_starts in zip(picked.tolist(), starts.tolist(), strict=True):
        for g in word_groups(row_starts):
            hits = sum(row_pick[i] for i in g)
            split += 0 < hits < len(g)
            multi += hits > 1 and hits == len(g)
    return split, multi


def assert_whole_units(picked: torch.Tensor, starts: torch.Tensor) -> int:
    """Every word of every row picked entirely or not at all; returns how many words of two or
    more tokens were picked (so a test cannot pass by never picking one)."""
    split, multi = word_picks(picked, starts)
    assert split == 0, f"{split} words partly masked"
    return multi


# ----------------------------------------------------------------------------------------------
# word boundaries from the vocabulary, per tokenizer kind


@pytest.fixture(scope="module", params=["wordpiece", "bpe", "unigram"])
def kind_tokenizer(request, tiny_corpus, tmp_path_factory) -> Tokenizer:
    out = tmp_path_factory.mktemp(f"tok_{request.param}") / "tok"
    return train_tokenizer(iter_documents([tiny_corpus]), out,
                           TokenizerConfig(kind=request.param, vocab_size=400, min_frequency=1))


def oracle_starts(tok: Tokenizer, ids: list[int]) -> list[bool]:
    """Each kind's marker read off the token strings: a word starts at a WordPiece piece without
    "##", a BPE piece with "Ġ", a Unigram piece with "▁"; special tokens are words of their own
    (and a row cut mid-word starts a new word after [CLS])."""
    out = []
    for k, (i, t) in enumerate(zip(ids, tok.convert_ids_to_tokens(ids), strict=True)):
        if i in tok.special_ids or (k and ids[k - 1] in tok.special_ids):
            out.append(True)
        else:
            out.append({"wordpiece": not t.startswith("##"), "bpe": t.startswith("Ġ"),
                        "unigram": t.startswith("▁")}[tok.kind])
    return out


def rows_of(tok: Tokenizer, corpus: Path, seq_len: int = 64, n: int = 32) -> torch.Tensor:
    lines = [line for doc in iter_documents([corpus]) for line in doc]
    flat = [i for ids in tok.encode_lines(lines[:400]) for i in ids]
    body = seq_len - 2
    rows = [[tok.cls_id, *flat[k * body:(k + 1) * body], tok.sep_id] for k in range(n)]
    return torch.tensor(rows)


def test_continuation_table_follows_each_kinds_word_marker(kind_tokenizer, tiny_corpus):
    tok = kind_tokenizer
    table = tok.word_continuation_table()
    assert len(table) == tok.vocab_size and not any(table[i] for i in tok.special_ids)
    ids = sorted(set(rows_of(tok, tiny_corpus)[:, 1:-1].flatten().tolist()))  # the pieces in use
    assert [not table[i] for i in ids] == oracle_starts(tok, ids)
    assert 0 < sum(table[i] for i in ids) < len(ids)  # both kinds of piece are in use
    # with tokenizer.cjk=chars every ideograph is a word, though no space marks it (BPE: its
    # first byte starts it, the next bytes continue it; WordPiece here: [UNK] per character)
    pieces = [i for i in tok.encode_lines(["自然语言"])[0]
              if tok.convert_ids_to_tokens([i])[0] != "▁"]  # Unigram's marker alone: a word too
    assert sum(not table[i] for i in pieces) == 4 and not table[pieces[0]]


@pytest.mark.parametrize("unit", ["whole_word", "ngram"])
def test_whole_units_never_mask_part_of_a_word(kind_tokenizer, tiny_corpus, unit):
    tok = kind_tokenizer
    ids = rows_of(tok, tiny_corpus)  # [32, 64]
    attention = torch.ones_like(ids, dtype=torch.bool)
    attention[::3, 50:] = False  # some padding
    ids = ids.masked_fill(~attention, tok.pad_id)
    table = torch.tensor(tok.word_continuation_table())
    starts = torch.tensor([oracle_starts(tok, r) for r in ids.tolist()])
    spec = MaskSpec(mask_id=tok.mask_id, vocab_size=tok.vocab_size, unit=unit)
    multi = 0
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        masked = mask_tokens(ids, attention, SPECIAL, spec, g, continues_word=table[ids])
        picked = picked_tokens(masked, ids.shape)
        multi += assert_whole_units(picked, starts)
        assert not (picked & ~attention).any() and not picked[:, 0].any()
        # the fixed slot layout: picked positions first, distinct, originals as targets
        assert torch.equal(masked.targets, torch.gather(ids, 1, masked.positions))
        assert all(len(set(r)) == len(r) for r in masked.positions.tolist())
    assert multi > 100


@pytest.mark.parametrize("unit", ["whole_word", "ngram"])
def test_masked_fraction_stays_at_the_token_budget(unit):
    g = torch.Generator().manual_seed(0)
    B, T = 256, 128
    ids = torch.randint(5, 500, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    attention = torch.arange(T)[None, :] < torch.randint(40, T + 1, (B, 1), generator=g)
    ids = ids.masked_fill(~attention, 0)
    continues = torch.rand(B, T, generator=g) < 0.35  # words of 1.5 tokens on average
    spec = MaskSpec(mask_id=4, vocab_size=500, unit=unit)
    masked = mask_tokens(ids, attention, SPECIAL, spec, g, continues_word=continues)
    picked = picked_tokens(masked, ids.shape).sum(1).float()
    budget = torch.round(attention.sum(1).float() * 0.15).clamp(1, spec.predictions_for(T))
    assert (picked <= budget).all()  # the budget is counted in tokens and never exceeded
    assert picked.sum() / budget.sum() > 0.97
    assert abs(picked.sum().item() / attention.sum().item() - 0.15) < 0.01
    assert torch.equal(masked.weights.sum(1), picked)


def test_ngram_span_lengths_follow_one_over_n():
    """Spans of n whole words, p(n) = (1/n) / (1 + 1/2 + 1/3): 6/11, 3/11, 2/11."""
    g = torch.Generator().manual_seed(1)
    B, T = 64, 512
    ids = torch.randint(5, 500, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    candidates = ~torch.isin(ids, SPECIAL)
    continues = torch.rand(B, T, generator=g) < 0.3  # multi-token words: n counts words
    words = word_starts(continues, candidates)
    grams = ngram_starts(words, candidates, 3, g)
    assert not (grams & ~words).any()  # an n-gram starts where a word does
    expected = np.array([6, 3, 2]) / 11

    def gram_lengths(chosen: torch.Tensor | None) -> np.ndarray:
        counts = np.zeros(4)
        for r in range(B):
            row_words, row_grams = words[r].tolist(), grams[r].tolist()
            bounds = [i for i in range(T) if row_grams[i]] + [T]
            for a, b in itertools.pairwise(bounds[1:-2]):  # inner spans: none cut by [CLS]/[SEP]
                if chosen is None or chosen[r, a]:
                    counts[sum(row_words[a:b])] += 1
        return counts[1:] / counts[1:].sum()

    assert np.abs(gram_lengths(None) - expected).max() < 0.015
    n_pick = torch.full((B,), 77)
    picked = pick_units(grams, candidates, n_pick, g)
    assert_whole_units(picked, grams)
    assert np.abs(gram_lengths(picked) - expected).max() < 0.04


def test_masking_config_is_validated():
    assert ObjectiveConfig().masking == "token"  # the default keeps G-EL's masks bit for bit
    with pytest.raises(ConfigError, match="objective.masking"):
        ObjectiveConfig(masking="span")
    with pytest.raises(ConfigError, match="max_ngram"):
        ObjectiveConfig(masking="ngram", max_ngram=0)
    with pytest.raises(ConfigError, match="segmentation_file"):
        PreprocessConfig(word_segmentation="file")
    with pytest.raises(ConfigError, match="segmentation_file"):
        PreprocessConfig(segmentation_file="ref.txt")
    with pytest.raises(ConfigError, match="word_segmentation"):
        PreprocessConfig(word_segmentation="pkuseg")


# ----------------------------------------------------------------------------------------------
# Chinese: characters are tokens, words come from a segmentation stored beside the shards


@pytest.fixture(scope="module")
def zh(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(ZH_LINES) + "\n", encoding="utf-8")
    (root / "ref.txt").write_text("\n\n".join(ZH_WORDS) + "\n", encoding="utf-8")
    tok = train_tokenizer(iter_documents([corpus]), root / "tok", TokenizerConfig(vocab_size=100))
    return root, corpus, tok


def zh_data(zh, out: Path, **seg) -> ShardReader:
    root, corpus, _ = zh
    cfg = PreprocessConfig(seq_len=32, valid_fraction=0.0, workers=1, **seg)
    preprocess([corpus], root / "tok", out, cfg)
    return ShardReader(out, "train")


def row_words(tok: Tokenizer, ids: np.ndarray, bits: np.ndarray) -> list[str]:
    """The words a row's bits spell: a token that does not continue starts a new word."""
    words: list[str] = []
    for i, b in zip(ids.tolist(), bits.tolist(), strict=True):
        if i in tok.special_ids:
            continue
        t = tok.convert_ids_to_tokens([i])[0]
        if b and words:
            words[-1] += t
        else:
            words.append(t)
    return words


def test_tokens_take_the_word_of_their_first_character():
    from electra.data.words import token_continuation, word_marks

    line = "ab 中文"
    marks = word_marks(line, ["ab", "中文"])
    assert marks == [True, False, True, False]  # per non-space character
    # a | b | ▁ (the space) | first byte of 中 | second byte of 中 | 文
    offsets = [(0, 1), (1, 2), (2, 3), (3, 4), (3, 4), (4, 5)]
    assert token_continuation(line, offsets, marks) == [0, 1, 0, 1, 1, 1]
    assert token_continuation(line, [(0, 2), (3, 4), (4, 5)], marks) == [0, 0, 1]
    with pytest.raises(DataError, match="does not spell"):
        word_marks(line, ["ab", "中"])
    # jieba cuts Latin words at accented letters: a run of letters stays one word (no '##' piece starts one)
    assert word_marks("Gödel证明 x2", ["G", "ö", "del", "证明", "x", "2"]) == [True] + [False] * 4 + [True, False,
                                                                                                      True, False]


def test_reference_segmentation_round_trips_through_shards_and_loader(zh, tmp_path):
    root, _, tok = zh
    reader = zh_data(zh, tmp_path / "data", word_segmentation="file",
                     segmentation_file=str(root / "ref.txt"))
    assert reader.has_words and read_manifest(tmp_path / "data").has_words
    rows = reader.take(np.arange(len(reader)))
    bits = reader.take_words(np.arange(len(reader)))
    assert tok.cjk_chars and all(len(tok.convert_ids_to_tokens([i])[0]) == 1
                                 for i in rows[rows > 4])  # one token per character
    got = sorted(" ".join(row_words(tok, r, b)) for r, b in zip(rows, bits, strict=True))
    assert got == sorted(ZH_WORDS)  # every row spells its line's words exactly
    reader.verify()  # the word-bit files are hashed in the manifest
    bom = tmp_path / "ref_bom.txt"  # `python -m jieba -d " "` keeps a corpus's byte-order mark
    bom.write_bytes(b"\xef\xbb\xbf" + (root / "ref.txt").read_bytes())
    again = zh_data(zh, tmp_path / "data_bom", word_segmentation="file", segmentation_file=str(bom))
    assert np.array_equal(again.take_words(np.arange(len(again))), bits)
    loader = PretrainLoader(reader, 4, seed=0, pad_id=tok.pad_id, sep_id=tok.sep_id,
                            vocab_size=tok.vocab_size)
    batch = loader.next_batch()
    order = loader._epoch_order()[:4]
    assert torch.equal(batch.continues_word, torch.from_numpy(reader.take_words(order)))


def test_jieba_segmentation_decides_what_whole_word_masking_picks(zh, tmp_path):
    jieba = pytest.importorskip("jieba")
    _, _, tok = zh
    reader = zh_data(zh, tmp_path / "data", word_segmentation="jieba")
    rows = reader.take(np.arange(len(reader)))
    bits = reader.take_words(np.arange(len(reader)))
    expected = sorted(" ".join(jieba.cut(line)) for line in ZH_LINES)
    got = sorted(" ".join(row_words(tok, r, b)) for r, b in zip(rows, bits, strict=True))
    assert got == expected and any(len(w) > 1 for e in expected for w in e.split())

    ids, cont = torch.from_numpy(rows), torch.from_numpy(bits)
    attention = ids != tok.pad_id
    candidates = attention & ~torch.isin(ids, SPECIAL)
    starts = word_starts(cont, candidates)
    spec = MaskSpec(mask_id=tok.mask_id, vocab_size=tok.vocab_size, unit="whole_word", mask_prob=0.3)
    multi = 0
    for seed in range(40):
        masked = mask_tokens(ids, attention, SPECIAL, spec, torch.Generator().manual_seed(seed), cont)
        multi += assert_whole_units(picked_tokens(masked, ids.shape), starts)
    assert multi > 40
    # the vocabulary alone sees a word per character: the stored bits are what make words
    assert not any(tok.word_continuation_table())


def test_objective_masks_the_batch_words_when_given_and_the_vocabulary_otherwise(zh, tmp_path):
    from electra.objective import build_objective
    from electra.train.pretrained import token_ids

    root, _, tok = zh
    reader = zh_data(zh, tmp_path / "data", word_segmentation="file",
                     segmentation_file=str(root / "ref.txt"))
    cfg = apply_overrides(preset("tiny"), [
        "model.hidden_size=32", "model.embedding_size=16", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", f"model.vocab_size={tok.vocab_size}", "objective.masking=whole_word",
        "objective.mask_prob=0.3"])
    model = build_objective(cfg, token_ids(tok))
    ids = torch.from_numpy(reader.take(np.arange(len(reader))))
    cont = torch.from_numpy(reader.take_words(np.arange(len(reader))))
    attention = ids != tok.pad_id
    starts = word_starts(cont, attention & ~torch.isin(ids, SPECIAL))
    model.set_word_bits(cont)
    multi = sum(assert_whole_units(picked_tokens(model.mask(ids, attention, torch.Generator().manual_seed(s)),
                                                 ids.shape), starts) for s in range(20))
    assert multi > 20
    model.set_word_bits(None)  # the vocabulary's words: one per character, so words get split
    picks = [word_picks(picked_tokens(model.mask(ids, attention, torch.Generator().manual_seed(s)),
                                      ids.shape), starts) for s in range(20)]
    assert sum(split for split, _ in picks) > 20


def test_a_reference_file_that_does_not_match_the_corpus_names_its_line(zh, tmp_path):
    root, corpus, _ = zh
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join([ZH_WORDS[0], "预训练 模型 可以 学习", *ZH_WORDS[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2 of"):
        preprocess([corpus], root / "tok", tmp_path / "d1", PreprocessConfig(
            seq_len=32, workers=1, word_segmentation="file", segmentation_file=str(bad)))
    short = tmp_path / "short.txt"
    short.write_text("\n".join(ZH_WORDS[:3]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="fewer lines"):
        preprocess([corpus], root / "tok", tmp_path / "d2", PreprocessConfig(
            seq_len=32, workers=1, word_segmentation="file", segmentation_file=str(short)))


def test_shards_without_word_bits_load_as_before(tiny_data):
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert all("words" not in s for split in manifest["splits"].values() for s in split["shards"])
    reader = ShardReader(tiny_data, "train")
    assert not reader.has_words and not read_manifest(tiny_data).has_words
    tok = Tokenizer.load(tiny_data / "tokenizer")
    batch = PretrainLoader(reader, 4, seed=0, pad_id=tok.pad_id, sep_id=tok.sep_id,
                           vocab_size=tok.vocab_size).next_batch()
    assert batch.continues_word is None
    with pytest.raises(DataError, match="no word bits"):
        reader.take_words(np.arange(2))


def test_a_changed_word_bit_file_fails_its_checksum(zh, tmp_path):
    root, _, _ = zh
    reader = zh_data(zh, tmp_path / "data", word_segmentation="file",
                     segmentation_file=str(root / "ref.txt"))
    path = tmp_path / "data" / reader.shards[0].words
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum"):
        ShardReader(tmp_path / "data", "train").verify()


# ----------------------------------------------------------------------------------------------
# a Chinese run end to end: character tokenizer -> jieba words -> whole-word masking -> HF

_ZH_SUBJECTS = ["研究人员", "我们的团队", "这个模型", "学生们", "工程师", "判别器", "生成器", "老师"]
_ZH_VERBS = ["认真地学习", "仔细地分析", "快速地预测", "重新设计了", "成功地训练了", "详细地解释了"]
_ZH_OBJECTS = ["中文文本", "自然语言处理任务", "预训练语言模型", "被替换的词语", "大量的数据",
               "新闻文章", "全词掩码方法"]


def zh_corpus() -> list[list[str]]:
    """Deterministic Chinese documents of three sentences each."""
    combos = list(itertools.product(_ZH_SUBJECTS, _ZH_VERBS, _ZH_OBJECTS))[::5]
    lines = [f"{s}{v}{o}。" for s, v, o in combos]
    return [lines[k:k + 3] for k in range(0, len(lines), 3)]


def test_chinese_run_end_to_end_loads_in_transformers(tmp_path):
    pytest.importorskip("jieba")
    transformers = pytest.importorskip("transformers")
    from electra.api import load
    from electra.cli import main
    from tests.conftest import TINY_RUN

    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in zh_corpus()) + "\n", encoding="utf-8")
    tok, data, run = tmp_path / "tok", tmp_path / "data", tmp_path / "run"
    assert main(["tokenizer", "train", "--corpus", str(corpus), "--out", str(tok), "--vocab-size", "300",
                 "--cjk", "chars"]) == 0
    assert main(["preprocess", "--corpus", str(corpus), "--tokenizer", str(tok), "--seq-len", "32",
                 "--out", str(data), "--workers", "1", "--valid-fraction", "0.1",
                 "preprocess.word_segmentation=jieba"]) == 0
    assert read_manifest(data).has_words
    assert main(["pretrain", "--preset", "tiny", "--data", str(data), "--out", str(run), *TINY_RUN,
                 "objective.masking=whole_word", "train.steps=3", "train.save_every=3"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["objective"]["masking"] == "whole_word"
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if r["kind"] == "train"] == [1, 2, 3]

    export = run / "export" / "discriminator"
    hf_tok = transformers.AutoTokenizer.from_pretrained(export)
    assert hf_tok.tokenize("我们学习自然语言处理") == list("我们学习自然语言处理")  # characters
    enc = hf_tok(["研究人员认真地学习中文文本。", "生成器预测词语。"], padding=True, return_tensors="pt")
    assert (enc["input_ids"] != hf_tok.unk_token_id).all()
    hf = transformers.ElectraForPreTraining.from_pretrained(export).eval()
    ours = load(run).model.eval()
    with torch.no_grad():
        theirs = hf(**enc).logits
        mine = ours.discriminator_logits(enc["input_ids"], enc["token_type_ids"],
                                         enc["attention_mask"].bool())
    mask = enc["attention_mask"].bool()
    assert (theirs[mask] - mine[mask]).abs().max() < 1e-5
