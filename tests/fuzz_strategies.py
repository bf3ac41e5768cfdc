"""Strategies and checks for tests/test_fuzz.py: damaged inputs for every reader (random bytes,
invalid UTF-8, huge lines, JSON of the wrong shape, missing columns, bad labels) and the test
for the allowed outcomes (well-formed output, or a one-line `ElectraError`)."""

from __future__ import annotations

import dataclasses
import faulthandler
import functools
import json
import logging
import math
import signal
import tempfile
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from electra.data.shards import Manifest, ShardWriter, SplitInfo
from electra.errors import ElectraError
from electra.finetuning.tasks import GLUE_TASKS, get_task

# ---- the allowed outcomes --------------------------------------------------------------------


def outcome(error: type[ElectraError], fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """`fn(...)`, or None when it raised `error` with a one-line message; anything else escapes."""
    try:
        return fn(*args, **kwargs)
    except error as e:
        msg = str(e)
        assert msg and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
        return None


@contextmanager
def scratch(base: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


class Counted(logging.Handler):
    """Collects the warnings a reader logs (its counted skips)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def warnings_of(name: str) -> Iterator[Counted]:
    handler, logger = Counted(), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def assert_typed(obj: Any) -> None:
    """Every field of a config dataclass tree holds its annotated type; floats are finite."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(tp):
            assert isinstance(value, tp), (f.name, value)
            assert_typed(value)
            continue
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        allowed = typing.get_args(tp) if union else (tp,)
        assert any(_is(value, t) for t in allowed), (f.name, value, tp)


def _is(value: Any, tp: Any) -> bool:
    if tp is type(None):
        return value is None
    if tp in (bool, int):
        return type(value) is tp
    if tp is float:
        return type(value) in (int, float) and math.isfinite(value)
    return isinstance(value, typing.get_origin(tp) or tp)


class ExampleHung(BaseException):
    """One example ran past its time limit. A BaseException, so that a reader's `except
    Exception` cannot turn the hang into a one-line error that passes (Hypothesis lets it
    through at once: a hang is not shrunk)."""


def time_limited(fn: Callable, seconds: float) -> Callable:
    """`fn`, failing instead of hanging when one call runs past `seconds`: SIGALRM raises
    `ExampleHung` inside it (a loop in Python code, a blocking system call), and if even that
    cannot interrupt it (a loop inside C code), faulthandler ends the process with every
    thread's traceback after twice the time. Only the main thread can take signals; elsewhere
    `fn` runs unguarded."""
    if not hasattr(signal, "setitimer"):
        return fn

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)

        def expire(signum: int, frame: Any) -> None:
            case = ", ".join(f"{k}={v!r:.80}" for k, v in kwargs.items())
            raise ExampleHung(f"one example ran past {seconds:g} s ({case}); a reader hangs, or the "
                              "machine is very slow: raise ELECTRA_FUZZ_TIMEOUT")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        faulthandler.dump_traceback_later(2 * seconds, exit=True)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            faulthandler.cancel_dump_traceback_later()
    return guarded


# ---- building blocks -------------------------------------------------------------------------

MISSING = object()  # a key left out of a JSON object
KEY = st.sampled_from(["text", "id", "label", "a\nb"]) | st.text(max_size=6)  # "a\nb": messages quote keys
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=3),
    max_leaves=6)
_PIECES = ["The river crossed a valley.", "Zoë met the café owner.", "{", "}", '{"text": "a b"}',
           '{"text": 5}', '{"body": "x"}', '{"text": "line\\nline"}', "[1, 2]", "null", '"', "<doc id=1>",
           "</doc>", "Title", "", " ", "\t", "\x00", "\u2028", "\ufeff", "😀", "a\x0bb"]
_BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f", b"\x80", b"\x00", b"\xef\xbb\xbf"]
HUGE = 200_000  # characters in a "huge line"


def _corrupt(draw: st.DrawFn, data: bytes) -> bytes:
    """Invalid UTF-8 spliced in at random places, sometimes a huge line."""
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.sampled_from(_BAD_BYTES)) + data[i:]
    if draw(st.integers(0, 7)) == 0:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + b"w " * (HUGE // 2) + data[i:]
    return data


def _text_lines(draw: st.DrawFn, pieces: list[str]) -> str:
    lines = draw(st.lists(st.sampled_from(pieces) | st.text(max_size=12), max_size=10))
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


@st.composite
def corpus_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=64))
    return _corrupt(draw, _text_lines(draw, _PIECES).encode())


def _obj(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not MISSING}


