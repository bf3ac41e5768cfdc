"""`electra experiment run / report`: a 2-cell grid on the tiny settings runs both cells and
writes the report; a rerun redoes nothing; a deleted eval re-evaluates only its cell; bad specs
fail in one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from electra import experiment, experiment_report
from electra.cli import main
from electra.errors import ConfigError
from tests.conftest import TINY_RUN
from tests.finetune_fixtures import write_glue

FINETUNE = ["train.threads=1", "train.batch_size=8", "train.eval_batch_size=16", "train.max_seq_len=48",
            "train.epochs=1", "train.train_examples=16", "train.eval_examples=8"]


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_spec(path, data, glue) -> str:
    shared = [o for o in TINY_RUN if not o.startswith(("train.steps", "train.eval_every", "train.save_every"))]
    path.write_text(f"""
name = "tiny-grid"
preset = "tiny"
data = {json.dumps(str(data))}
overrides = {toml_list([*shared, "train.steps=4", "train.eval_every=2", "train.save_every=2", "train.threads=1"])}

[[cells]]
name = "electra"
overrides = ["objective.kind=electra"]

[[cells]]
name = "mlm"
overrides = ["objective.kind=mlm", "train.budget_flops=1"]

[finetune]
tasks = ["sst2"]
seeds = 1
glue_dir = {json.dumps(str(glue))}
overrides = {toml_list(FINETUNE)}
""")
    return str(path)


def test_grid_runs_reports_and_resumes_without_redoing_cells(tiny_data, tmp_path, capsys):
    spec = write_spec(tmp_path / "grid.toml", tiny_data, write_glue(tmp_path / "glue"))
    out = tmp_path / "exp"
    first = experiment.run(experiment.load_spec(spec), out)
    assert [(c.name, c.pretrain, c.evaluate) for c in first] == [("electra", "ran", "ran"), ("mlm", "ran", "ran")]
    rep = experiment_report.report(out)
    rows = {r["cell"]: r for r in rep["cells"]}
    assert rows["electra"]["kind"] == "electra" and rows["mlm"]["kind"] == "mlm"
    assert rows["electra"]["step"] == 4 and rows["mlm"]["step"] == 1  # the FLOP budget stops mlm at once
    assert rows["electra"]["flops"] > rows["mlm"]["flops"] > 0 and rows["electra"]["tokens"] > 0
    assert rows["electra"]["gain_disc_auc"] is not None and "sst2" in rows["electra"]["tasks"]
    table = (out / "report.md").read_text()
    assert "| electra | electra |" in table and "| mlm | mlm · train.budget_flops=1 |" in table
    assert json.loads((out / "report.json").read_text())["cells"][0]["cell"] == "electra"
    # the random-init control: the first cell's architecture, fine-tuned once like every cell
    assert json.loads((out / "control.json").read_text()) == {"architecture_of": "electra"}
    control = json.loads((out / "control" / "eval" / "results.json").read_text())
    assert "randomly re-initialised" in control["source"] and len(control["tasks"]["sst2"]["runs"]) == 1
    assert rep["control"]["tasks"]["sst2"]["n"] == 1
    assert "| **random init** | architecture of electra | 0 | 0 |" in table
    try:  # figures need the optional `plot` extra (part of `dev`); without it the report says so and has none
        import matplotlib  # noqa: F401
        expected = {"score_vs_flops.png", "context_gains.png", "losses.png"}  # one generator size: no curve
    except ImportError:
        expected = set()
    assert {p.split("/")[-1] for p in rep["figures"]} == expected

    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*") if p.is_file()}
    control_stamp = (out / "control" / "eval" / "results.json").stat().st_mtime_ns
    again = experiment.run(experiment.load_spec(spec), out)
    assert [(c.pretrain, c.evaluate) for c in again] == [("done", "done")] * 2
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.suffix != ".json" or p.parent.name != "cells")
    assert (out / "control" / "eval" / "results.json").stat().st_mtime_ns == control_stamp

    (out / "cells" / "mlm" / "eval" / "results.json").unlink()
    assert main(["experiment", "run", spec, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 evaluated in this invocation" in printed and "| electra |" in printed
    ckpt = out / "cells" / "mlm" / "checkpoints"
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if ckpt in p.parents)
    assert (out / "cells" / "mlm" / "eval" / "results.json").is_file()
    # a cell whose training ended but whose export did not happen (stopped or killed in between)
    shutil.rmtree(out / "cells" / "electra" / "export")
    shutil.rmtree(out / "cells" / "electra" / "eval")
    again = experiment.run(experiment.load_spec(spec), out)
    assert again[0].pretrain == "exported" and (out / "cells" / "electra" / "export" / "discriminator").is_dir()
    # other fine-tuning settings are never mixed into the table of the earlier ones
    Path(spec).write_text(Path(spec).read_text().replace("train.train_examples=16", "train.train_examples=12"))
    with pytest.raises(ConfigError, match="evaluated under other fine-tuning settings"):
        experiment.run(experiment.load_spec(spec), out)


def test_interrupted_pretraining_resumes(tiny_data, tmp_path):
    spec = experiment.with_options(experiment.load_spec(write_spec(tmp_path / "g.toml", tiny_data,
                                                                   write_glue(tmp_path / "glue"))))
    spec = experiment.dataclasses.replace(spec, cells=spec.cells[:1])
    cell = tmp_path / "exp" / "cells" / "electra"
    from electra import api
    api.pretrain("tiny", out=cell, data=tiny_data, overrides=[*spec.cell_overrides(spec.cells[0]), "train.stop_at=2"])
    import shutil
    shutil.rmtree(cell / "export")  # as if stopped before the end
    done = experiment.run(spec, tmp_path / "exp")
    assert [(c.pretrain, c.evaluate) for c in done] == [("resumed", "ran")]
    assert experiment_report.read_cell(cell)["step"] == 4


def cli_error(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_specs_fail_in_one_line(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "tiny"\ncelss = []\n')
    assert "unknown key celss; did you mean cells?" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path)
    bad.write_text('[[cells]]\nname = "a"\noverrides = ["objective.knid=mlm"]\n')
    assert "cell a:" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path, "--data", tiny_data)
    bad.write_text('[[cells]]\nname = "a"\n[finetune]\ntasks = "sst2"\nseed = 2\n')
    assert "finetune.seed; did you mean finetune.seeds?" in cli_error(capsys, "experiment", "run", bad,
                                                                       "--out", tmp_path)
    bad.write_text('[[cells]]\nname = "a"\n[finetune]\nseeds = "12"\n')  # not seeds 1 and 2
    assert "finetune.seeds='12' must be a count" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path)
    bad.write_text('[[cells]]\nname = "a"\n[[cells]]\nname = "a.json"\n')  # beside cells/a's settings file
    assert "not ending in .json" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path)
    bad.write_text('[[cells]]\nname = "a"\n[[cells]]\nname = "a"\n')
    assert "unique" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path)
    bad.write_text('[[cells]]\nname = "a"\n')
    assert "names no data; pass --data" in cli_error(capsys, "experiment", "run", bad, "--out", tmp_path)
    # fine-tuning data that is not there fails before any cell is pre-trained
    for glue in ("", f'glue_dir = "{tmp_path / "nosuch"}"\n'):
        bad.write_text(f'[[cells]]\nname = "a"\n[finetune]\ntasks = "sst2"\n{glue}')
        err = cli_error(capsys, "experiment", "run", bad, "--out", tmp_path / "x", "--data", tiny_data)
        assert "--glue-dir" in err or "nosuch" in err, err
        assert not (tmp_path / "x" / "cells").exists()
    assert "did you mean 'ablations'" in cli_error(capsys, "experiment", "run", "ablation", "--out", tmp_path)
    assert "one budget" in cli_error(capsys, "experiment", "run", "ablations", "--budgets", "1e15,1e16",
                                     "--out", tmp_path)
    assert "no cells/" in cli_error(capsys, "experiment", "report", tmp_path / "nothing")
    with pytest.raises(ConfigError, match="not valid TOML"):
        bad.write_text("name = \n")
        experiment.load_spec(bad)


def test_builtin_grids_match_the_paper():
    vs = experiment.load_spec("electra_vs_bert", budgets=[1e14, 1e15, 1e16])
    assert [c.name for c in vs.cells] == ["electra-1e14", "mlm-1e14", "electra-1e15", "mlm-1e15",
                                          "electra-1e16", "mlm-1e16"]
    kinds = [o for c in experiment.load_spec("ablations").cells for o in c.overrides if "kind" in o]
    assert [k.split("=")[1] for k in kinds] == ["electra", "electra15", "replace_mlm", "all_tokens_mlm", "mlm"]
    sharing = experiment.load_spec("sharing").cells
    assert all("objective.generator_size=1.0" in c.overrides for c in sharing)
    assert [c.name for c in experiment.load_spec("generator_size").cells] == [
        "generator-0.25", "generator-0.5", "generator-1.0"]


def test_a_cell_stopped_by_sigterm_is_not_evaluated_and_stops_the_grid(tiny_data, tmp_path, monkeypatch, capsys):
    spec = write_spec(tmp_path / "grid.toml", tiny_data, write_glue(tmp_path / "glue"))
    real = experiment.api_pretrain

    def preempted(*args, **kwargs):  # what api.pretrain returns after the loop caught SIGTERM
        res = real(*args, **kwargs)
        return dataclasses.replace(res, train=dataclasses.replace(res.train, preempted=True))

    monkeypatch.setattr(experiment, "api_pretrain", preempted)
    out = tmp_path / "exp"
    assert main(["experiment", "run", spec, "--out", str(out)]) == 0
    assert "stopped by SIGTERM in cell electra" in capsys.readouterr().out
    assert not (out / "cells" / "electra" / "eval").exists() and not (out / "cells" / "mlm").exists()
    assert not (out / "report.md").exists() and not (out / "control").exists()


def test_report_gives_the_spread_over_seeds_and_the_control_row(tmp_path):
    cell = tmp_path / "cells" / "electra-1e14"
    (cell / "eval").mkdir(parents=True)

    def results(runs: list[float], **task) -> str:
        s = sorted(runs)
        return json.dumps({"seeds": [0, 1, 2], "tasks": {"conll2003": {
            "main_metric": "f1", "runs": runs, "summary": {"f1": {"median": s[1], "min": s[0], "max": s[2], "n": 3}},
            **task}}})

    (cell / "eval" / "results.json").write_text(results([0.61, 0.6, 0.64], selection={"chosen": ["optim.lr=3e-4"]}))
    (cell / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 10, "flops": 1e14, "tokens": 640}) + "\n")
    (tmp_path / "control" / "eval").mkdir(parents=True)
    (tmp_path / "control" / "eval" / "results.json").write_text(results([0.47, 0.45, 0.5]))
    rep = experiment_report.report(tmp_path)
    table = (tmp_path / "report.md").read_text()
    assert "| electra-1e14 | – | 1e+14 | 640 | – | – | 61.00 [60.00, 64.00] | 61.00 |" in table
    assert "| **random init** | no pre-training | 0 | 0 | – | – | 47.00 [45.00, 50.00] | 47.00 |" in table
    assert rep["control"]["tasks"]["conll2003"]["median"] == pytest.approx(47.0)
    # what a cell chose with --select is listed under the table (the control chose nothing here)
    assert "- electra-1e14: conll2003 optim.lr=3e-4" in table and "- random init" not in table


def test_generator_sizes_get_their_curve_and_ties_draw(tmp_path):
    pytest.importorskip("matplotlib")
    cells = {  # two cells share a generator size and a FLOP count: the plots must still draw
        "gen-0.25": {"generator_size": 0.25, "sharing": "embeddings"},
        "gen-0.25-lr": {"generator_size": 0.25, "sharing": "embeddings"},
        "gen-1.0": {"generator_size": 0.5, "sharing": "all"},  # one shared encoder: the generator is 1.0
        "adversarial": {"generator_size": 0.25, "sharing": "embeddings", "algorithm": "adversarial"},
        "mlm": {"generator_size": 0.25, "sharing": "embeddings", "kind": "mlm"}}
    for name, obj in cells.items():
        cell = tmp_path / "cells" / name
        (cell / "eval").mkdir(parents=True)
        (cell / "config.json").write_text(json.dumps({"model": {"hidden_size": 64}, "train": {"budget_flops": 1e14},
                                                      "objective": {"kind": "electra", **obj}}))
        (cell / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 5, "flops": 1e14, "tokens": 64}) + "\n")
        (cell / "eval" / "results.json").write_text(json.dumps({"seeds": [0], "tasks": {t: {
            "main_metric": "acc", "summary": {"acc": {"median": 0.7, "min": 0.7, "max": 0.7, "n": 1}}}
            for t in ("sst2", "rte")}}))
    rep = experiment_report.report(tmp_path)
    assert {r["cell"]: r["generator_size"] for r in rep["cells"]} == {
        "gen-0.25": 0.25, "gen-0.25-lr": 0.25, "gen-1.0": 1.0, "adversarial": 0.25, "mlm": None}
    rows = {r["cell"]: r for r in rep["cells"]}
    assert experiment_report._size_group(rows["gen-0.25"]) == "electra · hidden 64 · 1e+14 FLOPs"
    assert experiment_report._size_group(rows["adversarial"]) == "electra/adversarial · hidden 64 · 1e+14 FLOPs"
    assert {p.split("/")[-1] for p in rep["figures"]} == {
        "score_vs_flops.png", "context_gains.png", "losses.png", "generator_size.png"}


def test_control_can_be_turned_off_in_the_spec_or_on_the_command_line(tiny_data, tmp_path, monkeypatch):
    spec = experiment.load_spec(write_spec(tmp_path / "g.toml", tiny_data, write_glue(tmp_path / "glue")))
    assert spec.finetune.control is True
    assert experiment.with_options(spec, overrides=["finetune.control=false"]).finetune.control is False
    with pytest.raises(ConfigError, match="finetune.control=true or finetune.control=false"):
        experiment.with_options(spec, overrides=["finetune.control=maybe"])
    raw = (tmp_path / "g.toml").read_text().replace("[finetune]\n", "[finetune]\ncontrol = false\n")
    (tmp_path / "g.toml").write_text(raw)
    off = experiment.load_spec(tmp_path / "g.toml")
    assert off.finetune.control is False
    evaluated = []
    monkeypatch.setattr(experiment, "api_evaluate",
                        lambda model, *a, random_init=False, **kw: evaluated.append((model, random_init)))
    experiment.run(dataclasses.replace(off, cells=off.cells[:1]), tmp_path / "exp")
    assert evaluated == [(tmp_path / "exp" / "cells" / "electra", False)]  # the cell only, no control
    assert not (tmp_path / "exp" / "control").exists()
    (tmp_path / "g.toml").write_text(raw.replace("control = false", 'control = "no"'))
    with pytest.raises(ConfigError, match="finetune.control='no' must be true or false"):
        experiment.load_spec(tmp_path / "g.toml")


def test_stop_at_cannot_slice_a_grid(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "tiny"\n[[cells]]\nname = "a"\noverrides = ["train.stop_at=2"]\n')
    err = cli_error(capsys, "experiment", "run", bad, "--out", tmp_path / "x", "--data", tiny_data)
    assert "cell a: train.stop_at does not slice a grid" in err


def test_the_score_panel_appears_only_where_it_is_not_a_task_again(tmp_path):
    def row(tasks: dict[str, float], glue_tasks: list[str] | None) -> dict:
        eval_dir = tmp_path / f"e{len(list(tmp_path.iterdir()))}"
        eval_dir.mkdir()
        results = {"tasks": {k: {"main_metric": "acc", "summary": {"acc": {"median": v, "min": v, "max": v, "n": 1}}}
                             for k, v in tasks.items()}}
        if glue_tasks is not None:
            results["glue_average"] = {"score": sum(tasks[t] for t in glue_tasks) / len(glue_tasks), "tasks": glue_tasks}
        (eval_dir / "results.json").write_text(json.dumps(results))
        got, score, repeats = experiment_report.read_scores(eval_dir)
        return {"tasks": got, "score": score, "score_repeats_a_task": repeats}
    sst2_and_conll = [row({"sst2": 0.72, "conll2003": 0.61}, ["sst2"]), row({"sst2": 0.7, "conll2003": 0.64}, ["sst2"])]
    assert experiment_report.score_panels(sst2_and_conll) == ["conll2003", "sst2"]  # the GLUE average is SST-2
    two_glue = [row({"sst2": 0.7, "rte": 0.6}, ["sst2", "rte"])]
    assert experiment_report.score_panels(two_glue) == ["rte", "sst2", "score"]
    evenly_spaced = [row({"conll2003": 0.6, "squad": 0.7, "ner": 0.8}, None)]  # mean 70 equals a median
    assert experiment_report.score_panels(evenly_spaced) == ["conll2003", "ner", "squad", "score"]
    assert experiment_report.score_panels([row({"sst2": 0.72}, ["sst2"])]) == ["sst2"]
    assert experiment_report.score_panels([{"tasks": {}, "score": None}]) == ["score"]


def test_select_in_the_spec_reaches_every_evaluation_and_is_checked_before_pre_training(
        tiny_data, tmp_path, monkeypatch, capsys):
    path = tmp_path / "g.toml"
    raw = write_spec(path, tiny_data, write_glue(tmp_path / "glue")) and path.read_text()
    path.write_text(raw.replace("[finetune]\n", '[finetune]\nselect = ["optim.lr=1e-3,2e-3"]\nselect_size = 5\n'))
    spec = experiment.load_spec(path)
    assert spec.finetune.select == ("optim.lr=1e-3,2e-3",) and spec.finetune.select_size == 5
    calls = []
    monkeypatch.setattr(experiment, "api_evaluate", lambda model, *a, **kw: calls.append(kw))
    experiment.run(dataclasses.replace(spec, cells=spec.cells[:1]), tmp_path / "exp")
    assert [(c["select"], c["select_size"], c.get("random_init", False)) for c in calls] == [
        (["optim.lr=1e-3,2e-3"], 5, False), (["optim.lr=1e-3,2e-3"], 5, True)]  # the cell, then the control
    # an evaluation under another grid is never read as this one's
    eval_dir = tmp_path / "exp" / "cells" / "electra" / "eval"
    eval_dir.mkdir(parents=True)
    other = experiment.with_options(spec, overrides=["finetune.select=optim.lr=5e-4,1e-3"]).finetune.selection()
    done = {"seeds": [0], "tasks": {"sst2": {"runs": [{}]}}}
    (eval_dir / "results.json").write_text(json.dumps({**done, "select": other.key()}))
    with pytest.raises(ConfigError, match="evaluated under other fine-tuning settings"):
        experiment.run(dataclasses.replace(spec, cells=spec.cells[:1]), tmp_path / "exp")
    # under the same grid it is the cell's evaluation: not run again (the control still is)
    (eval_dir / "results.json").write_text(json.dumps({**done, "select": spec.finetune.selection().key()}))
    calls.clear()
    experiment.run(dataclasses.replace(spec, cells=spec.cells[:1]), tmp_path / "exp")
    assert [c.get("random_init", False) for c in calls] == [True]
    # bad values, and a training set too small to hold the examples out, fail before any pre-training
    path.write_text(raw.replace("[finetune]\n", '[finetune]\nselect = ["optim.lr=1e-3,-2"]\n'))
    assert "optim.lr=-2.0 must be > 0" in cli_error(capsys, "experiment", "run", path, "--out", tmp_path / "x")
    path.write_text(raw.replace("[finetune]\n", '[finetune]\nselect = ["optim.lr=1e-3,2e-3"]\nselect_size = 100\n'))
    assert "too few to hold 100 out" in cli_error(capsys, "experiment", "run", path, "--out", tmp_path / "y")
    assert not (tmp_path / "y" / "cells").exists()


def test_select_can_be_given_on_the_command_line(tiny_data, tmp_path):
    spec = experiment.load_spec(write_spec(tmp_path / "g.toml", tiny_data, write_glue(tmp_path / "glue")))
    on = experiment.with_options(spec, overrides=["finetune.select=optim.lr=1e-3,2e-3",
                                                  "finetune.select=head.dropout=0.1,0.2", "finetune.select_size=7"])
    assert on.finetune.select == ("optim.lr=1e-3,2e-3", "head.dropout=0.1,0.2") and on.finetune.select_size == 7
    assert on.finetune.overrides == spec.finetune.overrides  # not FinetuneConfig keys
    again = experiment.with_options(on, overrides=["finetune.select=optim.lr=5e-4,1e-3"])  # replaced in place
    assert again.finetune.select == ("optim.lr=5e-4,1e-3", "head.dropout=0.1,0.2")
    with pytest.raises(ConfigError, match="finetune.select_size=many must be an integer"):
        experiment.with_options(spec, overrides=["finetune.select_size=many"])
    with pytest.raises(ConfigError, match="finetune.select needs a value"):
        experiment.with_options(spec, overrides=["finetune.select"])
    # a key both chosen and fixed (the spec's FAST overrides hold no lr; this one does) fails at once
    with pytest.raises(ConfigError, match="optim.lr is both chosen by --select and set as an override"):
        experiment.with_options(spec, overrides=["finetune.optim.lr=5e-4", "finetune.select=optim.lr=1e-3,2e-3"])
