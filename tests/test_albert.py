"""ALBERT: cross-layer sharing, sentence-order prediction, and the HF ALBERT classes both ways."""

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from electra.api import apply_init_config  # noqa: E402
from electra.cli import main  # noqa: E402
from electra.config import apply_overrides, preset  # noqa: E402
from electra.data.loader import batch_from_rows  # noqa: E402
from electra.errors import ConfigError  # noqa: E402
from electra.finetuning.run import load_backbone  # noqa: E402
from electra.hf import HFCheckpoint, pretrained_to_hf, save_hf  # noqa: E402
from electra.model.build import build_encoder  # noqa: E402
from electra.model.finetuning import FinetuneModel  # noqa: E402
from electra.model.heads import ClassificationHead  # noqa: E402
from electra.model.layers import init_weights  # noqa: E402
from electra.objective import TokenIds, build_objective  # noqa: E402
from electra.objective.sop import sop_loss, swap_segments  # noqa: E402
from electra.train.flops import electra_train_flops, encoder_matmul_params  # noqa: E402
from electra.train.optim import layerwise_lr_scales, parameter_aliases  # noqa: E402
from electra.train.state import InitFrom, load_init_weights  # noqa: E402
from tests.conftest import TINY_RUN  # noqa: E402

H, E, FFN, L, V = 32, 16, 64, 3, 300
SMALL = [f"model.vocab_size={V}", f"model.hidden_size={H}", f"model.embedding_size={E}", f"model.num_layers={L}",
         "model.num_heads=2", f"model.intermediate_size={FFN}", "model.max_position_embeddings=64",
         "model.dropout=0.0", "model.attention_dropout=0.0", "preprocess.seq_len=32"]
CLS, SEP, PAD = 2, 3, 0


def config(*extra):
    return apply_overrides(preset("albert"), SMALL + list(extra))


def model(*extra, perturb=True):
    torch.manual_seed(0)
    m = build_objective(config(*extra), TokenIds.standard()).eval()
    if perturb:
        with torch.no_grad():  # move every weight off its init so a wrong mapping cannot hide
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return m


