"""Fuzzing the input side: corpus files, config overrides and JSON, fine-tuning data, shard
manifests and checkpoint metadata. Every case ends in well-formed output, a one-line
`ElectraError`, or a skip the reader counts and reports; any other exception is a reader bug.
The damaged inputs are built in tests/fuzz_strategies.py.

Hypothesis runs derandomized (the same cases on every machine) and without its example database.
At most `MAX_CASES` cases run over the `PROPERTIES`: `BUDGET` generated cases per property plus
the `REGRESSIONS`, explicit cases that once escaped a reader as a traceback."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import signal
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from electra.cli import main
from electra.config import (
    PreprocessConfig,
    PretrainConfig,
    TokenizerConfig,
    apply_overrides,
    from_dict,
    load_json,
    preset,
    to_dict,
)
from electra.data.corpus import iter_documents, iter_file_documents
from electra.data.preprocess import preprocess
from electra.data.shards import MANIFEST, ShardReader, read_manifest
from electra.data.tokenizer import Tokenizer, train_tokenizer
from electra.errors import CheckpointError, ConfigError, DataError, ElectraError
from electra.finetuning import glue, ner, squad
from electra.finetuning.config import DataConfig, FinetuneConfig
from electra.finetuning.run import load_finetuned
from electra.finetuning.tasks import get_task
from electra.train import checkpoint as ckpt
from tests.fuzz_strategies import (
    MANIFEST_EDITS,
    OVERRIDE_VALUE,
    ExampleHung,
    assert_typed,
    config_paths,
    conll_file,
    corpus_bytes,
    edit_manifest,
    glue_tsv,
    jsonl_lines,
    mutated,
    outcome,
    overrides_for,
    scratch,
    squad_file,
    squad_with,
    tagging_jsonl,
    time_limited,
    user_file,
    warnings_of,
    write_shards,
)

# cases per property; ELECTRA_FUZZ_EXAMPLES=2000 searches deeper (still derandomized)
EXAMPLES = int(os.environ.get("ELECTRA_FUZZ_EXAMPLES", "100"))
SLOW_EXAMPLES = max(1, EXAMPLES // 4)  # for the properties that train a tokenizer or preprocess
# seconds one example may run before it fails as a hang: far above the slowest (~1 s on a loaded
# 2-core machine), so a slow shared CPU is not a failure; Hypothesis's own deadline stays off
# (it measures only examples that return, and would fail slow ones)
EXAMPLE_TIMEOUT = float(os.environ.get("ELECTRA_FUZZ_TIMEOUT", "60"))
BUDGET: dict[str, int] = {}  # property -> its max_examples; filled by `fuzz`
REGRESSIONS: dict[str, int] = {}  # property -> explicit cases; filled by `regression`


def fuzz(n: int = EXAMPLES) -> Callable:
    """Hypothesis settings for a property, and a time limit on each of its examples."""
    def wrap(fn: Callable) -> Callable:
        BUDGET[fn.__name__] = n
        fn.hypothesis.inner_test = time_limited(fn.hypothesis.inner_test, EXAMPLE_TIMEOUT)
        return settings(max_examples=n, deadline=None, derandomize=True, database=None)(fn)
    return wrap


def regression(**case: Any) -> Callable:
    """`hypothesis.example`, counted: a case that once crashed a reader (kept as a guard)."""
    def wrap(fn: Callable) -> Callable:
        REGRESSIONS[fn.__name__] = REGRESSIONS.get(fn.__name__, 0) + 1
        return example(**case)(fn)
    return wrap


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case writes into its own fresh directory under pytest's temporary directory."""
    return tmp_path_factory.mktemp("fuzz")


# ---- corpus readers --------------------------------------------------------------------------


def _check_docs(docs: list[list[str]]) -> None:
    for doc in docs:
        assert doc and all(isinstance(s, str) and s and s == s.strip() and "\n" not in s for s in doc)


