"""The transformer encoder shared by generator, discriminator and fine-tuning models.

Post-LN BERT/ELECTRA layers, numerically the same as HF `ElectraModel` (exact GELU, LayerNorm
eps from the config, learned absolute positions, token types, factorised embeddings projected
E -> H) so exported weights give identical outputs. Attention uses fused QKV and PyTorch SDPA,
except where the plain math path is faster or carries the packed dropout (`Attention.forward`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from electra.config import ModelConfig
from electra.model.dropout import packed_dropout


class Embeddings(nn.Module):
    """Token + token-type + position embeddings of width E, then LayerNorm and dropout.

    Kept separate from `Encoder` so the generator and discriminator can share one instance."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        E = cfg.embedding_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, E)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, E)
        self.norm = nn.LayerNorm(E, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        # input_ids, token_type_ids: [B, T] -> [B, T, E]
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)  # [T, E] broadcast over B
        return self.dropout(self.norm(x))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        H = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(H, 3 * H)  # fused query/key/value: one matmul instead of three
        self.out = nn.Linear(H, H)
        self.attention_dropout = cfg.attention_dropout
        self.dropout_kernel = "torch"  # or "packed" (model/dropout.py), set by the runtime

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: [B, T, H]; mask: [B, 1, 1, T] bool (True = attend) or None (no padding)
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, H // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        p = self.attention_dropout if self.training else 0.0
        if (p > 0 and self.dropout_kernel == "packed") or (p == 0 and math_path_is_faster(q)):
            y = attention_math(q, k, v, mask, p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, T, H))  # [B, T, H]


def math_path_is_faster(q: torch.Tensor) -> bool:
    """Without dropout, torch's fused CPU SDPA kernel runs bf16 2.6x slower than the plain
    matmul, softmax, matmul in bf16 (forward + backward at seq 128; 1.2x at 512), where in fp32
    and fp16 the fused kernel wins (BENCHMARKS.md 0g)."""
    return q.dtype == torch.bfloat16 and q.device.type == "cpu"


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                   p: float, bias: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """SDPA's math path, with packed-bit dropout on the probabilities where p > 0: with dropout,
    torch's CPU SDPA leaves its fused kernel for this same math path anyway, and then its
    per-element Bernoulli draws are most of the cost. `bias`: added to the scaled scores, as
    SDPA's float attn_mask (DeBERTa's relative-position terms); `scale`: SDPA's, 1/sqrt(hs) if None."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q * scale) @ k.transpose(-1, -2)  # [B, nh, T, T]; scale the smaller side
    if bias is not None:  # in place: the matmul's backward does not need its output
        scores.add_(bias)
    if mask is not None:
        mask_scores_(scores, mask)
    return packed_dropout(scores.softmax(-1), p) @ v


def mask_scores_(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """In place: the dtype's lowest value where `mask` is off, as masked_fill_ writes it. On CPU,
    for a key mask in fp32 or bf16 where every query keeps a key, by adding a bias of that value
    instead, cheaper than a broadcast masked_fill_ (the attention call x1.07-1.10, BENCHMARKS.md
    0h): s + min rounds to min for |s| below 10^31, and softmax's gradient is 0 wherever the
    fill would have cut it. Everything else keeps the fill: fp16 (s + min overflows to -inf for
    s below -16), and queries that attend nowhere (DeBERTa's padded queries, an empty row),
    where softmax is uniform and its gradient would pass through an added bias."""
    # scores: [B, nh, T, T]; mask: [B, 1, 1, T] or [B, 1, T, T] bool (True = attend)
    low = torch.finfo(scores.dtype).min
    if (scores.device.type != "cpu" or scores.dtype == torch.float16 or mask.shape[-2] != 1
            or not bool(mask.any(-1).all())):
        return scores.masked_fill_(~mask, low)
    return scores.add_(torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~mask, low))


class Layer(nn.Module):
    """Post-LN: x = LN(x + attn(x)); x = LN(x + FFN(x)), as BERT and ELECTRA."""

    def __init__(self, cfg: ModelConfig, attention: nn.Module | None = None) -> None:
        super().__init__()
        H = cfg.hidden_size
        self.attention = attention if attention is not None else Attention(cfg)  # DeBERTa: its own
        self.attention_norm = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(H, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, H)
        self.ffn_norm = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: [B, T, H] -> [B, T, H]
        return self.feed_forward(self.attention_norm(x + self.dropout(self.attention(x, mask))))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, T, H] -> [B, T, H]
        h = self.ffn_out(F.gelu(self.ffn_in(x)))  # exact (erf) GELU, as HF "gelu"
        return self.ffn_norm(x + self.dropout(h))


class Encoder(nn.Module):
    """Embeddings (possibly shared) -> optional E->H projection -> N layers."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = embeddings if embeddings is not None else Embeddings(cfg)
        E, H = cfg.embedding_size, cfg.hidden_size
        self.project = nn.Linear(E, H) if E != H else None
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.gradient_checkpointing = False  # recompute layer activations in backward (long seqs)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        # input_ids, token_type_ids: [B, T]; attention_mask: [B, T] bool or None -> [B, T, H]
        x = self.embeddings(input_ids, token_type_ids)  # [B, T, E]
        if self.project is not None:
            x = self.project(x)  # [B, T, H]
        mask = attention_mask[:, None, None, :] if attention_mask is not None else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return x


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The HF ELECTRA/BERT rule, so fresh and exported models agree: every Linear and Embedding
    weight ~ N(0, std), every bias 0, LayerNorm weight 1 and bias 0. (HF also zeroes the
    [PAD] embedding row; `zero_pad_row` does that where the pad id is known.)"""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def init_positions(embeddings: Embeddings, kind: str, std: float = 0.02) -> None:
    """A sinusoidal start for the learned position table: with N(0, std) rows every position is
    as unlike its neighbour as any other, and a small model spends thousands of steps learning
    to look next door; sin/cos rows make near positions similar from step 0. Scaled to `std`
    per entry so positions weigh in the sum no more than token embeddings do."""
    if kind == "normal":
        return
    table = embeddings.position_embeddings.weight  # [P, E]
    P, E = table.shape
    pos = torch.arange(P, dtype=torch.float64)[:, None]
    freq = torch.exp(-torch.arange(0, E, 2, dtype=torch.float64) * (torch.log(torch.tensor(1e4)) / E))
    sinus = torch.zeros(P, E, dtype=torch.float64)
    sinus[:, 0::2] = torch.sin(pos * freq)
    sinus[:, 1::2] = torch.cos(pos * freq[: E // 2])
    table.copy_((sinus / sinus.std() * std).to(table.dtype))


@torch.no_grad()
def zero_pad_row(embeddings: Embeddings, pad_token_id: int) -> None:
    embeddings.word_embeddings.weight[pad_token_id].zero_()