def batch(B=4, T=24):
    """Two-segment rows `[CLS] A [SEP] B [SEP]`, one of them padded, types as the loader makes them."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, V, (B, T), generator=g)
    ids[:, 0], ids[:, T // 2], ids[:, T - 1] = CLS, SEP, SEP
    ids[1, T - 6:] = PAD
    ids[1, T - 7] = SEP
    b = batch_from_rows(ids.numpy(), PAD, SEP)
    return b.input_ids, b.token_type_ids, b.attention_mask


# ---- cross-layer sharing -------------------------------------------------------------------------

LAYER_PARAMS = {"attention": 4 * H * H + 4 * H, "ffn": 2 * H * FFN + FFN + H, "norms": 4 * H}


@pytest.mark.parametrize("share, unique", [("none", ("attention", "ffn", "norms")), ("all", ()),
                                           ("attention", ("ffn", "norms")), ("ffn", ("attention", "norms"))])
def test_sharing_modes_hold_each_shared_weight_once(share, unique):
    enc = build_encoder(config(f"model.share_layers={share}").model)
    embeddings = V * E + 64 * E + 2 * E + 2 * E + E * H + H  # tables, LayerNorm, projection E -> H
    per_layer = sum(LAYER_PARAMS.values())
    expected = embeddings + per_layer + (L - 1) * sum(LAYER_PARAMS[k] for k in unique)
    assert sum(p.numel() for p in enc.parameters()) == expected
    first, last = enc.layers[0], enc.layers[L - 1]
    same = {"attention": first.attention.qkv.weight is last.attention.qkv.weight,
            "ffn": first.ffn_in.weight is last.ffn_in.weight and first.ffn_out.bias is last.ffn_out.bias,
            "norms": first.ffn_norm.weight is last.ffn_norm.weight}
    assert {k for k, v in same.items() if not v} == set(unique)


@pytest.mark.parametrize("share", ["all", "attention", "ffn"])
def test_a_shared_weight_gets_the_sum_of_every_layers_gradient(share):
    """The shared encoder against an unshared one holding the same values in every layer: same
    outputs, and the shared weight's gradient is the sum of the unshared layers' gradients."""
    shared = build_encoder(config(f"model.share_layers={share}").model)
    plain = build_encoder(config("model.share_layers=none").model)
    init_weights(shared)
    state = shared.state_dict()  # every layer's names, the shared ones holding layer 0's tensor
    plain.load_state_dict(state)
    ids, types, attn = batch()
    probe = torch.randn(ids.shape + (H,), generator=torch.Generator().manual_seed(0))
    for enc in (shared, plain):
        (enc(ids, types, attn) * probe).sum().backward()  # a loss that is not constant under LayerNorm
    name = {"all": "ffn_norm.weight", "attention": "attention.qkv.weight", "ffn": "ffn_in.weight"}[share]
    grads = [plain.get_parameter(f"layers.{i}.{name}").grad for i in range(L)]
    assert all(g.abs().sum() > 0 for g in grads) and not torch.allclose(grads[0], grads[1])
    torch.testing.assert_close(shared.get_parameter(f"layers.0.{name}").grad, sum(grads), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("share", ["all", "attention"])
def test_layerwise_decay_of_a_shared_weight_is_the_mean_over_its_layers(share):
    enc = build_encoder(config(f"model.share_layers={share}").model)
    ft = FinetuneModel(enc, ClassificationHead(H, 2, 0.0))
    d, names = 0.5, [n for n, _ in ft.named_parameters()]
    scales = layerwise_lr_scales(names, L, d, aliases=parameter_aliases(ft))
    top = L + 1
    mean_of_layers = sum(d ** (top - depth) for depth in range(1, L + 1)) / L
    assert scales["encoder.layers.0.attention.qkv.weight"] == pytest.approx(mean_of_layers)
    assert scales["encoder.embeddings.word_embeddings.weight"] == pytest.approx(d ** top)
    assert scales["encoder.project.weight"] == pytest.approx(d ** top)
    assert scales["head.out.weight"] == 1.0
    if share == "attention":  # each layer's own parts keep their depth
        assert scales[f"encoder.layers.{L - 1}.ffn_in.weight"] == pytest.approx(d)
        assert scales["encoder.layers.0.ffn_in.weight"] == pytest.approx(d ** L)
    else:
        assert not any(n.startswith("encoder.layers.1.") for n in names)  # one layer's weights only


def test_share_layers_outside_albert_is_one_clear_error():
    with pytest.raises(ConfigError, match="model.family=albert"):
        apply_overrides(preset("tiny"), ["model.share_layers=all"])


# ---- sentence-order prediction: data -----------------------------------------------------------


def segment_rows(n, T=20, seed=0):
    """`n` rows of random segment lengths (some one-segment), padded; (ids, types, attn, segments)."""
    rng = torch.Generator().manual_seed(seed)
    rows, segments = [], []
    for i in range(n):
        a = int(torch.randint(1, 8, (1,), generator=rng))
        b = 0 if i % 5 == 0 else int(torch.randint(1, 8, (1,), generator=rng))
        A = torch.randint(5, V, (a,), generator=rng).tolist()
        B = torch.randint(5, V, (b,), generator=rng).tolist()
        row = [CLS, *A, SEP] + ([*B, SEP] if b else [])
        rows.append(row + [PAD] * (T - len(row)))
        segments.append((A, B))
    b = batch_from_rows(torch.tensor(rows).numpy(), PAD, SEP)
    return b.input_ids, b.token_type_ids, b.attention_mask, segments


def test_sop_swaps_half_of_the_two_segment_rows_and_never_a_one_segment_row():
    ids, types, attn, segments = segment_rows(4000)
    order = swap_segments(ids, types, attn, torch.Generator().manual_seed(7))
    two = torch.tensor([bool(B) for _, B in segments])
    assert torch.equal(order.two_segments, two)
    assert order.swapped[~two].sum() == 0
    frac = order.swapped[two].float().mean().item()
    assert abs(frac - 0.5) < 0.03, frac  # 3200 rows: 0.03 is ~3.4 standard deviations
    again = swap_segments(ids, types, attn, torch.Generator().manual_seed(7))
    assert torch.equal(again.swapped, order.swapped)  # seeded: the same draw


def test_swapped_rows_are_the_two_segments_exchanged_with_their_token_types():
    ids, types, attn, segments = segment_rows(200)
    order = swap_segments(ids, types, attn, torch.Generator().manual_seed(1))
    assert order.swapped.sum() > 50
    for i, (A, B) in enumerate(segments):
        if order.swapped[i]:
            row = [CLS, *B, SEP, *A, SEP]
            row_types = [0] * (len(B) + 2) + [1] * (len(A) + 1)
        else:
            row = ids[i][attn[i]].tolist()
            row_types = types[i][attn[i]].tolist()
        n = len(row)
        assert order.input_ids[i, :n].tolist() == row
        assert order.token_type_ids[i, :n].tolist() == row_types
        assert (order.input_ids[i, n:] == PAD).all() and (order.token_type_ids[i, n:] == 0).all()
    # other per-token data (word-boundary bits) follows the tokens
    assert torch.equal(order.reorder(ids), order.input_ids)
    # the loader's own rule (0 up to the first [SEP], then 1) reads the swapped rows the same way
    again = batch_from_rows(order.input_ids.numpy(), PAD, SEP)
    assert torch.equal(again.token_type_ids, order.token_type_ids)


def test_sop_loss_counts_only_two_segment_rows():
    ids, types, attn, segments = segment_rows(10)
    order = swap_segments(ids, types, attn, torch.Generator().manual_seed(2))
    logits = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    loss, stats = sop_loss(logits, order)
    keep = order.two_segments
    expected = F.cross_entropy(logits[keep], order.swapped[keep])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    correct = (logits[keep].argmax(-1) == order.swapped[keep]).sum().item()
    assert stats.tolist() == pytest.approx([expected.item(), correct, keep.sum().item()], abs=1e-6)


# ---- sentence-order prediction: the objective ----------------------------------------------------


@pytest.mark.parametrize("kind", ["mlm", "electra"])
def test_sop_loss_is_added_with_its_weight_and_trains_the_head(kind):
    m = model(f"objective.kind={kind}", "objective.sop_weight=2.0", "objective.generator_size=0.5").train()
    ids, types, attn = batch()
    out = m(ids, types, attn, generator=torch.Generator().manual_seed(0))
    stats = dict(zip(m.STAT_NAMES, out.stats.tolist(), strict=True))
    o = m.objective
    expected = o.mlm_weight * stats["mlm_loss"] + o.disc_weight * stats["rtd_loss"] + 2.0 * stats["sop_loss"]
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["sop_count"] == 4 and stats["sop_loss"] > 0
    out.loss.backward()
    assert m.sop_head.out.weight.grad.abs().sum() > 0
    assert m.discriminator.layers[0].attention.qkv.weight.grad.abs().sum() > 0
    metrics = m.summarize({k: v for k, v in stats.items()}, 1)
    assert metrics["sop_acc"] == stats["sop_correct"] / 4 and metrics["sop_loss"] == stats["sop_loss"]


def test_the_batchs_word_bits_follow_the_swapped_tokens():
    m = model()
    ids, types, attn = batch()
    bits = torch.rand(ids.shape, generator=torch.Generator().manual_seed(5)) < 0.3
    m.set_word_bits(bits)
    m(ids, types, attn, generator=torch.Generator().manual_seed(4))
    order = swap_segments(ids, types, attn, torch.Generator().manual_seed(4))  # the forward's draw
    assert order.swapped.sum() > 0
    assert torch.equal(m.word_bits, order.reorder(bits))


def test_sop_off_changes_nothing():
    m = model("objective.sop_weight=0")
    assert m.sop_head is None and "sop_loss" not in m.STAT_NAMES


@pytest.mark.parametrize("overrides, match", [
    (["objective.kind=replace_mlm"], "objective.kind=replace_mlm"),
    (["preprocess.packing=full_sentences"], "two-segment rows"),
    (["objective.kind=electra", "objective.disc_weight=0"], "disc_weight > 0"),
])
def test_sop_combinations_that_cannot_work_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        config(*overrides)


def test_flops_count_the_projection_and_the_sop_head():
    cfg = config()
    assert encoder_matmul_params(config("model.embedding_size=32").model) == L * (4 * H * H + 2 * H * FFN) + 32 * H
    off = config("objective.sop_weight=0")
    T = 32
    assert electra_train_flops(cfg, T) == pytest.approx(electra_train_flops(off, T) + 6 * (H * H + 2 * H) / T)


# ---- Hugging Face ALBERT, both ways ------------------------------------------------------------


def hf_outputs(hf, ids, types, attn):
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types)


def load_hf(cls, path):
    hf, info = cls.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return hf.eval()


@pytest.mark.parametrize("share", ["none", "all", "attention", "ffn"])
def test_export_is_albert_for_pretraining_with_identical_outputs(tmp_path, share):
    m = model(f"model.share_layers={share}")
    config_, tensors = pretrained_to_hf(m, "discriminator")
    assert config_["num_hidden_groups"] == (1 if share == "all" else L)  # attention / ffn: unrolled
    hf = load_hf(transformers.AlbertForPreTraining, save_hf(tmp_path / "albert", config_, tensors))
    ids, types, attn = batch()
    theirs = hf_outputs(hf, ids, types, attn)
    with torch.no_grad():
        h = m.discriminator(ids, types, attn)  # [B, T, H]
        mlm = m.generator_head(h, m.discriminator.embeddings.word_embeddings.weight)
        sop = m.sop_head(h)
    assert (theirs.prediction_logits - mlm)[attn].abs().max().item() <= 1e-5
    assert (theirs.sop_logits - sop).abs().max().item() <= 1e-5


def test_rtd_trained_albert_exports_albert_model_and_masked_lm_generator(tmp_path):
    m = model("objective.kind=electra", "objective.generator_size=0.5")
    ids, types, attn = batch()
    config_, tensors = pretrained_to_hf(m, "discriminator")
    assert config_["architectures"] == ["AlbertModel"]
    hf = load_hf(transformers.AlbertModel, save_hf(tmp_path / "d", config_, tensors))
    theirs = hf_outputs(hf, ids, types, attn)
    with torch.no_grad():
        h = m.discriminator(ids, types, attn)
        pooled = torch.tanh(m.sop_head.dense(h[:, 0]))
    assert (theirs.last_hidden_state - h)[attn].abs().max().item() <= 1e-5
    assert (theirs.pooler_output - pooled).abs().max().item() <= 1e-5
    config_, tensors = pretrained_to_hf(m, "generator")
    hf = load_hf(transformers.AlbertForMaskedLM, save_hf(tmp_path / "g", config_, tensors))
    with torch.no_grad():
        ours = m.generator_logits(ids, types, attn, None)
    assert (hf_outputs(hf, ids, types, attn).logits - ours)[attn].abs().max().item() <= 1e-5


def random_hf_albert(path, groups, tokenizer=None, vocab_size=V):
    cfg = transformers.AlbertConfig(vocab_size=vocab_size, embedding_size=E, hidden_size=H, num_hidden_layers=L,
                                    num_hidden_groups=groups, num_attention_heads=2, intermediate_size=FFN,
                                    max_position_embeddings=64, hidden_act="gelu")
    torch.manual_seed(1)
    hf = transformers.AlbertForPreTraining(cfg).eval()
    with torch.no_grad():  # LayerNorms and biases off their 1/0 init too
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(path)
    if tokenizer is not None:
        for f in tokenizer.iterdir():
            shutil.copy(f, path / f.name)
    return hf


@pytest.mark.parametrize("groups, share", [(1, "all"), (L, "none")])
def test_a_random_hf_albert_warm_starts_our_model_with_identical_outputs(tmp_path, groups, share):
    """--init-from: the model shape comes from config.json, encoder + MLM + SOP heads are loaded."""
    hf = random_hf_albert(tmp_path / "hf", groups)
    assert HFCheckpoint(tmp_path / "hf").config.share_layers == share
    init = InitFrom(tmp_path / "hf")
    cfg = apply_init_config(config("model.num_layers=1", "model.hidden_size=64"), init)
    assert (cfg.model.family, cfg.model.share_layers, cfg.model.num_layers) == ("albert", share, L)
    m = build_objective(cfg, TokenIds.standard())
    load_init_weights(m, init)
    m.eval()
    ids, types, attn = batch()
    theirs = hf_outputs(hf, ids, types, attn)
    with torch.no_grad():
        h = m.discriminator(ids, types, attn)
        mlm = m.generator_head(h, m.discriminator.embeddings.word_embeddings.weight)
        sop = m.sop_head(h)
    assert (theirs.prediction_logits - mlm)[attn].abs().max().item() <= 1e-5
    assert (theirs.sop_logits - sop).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in m.discriminator.parameters()) == sum(
        p.numel() for p in hf.albert.parameters()) - hf.albert.pooler.weight.numel() - H


def test_fine_tuning_loads_a_hf_albert_directory(tmp_path, tiny_tokenizer):
    hf = random_hf_albert(tmp_path / "hf", 1, tiny_tokenizer)
    backbone = load_backbone(tmp_path / "hf")
    enc = build_encoder(backbone.model_cfg).eval()
    enc.load_state_dict(backbone.encoder_state)
    ids, types, attn = batch()
    with torch.no_grad():
        ours = enc(ids, types, attn)
    assert (hf_outputs(hf.albert, ids, types, attn).last_hidden_state - ours)[attn].abs().max().item() <= 1e-5


def test_hf_albert_forms_we_do_not_compute_are_one_clear_error(tmp_path):
    from electra.errors import CheckpointError

    random_hf_albert(tmp_path / "hf", 1)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for change, match in [({"hidden_act": "gelu_new"}, "gelu_new"), ({"num_hidden_groups": 2}, "num_hidden_groups=2"),
                          ({"inner_group_num": 2}, "inner_group_num=2")]:
        (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg | change))
        with pytest.raises(CheckpointError, match=match):
            HFCheckpoint(tmp_path / "hf")


def test_a_fine_tuned_albert_exports_unrolled_as_an_electra_task_model(tmp_path):
    """ALBERT's layers are ELECTRA's: with E != H the stock ELECTRA task class computes the same."""
    from electra.errors import CheckpointError
    from electra.hf import finetuned_to_hf
    from electra.model.heads import TokenHead

    cfg = config("model.share_layers=all").model
    torch.manual_seed(0)
    ft = FinetuneModel(build_encoder(cfg), TokenHead(H, 3, 0.0)).eval()
    init_weights(ft)
    config_, tensors, _ = finetuned_to_hf(cfg, ft.encoder.state_dict(), ft.head, ("a", "b", "c"))
    hf = load_hf(transformers.ElectraForTokenClassification, save_hf(tmp_path / "ft", config_, tensors))
    ids, types, attn = batch()
    with torch.no_grad():
        ours = ft(ids, types, attn)
    assert (hf_outputs(hf, ids, types, attn).logits - ours)[attn].abs().max().item() <= 1e-5
    square = config(f"model.embedding_size={H}").model
    with pytest.raises(CheckpointError, match="projection"):
        finetuned_to_hf(square, build_encoder(square).state_dict(), ft.head, ("a", "b", "c"))


# ---- the recipe, end to end ----------------------------------------------------------------------


def test_albert_recipe_pretrains_and_exports_a_stock_albert_for_pretraining(tiny_data, tmp_path):
    out = tmp_path / "run"
    argv = ["pretrain", "--preset", "albert", "--data", str(tiny_data), "--out", str(out), *TINY_RUN,
            "train.steps=3", "train.eval_every=3", "train.save_every=3", "model.num_layers=3"]
    assert main(argv) == 0
    train = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert train and all(0.0 <= r["sop_acc"] <= 1.0 and math.isfinite(r["sop_loss"]) for r in train)
    exported = json.loads((out / "export" / "discriminator" / "config.json").read_text())
    assert exported["architectures"] == ["AlbertForPreTraining"] and exported["num_hidden_groups"] == 1
    hf = load_hf(transformers.AlbertForPreTraining, out / "export" / "discriminator")
    tok = transformers.AutoTokenizer.from_pretrained(out / "export" / "discriminator")
    enc = tok(["the river crossed a new bridge."], ["it was widely praised."], return_tensors="pt")
    logits = hf(**enc).sop_logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_pretrain_init_from_a_hf_albert_directory_continues_from_its_weights(tiny_data, tmp_path):
    """`electra pretrain --init-from HF_ALBERT`: at a vanishing learning rate the run's export
    gives the HF model's own outputs, so every weight and both heads were taken over."""
    from electra.data.tokenizer import Tokenizer

    vocab = Tokenizer.load(tiny_data / "tokenizer").vocab_size
    hf = random_hf_albert(tmp_path / "hf", 1, tiny_data / "tokenizer", vocab_size=vocab)
    out = tmp_path / "run"
    argv = ["pretrain", "--preset", "albert", "--data", str(tiny_data), "--out", str(out), "--init-from",
            str(tmp_path / "hf"), *TINY_RUN, "train.steps=1", "train.eval_every=1", "train.save_every=1",
            "optim.lr=1e-12"]
    assert main(argv) == 0
    run_cfg = json.loads((out / "config.json").read_text())["model"]
    assert (run_cfg["family"], run_cfg["share_layers"], run_cfg["num_layers"]) == ("albert", "all", L)
    ours = load_hf(transformers.AlbertForPreTraining, out / "export" / "discriminator")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (2, 16), generator=g)
    types, attn = torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool)
    a, b = hf_outputs(hf, ids, types, attn), hf_outputs(ours, ids, types, attn)
    assert (a.prediction_logits - b.prediction_logits).abs().max().item() <= 1e-5
    assert (a.sop_logits - b.sop_logits).abs().max().item() <= 1e-5
