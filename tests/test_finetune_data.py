"""Task readers for every format, the real files in ../shared/data, and example encoding:
first-sub-token labels, SQuAD windows, double_unordered; bad input gives clear errors."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from electra.data.tokenizer import Tokenizer
from electra.errors import ConfigError, DataError
from electra.finetuning import glue, ner, squad
from electra.finetuning.config import DataConfig, FinetuneConfig, SquadConfig
from electra.finetuning.features import IGNORE, batches
from electra.finetuning.tasks import get_task, load_data, resolve_tasks
from tests.finetune_fixtures import POS, write_conll, write_glue, write_squad, write_user

CFG = FinetuneConfig()
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftdata")
    return {"glue": write_glue(root / "glue"), "conll": write_conll(root / "conll"),
            "iob2": write_conll(root / "iob2", iob2=True), "squad": write_squad(root / "squad.json"),
            "squad2": write_squad(root / "squad2" / "train-v2.0.json", v2=True),
            "user": write_user(root / "user")}


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return Tokenizer.load(tiny_tokenizer)


def test_every_glue_layout_is_read(files):
    for spec in resolve_tasks("glue,wnli"):
        data = load_data(spec, CFG, data=files["glue"])
        assert len(data.train) == 48, spec.name  # QQP's malformed row is skipped
        for split, examples in data.dev.items():
            assert len(examples) == 16, (spec.name, split)
        first = data.train[0]
        assert first.text and (first.pair is not None) == (spec.columns.pair is not None), spec.name
        if spec.kind == "regression":
            assert isinstance(first.label, float)
        else:
            assert first.label in spec.labels, spec.name
    cola = load_data(get_task("cola"), CFG, data=files["glue"])
    assert cola.train[0].text.startswith(POS) and cola.train[0].label == "1"  # header-less, by position
    mrpc = load_data(get_task("mrpc"), CFG, data=files["glue"] / "MRPC")  # the task dir itself
    assert mrpc.train[0].label == "1"  # the BOM is not part of the first header name
    mnli = load_data(get_task("mnli"), CFG, data=files["glue"])
    assert mnli.prefixes == {"dev_matched": "", "dev_mismatched": "mm_"}
    assert get_task("mnli").metric_names == ["acc", "mm_acc"]


def test_glue_test_files_have_no_labels(files):
    for task in ("cola", "sst2", "mrpc"):
        spec = get_task(task)
        ex = spec.family.read(spec, files["glue"] / spec.dir_name / "test.tsv", "test", CFG)
        assert len(ex) == 6 and all(e.label is None for e in ex) and ex[2].guid == "2"


@pytest.mark.skipif(not (SHARED / "glue").is_dir(), reason="../shared/data not present")
def test_the_real_files_parse_with_the_readme_counts():
    counts = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "rte": (2490, 277),
              "stsb": (5749, 1500)}
    for task, (n_train, n_dev) in counts.items():
        data = load_data(get_task(task), CFG, data=SHARED / "glue")
        assert (len(data.train), len(data.dev["dev"])) == (n_train, n_dev), task
    mrpc = load_data(get_task("mrpc"), CFG, data=SHARED / "glue")
    assert sum(e.label == "1" for e in mrpc.train) == 2474
    assert mrpc.dev["dev"][0].pair.startswith('"The foodservice')  # literal quotes survive
    sq = load_data(get_task("squad"), CFG, data=SHARED / "squad" / "dev-v1.1.json", split_by_article=38)
    assert (len(sq.train), len(sq.dev["dev"])) == (8582, 1988) and "article split" in sq.note
    conll = load_data(get_task("conll2003"), CFG, data=SHARED / "conll2003")
    assert (len(conll.train), len(conll.dev["dev"])) == (14041, 3250)
    assert sum(len(s.words) for s in conll.train) == 203621


def test_user_csv_tsv_and_jsonl(files, tmp_path):
    u = files["user"]
    spec = get_task("classification")
    cfg = dataclasses.replace(CFG, data=DataConfig(text_column="review", label_column="sentiment"))
    csv = load_data(spec, cfg, train=u / "train.csv", dev=u / "dev.csv")
    assert csv.train[0].text.endswith(", yes") and csv.train[0].label in ("negative", "positive")
    assert spec.family.labels(spec, csv.train) == ("negative", "positive")
    tsv = load_data(spec, dataclasses.replace(CFG, data=DataConfig(text_column="text")), data=u)
    assert tsv.train[0].text.endswith('"q"')  # TSV: quotes are text
    reg = load_data(get_task("regression"), dataclasses.replace(
        CFG, data=DataConfig(text_column="a", pair_column="b", label_column="y")),
        train=u / "train.jsonl", dev=u / "dev.jsonl")
    assert isinstance(reg.train[0].label, float) and reg.train[0].pair
    tags = load_data(get_task("tagging"), CFG, train=u / "train_tags.jsonl", dev=u / "dev_tags.jsonl")
    assert tags.train[0].tags[0] == "B-PER"
    multi = tmp_path / "multi.csv"  # a quoted field over two lines keeps its line break
    multi.write_text('review,sentiment\n"first line\nsecond line",positive\nplain,negative\n')
    rows = spec.family.read(spec, multi, "train", cfg)
    assert [(r.text, r.label) for r in rows] == [("first line\nsecond line", "positive"), ("plain", "negative")]
    template = tmp_path / "to_predict.csv"  # an empty label column: unlabelled when predicting
    template.write_text("review,sentiment\ngreat movie,\nawful film,\n")
    assert [r.label for r in spec.family.read(spec, template, "test", cfg)] == [None, None]
    with pytest.raises(DataError, match="has no label"):
        spec.family.read(spec, template, "train", cfg)
    ids = tmp_path / "ids.jsonl"  # integer tag ids, as HF datasets exports them: entity F1 could only be 0
    ids.write_text('{"tokens": ["Ann", "ran"], "tags": [1, 0]}\n{"tokens": ["Bo"], "tags": [3]}\n')
    with pytest.raises(DataError, match=r"ids.jsonl: no tag names an entity chunk .*tags: 0, 1, 3\).*their names"):
        load_data(get_task("tagging"), CFG, train=ids, dev=ids)


def test_hf_datasets_directories(tmp_path):
    datasets = pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")

    def save(name, text_cols, label_names, labels):
        cols = {c: [f"{c} one", f"{c} two"] for c in text_cols}
        table = pa.table({**cols, "label": pa.array(labels, pa.int64()), "idx": pa.array([0, 1], pa.int32())})
        feats = datasets.Features({**{c: datasets.Value("string") for c in text_cols},
                                   "label": datasets.ClassLabel(names=label_names), "idx": datasets.Value("int32")})
        ds = datasets.Dataset(table, info=datasets.DatasetInfo(features=feats), fingerprint=name)
        datasets.DatasetDict({"train": ds, "validation": ds, "test": ds}).save_to_disk(str(tmp_path / name))
        return tmp_path / name

    cola = load_data(get_task("cola"), CFG, data=save("cola", ["sentence"], ["unacceptable", "acceptable"], [1, 0]))
    assert [e.label for e in cola.dev["dev"]] == ["1", "0"]  # 0/1 tasks keep the integer as the label
    rte_dir = save("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"], [1, 0])
    rte = load_data(get_task("rte"), CFG, data=rte_dir)
    assert [e.label for e in rte.train] == ["not_entailment", "entailment"]  # by ClassLabel name
    assert rte.train[0].pair == "sentence2 one"


def test_conll_iob1_and_iob2_with_docstart(files):
    spec = get_task("conll2003")
    iob1 = load_data(spec, CFG, data=files["conll"])
    iob2 = load_data(spec, CFG, data=files["iob2"])
    assert len(iob1.train) == 24 and len(iob1.dev["dev"]) == 8  # -DOCSTART- lines are not sentences
    assert iob1.train[0].tags[:2] == ("I-PER", "I-PER") and iob2.train[0].tags[:2] == ("B-PER", "I-PER")
    assert [s.words for s in iob1.train] == [s.words for s in iob2.train]


def test_squad_reader_and_article_split(files):
    spec = get_task("squad")
    data = load_data(spec, CFG, data=files["squad"], split_by_article=4)
    assert {e.article for e in data.train} == {0, 1, 2, 3} and {e.article for e in data.dev["dev"]} == {4, 5}
    assert "article split" in data.note and "not comparable" in data.note
    with pytest.raises(ConfigError, match="between 1 and 5"):
        load_data(spec, CFG, data=files["squad"], split_by_article=6)
    v2 = load_data(get_task("squad2"), CFG, train=files["squad2"], dev=files["squad2"])
    assert sum(e.impossible for e in v2.train) == 6 and all(not e.answers for e in v2.train if e.impossible)


def test_first_sub_token_labels_and_long_sentences(files, tok):
    spec = get_task("conll2003")
    sents = load_data(spec, CFG, data=files["conll"]).train[:4]
    sents[0] = ner.TaggedSentence("0", ("Müllerstraße", "visited") * 20, ("I-LOC", "O") * 20)
    cfg = dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, max_seq_len=16))
    enc = ner.encode(spec, sents, tok, spec.labels, cfg, True)
    assert all(len(ids) <= 16 for ids in enc.input_ids)
    covered = [0] * len(sents)
    for chunk, ids, y in zip(enc.meta, enc.input_ids, enc.targets["labels"], strict=True):
        covered[chunk.sentence] += len(chunk.positions)
        assert y[0] == IGNORE and y[-1] == IGNORE and ids[0] == tok.cls_id
        labelled = [i for i, t in enumerate(y) if t != IGNORE]
        assert labelled == [p for p in chunk.positions if p >= 0]  # first sub-token only
    assert covered == [len(s.words) for s in sents]  # every word of long sentences, across chunks
    assert sum(c.sentence == 0 for c in enc.meta) > 1
    # decoding perfect logits gives the gold tags back
    rows = []
    for y in enc.targets["labels"]:
        r = np.zeros((len(y), len(spec.labels)))
        for i, t in enumerate(y):
            if t != IGNORE:
                r[i, t] = 1
        rows.append(r)
    pred = ner.decode(spec, sents, enc, rows, spec.labels, cfg)
    assert pred == [list(s.tags) for s in sents]
    assert ner.score(spec, sents, pred, cfg)["f1"] == 1.0


def test_squad_windows_and_decoding(files, tok):
    spec = get_task("squad")
    examples = squad.read(spec, files["squad"], "train", CFG)[:8]
    cfg = dataclasses.replace(CFG, squad=SquadConfig(max_seq_len=40, doc_stride=16, max_query_len=12))
    enc = squad.encode(spec, examples, tok, (), cfg, True)
    assert all(len(ids) <= 40 for ids in enc.input_ids)
    assert len(enc) > len(examples)  # long contexts give several windows
    rows = []
    for ids, w, s, t in zip(enc.input_ids, enc.meta, enc.targets["start"], enc.targets["end"], strict=True):
        e = examples[w.example]
        if s:
            text = e.context[w.offsets[s - w.ctx_start][0]:w.offsets[t - w.ctx_start][1]]
            assert text == e.answers[0][0]
        start, end = np.zeros(len(ids)), np.zeros(len(ids))
        start[s], end[t] = 10.0, 10.0
        rows.append((start, end, None))
    for i in range(len(examples)):  # a context token may start an answer in one window only
        owners: dict[int, int] = {}
        for w in (m for m in enc.meta if m.example == i):
            for j, flag in enumerate(w.max_context):
                owners[w.doc_start + j] = owners.get(w.doc_start + j, 0) + flag
        assert set(owners.values()) == {1}
    preds = squad.decode(spec, examples, enc, rows, (), cfg)
    assert squad.score(spec, examples, preds, cfg)["exact"] == 1.0


def test_double_unordered_trains_both_orders_and_averages(files, tok):
    spec = get_task("mrpc")
    ex = load_data(spec, CFG, data=files["glue"]).dev["dev"][:3]
    enc = glue.encode(spec, ex, tok, spec.labels, CFG, False)
    assert len(enc) == 6 and enc.meta == 3
    assert enc.input_ids[3] == tok.encode(ex[0].pair, ex[0].text)["input_ids"]
    rows = [np.array([1.0, 0.0])] * 3 + [np.array([0.0, 3.0])] * 3  # orders disagree; mean picks 1
    assert glue.decode(spec, ex, enc, rows, spec.labels, CFG) == ["1", "1", "1"]
    off = dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, double_unordered=False))
    assert len(glue.encode(spec, ex, tok, spec.labels, off, True)) == 3
    stsb = get_task("stsb")
    ex = load_data(stsb, CFG, data=files["glue"]).dev["dev"][:2]
    enc = glue.encode(stsb, ex, tok, (), CFG, True)
    assert enc.targets["label"][:2] == enc.targets["label"][2:]  # normalised to [0, 1]
    assert glue.decode(stsb, ex, enc, [np.array([0.2]), np.array([0.4]), np.array([0.6]), np.array([0.8])],
                       (), CFG) == pytest.approx([2.0, 3.0])  # (0.2 + 0.6) / 2 * 5


def test_batches_pad_to_the_longest_row(files, tok):
    spec = get_task("sst2")
    ex = load_data(spec, CFG, data=files["glue"]).train[:10]
    enc = glue.encode(spec, ex, tok, spec.labels, CFG, True)
    for b in batches(enc, 4, tok.pad_id):
        lengths = [len(enc.input_ids[i]) for i in b.index]
        assert b.input_ids.shape == (len(b.index), max(lengths))
        assert b.attention_mask.sum(1).tolist() == lengths


def test_bad_input_is_a_clear_error(files, tmp_path):
    spec = get_task("sst2")
    bad = tmp_path / "SST-2"
    bad.mkdir()
    (bad / "train.tsv").write_text("text\tlabel\nhello\t1\n")
    with pytest.raises(DataError, match="no column 'sentence'"):
        spec.family.read(spec, bad / "train.tsv", "train", CFG)
    (bad / "train.tsv").write_text("sentence\tlabel\nhello\t2\n")
    with pytest.raises(DataError, match="unknown label '2' for sst2"):
        spec.family.read(spec, bad / "train.tsv", "train", CFG)
    (bad / "train.tsv").write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        spec.family.read(spec, bad / "train.tsv", "train", CFG)
    user = files["user"]
    with pytest.raises(DataError, match="no column 'sentence'.*--text-column"):
        load_data(get_task("classification"), CFG, train=user / "train.csv", dev=user / "dev.csv")
    (tmp_path / "tags.txt").write_text("a O\nb I-PER extra\n")
    with pytest.raises(DataError, match="same columns"):
        ner.read_conll(tmp_path / "tags.txt", "train")
    (tmp_path / "q.json").write_text(json.dumps({"version": "1.1"}))
    with pytest.raises(DataError, match="not SQuAD JSON"):
        squad.read(get_task("squad"), tmp_path / "q.json", "dev", CFG)
    with pytest.raises(ConfigError, match="did you mean 'sst2'"):
        get_task("sst3")


def test_rows_with_extra_fields_are_refused(tmp_path):
    """A tab inside TSV text (or an unquoted comma in CSV) shifts the fields after it: refused,
    not read as a shorter sentence with the wrong label (train, dev and `electra predict` input)."""
    spec = get_task("sst2")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nfine film\t1\nso\tbad\t0\n")
    with pytest.raises(DataError, match=r"dev.tsv:3 has 3 tab-separated fields, the file has 2"):
        spec.family.read(spec, tmp_path / "dev.tsv", "test", CFG)
    cola = get_task("cola")  # no header: fields by position
    (tmp_path / "cola.tsv").write_text("src\t1\t\tgood one\nsrc\t0\t\tbad\tone\n")
    with pytest.raises(DataError, match=r"cola.tsv:2 has 5 tab-separated fields, the file has 4"):
        cola.family.read(cola, tmp_path / "cola.tsv", "dev", CFG)
    user = get_task("classification")
    (tmp_path / "u.csv").write_text("sentence,label\nfine film,1\nso, bad,0\n")
    with pytest.raises(DataError, match=r":3 has 3 fields, the header 2; quote"):
        user.family.read(user, tmp_path / "u.csv", "dev", CFG)


def test_a_file_of_another_format_is_named_in_a_short_error(tmp_path):
    """A JSON file passed where a TSV belongs has its whole first line as one 'column': the
    message shows it cut short (it printed megabytes)."""
    spec = get_task("sst2")
    f = tmp_path / "dev-v1.1.json"
    f.write_text('{"data": [{"title": "' + "x" * 100_000 + '"}]}\n')
    with pytest.raises(DataError, match=r"has no column 'sentence' \(columns: '\{\"data\".{30,40}\.\.\.'\)") as e:
        spec.family.read(spec, f, "test", CFG)
    assert len(str(e.value)) < 400


def test_another_tasks_directory_or_a_root_without_the_task_is_named(tmp_path):
    from tests.finetune_fixtures import write_glue

    glue = write_glue(tmp_path / "glue")
    cola = get_task("cola")
    with pytest.raises(ConfigError, match=r"SST-2 is the SST-2 directory; task cola reads its own CoLA/"):
        load_data(cola, CFG, data=glue / "SST-2")  # CoLA's reader would take SST-2's files
    shutil.rmtree(glue / "MRPC")
    with pytest.raises(ConfigError, match=r"holds GLUE task directories but no MRPC/ for task mrpc"):
        load_data(get_task("mrpc"), CFG, data=glue)
    assert load_data(get_task("sst2"), CFG, data=glue / "SST-2").train  # the task's own directory
    (glue / "SST-2").rename(glue / "sst-2")  # a root whose task directories are lower-case
    assert load_data(get_task("sst2"), CFG, data=glue).train
    with pytest.raises(ConfigError, match=r"sst-2 is the SST-2 directory"):
        load_data(cola, CFG, data=glue / "sst-2")
    (glue / "sst-2").rename(glue / "sst2")  # and without the hyphen (as the task's name is written)
    assert load_data(get_task("sst2"), CFG, data=glue).train
    with pytest.raises(ConfigError, match=r"sst2 is the SST-2 directory"):
        load_data(cola, CFG, data=glue / "sst2")
    with pytest.raises(DataError, match=r"CoLA is a directory; pass the data file itself"):
        load_data(cola, CFG, train=glue / "CoLA", dev=glue / "CoLA" / "dev.tsv")


def test_seeds_are_a_count_or_distinct_integers_of_any_integer_type():
    import numpy as np

    from electra.finetuning.config import seed_list
    assert seed_list(3) == seed_list(range(3)) == seed_list(np.int64(3)) == [0, 1, 2]
    assert seed_list([np.int64(4), 5]) == [4, 5]
    for bad in (0, [0, 0], "3", True, [True], [], 2.0):
        with pytest.raises(ConfigError, match="must be a count"):
            seed_list(bad)


def test_a_score_column_read_as_classes_is_warned_of(caplog):
    import logging

    from electra.finetuning.glue import MANY_LABELS, TextExample, learned_labels

    spec = get_task("classification")
    scores = [TextExample(guid=str(i), text="t", pair=None, label=f"{i / 7:.3f}") for i in range(MANY_LABELS + 1)]
    words = [TextExample(guid=str(i), text="t", pair=None, label=f"class{i}") for i in range(MANY_LABELS + 1)]
    with caplog.at_level(logging.WARNING):
        learned_labels(spec, words)
        assert "--task regression" not in caplog.text
        learned_labels(spec, scores)
    assert f"{MANY_LABELS + 1} distinct numeric labels" in caplog.text and "--task regression" in caplog.text