@fuzz()
@given(data=corpus_bytes(), name=st.sampled_from(["c.txt", "c.jsonl", "c", "c.json"]),
       gz=st.sampled_from(["no", "no", "gzip", "raw", "truncated", "tail"]), cut=st.floats(0, 1))
def test_corpus_files_read_or_fail_in_one_line(base, data, name, gz, cut) -> None:
    if gz in ("gzip", "truncated", "tail"):
        packed = gzip.compress(data)
        data = (packed + b"junk" if gz == "tail"
                else packed[:max(1, min(len(packed) - 1, int(cut * len(packed))))] if gz == "truncated"
                else packed)
    name = name + ".gz" if gz != "no" else name
    with scratch(base) as d:
        path = d / name
        path.write_bytes(data)
        seen: list[int] = []
        docs = outcome(DataError, lambda: list(iter_file_documents(path, progress=seen.append)))
    if gz in ("truncated", "tail"):
        assert docs is None, "a damaged gzip file must not read as a shorter corpus"
    if docs is not None:
        _check_docs(docs)
        assert sum(seen) == len(data)  # progress covers the whole file


@fuzz()
@regression(data=b'{"a\\nb": 1}', name="c.jsonl", field="text")  # the key's newline broke the message
@given(data=jsonl_lines(), name=st.sampled_from(["c.jsonl", "c", "c.ndjson"]),
       field=st.sampled_from(["text", "body", "\n"]))
def test_jsonl_corpus_reads_or_names_the_line(base, data, name, field) -> None:
    with scratch(base) as d:
        (d / name).write_bytes(data)
        docs = outcome(DataError, lambda: list(iter_file_documents(d / name, field)))
    if docs is not None:
        _check_docs(docs)


# ---- configs: dotted overrides and config JSON -----------------------------------------------


@fuzz()
@regression(overrides=["model.layer_norm_eps=nan"], name="tiny")  # accepted: no range check
@regression(overrides=["model.hidden_size=" + "9" * 30], name="tiny")  # OverflowError in generator_model
@given(overrides=overrides_for(PretrainConfig), name=st.sampled_from(["tiny", "small"]))
def test_pretrain_overrides_give_a_valid_config_or_a_config_error(overrides, name) -> None:
    cfg = outcome(ConfigError, apply_overrides, preset(name), overrides)
    if cfg is not None:
        assert_typed(cfg)


@fuzz()
@given(overrides=overrides_for(FinetuneConfig))
def test_finetune_overrides_give_a_valid_config_or_a_config_error(overrides) -> None:
    cfg = outcome(ConfigError, apply_overrides, FinetuneConfig(), overrides)
    if cfg is not None:
        assert_typed(cfg)