def _maybe(draw: st.DrawFn, value: Any) -> Any:
    """Usually `value`; sometimes a random JSON value or a missing key."""
    k = draw(st.integers(0, 9))
    return value if k < 7 else MISSING if k == 7 else draw(JSON)


# ---- corpus files ----------------------------------------------------------------------------

@st.composite
def jsonl_lines(draw: st.DrawFn) -> bytes:
    text = st.text(max_size=12) | st.sampled_from(["a\nb", " \n ", "x\r\ny", "\u2028"])
    record = st.fixed_dictionaries({"text": text}, optional={"id": st.integers()}) | JSON
    lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in draw(st.lists(record, max_size=6))]
    lines += draw(st.lists(st.sampled_from(["", "{", "nul", '{"text": "ok"} x', "[]"]), max_size=1))
    return _corrupt(draw, "\n".join(draw(st.permutations(lines))).encode())


# ---- configs: overrides and config JSON ------------------------------------------------------

def config_paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            out += config_paths(tp, f"{prefix}{f.name}.")
    return out


_VALUES = ["nan", "inf", "-inf", "1e400", "1e3", "1e-3", "-1", "0", "1", "2", "true", "None", "", " ",
           "0.5", "0x10", "1_000", "٣", "9" * 40, "-" + "9" * 400, "1e18", "cuda:0", "electra", "a=b"]
OVERRIDE_VALUE = st.sampled_from(_VALUES) | st.text(max_size=6) | st.integers().map(str) | st.floats().map(str)


def overrides_for(cls: type) -> st.SearchStrategy[list[str]]:
    key = st.sampled_from(config_paths(cls)) | st.text(max_size=8) | st.sampled_from(["model..x", "train.steps.x", "=1"])
    item = st.tuples(key, OVERRIDE_VALUE).map("=".join) | st.text(max_size=8)
    return st.lists(item, min_size=1, max_size=3)


def _mutate(draw: st.DrawFn, node: Any) -> Any:
    """A copy of a JSON tree with one value replaced, deleted or added somewhere."""
    if not isinstance(node, dict) or not node or draw(st.integers(0, 3)) == 0:
        return draw(JSON | st.sampled_from([float("nan"), float("inf"), 2**80, True, "1"]))
    key = draw(st.sampled_from(sorted(node)))
    out = dict(node)
    how = draw(st.integers(0, 5))
    if how == 0:
        del out[key]
    elif how == 1:
        out[draw(st.text(max_size=6))] = draw(JSON)
    else:
        out[key] = _mutate(draw, node[key])
    return out


@st.composite
def mutated(draw: st.DrawFn, tree: dict[str, Any]) -> dict[str, Any]:
    for _ in range(draw(st.integers(1, 3))):
        tree = _mutate(draw, tree)
    return tree


# ---- shards and manifest.json ----------------------------------------------------------------

SEQ = 8


def write_shards(d: Path, rows: int) -> dict[str, Any]:
    w = ShardWriter(d, "train", SEQ, "uint16", rows_per_shard=3)
    w.write(np.arange(rows * SEQ, dtype=np.int64).reshape(rows, SEQ) % 50 + 1)
    shards = w.close()
    split = SplitInfo(shards=shards, rows=rows, tokens=sum(s.tokens for s in shards), documents=2)
    m = Manifest(seq_len=SEQ, dtype="uint16", vocab_size=100, tokenizer_fingerprint="f" * 64,
                 special_ids={"pad": 0, "cls": 2, "sep": 3, "mask": 4, "unk": 1}, packing="electra",
                 preprocess={}, splits={"train": split}, totals={"rows": rows, "tokens": 0, "documents": 2},
                 created="now")
    return m.to_dict()


MANIFEST_EDITS = st.lists(st.tuples(st.sampled_from(
    ["seq_len", "dtype", "version", "vocab_size", "special_ids", "splits", "totals", "split", "shards",
     "shard.file", "shard.rows", "shard.sha256", "shard", "extra", "drop"]), JSON
    | st.sampled_from([0, -1, 7, 2**70, "uint16", "float64", "O", "V0", "../x", "", "train_00000.bin",
                       [], {}, "8", 8.0, True, "seq_len", "splits", "dtype", "version"])),
    min_size=1, max_size=3)


def edit_manifest(m: dict[str, Any], where: str, value: Any) -> None:
    splits = m.get("splits")
    split = splits.get("train") if isinstance(splits, dict) else None
    shards = split.get("shards") if isinstance(split, dict) else None
    shard = shards[0] if isinstance(shards, list) and shards and isinstance(shards[0], dict) else None
    if where == "split" and isinstance(splits, dict):
        splits["train"] = value
    elif where == "shards" and isinstance(split, dict):
        split["shards"] = value
    elif where == "shard" and shard is not None:
        shards[0] = value
    elif where.startswith("shard.") and shard is not None:
        shard[where.split(".")[1]] = value
    elif where == "drop":
        m.pop(value if isinstance(value, str) else "splits", None)
    elif where in m or where == "extra":
        m[where] = value


