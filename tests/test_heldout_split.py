"""studies/heldout_split.py: a dev set drawn from the training file, disjoint from what is left."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from electra.finetuning.config import FinetuneConfig
from electra.finetuning.tasks import get_task, load_data

SCRIPT = Path(__file__).resolve().parents[1] / "studies" / "heldout_split.py"


def test_held_out_rows_leave_the_training_file_and_read_as_the_task(tmp_path):
    task = tmp_path / "SST-2"
    task.mkdir()
    rows = [f"{'long ' * (i % 3 * 5)}phrase {i}\t{i % 2}" for i in range(60)]
    (task / "train.tsv").write_text("sentence\tlabel\n" + "".join(r + "\n" for r in rows))
    done = subprocess.run([sys.executable, str(SCRIPT), str(task), "--out", str(tmp_path / "sel" / "SST-2"),
                           "--size", "10", "--min-words", "6"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = load_data(get_task("sst2"), FinetuneConfig(), data=tmp_path / "sel")
    train, held = [e.text for e in data.train], [e.text for e in data.dev["dev"]]
    assert len(held) == 10 and len(train) == 50 and not set(train) & set(held)
    assert all(len(t.split()) >= 6 for t in held) and sorted(train + held) == sorted(r.split("\t")[0] for r in rows)
    spec = importlib.util.spec_from_file_location("heldout_split", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.split(task / "train.tsv", 10, 6, 2026)[2] == [r for r in rows if r.split("\t")[0] in held]
    (task / "train.tsv").write_text("gj04\t1\t\tno header here\n")  # CoLA's layout
    refused = subprocess.run([sys.executable, str(SCRIPT), str(task), "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "has no header naming column 'sentence'" in refused.stderr
