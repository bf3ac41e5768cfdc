"""`electra evaluate --select`: settings chosen per task on training examples held out of
training, the held-out draw, the choice rule, and the end-to-end run that resumes."""

import dataclasses
import json

import pytest

from electra.cli import main
from electra.errors import ConfigError
from electra.finetuning import squad
from electra.finetuning.config import FinetuneConfig
from electra.finetuning.select import choose, parse_selection, point_dir_name, split_heldout
from electra.finetuning.tasks import TaskData, get_task
from tests.finetune_fixtures import write_squad
from tests.test_finetune_cli import FAST, backbone, cli_error, data  # noqa: F401  (fixtures)

NO_LR = [o for o in FAST if not o.startswith("optim.lr=")]  # --select chooses it


def test_the_grid_is_every_combination_in_order_and_bad_values_fail_before_any_run():
    sel = parse_selection(["optim.lr=3e-4,1e-3", "train.epochs=3, 10"], 0, FinetuneConfig())
    assert sel.points == [("optim.lr=3e-4", "train.epochs=3"), ("optim.lr=3e-4", "train.epochs=10"),
                          ("optim.lr=1e-3", "train.epochs=3"), ("optim.lr=1e-3", "train.epochs=10")]
    assert parse_selection([], 0, FinetuneConfig()) is None
    for items, size, message in (
            (["optim.lr"], 0, "is not of the form KEY=V1,V2"),
            (["optim.lr=3e-4"], 0, "one setting"),
            (["optim.lr=3e-4,3e-4"], 0, "distinct"),
            (["optim.lr=3e-4,"], 0, "distinct, non-empty"),
            (["optim.lr=1e-3,2e-3", "optim.lr=5e-4,1e-4"], 0, "given twice"),
            (["seed=1,2"], 0, "not a setting to choose per task"),
            (["train.eval_examples=10,20"], 0, "not a setting to choose per task"),
            (["data.text_column=a,b"], 0, "not a setting to choose per task"),
            (["optim.lr=3e-4,0.0003"], 0, "3e-4 and 0.0003 are the same setting"),
            (["optim.lrr=1e-3,2e-3"], 0, "did you mean 'optim.lr'"),
            (["optim.lr=1e-3,-1"], 0, "optim.lr=-1.0 must be > 0"),
            (["optim.lr=1e-3,2e-3"], -3, "--select-size -3 must be >= 1"),
            ([], 100, "--select-size needs --select")):
        with pytest.raises(ConfigError, match=message):
            parse_selection(items, size, FinetuneConfig())


def _sel(size=0):
    return parse_selection(["optim.lr=1e-3,2e-3"], size, FinetuneConfig())


def test_the_heldout_draw_is_a_seeded_fifth_of_the_training_set_and_never_the_dev_set():
    spec = get_task("sst2")
    train = [(f"sentence {i}", i % 2) for i in range(50)]
    task_data = TaskData(train, {"dev": [("dev sentence", 0)]}, {"dev": ""})
    split = split_heldout(spec, task_data, _sel())
    held = split.dev["heldout"]
    assert len(held) == 10 and len(split.train) == 40 and list(split.dev) == ["heldout"]
    assert sorted(split.train + held) == sorted(train)  # a partition of the training set
    assert split_heldout(spec, task_data, _sel()).dev["heldout"] == held  # the same draw for every encoder
    assert held != train[:10] and held != train[-10:]  # drawn, not a slice
    assert len(split_heldout(spec, task_data, _sel(7)).dev["heldout"]) == 7
    with pytest.raises(ConfigError, match="too few to hold 50 out for --select; pass --select-size between 1 and 49"):
        split_heldout(spec, task_data, _sel(50))
    with pytest.raises(ConfigError, match="has 8 training examples; --select needs at least 10"):
        split_heldout(spec, TaskData(train[:8], {}, {}), _sel(2))
    big = TaskData([(f"s{i}", 0) for i in range(30_000)], {}, {})
    assert len(split_heldout(spec, big, _sel()).dev["heldout"]) == 2000  # a fifth, at most 2,000