# ---- fine-tuning data ------------------------------------------------------------------------

_CELLS = ["0", "1", "2", "entailment", "neutral", "not_entailment", "3.5", "nan", "inf", "-1", "",
          " ", '"quoted', "a b", "x" * 30]


@st.composite
def glue_tsv(draw: st.DrawFn) -> tuple[str, bytes]:
    spec = get_task(draw(st.sampled_from(GLUE_TASKS)))
    cols = spec.columns
    names = [cols.text, cols.pair, cols.label, cols.index, "id", "junk"]
    header = draw(st.lists(st.sampled_from([n for n in names if n]), unique=True, max_size=6))
    cell = st.sampled_from(_CELLS + list(spec.labels)) | st.text(max_size=6)
    width = max(len(header), 4)
    rows = draw(st.lists(st.lists(cell, min_size=width - 2, max_size=width + 1), max_size=5))
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    prefix = "\ufeff" if draw(st.booleans()) else ""
    text = prefix + draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
    return spec.name, _corrupt(draw, text.encode())


@st.composite
def user_file(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".tsv", ".jsonl"]))
    value = JSON | st.sampled_from(_CELLS)
    record = st.fixed_dictionaries({}, optional={"sentence": value, "label": value, "pair": value,
                                                 "id": value, "\n": value})
    records = draw(st.lists(record, max_size=5))
    if suffix == ".jsonl":
        lines = [json.dumps(r) for r in records] + draw(st.lists(JSON.map(json.dumps), max_size=1))
    else:
        keys = draw(st.lists(st.sampled_from(["sentence", "label", "pair", "id", "a,b", '"q']),
                             unique=True, max_size=4))
        sep = "," if suffix == ".csv" else "\t"
        cell = st.sampled_from(_CELLS + ['"a, b"', '"open', "x\ty"]) | st.text(max_size=5)
        lines = [sep.join(keys)] + [sep.join(draw(st.lists(cell, max_size=len(keys) + 1)))
                                    for _ in range(len(records))]
    return suffix, _corrupt(draw, "\n".join(lines).encode())


def squad_with(qa: Any) -> bytes:
    return json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [qa]}]}]}).encode()


@st.composite
def squad_file(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=32))
    articles = []
    for _ in range(draw(st.integers(0, 2))):
        paragraphs = []
        for _ in range(draw(st.integers(0, 2))):
            qas = []
            for q in range(draw(st.integers(0, 3))):
                answers = [_obj(text=_maybe(draw, "river"), answer_start=_maybe(draw, draw(st.integers(-2, 30))))
                           for _ in range(draw(st.integers(0, 2)))]
                qas.append(_obj(id=_maybe(draw, f"q{q}"), question=_maybe(draw, "Where?"),
                                answers=_maybe(draw, answers), is_impossible=_maybe(draw, draw(st.booleans()))))
            paragraphs.append(_obj(context=_maybe(draw, "The river runs."), qas=_maybe(draw, qas)))
        articles.append(_obj(title="t", paragraphs=_maybe(draw, paragraphs)))
    return _corrupt(draw, json.dumps(_obj(version="2.0", data=_maybe(draw, articles))).encode())


_WORDS = ["EU", "rejects", "German", "-DOCSTART-", "-X-", "NNP", "B-ORG", "I-PER", "O", "B-XYZ", "o", "🙂"]


@st.composite
def conll_file(draw: st.DrawFn) -> bytes:
    line = st.lists(st.sampled_from(_WORDS) | st.text(max_size=4), max_size=4).map(" ".join)
    lines = draw(st.lists(line | st.sampled_from(["", "-DOCSTART- -X- O O", "\t"]), max_size=8))
    return _corrupt(draw, "\n".join(lines).encode())


@st.composite
def tagging_jsonl(draw: st.DrawFn) -> bytes:
    words = st.lists(st.sampled_from(_WORDS) | st.integers(0, 9), max_size=4)
    record = st.fixed_dictionaries({}, optional={"tokens": words | JSON, "tags": words | JSON | st.text(max_size=3)})
    lines = [json.dumps(r) for r in draw(st.lists(record | JSON, max_size=4))]
    return _corrupt(draw, "\n".join(lines).encode())
