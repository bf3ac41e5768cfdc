"""Fine-tuning model: layer-wise LR decay per parameter (correct and G-EL's original), the
ElectraClassificationHead option against transformers, and the span head's masking."""

import re

import pytest
import torch

from electra.config import ModelConfig, OptimConfig
from electra.hf import CLASSIFIER_HEAD_MAP, encoder_to_hf, head_from_hf, head_to_hf, hf_config
from electra.model.finetuning import FinetuneModel
from electra.model.heads import ClassificationHead, ElectraClassificationHead, SpanHead, TokenHead
from electra.model.layers import Encoder, init_weights
from electra.train.optim import build_optimizer, build_scheduler, layerwise_lr_scales

MCFG = ModelConfig(vocab_size=300, embedding_size=16, hidden_size=32, num_layers=3, num_heads=2,
                   intermediate_size=64, max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)


def model_with(head: torch.nn.Module) -> FinetuneModel:
    torch.manual_seed(0)
    m = FinetuneModel(Encoder(MCFG), head)
    init_weights(m)
    with torch.no_grad():  # off the init, so a wrong mapping cannot hide
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _g_el_depth(name: str, n_layers: int) -> int:
    """google-research/electra `_get_layer_lrs`: /embeddings/ and /embeddings_project/ 0,
    encoder/layer_i/ i + 1, task_specific/ n_layers + 2 (its variables named in TF style)."""
    if name.startswith(("encoder.embeddings.", "encoder.project.")):
        return 0
    if m := re.match(r"encoder\.layers\.(\d+)\.", name):
        return int(m.group(1)) + 1
    return n_layers + 2


@pytest.mark.parametrize("mode", ["correct", "original"])
def test_layerwise_lr_per_parameter(mode):
    L, lr, d = MCFG.num_layers, 1e-3, 0.8
    model = model_with(ClassificationHead(32, 2, 0.1))
    names = [n for n, _ in model.named_parameters()]
    ocfg = OptimConfig(lr=lr, warmup_steps=0, schedule="constant", weight_decay=0.0)
    opt = build_optimizer(model, ocfg, layerwise_lr_scales(names, L, d, mode))
    build_scheduler(opt, ocfg, 10)
    rates = {n: g["lr"] for g in opt.param_groups for n in g["names"]}
    assert set(rates) == set(names)
    for name, rate in rates.items():
        depth = _g_el_depth(name, L)
        if mode == "original":  # G-EL exactly: lr * d ** (n_layers + 2 - depth)
            expected = lr * d ** (L + 2 - depth)
        else:  # head lr, top layer lr*d, ..., embeddings lr*d^(L+1)
            expected = lr * d ** (L + 1 - min(depth, L + 1))
        assert rate == pytest.approx(expected), name
    top = f"encoder.layers.{L - 1}.ffn_out.weight"
    assert rates["head.out.weight"] == pytest.approx(lr)
    assert rates[top] == pytest.approx(lr * (d if mode == "correct" else d * d))
    assert rates["encoder.project.weight"] == rates["encoder.embeddings.word_embeddings.weight"]
    assert rates["encoder.embeddings.norm.weight"] == pytest.approx(lr * d ** (L + 1 if mode == "correct" else L + 2))


def test_electra_head_matches_transformers_sequence_classification():
    transformers = pytest.importorskip("transformers")
    model = model_with(ElectraClassificationHead(32, 3, 0.1))
    tensors = encoder_to_hf(model.encoder.state_dict(), MCFG.num_layers)
    tensors |= head_to_hf(model.head.state_dict(), CLASSIFIER_HEAD_MAP)
    config = {k: v for k, v in hf_config(MCFG, "ElectraForSequenceClassification").items()
              if k not in ("architectures", "torch_dtype")}
    hf = transformers.ElectraForSequenceClassification(transformers.ElectraConfig(**config, num_labels=3))
    result = hf.load_state_dict(tensors, strict=False)
    assert not result.unexpected_keys and not [k for k in result.missing_keys if "position_ids" not in k]
    hf.eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (3, 20), generator=g)
    ids[1, 14:] = 0
    attn = ids != 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    with torch.no_grad():
        ours = model(ids, types * attn, attn)
        theirs = hf(input_ids=ids, attention_mask=attn.long(), token_type_ids=types * attn).logits
    assert ours.shape == (3, 3)
    assert (ours - theirs).abs().max().item() <= 1e-5
    # and HF classifier weights load back into our head
    back = ElectraClassificationHead(32, 3, 0.1)
    back.load_state_dict(head_from_hf(hf.state_dict(), CLASSIFIER_HEAD_MAP))
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.head.state_dict().values(),
                                                 strict=True))