def test_question_answering_holds_out_whole_articles(tmp_path):
    spec = get_task("squad")
    examples = squad.read(spec, write_squad(tmp_path / "s.json", n_articles=10), "dev", FinetuneConfig())
    split = split_heldout(spec, TaskData(examples, {}, {}), _sel(9))
    held, rest = split.dev["heldout"], split.train
    assert {e.article for e in held}.isdisjoint({e.article for e in rest})
    assert len(held) >= 9 and len(held) % 4 == 0 and len(held) + len(rest) == len(examples)
    # never every article, and never a training set of one article (nothing would be left out)
    assert rest and split_heldout(spec, TaskData(examples, {}, {}), _sel(39)).train
    with pytest.raises(ConfigError, match="holds one article"):
        split_heldout(spec, TaskData([e for e in examples if e.article == 0] * 3, {}, {}), _sel(2))


def test_the_best_median_wins_then_the_mean_then_the_earlier_setting():
    a, b, c = ("optim.lr=1e-3",), ("optim.lr=2e-3",), ("optim.lr=5e-4",)
    assert choose([(a, 0.70, 0.69), (b, 0.72, 0.60), (c, 0.71, 0.75)]) == b
    assert choose([(a, 0.70, 0.69), (b, 0.70, 0.71)]) == b
    assert choose([(a, 0.70, 0.70), (b, 0.70, 0.70)]) == a
    nan = float("nan")
    assert choose([(a, nan, nan), (b, 0.1, 0.1)]) == b and choose([(b, 0.1, 0.1), (a, nan, nan)]) == b
    assert choose([(a, None, None), (b, 0.0, 0.0)]) == b  # a diverged setting ranks last


def test_setting_directories_are_one_per_setting():
    assert point_dir_name(("optim.lr=3e-4", "train.epochs=10")) == "optim.lr=3e-4+train.epochs=10"
    odd = [("head.kind=a/b",), ("head.kind=a_b",), (f"optim.lr=0.{'0' * 300}1",), ("x=a b",)]
    names = [point_dir_name(p) for p in odd]
    assert len(set(names)) == 4 and all(len(n) < 40 and "/" not in n and " " not in n for n in names)