@fuzz()
@regression(data=b"\x80", encoding="utf-8")  # UnicodeDecodeError
@regression(data=[None], encoding="utf-8")  # TypeError: not an object
@regression(data={"model": {"hidden_size": "128"}}, encoding="utf-8")  # TypeError in __post_init__
@regression(data={"train": 5}, encoding="utf-8")  # AttributeError in __post_init__
@given(data=mutated(to_dict(preset("tiny"))) | st.binary(max_size=32), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_config_json_loads_typed_or_fails_in_one_line(base, data, encoding) -> None:
    with scratch(base) as d:
        path = d / "config.json"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(json.dumps(data, ensure_ascii=False), encoding=encoding, errors="replace")
        cfg = outcome(ConfigError, load_json, PretrainConfig, path)
    if cfg is not None:
        assert_typed(cfg)


# ---- manifest.json and shards ----------------------------------------------------------------

@fuzz()
@regression(rows=1, edits=[("seq_len", "8")], raw=None)  # TypeError comparing str and int
@regression(rows=1, edits=[("seq_len", -1), ("shards", [])], raw=None)  # negative dimensions
@regression(rows=1, edits=[("shard.file", 0)], raw=None)  # TypeError: Path / int
@regression(rows=1, edits=[("extra", 1)], raw=None)  # multi-line TypeError message
@given(rows=st.integers(1, 7), edits=MANIFEST_EDITS, raw=st.none() | st.binary(max_size=24))
def test_manifest_reads_consistent_shards_or_fails_in_one_line(base, rows, edits, raw) -> None:
    with scratch(base) as d:
        m = write_shards(d, rows)
        for where, value in edits:
            edit_manifest(m, where, value)
        (d / MANIFEST).write_bytes(raw if raw is not None else json.dumps(m).encode())
        manifest = outcome(DataError, read_manifest, d)
        if manifest is None:
            return
        for split in manifest.splits:
            reader = outcome(DataError, ShardReader, d, split, manifest)
            if reader is not None:
                out = reader.take(np.arange(len(reader)))
                assert out.shape == (len(reader), reader.seq_len) and out.dtype == np.int64


# ---- checkpoint metadata: meta.json, config.json, finetune.json ------------------------------


@fuzz()
@regression(metas=[b"\x80"])  # UnicodeDecodeError
@regression(metas=[[1]])  # AttributeError in problem()
@regression(metas=[{"step": 1}])  # KeyError 'tokens' at resume
@regression(metas=[{"step": 1, "tokens": 0, "files": {"a\nb": "0"}}])  # a newline in the skip reason
@given(metas=st.lists(mutated({"step": 3, "tokens": 96, "flops": 1.5, "tokenizer_fingerprint": "f" * 64,
                               "files": {"model.safetensors": "0" * 64}}) | st.binary(max_size=24),
                      min_size=1, max_size=3))
def test_checkpoint_meta_is_checked_or_skipped_with_a_reason(base, metas) -> None:
    with scratch(base) as d:
        for i, meta in enumerate(metas):
            step = d / "checkpoints" / f"step_{i:08d}"
            step.mkdir(parents=True)
            (step / "model.safetensors").write_bytes(b"weights")
            (step / "meta.json").write_bytes(meta if isinstance(meta, bytes) else json.dumps(meta).encode())
            got = outcome(CheckpointError, ckpt.read_meta, step)
            if got is not None:
                assert type(got.get("step")) is int and type(got.get("tokens")) is int
                assert isinstance(got.get("files", {}), dict)
                assert isinstance(got.get("tokenizer_fingerprint") or "", str)
            why = ckpt.problem(step)
            assert why is None or (isinstance(why, str) and "\n" not in why)
        latest = outcome(CheckpointError, ckpt.latest_checkpoint, d / "checkpoints")
        assert latest is None or ckpt.problem(latest) is None


@fuzz()
@regression(info=b"\x80")  # UnicodeDecodeError
@regression(info={"task": 5, "config": {}, "model": {}, "labels": []})  # AttributeError in get_task
@regression(info={"task": "sst2", "config": [], "model": {}, "labels": []})  # AttributeError in from_dict
@given(info=mutated({"task": "sst2", "config": to_dict(FinetuneConfig()), "model": {"hidden_size": 32},
                     "labels": ["0", "1"]}) | st.binary(max_size=24))
def test_finetune_info_fails_in_one_line_before_anything_loads(base, info) -> None:
    with scratch(base) as d:  # no tokenizer/ or weights: every case must end in a clear error
        (d / "finetune.json").write_bytes(info if isinstance(info, bytes) else json.dumps(info).encode())
        assert outcome(ElectraError, load_finetuned, d) is None


# ---- fine-tuning readers ---------------------------------------------------------------------


def _check_text_examples(spec, examples: list[glue.TextExample]) -> None:
    assert examples
    for e in examples:
        assert isinstance(e.guid, str) and isinstance(e.text, str)
        assert e.pair is None or isinstance(e.pair, str)
        if e.label is None:
            continue
        if spec.kind == "regression":
            assert type(e.label) is float and math.isfinite(e.label)
        else:
            assert isinstance(e.label, str) and (not spec.labels or e.label in spec.labels)


@fuzz()
@regression(case=("stsb", b"sentence1\tsentence2\tscore\na\tb\tnan\n"), split="train")  # a NaN target
@given(case=glue_tsv(), split=st.sampled_from(["train", "dev", "test"]))
def test_glue_tsv_reads_labelled_examples_or_counts_its_skips(base, case, split) -> None:
    name, data = case
    spec = get_task(name)
    with scratch(base) as d, warnings_of("electra.finetuning.glue") as skips:
        (d / "f.tsv").write_bytes(data)
        examples = outcome(DataError, glue.read_glue_tsv, spec, d / "f.tsv", split)
        rows = len(glue.read_lines(d / "f.tsv")) - 1 if examples is not None else 0  # below the header
    if examples is not None:
        _check_text_examples(spec, examples)
        # the one documented skip: QQP's malformed rows, counted and reported in one warning
        counts = [int(m.split("skipped ")[1].split()[0]) for m in skips.messages if "malformed rows" in m]
        if counts:
            assert spec.columns.skip_bad_rows and len(skips.messages) == 1
            assert len(examples) + counts[0] == rows
        else:
            assert not skips.messages


@fuzz()
@regression(case=(".csv", b"sentence,label\n" + b"x" * 140_000 + b",1\n"), task="classification",
            split="train", pair=None)  # csv.Error: field larger than field limit
@regression(case=(".jsonl", b"[1]"), task="classification", split="train", pair=None)  # TypeError
@given(case=user_file(), task=st.sampled_from(["classification", "regression"]),
       split=st.sampled_from(["train", "test"]), pair=st.sampled_from([None, "pair"]))
def test_user_csv_tsv_jsonl_read_or_fail_in_one_line(base, case, task, split, pair) -> None:
    suffix, data = case
    spec, cfg = get_task(task), FinetuneConfig(data=DataConfig(pair_column=pair))
    with scratch(base) as d:
        (d / f"f{suffix}").write_bytes(data)
        examples = outcome(DataError, glue.read_user, spec, d / f"f{suffix}", split, cfg)
    if examples is not None:
        _check_text_examples(spec, examples)


@fuzz()
@regression(data=squad_with({"id": "1", "question": "q", "answers": [{"text": "c", "answer_start": "x"}]}),
            split="train")  # ValueError from int("x")
@regression(data=squad_with([]), split="dev")  # AttributeError: list.get
@given(data=squad_file(), split=st.sampled_from(["train", "dev"]))
def test_squad_json_reads_typed_questions_or_fails_in_one_line(base, data, split) -> None:
    with scratch(base) as d:
        (d / "s.json").write_bytes(data)
        examples = outcome(DataError, squad.read, get_task("squad2"), d / "s.json", split, FinetuneConfig())
    for e in examples or ():
        assert all(isinstance(x, str) for x in (e.qid, e.question, e.context))
        assert type(e.impossible) is bool and type(e.article) is int
        assert all(isinstance(t, str) and type(s) is int for t, s in e.answers)
        assert split != "train" or e.impossible or e.answers


@fuzz()
@regression(data=b"[1]", suffix=".jsonl", task="tagging", split="train")  # AttributeError: list.get
@given(data=conll_file() | tagging_jsonl(), suffix=st.sampled_from([".txt", ".jsonl"]),
       task=st.sampled_from(["conll2003", "tagging"]), split=st.sampled_from(["train", "test"]))
def test_tagging_files_read_aligned_sentences_or_fail_in_one_line(base, data, suffix, task, split) -> None:
    spec = get_task(task)
    with scratch(base) as d:
        (d / f"t{suffix}").write_bytes(data)
        sentences = outcome(DataError, ner.read, spec, d / f"t{suffix}", split, FinetuneConfig())
    for s in sentences or ():
        assert s.words and all(isinstance(w, str) for w in s.words)
        assert (s.tags is None and split == "test") or (s.tags is not None and len(s.tags) == len(s.words))
        assert all(isinstance(t, str) and (not spec.labels or t in spec.labels) for t in s.tags or ())


# ---- writers fed by the readers: a failure leaves nothing that looks complete ----------------


@fuzz(SLOW_EXAMPLES)
@given(data=corpus_bytes(), name=st.sampled_from(["c.txt", "c.jsonl", "c"]))
def test_tokenizer_training_writes_a_loadable_tokenizer_or_nothing(base, data, name) -> None:
    with scratch(base) as d:
        (d / name).write_bytes(data)
        out, cfg = d / "tokenizer", TokenizerConfig(vocab_size=100, min_frequency=1)
        # the reader's DataError has to come back out through the Rust trainer unchanged
        tok = outcome(DataError, lambda: train_tokenizer(iter_documents([d / name]), out, cfg))
        if tok is None:
            assert sorted(p.name for p in d.iterdir()) == [name], "a failed training left files behind"
        else:
            assert Tokenizer.load(out).fingerprint == tok.fingerprint


@fuzz(SLOW_EXAMPLES)
@given(data=corpus_bytes(), name=st.sampled_from(["c.txt", "c.jsonl", "c.txt.gz"]), cut=st.booleans())
def test_preprocess_writes_a_complete_data_dir_or_nothing(base, tiny_tokenizer, data, name, cut) -> None:
    if name.endswith(".gz"):
        data = gzip.compress(data)
        data = data[: len(data) // 2] if cut else data  # fails after some rows were written
    with scratch(base) as d:
        (d / name).write_bytes(data)
        out = d / "data"
        cfg = PreprocessConfig(seq_len=16, workers=1, valid_fraction=0.1)
        manifest = outcome(DataError, preprocess, [d / name], tiny_tokenizer, out, cfg)
        if manifest is None:
            assert sorted(p.name for p in d.iterdir()) == [name], "a failed preprocess left files behind"
        else:
            assert read_manifest(out) == manifest
            assert len(ShardReader(out, "train")) == manifest.splits["train"].rows


# ---- the command line: the resolved config, or one `electra: error:` line --------------------


@fuzz()
@given(overrides=st.lists(st.tuples(st.sampled_from(config_paths(PretrainConfig)), OVERRIDE_VALUE).map("=".join),
                          max_size=3),
       config=st.none() | mutated(to_dict(preset("tiny"))) | st.binary(max_size=16))
def test_cli_prints_the_config_or_one_error_line(base, overrides, config) -> None:
    argv = ["plan", "--preset", "tiny", "--print-config", *overrides]
    out, err = io.StringIO(), io.StringIO()
    with scratch(base) as d:
        if config is not None:
            (d / "c.json").write_bytes(config if isinstance(config, bytes) else json.dumps(config).encode())
            argv += ["--config", str(d / "c.json")]
        with redirect_stdout(out), redirect_stderr(err):
            rc = main(argv)
    if rc == 0:
        assert_typed(from_dict(PretrainConfig, json.loads(out.getvalue())))
    else:
        assert rc == 2 and out.getvalue() == ""
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("electra: error: "), err.getvalue()


PROPERTIES = sorted(BUDGET)
MAX_CASES = sum(BUDGET.values()) + sum(REGRESSIONS.values())


def test_an_example_that_hangs_fails_instead_of_hanging() -> None:
    @settings(max_examples=3, deadline=None, derandomize=True, database=None)
    @given(n=st.integers(0, 3))
    def hangs(n: int) -> None:
        while n >= 0:  # never ends
            n += 1

    hangs.hypothesis.inner_test = time_limited(hangs.hypothesis.inner_test, 0.2)
    with pytest.raises(ExampleHung, match=r"ran past 0.2 s \(n=0\); a reader hangs"):
        hangs()
    guarded = time_limited(lambda: "done", 0.2)
    assert guarded() == "done" and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
