"""The README's Python API example runs as written (with small stand-ins for its inputs)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tiny_corpus, tmp_path, monkeypatch):
    from tests.conftest import TINY_RUN
    from tests.finetune_fixtures import write_glue

    code = api_example()
    stand_ins = {"corpus": [str(tiny_corpus)], "sst2": str(write_glue(tmp_path / "glue") / "SST-2"),
                 "overrides": [o for o in TINY_RUN if not o.startswith("objective.generator_size")]}
    for name, value in stand_ins.items():  # the example's own inputs, replaced line by line
        code, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", code, flags=re.M)
        assert n == 1, f"the README example no longer assigns {name}"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "runs/demo-hf/model.safetensors").is_file()
    assert 0.0 <= namespace["res"].metrics["acc"] <= 1.0
    assert namespace["trained"].meta["step"] == namespace["run"].train.step
    assert "gain_disc_auc" in namespace["run"].train.valid