def test_evaluate_chooses_on_heldout_examples_runs_the_seeds_with_the_choice_and_resumes(
        backbone, data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "sel"
    argv = ["evaluate", str(backbone), "--tasks", "sst2,stsb", "--seeds", "2", "--glue-dir", str(data["glue"]),
            "--out", str(out), *NO_LR, "train.epochs=3", "--select", "optim.lr=1e-9,3e-3"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    for task in ("sst2", "stsb"):
        sel = res["tasks"][task]["selection"]
        assert [p["overrides"] for p in sel["points"]] == [["optim.lr=1e-9"], ["optim.lr=3e-3"]]
        metric = res["tasks"][task]["main_metric"]
        for p in sel["points"]:  # each score is the median of that setting's held-out runs
            runs = [json.loads((out / "select" / task / p["overrides"][0] / f"seed{s}" / "result.json").read_text())
                    for s in (0, 1)]
            assert p["median"] == pytest.approx(sum(r["metrics"][metric] for r in runs) / 2)
            assert all(list(r["metrics"]) == list(res["tasks"][task]["summary"]) for r in runs)
        assert sel["chosen"] == list(choose([(tuple(p["overrides"]), p["median"], p["mean"]) for p in sel["points"]]))
        assert "9 of 48 training examples held out" in sel["note"]
    md = (out / "results.md").read_text()
    assert "Settings chosen per task on training examples held out" in md and "(chosen)" in md

    # the seeds ran with the chosen setting: the same numbers as an evaluation given it directly
    chosen = res["tasks"]["sst2"]["selection"]["chosen"][0]
    direct = tmp_path / "direct"
    assert main(["evaluate", str(backbone), "--tasks", "sst2", "--seeds", "2", "--glue-dir", str(data["glue"]),
                 "--out", str(direct), *NO_LR, "train.epochs=3", chosen]) == 0
    plain = json.loads((direct / "results.json").read_text())["tasks"]["sst2"]["runs"]
    assert [r["metrics"] for r in res["tasks"]["sst2"]["runs"]] == [r["metrics"] for r in plain]

    stamp = (out / "select" / "sst2" / "optim.lr=1e-9" / "seed0" / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # resumes: nothing runs again
    assert (out / "select" / "sst2" / "optim.lr=1e-9" / "seed0" / "result.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["tasks"] == res["tasks"]
    # another grid is another evaluation
    other = [*argv[:-1], "optim.lr=1e-9,2e-3"]
    assert "(the --select grid or --select-size differ)" in cli_error(capsys, *other)
    assert "--select 'optim.lr'" in cli_error(capsys, *argv[:-1], "optim.lr")


def test_a_diverging_setting_ranks_last_and_a_changed_choice_never_reuses_the_other_settings_runs(
        backbone, data, tmp_path, capsys, monkeypatch):  # noqa: F811
    from electra.finetuning import report

    seen = []
    real = report.finetune
    monkeypatch.setattr(report, "finetune", lambda b, s, d, cfg, **kw: seen.append(
        (tuple(d.dev), cfg.train.eval_examples)) or real(b, s, d, cfg, **kw))
    out = tmp_path / "div"
    argv = ["evaluate", str(backbone), "--tasks", "sst2", "--seeds", "1", "--glue-dir", str(data["glue"]),
            "--out", str(out), *NO_LR, "train.eval_examples=2", "--select", "optim.lr=1e-3,1e6"]
    assert main(argv) == 0
    sel = json.loads((out / "results.json").read_text())["tasks"]["sst2"]["selection"]
    assert sel["chosen"] == ["optim.lr=1e-3"] and sel["points"][1]["median"] is None
    diverged = json.loads((out / "select" / "sst2" / "optim.lr=1e6" / "seed0" / "result.json").read_text())
    assert "training loss became nan" in diverged["diverged"]
    assert "| optim.lr=1e6 | diverged |" in (out / "results.md").read_text()
    # every setting is scored on the whole held-out split; dev keeps train.eval_examples
    assert seen == [(("heldout",), 0), (("heldout",), 0), (("dev",), 2)]
    final = out / "runs" / "sst2" / "optim.lr=1e-3" / "seed0" / "result.json"
    assert final.is_file()

    # the held-out scores now favour the other setting (as a changed seed list can): its own
    # final runs are made, the first setting's are neither reused nor lost
    diverged.update(diverged=None, metrics={"acc": 1.0})
    (out / "select" / "sst2" / "optim.lr=1e6" / "seed0" / "result.json").write_text(json.dumps(diverged))
    seen.clear()
    capsys.readouterr()
    monkeypatch.setattr(report, "finetune", lambda b, s, d, cfg, **kw: seen.append(cfg.optim.lr) or
                        real(b, s, d, dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=1e-3)), **kw))
    assert main(argv) == 0
    assert seen == [1e6]  # only the new choice's final run
    assert json.loads((out / "results.json").read_text())["tasks"]["sst2"]["selection"]["chosen"] == ["optim.lr=1e6"]
    assert final.is_file() and (out / "runs" / "sst2" / "optim.lr=1e6" / "seed0" / "result.json").is_file()


def test_a_key_is_either_chosen_or_fixed_and_column_flags_are_for_the_users_own_data(
        backbone, data, tmp_path, capsys):  # noqa: F811
    base = ["evaluate", backbone, "--tasks", "sst2", "--glue-dir", data["glue"], "--out", tmp_path / "e"]
    err = cli_error(capsys, *base, "--select", "optim.lr=1e-3,3e-4", "optim.lr=5e-4")
    assert "optim.lr is both chosen by --select and set as an override" in err
    assert "--text-column is for your own data" in cli_error(capsys, *base, "--text-column", "review")
    assert "--label-column is for your own data" in cli_error(
        capsys, "finetune", backbone, "--task", "sst2", "--data", data["glue"], "--label-column", "y",
        "--out", tmp_path / "f")
    assert not (tmp_path / "e").exists() and not (tmp_path / "f").exists()
    from electra import api
    with pytest.raises(ConfigError, match="both chosen by --select"):
        api.evaluate(backbone, "sst2", tmp_path / "e", glue_dir=data["glue"], select="optim.lr=1e-3,3e-4",
                     overrides=["optim.lr=5e-4"])
