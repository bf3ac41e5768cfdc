"""studies/hf_loop.py, the HF-built reference loop: its levers are what they say they are, and a
few steps on the tiny fixture write finite context gains."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from electra.data.shards import ShardReader
from electra.objective.baselines import unigram_log_probs

SIZES = ["--hidden", "32", "--layers", "2", "--heads", "2", "--ffn", "64", "--embedding", "16",
         "--max-positions", "64", "--batch", "8", "--eval-rows", "16", "--warmup", "2"]


@pytest.fixture(scope="module")
def hf_loop() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "studies" / "hf_loop.py"
    spec = importlib.util.spec_from_file_location("hf_loop", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hf_loop"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def args(hf_loop: ModuleType, data: Path, out: Path, *extra: str):
    return hf_loop.parse_args(["--data", str(data), "--out", str(out), *SIZES, *extra])


def test_sharing_all_makes_the_generator_the_discriminators_encoder(hf_loop, tiny_data, tmp_path):
    s = hf_loop.setup(args(hf_loop, tiny_data, tmp_path, "--sharing", "all"))
    assert s.gen.electra is s.disc.electra
    disc = {id(p) for p in s.disc.electra.parameters()}
    assert {id(p) for p in s.gen.electra.parameters()} == disc
    # its own MLM head, whose output matrix is the shared word embeddings
    assert s.gen.generator_lm_head.weight is s.disc.electra.embeddings.word_embeddings.weight
    assert not {id(p) for p in s.gen.generator_predictions.parameters()} & disc


def test_separate_models_share_nothing_and_the_generator_is_narrower(hf_loop, tiny_data, tmp_path):
    s = hf_loop.setup(args(hf_loop, tiny_data, tmp_path, "--sharing", "none", "--generator-size", "0.5"))
    assert not {id(p) for p in s.gen.parameters()} & {id(p) for p in s.disc.parameters()}
    assert (s.gen.config.hidden_size, s.disc.config.hidden_size) == (16, 32)
    e = hf_loop.setup(args(hf_loop, tiny_data, tmp_path, "--sharing", "embeddings"))
    assert e.gen.electra.embeddings is e.disc.electra.embeddings
    assert e.gen.electra.encoder is not e.disc.electra.encoder


def test_unigram_bias_init_starts_the_head_at_the_data_unigram(hf_loop, tiny_data, tmp_path):
    s = hf_loop.setup(args(hf_loop, tiny_data, tmp_path, "--unigram-bias-init"))
    bias = s.gen.generator_lm_head.bias.detach().double().numpy()
    special = s.special.tolist()
    # the trainer's reference, computed independently by objective.baselines on all training rows
    train = ShardReader(tiny_data, "train")
    expected = unigram_log_probs(train.take(np.arange(len(train))), len(bias), tuple(special))
    real = np.isfinite(expected)
    assert sorted(np.nonzero(~real)[0].tolist()) == sorted(special)
    np.testing.assert_allclose(bias[real], expected[real], rtol=1e-5)
    assert np.all(bias[~real] == bias[real].min())  # never -inf
    plain = hf_loop.setup(args(hf_loop, tiny_data, tmp_path))
    assert float(plain.gen.generator_lm_head.bias.detach().abs().max()) == 0.0


def test_a_few_steps_write_validation_records_with_finite_gains(hf_loop, tiny_data, tmp_path, capsys):
    hf_loop.main(["--data", str(tiny_data), "--out", str(tmp_path), *SIZES, "--steps", "6",
                  "--eval-every", "3", "--log-every", "2", "--unigram-bias-init", "--seed", "1"])
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["kind"] == "valid"]
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in valid] == [3, 6] and [r["step"] for r in train] == [2, 4, 6]
    for r in valid:
        for k in ("gain_mlm_loss", "gain_disc_auc", "mlm_loss", "nocontext_mlm_loss", "disc_auc"):
            assert math.isfinite(r[k]), k
        assert r["gain_mlm_loss"] == pytest.approx(r["nocontext_mlm_loss"] - r["mlm_loss"])
        assert 0.0 <= r["nocontext_disc_auc"] <= 1.0 and r["rows"] == 16
    assert train[-1]["tokens"] > train[0]["tokens"] > 0 and all(r["loss"] > 0 for r in train)
    out = capsys.readouterr().out
    assert "G gain" in out and "D gain" in out and "tok/s" in out


def test_a_missing_data_dir_is_one_clear_line(hf_loop, tmp_path):
    with pytest.raises(SystemExit) as e:
        hf_loop.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "no manifest.json" in str(e.value) and "electra preprocess" in str(e.value)
