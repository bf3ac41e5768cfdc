"""The fast encode path must give exactly the rust pipeline's ids, for any text and casing."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from electra.data.fast_wordpiece import FastWordPiece, encode_rust
from electra.data.tokenizer import SPECIAL_TOKENS, Tokenizer

# every kind of character the normalizer treats differently: accents, combining marks, Greek
# sigma (rust lower-cases per character), CJK, Hangul, odd whitespace, format/control characters
ODD = ("éÉàÅçñøßİıǅﬁⅫ–—’“”«»¿¡·•€£¥°½²ΣσςΟΔΑάΆ\u0301\u0308\u0327\u20dd\u0903"
       "中文日本語한국어ㄱあア\u3000\u00a0\u2028\u2029\u200b\u200d\u00ad\ufeff\ufffd\x85\x0b\x0c\x1c\x00\x7f"
       "АБВабв\u05d0\u0627\u0e01\U0001f600")


def _vocab_dir(tmp_path: Path, lowercase: bool, strip_accents: bool | None) -> Path:
    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation + ODD
                       + "".join(c.lower() for c in ODD) + "eaacnoiσςο") - set(" \t\n\r"))
    words = ["the", "The", "river", "café", "naïve", "οδοσ", "straße", "中文"]
    vocab = list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars] + words + ["##er", "##ing"]
    (tmp_path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": lowercase, "strip_accents": strip_accents}))
    return tmp_path


def _lines(seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.printable + ODD * 2
    words = ["the", "The", "River", "café", "naïve", "ΟΔΟΣ", "straße", "[SEP]", "[MASK]", "x" * 101]
    out = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(400)]
    out += [" ".join(rng.choice(words + list(ODD)) for _ in range(rng.randint(1, 15)))
            for _ in range(200)]
    # random code points across the BMP and beyond (no surrogates: UTF-8 text cannot hold them)
    cps = [c for c in range(0x80, 0x30000, 7) if not 0xD800 <= c < 0xE000]
    out += ["a" + "".join(chr(rng.choice(cps)) for _ in range(30)) + " b" for _ in range(300)]
    return out


@pytest.mark.parametrize(("lowercase", "strip_accents"), [(True, None), (True, False), (False, None),
                                                          (False, True)])
def test_fast_path_matches_rust(tmp_path: Path, lowercase: bool, strip_accents: bool | None) -> None:
    tok = Tokenizer.load(_vocab_dir(tmp_path, lowercase, strip_accents))
    fast = FastWordPiece.for_tokenizer(tok.tok, tok.lowercase)
    assert fast is not None
    lines = _lines(seed=int(lowercase) * 2 + bool(strip_accents))
    expected = encode_rust(tok.tok, lines)
    assert fast.encode_lines(lines) == expected
    assert fast.encode_lines(lines) == expected  # again, from the character and word caches
    assert tok.encode_lines(lines) == expected
    n_ids, n_unk = sum(map(len, expected)), sum(ids.count(tok.unk_id) for ids in expected)
    assert n_ids > 10_000 and n_unk < n_ids / 2  # mostly real pieces, so differences would show


def test_fast_path_matches_rust_on_wikipedia(tiny_tokenizer: Path) -> None:
    path = Path("/work/shared/data/pretrain/enwiki-2021/wiki_00.gz")
    if not path.exists():
        pytest.skip("shared enwiki-2021 data not available")
    from electra.data.corpus import iter_documents

    lines = [line for doc in iter_documents([path]) for line in doc][:3000]
    tok = Tokenizer.load(tiny_tokenizer)
    assert tok.encode_lines(lines) == encode_rust(tok.tok, lines)


def test_fast_path_only_for_bert_pipelines(tiny_tokenizer: Path) -> None:
    tok = Tokenizer.load(tiny_tokenizer)
    assert FastWordPiece.for_tokenizer(tok.tok, True) is not None
    tok.tok.add_tokens(["riverbank"])  # a non-special added token is matched in raw text by rust
    assert FastWordPiece.for_tokenizer(tok.tok, True) is None
