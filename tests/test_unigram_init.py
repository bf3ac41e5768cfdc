"""objective.unigram_bias_init: the masked-LM head starts as a unigram model of the training rows."""

import numpy as np
import torch

from electra.config import apply_overrides, preset
from electra.data.shards import ShardReader
from electra.data.tokenizer import Tokenizer
from electra.model.heads import GeneratorHead
from electra.objective import build_objective
from electra.objective.baselines import unigram_log_probs
from electra.train.pretrained import token_ids
from electra.train.unigram_init import init_unigram_bias
from electra.train.validate import evenly_spaced
from tests.test_model import TINY


def _config(tok: Tokenizer, *extra: str):
    return apply_overrides(preset("tiny"), [*TINY, f"model.vocab_size={tok.vocab_size}", "preprocess.seq_len=32",
                                            *extra])


def _model(tok: Tokenizer, *extra: str):
    torch.manual_seed(0)
    return build_objective(_config(tok, *extra), token_ids(tok))


def _exports(src, tok: Tokenizer, out) -> tuple:
    """src's discriminator and generator exports, as `electra pretrain` writes them."""
    from electra.hf import pretrained_to_hf, save_hf

    return tuple(save_hf(out / part, *pretrained_to_hf(src, part), tok) for part in ("discriminator", "generator"))


