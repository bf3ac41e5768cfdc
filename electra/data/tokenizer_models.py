"""The three tokenizer models `electra tokenizer train --kind` builds, as `tokenizers` pipelines.

wordpiece: BERT (BertNormalizer, ## pieces, [PAD] [UNK] [CLS] [SEP] [MASK]); bpe: RoBERTa's
byte-level BPE (no unknown tokens: every byte sequence encodes; <pad> <unk> <s> </s> <mask>);
unigram: SentencePiece-style Unigram over Metaspace words (ALBERT). Each keeps its special tokens
at ids 0-4 (pad, unk, cls, sep, mask) and gets ids that do not depend on the trainer's hash order.
"""

from __future__ import annotations

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from electra.config import TokenizerConfig

ROLES = ("pad", "unk", "cls", "sep", "mask")
# the spelling of each role per kind, in ROLES order (training puts them at ids 0..4)
SPECIALS = {
    "wordpiece": ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    "unigram": ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),  # ALBERT's spm spells them so too
    "bpe": ("<pad>", "<unk>", "<s>", "</s>", "<mask>"),  # RoBERTa's names
}
MODEL_KINDS = {"WordPiece": "wordpiece", "BPE": "bpe", "Unigram": "unigram"}  # tokenizer.json type
# CJK ideographs as BERT's `_is_chinese_char` defines them (what BertNormalizer pads with spaces)
CJK_CHARS = Regex("[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}\\x{2A700}-\\x{2B73F}"
                  "\\x{2B740}-\\x{2B81F}\\x{2B820}-\\x{2CEAF}\\x{F900}-\\x{FAFF}\\x{2F800}-\\x{2FA1F}]")
CJK_MARK = "x{4E00}-"  # in CJK_CHARS's pattern as tokenizer.json spells it: the CJK split is there
_SCORE_DIGITS = 6  # Unigram scores differ in the last bits from run to run (summation order)


UNICODE_FORMS = {"nfc": normalizers.NFC, "nfkc": normalizers.NFKC, "nfd": normalizers.NFD,
                 "nfkd": normalizers.NFKD}


def build_pipeline(kind: str, model: models.Model, *, lowercase: bool, strip_accents: bool | None,
                   cjk_chars: bool, unicode: str = "auto") -> HFTokenizer:
    """An (untrained or loaded) `model` with the normalizer, pre-tokenizer and decoder of `kind`.
    `cjk_chars`: every CJK ideograph is a word of its own (BERT-Chinese), never merged with its
    neighbours; otherwise Chinese text without spaces is one long word for the model to split.
    `unicode`: a Unicode normal form applied first (e.g. nfkc folds full-width Latin and digits,
    common in Chinese text); auto: the kind's own rule (NFKC for Unigram, none otherwise)."""
    tok = HFTokenizer(model)
    form = [UNICODE_FORMS[unicode]()] if unicode in UNICODE_FORMS else []
    if kind == "wordpiece":
        bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=cjk_chars,
                                          strip_accents=strip_accents, lowercase=lowercase)
        tok.normalizer = normalizers.Sequence([*form, bert]) if form else bert
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        return tok
    strip = lowercase if strip_accents is None else strip_accents
    steps = form if unicode != "auto" else [normalizers.NFKC()] if kind == "unigram" else []  # SentencePiece's rule
    if strip:
        steps += [normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    if kind == "bpe":
        # no prefix space, as RoBERTa: decoding gives the text back byte for byte (with one, the
        # CJK split below would put a space before every ideograph)
        word = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
    else:
        # "first": only the text's start gets ▁, so CJK characters split off below stay bare
        # Unigram's special pieces ([SEP] ...) are in its vocabulary with the best score: with the
        # brackets split off, "[SEP]" in raw text can never become the [SEP] id
        word = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"[\[\]]"), "isolated"),
                                        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")])
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Split(CJK_CHARS, "isolated"), word])
                         if cjk_chars else word)
    return tok


