"""The benchmark scripts run (on `tiny`, a few steps); their numbers are never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("transformers")


def run(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(out.read_text())


def test_pretrain_step_benchmark(tmp_path):
    r = run("pretrain_step", "--configs", "tiny:64", "--batch", "2", "--steps", "1", "--warmup", "1",
            "--variants", "default,nodrop", tmp_path=tmp_path)
    assert [row["variant"] for row in r["rows"]] == ["hf-reference", "default", "nodrop"]
    assert all(row["tokens_per_s"] > 0 and row["peak_mem_bytes"] > 0 for row in r["rows"])
    assert r["meta"]["matmul_peak_flops"] > 0


def test_finetune_benchmark(tmp_path):
    r = run("finetune", "--configs", "tiny", "--batch", "4", "--batches", "1", "--warmup", "1", tmp_path=tmp_path)
    assert [row["impl"] for row in r["rows"]] == ["hf-reference", "ours"]


def test_loader_benchmark(tmp_path):
    r = run("loader", "--presets", "tiny", "--batch", "4", "--loader-batches", "5", "--steps", "1",
            "--corpus-files", "1", tmp_path=tmp_path)
    assert r["rows"][0]["ratio"] > 0


def test_preprocess_benchmark(tmp_path):
    r = run("preprocess", "--sizes", "1", "--vocab-size", "2000", tmp_path=tmp_path)
    assert r["rows"][0]["tokens"] > 0 and r["rows"][0]["peak_rss_mib"] > 0


def test_dropout_mask_benchmark(tmp_path):
    r = run("dropout_mask", "--configs", "small", "--batch", "1", "--rounds", "1", "--threads", "1", tmp_path=tmp_path)
    assert {row["kernel"] for row in r["rows"]} == {"bool mask", "float mask"}
    assert all(row["ms_per_step"] > 0 for row in r["rows"])


def test_optimizer_step_benchmark(tmp_path):
    r = run("optimizer_step", "--configs", "tiny", "--rounds", "1", "--threads", "1", tmp_path=tmp_path)
    assert [row["path"] for row in r["rows"]] == ["fused", "foreach", "single"]


def test_profile_step_benchmark(tmp_path):
    r = run("profile_step", "--configs", "tiny:32", "--batch", "2", "--steps", "1", "--threads", "1", tmp_path=tmp_path)
    row = r["rows"][0]
    assert row["config"] == "tiny:32" and row["ms_per_step"] > 0 and row["top_ops"]


def test_thread_scaling_benchmark(tmp_path):
    r = run("thread_scaling", "--configs", "tiny", "--threads", "1", "--rounds", "1", "--steps", "1", tmp_path=tmp_path)
    assert r["rows"][0]["hf_tokens_per_s"] > 0 and r["rows"][0]["ours_tokens_per_s"] > 0


def test_vocab_pass_benchmark(tmp_path):
    r = run("vocab_pass", "--configs", "tiny", "--batch", "1", "--rounds", "1", "--threads", "1", tmp_path=tmp_path)
    assert [row["path"] for row in r["rows"]] == ["current", "previous", "autograd"]


def test_step_statistics_benchmark(tmp_path):
    r = run("step_statistics", "--configs", "tiny,debertav3", "--batch", "1", "--rounds", "1", "--threads", "1",
            tmp_path=tmp_path)
    measured = [(row["config"], row["measured"]) for row in r["rows"]]
    assert ("tiny", "attention math path") in measured and ("debertav3", "attention math path") not in measured
    assert {c for c, m in measured if m == "training step (median)"} == {"tiny", "debertav3"}
    assert all(row["ms_per_step"] > 0 for row in r["rows"]) and r["meta"]["batch"] == 1


@pytest.mark.slow  # compiles three regions (about 30 s)
def test_compile_regions_benchmark(tmp_path):
    r = run("compile_regions", "--configs", "tiny", "--rounds", "1", "--threads", "1", "--batch", "1", "--seq", "32",
            "--precision", "bf16", tmp_path=tmp_path)
    assert r["rows"][0]["variant"] == "eager" and len(r["rows"]) == 4
    assert {row["precision"] for row in r["rows"]} == {"bf16"}


def test_machine_meta_says_when_the_instruction_set_was_restricted(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for name in report.ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)
    assert "isa_limits" not in report.machine_meta()
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert report.machine_meta(x=1)["isa_limits"] == {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}
