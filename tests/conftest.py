"""Shared fixtures: a small synthetic English-like corpus and a tokenizer trained on it once.

Everything is generated in-process from a fixed seed, so tests stay hermetic and fast."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from electra.config import TokenizerConfig
from electra.data.corpus import iter_documents
from electra.data.tokenizer import train_tokenizer

_SUBJECTS = ["The river", "A small village", "The old library", "Our team", "The committee",
             "Maria", "The engineer", "A young painter", "The museum", "The orchestra",
             "Zoë", "The café owner", "Professor Müller", "The city council", "A local farmer"]
_VERBS = ["built", "visited", "described", "opened", "studied", "painted", "announced",
          "discovered", "reviewed", "celebrated", "crossed", "organised", "recorded", "measured"]
_OBJECTS = ["a new bridge", "the northern valley", "several ancient maps", "the annual festival",
            "a detailed report", "the harbour", "three wooden boats", "the mountain railway",
            "an unusual painting", "the football season", "a collection of letters",
            "the public garden", "its first album", "the water supply"]
_TAILS = ["in 1998", "during the winter", "after a long debate", "with great care",
          "for the first time", "near the coast", "before the election", "in the spring of 2011",
          "despite the rain", "at the request of the mayor", "over several years"]
_EXTRA = ["It was widely praised.", "Critics disagreed about its value.",
          "The results were published later.", "Nobody expected such a success.",
          "Further work continued until 2005.", "The project cost about $4.5 million.",
          "Local newspapers (including the Gazette) covered it.", "Attendance grew by 12%."]


def _sentence(rng: random.Random) -> str:
    s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
    if rng.random() < 0.4:
        s += " " + rng.choice(_EXTRA)
    return s


def _documents(n_docs: int, seed: int = 0) -> list[list[str]]:
    """`n_docs` documents of 1-12 lines each, deterministic for a seed."""
    rng = random.Random(seed)
    return [[_sentence(rng) for _ in range(rng.randint(1, 12))] for _ in range(n_docs)]


def _write_corpus(path: Path, docs: list[list[str]]) -> Path:
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def make_documents() -> Callable[..., list[list[str]]]:
    """`make_documents(n_docs, seed=0)`: synthetic documents (lists of sentences)."""
    return _documents


@pytest.fixture(scope="session")
def write_corpus() -> Callable[[Path, list[list[str]]], Path]:
    """`write_corpus(path, docs)`: write documents as plain text, blank lines between them."""
    return _write_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~600-line plain-text corpus (blank lines between documents)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    return _write_corpus(path, _documents(100))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a lower-cased WordPiece tokenizer (vocab <= 400) trained on `tiny_corpus`."""
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(iter_documents([tiny_corpus]), out, TokenizerConfig(vocab_size=400, min_frequency=1))
    return out


# model/run overrides small enough for a few-second CPU run on `tiny_data` (seq_len 32)
TINY_RUN = ["model.hidden_size=32", "model.embedding_size=16", "model.num_layers=2", "model.num_heads=2",
            "model.intermediate_size=64", "model.max_position_embeddings=64", "preprocess.seq_len=32",
            "objective.generator_size=0.5", "train.batch_size=8", "train.steps=6", "train.log_every=1",
            "train.eval_every=3", "train.save_every=3", "train.eval_rows=16", "optim.warmup_steps=2",
            "train.device=cpu", "train.precision=fp32", "tokenizer.vocab_size=400",
            "tokenizer.min_frequency=1", "preprocess.valid_fraction=0.1"]


@pytest.fixture(scope="session")
def tiny_data(tiny_corpus: Path, tiny_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards (seq_len 32, 10% validation) of `tiny_corpus` made with `tiny_tokenizer`."""
    from electra.config import PreprocessConfig
    from electra.data.preprocess import preprocess

    out = tmp_path_factory.mktemp("data") / "shards"
    preprocess([tiny_corpus], tiny_tokenizer, out, PreprocessConfig(seq_len=32, valid_fraction=0.1, workers=1))
    return out