def test_every_masked_lm_head_starts_at_the_unigram_log_probs(tiny_data, tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    train = ShardReader(tiny_data, "train")
    special = tuple(sorted(tok.special_ids))
    model = _model(tok, "objective.disc_mlm_steps=5")  # a second MLM head, on the discriminator
    heads = [m for m in model.modules() if isinstance(m, GeneratorHead)]
    assert len(heads) == 2 and all(torch.count_nonzero(h.bias) == 0 for h in heads)
    assert init_unigram_bias(model, train, special) == 2
    expected = unigram_log_probs(evenly_spaced(train, 20_000), tok.vocab_size, special)
    finite = np.isfinite(expected)
    for h in heads:
        bias = h.bias.detach().numpy()
        assert np.allclose(bias[finite], expected[finite], atol=1e-6)
        assert np.all(np.isfinite(bias)) and np.allclose(bias[~finite], expected[finite].min())


def test_the_first_masked_lm_loss_is_near_the_unigram_entropy(tiny_data, tiny_tokenizer):
    """At step 0 a zero-bias head is near-uniform (loss ~ log V); a unigram-initialised one scores
    about the unigram cross-entropy of the targets, which is far lower."""
    tok = Tokenizer.load(tiny_tokenizer)
    train = ShardReader(tiny_data, "train")
    rows = torch.from_numpy(train.take(np.arange(64)).astype(np.int64))
    types, attn = torch.zeros_like(rows), rows != tok.pad_id
    special = tuple(sorted(tok.special_ids))
    logp = unigram_log_probs(evenly_spaced(train, 20_000), tok.vocab_size, special)
    losses = {}
    for init in (False, True):
        model = _model(tok, "objective.mask_token_prob=1.0", "objective.random_token_prob=0.0").eval()
        if init:
            init_unigram_bias(model, train, special)
        torch.manual_seed(3)
        out = model(rows, types, attn, generator=torch.Generator().manual_seed(1))
        losses[init] = float(out.mlm_loss)
    targets = rows[attn & ~torch.isin(rows, torch.tensor(special))].numpy()
    unigram_ce = float(-logp[targets].mean())
    assert abs(losses[False] - np.log(tok.vocab_size)) < 0.3
    assert abs(losses[True] - unigram_ce) < 0.3 < losses[False] - losses[True]


def test_a_run_with_the_option_starts_from_the_unigram_head(tiny_data, tmp_path):
    from electra.api import pretrain
    from electra.train import checkpoint as ckpt
    from tests.conftest import TINY_RUN

    def head_bias(*extra: str) -> torch.Tensor:
        out = tmp_path / f"r{len(extra)}"
        pretrain(apply_overrides(preset("tiny"), [*TINY_RUN, "train.steps=1", "train.save_every=1",
                                                  *extra]), out=out, data=tiny_data)
        w = ckpt.load_weights(ckpt.resolve_checkpoint(out))
        return next(v for k, v in w.items() if k.endswith("generator_head.bias"))

    plain, unigram = head_bias(), head_bias("objective.unigram_bias_init=true")
    assert plain.abs().max() < 0.01  # zeros plus one Adam step
    assert unigram.max() - unigram.min() > 2.0 and (unigram.argmax() != plain.argmax())


def test_a_one_encoder_warm_start_keeps_its_exported_head_or_starts_it_at_unigram(tiny_data, tiny_tokenizer, tmp_path):
    """sharing=all: the discriminator export (ElectraForPreTraining) has no MLM head, the
    generator export has it; a warm start from both keeps the trained head, from the
    discriminator alone it starts the head where a fresh run would (the unigram start)."""
    import pytest

    from electra.errors import CheckpointError
    from electra.train import distributed as dist
    from electra.train.state import InitFrom, RunData, build_state

    tok = Tokenizer.load(tiny_tokenizer)
    one = ("objective.sharing=all", "objective.generator_size=1.0", "objective.unigram_bias_init=true")
    cfg, src = _config(tok, *one), _model(tok, *one)
    with torch.no_grad():
        src.generator_head.bias.uniform_(-1.0, 1.0)  # neither zeros nor the unigram start
    disc, gen = _exports(src, tok, tmp_path)
    data, ctx = RunData.open(tiny_data, tok, str(tiny_tokenizer)), dist.init_distributed("cpu")

    kept = build_state(cfg, data, ctx, InitFrom(disc, gen)).model
    assert torch.equal(kept.generator_head.bias, src.generator_head.bias)
    assert torch.equal(kept.generator_head.dense.weight, src.generator_head.dense.weight)
    restarted = build_state(cfg, data, ctx, InitFrom(disc)).model
    fresh = build_state(cfg, data, ctx).model
    assert torch.equal(restarted.generator_head.bias, fresh.generator_head.bias)
    assert fresh.generator_head.bias.std() > 0.5  # log-frequencies, not the zeros of no start

    other = _model(tok, *one)  # src's encoder with one weight moved: not this run's pair
    with torch.no_grad():
        next(other.discriminator.parameters()).add_(0.01)
    stranger = _exports(other, tok, tmp_path / "other")[1]
    with pytest.raises(CheckpointError, match="another encoder"):
        build_state(cfg, data, ctx, InitFrom(disc, stranger))


def test_a_warm_start_keeps_the_generator_head_and_starts_the_other_heads_at_unigram(tiny_data, tiny_tokenizer,
                                                                                     tmp_path):
    """replace_mlm: the generator's head comes from its export, the discriminator's masked-LM head
    (never exported) still gets the unigram start a fresh run gives it."""
    from electra.train import distributed as dist
    from electra.train.state import InitFrom, RunData, build_state

    tok = Tokenizer.load(tiny_tokenizer)
    kind = ("objective.kind=replace_mlm", "objective.unigram_bias_init=true")
    cfg, src = _config(tok, *kind), _model(tok, *kind)
    with torch.no_grad():
        src.generator_head.bias.uniform_(-1.0, 1.0)
    init = InitFrom(*_exports(src, tok, tmp_path))
    data, ctx = RunData.open(tiny_data, tok, str(tiny_tokenizer)), dist.init_distributed("cpu")
    warm, fresh = build_state(cfg, data, ctx, init).model, build_state(cfg, data, ctx).model
    assert torch.equal(warm.generator_head.bias, src.generator_head.bias)
    assert torch.equal(warm.discriminator_mlm_head.bias, fresh.discriminator_mlm_head.bias)
    assert fresh.discriminator_mlm_head.bias.std() > 0.5
