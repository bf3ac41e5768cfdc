import dataclasses

import pytest

from electra.config import PretrainConfig, apply_overrides, from_dict, preset, to_dict
from electra.errors import ConfigError


def test_small_preset_is_google_research_electra_small():
    c = preset("small")
    m, g = c.model, c.generator_model()
    assert (m.num_layers, m.hidden_size, m.num_heads, m.intermediate_size, m.embedding_size) == (12, 256, 4, 1024, 128)
    assert (g.num_layers, g.hidden_size, g.num_heads, g.intermediate_size, g.embedding_size) == (12, 64, 1, 256, 128)
    assert (c.optim.lr, c.optim.warmup_steps, c.optim.bias_correction, c.optim.eps) == (5e-4, 10_000, False, 1e-6)
    assert (c.train.batch_size, c.train.steps, c.preprocess.seq_len) == (128, 1_000_000, 128)
    assert (c.objective.mask_prob, c.objective.disc_weight, c.objective.corruption()) == (0.15, 50.0, (0.85, 0.0))
    from electra.objective.masking import MaskSpec

    assert MaskSpec.from_config(c.objective, 4, 30522).predictions_for(128) == 19  # int(0.155 * 128), G-EL


def test_base_and_large_presets():
    b, lg = preset("base"), preset("large")
    assert b.generator_model().hidden_size == 256 and b.generator_model().num_heads == 4
    assert (b.optim.lr, b.train.batch_size, b.train.steps, b.preprocess.seq_len) == (2e-4, 256, 766_000, 512)
    assert lg.objective.mask_prob == 0.25 and lg.model.num_layers == 24 and lg.model.hidden_size == 1024
    assert lg.generator_model().hidden_size == 256 and lg.train.batch_size == 2048


def test_overrides_are_typed_and_validated():
    c = apply_overrides(preset("small"), ["train.steps=1e3", "optim.lr=3e-4", "train.compile=true",
                                           "objective.max_predictions=none"])
    assert c.train.steps == 1000 and c.optim.lr == 3e-4 and c.train.compile is True
    assert c.objective.max_predictions is None


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", "did you mean 'train.steps'"),
    ("trian.steps=3", "did you mean 'train.steps'"),
    ("warmup_steps=3", r"did you mean 'optim.warmup_steps'\?"),  # a key given without its section
    ("seed=1", r"did you mean 'train.seed' or 'preprocess.seed' or 'eval.seed'\?"),  # in several: all named
    ("train.steps=abc", "not a valid int"),
    ("train.steps=0", "train.steps=0 must be >= 1"),
    ("objective.sharing=everything", "not one of none, embeddings, all"),
    ("objective.sharing=all", "objective.generator_size=1.0"),
    ("model.num_heads=3", "not divisible"),
    ("train", "section.field=value"),
    ("train=3", "is a section"),
    ("tokenizer.limit_alphabet=0", "keeps too few characters"),
    ("train.compile=maybe", "is not true or false"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(preset("small"), [override])


def test_sharing_all_accepts_equal_sizes():
    c = apply_overrides(preset("small"), ["objective.sharing=all", "objective.generator_size=1.0"])
    assert c.generator_model() == c.model


def test_json_round_trip_and_unknown_keys():
    c = preset("base")
    assert from_dict(PretrainConfig, to_dict(c)) == c
    d = to_dict(c)
    d["train"]["stepps"] = 3
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        from_dict(PretrainConfig, d)


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'small'"):
        preset("smal")


def test_mini_preset_is_the_cpu_study_recipe():
    from electra.config import preset
    mini, tiny = preset("mini"), preset("tiny")
    assert mini.model == tiny.model  # same architecture: only the recipe differs
    o = mini.objective
    assert (o.sharing, o.generator_size, o.disc_weight, o.temperature) == ("all", 1.0, 1.0, 1.0)
    assert o.unigram_bias_init and not tiny.objective.unigram_bias_init  # the golden run unchanged
    assert (mini.preprocess.seq_len, mini.train.batch_size, mini.train.steps) == (64, 16, 32000)


def test_the_default_preset_is_mini_at_temperature_2_for_4000_steps():
    """`electra pretrain` with no preset runs `quick`: mini's recipe with tiny's flatter samples,
    short enough for the built-in corpus (RESULTS.md measured both models learning context)."""
    from electra.config import DEFAULT_PRESET, preset
    quick, mini = preset(DEFAULT_PRESET), preset("mini")
    assert DEFAULT_PRESET == "quick" and quick.preset == "quick"
    assert quick.objective == dataclasses.replace(mini.objective, temperature=2.0)
    assert (quick.model, quick.optim, quick.preprocess) == (mini.model, mini.optim, mini.preprocess)
    assert (quick.train.steps, quick.train.batch_size, quick.train.eval_every) == (4000, 16, 1000)
