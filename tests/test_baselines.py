"""Context-free references: checked on fixtures whose answers are known by hand."""

import math

import numpy as np
import pytest
import torch

from electra.objective import baselines as ref


def test_replacements_identifiable_from_identity_alone_give_auc_one():
    rng = np.random.default_rng(0)
    # originals use ids 10..59, replacements only ids 60..69: identity alone separates them
    originals = rng.integers(10, 60, 5000)
    replaced = rng.random(5000) < 0.15
    corrupted = np.where(replaced, rng.integers(60, 70, 5000), originals)
    rates = ref.replaced_rate_by_token(corrupted[:2500], replaced[:2500], 100)
    out = ref.context_free_rtd(corrupted[2500:], replaced[2500:], rates)
    assert out.auc == pytest.approx(1.0)
    assert out.acc == pytest.approx(1.0)


def test_replacements_that_look_like_originals_give_chance_auc():
    rng = np.random.default_rng(1)
    corrupted = rng.integers(10, 60, 40000)  # same distribution whether replaced or not
    replaced = rng.random(40000) < 0.15
    rates = ref.replaced_rate_by_token(corrupted[:20000], replaced[:20000], 100)
    out = ref.context_free_rtd(corrupted[20000:], replaced[20000:], rates)
    assert abs(out.auc - 0.5) < 0.03
    assert out.acc == pytest.approx(1 - replaced[20000:].mean())  # never above 1/2: all "original"


def test_masked_positions_cost_the_unigram_cross_entropy():
    rng = np.random.default_rng(2)
    probs = np.array([0, 0, 0, 0, 0, 0.5, 0.25, 0.125, 0.125])  # ids 0-4 special
    ids = rng.choice(9, size=200_000, p=probs)
    logp = ref.unigram_log_probs(ids, 9, (0, 1, 2, 3, 4))
    assert np.exp(logp[:5]).sum() == 0 and np.exp(logp).sum() == pytest.approx(1.0)
    targets = rng.choice(9, size=50_000, p=probs)
    out = ref.context_free_mlm(targets, np.full_like(targets, 4), 4, logp, copy_prob=1.0)
    entropy = -(probs[5:] * np.log(probs[5:])).sum()  # 1.2130 nats
    assert out.loss == pytest.approx(entropy, abs=0.01)
    assert out.acc == pytest.approx(0.5, abs=0.01)  # always the most frequent id


def test_visible_originals_are_copied():
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([0, 0, 0, 0, 0, 0.5, 0.5]))
    targets = np.array([5, 6, 6, 6])
    shown = np.array([4, 6, 6, 4])  # two [MASK]s, two kept originals
    out = ref.context_free_mlm(targets, shown, 4, logp, ref.copy_probability(0.85, 0.0))
    assert out.loss == pytest.approx(2 * math.log(2) / 4)  # kept: -log 1; masked: -log 1/2
    assert out.acc == pytest.approx(0.75)  # the kept two + one lucky masked guess
    assert ref.copy_probability(0.8, 0.1) == pytest.approx(0.5)


def test_untrained_models_show_no_context_gain(tiny_data):
    """An untrained generator is worse than the unigram reference, and an untrained
    discriminator no better than token identity: no context learned."""
    from electra.config import apply_overrides, preset
    from electra.data.shards import ShardReader
    from electra.data.tokenizer import Tokenizer
    from electra.objective import build_objective
    from electra.train.precision import Precision
    from electra.train.pretrained import token_ids
    from electra.train.validate import Validator, learned_context
    from tests.conftest import TINY_RUN

    tok = Tokenizer.load(tiny_data / "tokenizer")
    cfg = apply_overrides(preset("tiny"), [*TINY_RUN, f"model.vocab_size={tok.vocab_size}"])
    torch.manual_seed(0)
    model = build_objective(cfg, token_ids(tok))
    cpu = torch.device("cpu")
    v = Validator(ShardReader(tiny_data, "valid"), ShardReader(tiny_data, "train"), rows=64,
                  batch_size=16, pad_id=tok.pad_id, sep_id=tok.sep_id,
                  special_ids=tuple(sorted(tok.special_ids)), device=cpu,
                  precision=Precision("fp32", cpu), seed=0)
    m = v(model)
    assert m["mlm_loss"] == pytest.approx(math.log(tok.vocab_size), abs=0.1)  # ~uniform
    assert m["nocontext_mlm_loss"] < m["mlm_loss"] and m["gain_mlm_loss"] < 0
    # uniform samples are mostly ids the corpus rarely uses: identity alone spots them
    assert m["nocontext_disc_auc"] > 0.7 and m["gain_disc_auc"] < 0
    assert learned_context(m) == (False, False)
    assert v(model) == m  # fixed rows, masks and samples: the same numbers every time
    model.sample_kernel = "gumbel" if model.sample_kernel == "cdf" else "cdf"  # draws other amounts
    other = v(model)
    for key in ("mlm_loss", "nocontext_mlm_loss", "gen_acc"):  # masks depend on no sampler
        assert other[key] == m[key], key
    assert other["disc_auc"] != m["disc_auc"]  # while the samples did change