def new_model(kind: str) -> models.Model:
    unk = SPECIALS[kind][1]
    if kind == "wordpiece":
        return models.WordPiece(unk_token=unk, continuing_subword_prefix="##")
    if kind == "bpe":
        return models.BPE()  # byte-level: no unknown token
    return models.Unigram()


def new_trainer(kind: str, cfg: TokenizerConfig) -> trainers.Trainer:
    specials = list(SPECIALS[kind])
    if kind == "wordpiece":
        return trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, limit_alphabet=cfg.limit_alphabet,
            special_tokens=specials, continuing_subword_prefix="##", show_progress=True)
    if kind == "bpe":
        return trainers.BpeTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=True)
    return trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=specials,
                                   unk_token=specials[1], show_progress=True)


def canonical_model(kind: str, trained: dict) -> models.Model:
    """The trained model (its tokenizer.json `model` section) with process-independent ids."""
    if kind == "wordpiece":
        return models.WordPiece(canonical_wordpiece_vocab(trained["vocab"]), unk_token=SPECIALS[kind][1],
                                continuing_subword_prefix="##")
    if kind == "bpe":
        vocab, merges = canonical_bpe(trained["vocab"], [tuple(m) for m in trained["merges"]])
        return models.BPE(vocab, merges)
    pieces = canonical_unigram([(p, s) for p, s in trained["vocab"]])
    return models.Unigram(pieces, unk_id=1, byte_fallback=False)


def canonical_wordpiece_vocab(vocab: dict[str, int]) -> dict[str, int]:
    """The trainer's vocabulary with ids that do not depend on the process: `tokenizers` adds the
    alphabet (and its ## forms) in hash-map order and breaks ties between equally frequent merges
    the same way, so the same text gave different ids from run to run. Special tokens keep their
    ids; then the alphabet, then the learned pieces, each sorted. Lookup is by string, so
    tokenization itself is unchanged. (Which pieces are learned can still differ when two tie
    exactly at the vocabulary's cut; seen only with vocabularies of a few hundred tokens.)"""
    specials = SPECIALS["wordpiece"]
    by_id = sorted(vocab, key=vocab.__getitem__)
    special = [t for t in by_id if t in specials]
    chars = sorted(t for t in by_id if t not in specials and len(t.removeprefix("##")) == 1)
    chars.sort(key=lambda t: t.startswith("##"))  # stable: plain characters first, then ## forms
    taken = set(special) | set(chars)
    ordered = special + chars + sorted(t for t in by_id if t not in taken)
    return {t: i for i, t in enumerate(ordered)}


def canonical_bpe(vocab: dict[str, int], merges: list[tuple[str, str]]
                  ) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Special tokens, the byte alphabet sorted, then each merge's result in merge order. BPE
    applies merges by their rank in `merges` (kept as they are) and looks pieces up by string,
    so only the ids change, never the tokenization. (The trainer sorts its alphabet, so its merges
    are already the same in every process; this pins the ids whatever its internal order.)"""
    specials = [t for t in SPECIALS["bpe"] if t in vocab]
    ordered = specials + sorted(t for t in vocab if len(t) == 1 and t not in specials)
    seen = set(ordered)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            ordered.append(a + b)
    ordered += sorted(t for t in vocab if t not in seen)  # none from the trainer; kept if present
    return {t: i for i, t in enumerate(ordered)}, merges


def canonical_unigram(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Special tokens first, then pieces by score (rounded: the trainer's float sums differ in the
    last bits between runs) and string. Unigram segments by score, so ids change, not pieces."""
    specials = SPECIALS["unigram"]
    head = [(p, 0.0) for p, _ in pieces if p in specials]
    rest = [(p, round(s, _SCORE_DIGITS)) for p, s in pieces if p not in specials]
    return head + sorted(rest, key=lambda ps: (-ps[1], ps[0]))
