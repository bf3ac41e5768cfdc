"""Corpus reading: every input format, path expansion and the errors users will hit."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from electra.data.corpus import expand_paths, iter_documents
from electra.errors import DataError

WIKI = """<doc id="1" url="https://en.wikipedia.org/wiki?curid=1" title="Alpha">
Alpha

Alpha is the first letter.
Early life.
It was used widely.

</doc>
<doc id="2" url="https://en.wikipedia.org/wiki?curid=2" title="Empty">
Empty

</doc>
<doc id="3" url="https://en.wikipedia.org/wiki?curid=3" title="Beta">
Beta
Beta is the second letter.
</doc>
"""


def test_plain_text_blank_lines_separate_documents(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("\n\n  First line.  \nSecond line.\n\n\n\nOther doc.\r\n\nLast\n")
    assert list(iter_documents([f])) == [["First line.", "Second line."], ["Other doc."], ["Last"]]


def test_jsonl_custom_field_splits_on_newlines(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    rows = [{"body": "Para one.\n\nPara two.\n", "id": 1}, {"body": "   "}, {"body": "Solo."}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert list(iter_documents([f], text_field="body")) == [["Para one.", "Para two."], ["Solo."]]


def test_json_lines_sniffed_without_extension(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_text(json.dumps({"text": "Hello there."}) + "\n")
    assert list(iter_documents([f])) == [["Hello there."]]


def test_wikiextractor_drops_markup_titles_and_empty_docs(tmp_path: Path) -> None:
    f = tmp_path / "wiki_00"
    f.write_text(WIKI)
    assert list(iter_documents([f])) == [
        ["Alpha is the first letter.", "Early life.", "It was used widely."],
        ["Beta is the second letter."],
    ]


def test_gzip_of_each_format(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "wiki_01.gz", "wt", encoding="utf-8") as f:
        f.write(WIKI)
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "From json."}) + "\n")
    with gzip.open(tmp_path / "c.txt.gz", "wt", encoding="utf-8") as f:
        f.write("From text.\n")
    docs = list(iter_documents([tmp_path]))
    assert docs == [["From json."], ["From text."], ["Alpha is the first letter.", "Early life.",
                                                     "It was used widely."], ["Beta is the second letter."]]


def test_expand_paths_dirs_globs_hidden_and_empty(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b.txt", "a.txt", "sub/c.txt", ".hidden/x.txt", ".dot.txt"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "empty.txt").write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in expand_paths([tmp_path])] == [
        "a.txt", "b.txt", "sub/c.txt"]
    assert [p.name for p in expand_paths([str(tmp_path / "*.txt")])] == ["a.txt", "b.txt"]
    assert [p.name for p in expand_paths([str(tmp_path / "**" / "c.txt")])] == ["c.txt"]
    assert len(expand_paths([tmp_path / "a.txt", tmp_path / "a.txt"])) == 1


def test_progress_reports_all_bytes(tmp_path: Path) -> None:
    f = tmp_path / "a.txt.gz"
    with gzip.open(f, "wt") as g:
        g.write("one\n\ntwo\n")
    seen: list[int] = []
    assert len(list(iter_documents([f], progress=seen.append))) == 2
    assert sum(seen) == f.stat().st_size and all(n >= 0 for n in seen)


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"corpus path \S*missing.txt does not exist; check --corpus"):
        list(iter_documents([tmp_path / "missing.txt"]))
    with pytest.raises(DataError, match="matched no files"):
        list(iter_documents([str(tmp_path / "*.none")]))
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(DataError, match="no non-empty files"):
        list(iter_documents([tmp_path]))


def test_binary_file(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"model.bin is not UTF-8 text \(binary file\?\); remove it"):
        list(iter_documents([f]))


def test_corrupt_gzip(tmp_path: Path) -> None:
    f = tmp_path / "x.txt.gz"
    f.write_bytes(gzip.compress(b"hello\n" * 1000)[:40])
    with pytest.raises(DataError, match="not a valid gzip file"):
        list(iter_documents([f]))


def test_bad_json_line_and_missing_field(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(DataError, match=r"a.jsonl:2 is not valid JSON"):
        list(iter_documents([f]))
    f.write_text('{"text": "ok"}\n{"content": "no text"}\n')
    with pytest.raises(DataError, match=r"a.jsonl:2 has no field 'text' .*--text-field"):
        list(iter_documents([f]))


def test_tsv_rows_are_documents_of_the_named_columns_read_unquoted(tmp_path: Path) -> None:
    f = tmp_path / "train.tsv"  # GLUE style: bare quotes inside the text, no quoting
    f.write_text('sentence\tlabel\nit \'s a "charming" film \t1\n\t0\n\n  dull , dull  \t0\n')
    assert list(iter_documents([f], text_field="sentence")) == [['it \'s a "charming" film'], ["dull , dull"]]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("#1 String\t#2 String\tQuality\nA cat sat.\tA cat was sitting.\t1\n")
    assert list(iter_documents([pairs], text_field="#1 String,#2 String")) == [["A cat sat.", "A cat was sitting."]]


def test_csv_quoting_gzip_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "reviews.csv.gz"
    with gzip.open(f, "wt") as out:
        out.write('id,text\n1,"Good, honest\nwork."\n2,plain\n')
    assert list(iter_documents([f])) == [["Good, honest", "work."], ["plain"]]
    with pytest.raises(DataError, match=r"has no column 'body' \(columns: 'id', 'text'\).*--text-field"):
        list(iter_documents([f], text_field="body"))
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,a, b\n")
    with pytest.raises(DataError, match=r"bad.csv:2 has 3 fields, the header 2; quote"):
        list(iter_documents([bad]))


def test_byte_order_marks_uppercase_gz_blank_lines_nulls_and_long_cells(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    (tmp_path / "excel.csv").write_bytes(bom + b"sentence,label\r\nit is a good movie,1\r\n")
    (tmp_path / "a.jsonl").write_bytes(bom + b'{"text": "hi there"}\n{"text": null}\n{"text": "ok"}\n')
    (tmp_path / "w.txt").write_bytes(bom + b'<doc id="1" title="T">\nT\nbody\n</doc>\n')
    assert list(iter_documents([tmp_path / "excel.csv"], text_field="sentence")) == [["it is a good movie"]]
    assert list(iter_documents([tmp_path / "a.jsonl"])) == [["hi there"], ["ok"]]
    assert list(iter_documents([tmp_path / "w.txt"])) == [["body"]]
    with gzip.open(tmp_path / "UP.CSV.GZ", "wt") as out:
        out.write("\n\ntext\n" + "x" * 200_000 + "\n")  # blank lines before the header; a cell over 128 KiB
    assert list(iter_documents([tmp_path / "UP.CSV.GZ"])) == [["x" * 200_000]]


def test_a_file_is_read_once_however_it_is_named_and_symlink_loops_end(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("text\n")
    (tmp_path / "d" / "sub" / "up").symlink_to(tmp_path / "d")  # a loop
    monkeypatch.chdir(tmp_path)
    assert expand_paths(["d/a.txt", str(tmp_path / "d" / "a.txt"), "d"]) == [Path("d/a.txt")]
    (tmp_path / "b.txt").write_text("more\n")
    assert expand_paths(["d/a.txt", "b.txt", "./d/a.txt"]) == [Path("d/a.txt"), Path("b.txt")]  # where first named


def test_a_bad_byte_is_named_by_its_line_and_offset(tmp_path: Path) -> None:
    f = tmp_path / "mostly.txt"
    f.write_bytes(b"good line\n" * 50_000 + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"mostly.txt:50001 is not UTF-8 \(byte 500003: 0xe9\); fix that line"):
        list(iter_documents([f]))
    early = tmp_path / "early.txt"  # inside the decoder's first block: a text file, not a binary one
    early.write_bytes(b"one\r\ntwo\r\ncaf\xe9 au lait\r\n" + b"more text\r\n" * 100)
    with pytest.raises(DataError, match=r"early.txt:3 is not UTF-8 \(byte 13: 0xe9\).*iconv -c"):
        list(iter_documents([early]))


def test_real_wikiextractor_shard() -> None:
    path = Path("/work/shared/data/pretrain/enwiki-2021/wiki_00.gz")
    if not path.exists():
        pytest.skip("shared enwiki-2021 data not available")
    docs = list(iter_documents([path]))
    assert 300 < len(docs) < 2000  # ~1/64 of 36,183 docs with text
    assert not any(line.startswith(("<doc", "</doc")) for doc in docs for line in doc)
    assert docs[0][0].startswith("Jarred Shaw (born")  # the title line "Jarred Shaw" is dropped


def test_a_table_reads_the_same_as_corpus_and_as_fine_tuning_data(tmp_path: Path) -> None:
    """One reader (data/tables.py) for both: quoted line breaks and commas, long cells, a row
    short of its trailing field, and the same refusal of a row with too many fields."""
    import csv

    from electra.finetuning.config import FinetuneConfig
    from electra.finetuning.tasks import get_task

    task, cfg = get_task("classification"), FinetuneConfig()
    long = "y" * 200_000
    f = tmp_path / "t.csv"
    f.write_text(f'sentence,label\n"Good, honest\nwork.",1\n{long},0\n')
    old = csv.field_size_limit(131_072)  # csv's default: the fine-tuning reader once stopped at it
    try:
        assert [r.text for r in task.family.read(task, f, "train", cfg)] == ["Good, honest\nwork.", long]
    finally:
        csv.field_size_limit(old)
    assert list(iter_documents([f], text_field="sentence")) == [["Good, honest", "work."], [long]]
    f.write_text("sentence,label\nfine,1\nshort\n")  # a dropped trailing field: an empty cell
    assert list(iter_documents([f], text_field="sentence")) == [["fine"], ["short"]]
    with pytest.raises(DataError, match=r"t.csv: example 2 has no label"):
        task.family.read(task, f, "train", cfg)
    f.write_text("sentence,label\ngood film\nbad film,0\n")  # a short first row: the header still names the columns
    with pytest.raises(DataError, match=r"t.csv: example 1 has no label in column 'label'"):
        task.family.read(task, f, "train", cfg)
    with pytest.raises(DataError, match=r"t.csv: example 1 has no label in column 'label'"):
        task.family.read(task, f, "test", cfg)  # a file to predict that is partly labelled
    f.write_text("label,premise,hypothesis\n1,a dog runs,an animal moves\n0,a dog runs\n")
    pairs = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, text_column="premise", pair_column="hypothesis"))
    with pytest.raises(DataError, match=r"t.csv: example 2 has no text in column 'hypothesis'"):
        task.family.read(task, f, "train", pairs)  # not read as a single sentence
    f.write_text("label,sentence\n1,good film\n0\n")  # a short row lacking its text: not an empty example
    with pytest.raises(DataError, match=r"t.csv: example 2 has no text in column 'sentence'"):
        task.family.read(task, f, "train", cfg)
    f.write_text('sentence,label\n\n"an open quote,1\nswallows,0\nthe rest,1\n')  # opened on line 3
    for read in (lambda: list(iter_documents([f], text_field="sentence")), lambda: task.family.read(task, f, "train", cfg)):
        with pytest.raises(DataError, match=r"t.csv:3 cannot be read as a CSV table \(unexpected end of data\)"):
            read()
    f.write_text("sentence,label\na, b,1\n")
    for read in (lambda: list(iter_documents([f], text_field="sentence")), lambda: task.family.read(task, f, "train", cfg)):
        with pytest.raises(DataError, match=r"t.csv:2 has 3 fields, the header 2; quote the text"):
            read()


def test_shards_given_as_a_corpus_or_a_file_given_as_data_are_named(tiny_data: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    from electra.cli import main

    def error(*argv) -> str:
        assert main([str(a) for a in argv]) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert "holds shards written by electra preprocess, not text; pass it as --data" in error(
        "pretrain", "--corpus", tiny_data, "--out", tmp_path / "r")
    text = tmp_path / "c.txt"
    text.write_text("some text\n")
    assert "is a file; pass the directory written by electra preprocess (raw text goes to --corpus)" in error(
        "pretrain", "--data", text, "--out", tmp_path / "r2")
    assert not any((tmp_path / "r").rglob("*")) and not any((tmp_path / "r2").rglob("*"))  # nothing written