def test_token_and_span_heads():
    ids = torch.randint(5, 300, (2, 12))
    types = torch.tensor([[0] * 5 + [1] * 7, [0] * 4 + [1] * 5 + [0] * 3])
    attn = torch.ones_like(ids, dtype=torch.bool)
    attn[1, 9:] = False
    tags = model_with(TokenHead(32, 5, 0.1))(ids, types, attn)
    assert tags.shape == (2, 12, 5)
    model = model_with(SpanHead(32, answerable=True))
    model.train()
    out = model(ids, types, attn)
    assert out.start.shape == out.end.shape == (2, 12) and out.impossible.shape == (2,)
    allowed = ((types == 1) & attn)
    allowed[:, 0] = True  # [CLS] = no answer
    assert torch.all(out.start[~allowed] == -1e4) and torch.all(out.start[allowed] > -1e3)
    (out.start.logsumexp(-1).sum() + out.impossible.sum()).backward()
    assert model.head.answerable[0].weight.grad is not None
    assert model_with(SpanHead(32, answerable=False))(ids, types, attn).impossible is None


def test_one_type_encoder_reads_type_0_and_the_span_head_still_finds_the_context():
    """RoBERTa's and DeBERTa-v3's recipes have one segment type (or none): the encoder must read
    every token as type 0, but SQuAD's head needs the segments to find the context (it masked
    every answer when it was handed the encoder's all-zero types)."""
    import dataclasses
    one = dataclasses.replace(MCFG, type_vocab_size=1)
    torch.manual_seed(0)
    model = FinetuneModel(Encoder(one), SpanHead(32, answerable=False)).eval()
    init_weights(model)
    ids = torch.randint(5, 300, (2, 12))
    types = torch.tensor([[0] * 5 + [1] * 7, [0] * 4 + [1] * 8])
    attn = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        out = model(ids, types, attn)
        h = model.encoder(ids, torch.zeros_like(types), attn)
        assert torch.equal(out.start[types == 1], model.head.span(h)[..., 0][types == 1])
    assert torch.all(out.start[types == 1] > -1e3) and torch.all(out.start[:, 1:][types[:, 1:] == 0] == -1e4)


@pytest.mark.parametrize("head_cls", [ClassificationHead, ElectraClassificationHead])
def test_mean_pooling_averages_real_tokens_only(head_cls):
    torch.manual_seed(0)
    head = head_cls(8, 3, 0.0, pooling="mean").eval()
    h = torch.randn(2, 5, 8)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    out = head(h, None, mask)
    # padded positions do not count: changing them changes nothing
    h2 = h.clone()
    h2[0, 3:] = 1e3
    assert torch.equal(head(h2, None, mask), out)
    # the value is the head applied to the masked mean (here: through a cls head on the mean row)
    cls_head = head_cls(8, 3, 0.0, pooling="cls").eval()
    cls_head.load_state_dict(head.state_dict())
    means = torch.stack([h[0, :3].mean(0), h[1].mean(0)])[:, None, :]  # [2, 1, 8]
    assert torch.allclose(cls_head(means), out, atol=1e-6)
    # [CLS] pooling reads position 0 only
    h3 = h.clone()
    h3[:, 1:] = 0.0
    assert torch.equal(cls_head(h3, None, mask), cls_head(h, None, mask))
    assert not torch.allclose(head(h3, None, mask), out)


def test_squad_windows_capped_to_a_short_model_keep_overlapping(caplog):
    from electra.finetuning.config import FinetuneConfig, SquadConfig
    from electra.finetuning.run import fit_to_model
    short = ModelConfig(max_position_embeddings=128)
    sq = fit_to_model(FinetuneConfig(), short).squad  # the paper's 512 / stride 128 on a 128-position model
    assert sq.max_seq_len == 128 and sq.doc_stride == 32 < sq.max_seq_len - sq.max_query_len - 3
    assert "doc_stride" not in caplog.text
    with caplog.at_level("WARNING"):
        fit_to_model(FinetuneConfig(squad=SquadConfig(max_seq_len=128, doc_stride=100)), short)
    assert "squad.doc_stride=100 is more than the 61 context tokens" in caplog.text
