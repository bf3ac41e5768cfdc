"""The DeBERTa-v2/v3 encoder (`model.family=deberta`): disentangled attention over content and
relative positions, numerically the same as HF `DebertaV2Model` with relative_attention,
pos_att_type c2p|p2c, share_att_key, norm_rel_ebd=layer_norm and position_biased_input=False.

score(i, j) = (q_i.k_j + q_i.K_r[d(i, j)] + k_j.Q_r[d(i, j)]) / sqrt(3 d_head): content->content,
content->position and position->content, where d(i, j) is the log bucket of i - j and K_r, Q_r
are the layer's own key/query projections of one relative-position table shared by all layers.
No absolute position enters the input; the enhanced mask decoder (`mlm_states`) adds absolute
positions before the MLM head, as the DeBERTa paper's EMD does."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from electra.config import ModelConfig
from electra.model.layers import Layer, attention_math, mask_scores_, math_path_is_faster


def log_bucket(rel: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Relative distances (integer tensor) -> bucket ids: exact within +-buckets/2, log-spaced
    beyond so that `max_position` - 1 lands near +-(buckets - 1). The float32 arithmetic follows
    HF's `make_log_bucket_position` so the ids agree at every boundary."""
    mid = buckets // 2
    near = (rel < mid) & (rel > -mid)
    dist = torch.where(near, torch.full_like(rel, mid - 1), rel.abs())  # keeps log() finite
    log_step = torch.log(torch.tensor((max_position - 1) / mid))  # float32, as HF
    far = torch.ceil(torch.log(dist / mid) / log_step * (mid - 1)) + mid
    return torch.where(dist <= mid, rel.to(far.dtype), far * torch.sign(rel)).long()


def relative_row(rel: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Relative distances -> rows of the 2S-row table: bucket + S, clamped as HF clamps."""
    S = cfg.relative_span
    d = log_bucket(rel, cfg.relative_buckets, cfg.relative_span_limit) if cfg.relative_buckets else rel
    return (d + S).clamp(0, 2 * S - 1)


def reached_rows(cfg: ModelConfig, T: int) -> tuple[int, int]:
    """(first, last) table row that distances -(T-1)..T-1 reach (buckets grow with distance)."""
    lo, hi = relative_row(torch.tensor([1 - T, T - 1]), cfg).tolist()  # on the CPU: no device sync
    return lo, hi


class RelativePositions(nn.Module):
    """The one relative-position table (2S rows, S per side) and its LayerNorm, shared by all
    layers, and the [T, T] row index d(i, j) + S each attention score reads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(2 * cfg.relative_span, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self._rows: dict[int, tuple[int, int]] = {}  # T -> reached_rows: computed once per length

    def forward(self, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(table [R, H], index [T, T]) for a length-T sequence: only the R rows that distances
        -(T-1)..T-1 reach are kept (HF projects all 2S; the scores are the same)."""
        lo, hi = self._rows.get(T) or self._rows.setdefault(T, reached_rows(self.cfg, T))
        pos = torch.arange(T, device=device)
        index = relative_row(pos[:, None] - pos[None, :], self.cfg) - lo  # [T, T], query i - key j
        return self.norm(self.embeddings.weight[lo:hi + 1]), index


class DisentangledAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        H = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.query, self.key, self.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.out = nn.Linear(H, H)
        self.attention_dropout = cfg.attention_dropout
        self.position_dropout = nn.Dropout(cfg.dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        # [..., N, H] -> [..., nh, N, hs]
        return x.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, table: torch.Tensor,
                index: torch.Tensor, query_states: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, T, H] keys/values (and queries unless query_states [B, T, H] is given);
        # mask: [B, 1, T, T] bool (True = attend) or None; table: [R, H]; index: [T, T] in [0, R)
        B, T, H = x.shape
        q = self.heads(self.query(x if query_states is None else query_states))  # (B, nh, T, hs)
        k, v = self.heads(self.key(x)), self.heads(self.value(x))
        r = self.position_dropout(table)
        q_r, k_r = self.heads(self.query(r)), self.heads(self.key(r))  # (nh, R, hs)
        scale = 1.0 / math.sqrt(3 * q.shape[-1])  # three score terms
        idx = index.expand(B, self.num_heads, T, T)
        c2p = torch.gather(q @ k_r.transpose(-1, -2), -1, idx)  # (B, nh, T_q, T_k)
        p2c = torch.gather(k @ q_r.transpose(-1, -2), -1, idx.transpose(-1, -2)).transpose(-1, -2)
        bias = (c2p + p2c) * scale
        p = self.attention_dropout if self.training else 0.0
        # rows of padded queries mask everything: uniform, as HF
        if p == 0 and math_path_is_faster(q):
            y = attention_math(q, k, v, mask, 0.0, bias=bias, scale=scale)
        else:
            if mask is not None:
                mask_scores_(bias, mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, T, H))  # [B, T, H]


class DebertaLayer(Layer):
    """Post-LN like ours (the same sublayers and feed-forward half); with `query_states` (the
    enhanced mask decoder) the queries and the residual come from them while keys and values
    come from `x`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg, attention=DisentangledAttention(cfg))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, table: torch.Tensor,
                index: torch.Tensor, query_states: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, T, H] -> [B, T, H]
        residual = x if query_states is None else query_states
        a = self.attention(x, mask, table, index, query_states)
        return self.feed_forward(self.attention_norm(residual + self.dropout(a)))


class DebertaEmbeddings(nn.Module):
    """Token and token-type tables of width E (what the generator and discriminator share), and
    the absolute-position table only the enhanced mask decoder reads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        E = cfg.embedding_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, E)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, E) if cfg.type_vocab_size else None
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, E) if cfg.emd_depth else None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        # input_ids, token_type_ids: [B, T] -> [B, T, E]
        x = self.word_embeddings(input_ids)
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings(token_type_ids)
        return x


class InputProjection(nn.Module):
    """E -> H for one encoder: a bias-free projection when E != H, then LayerNorm (HF order:
    project, then normalise), padded positions zeroed, dropout."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        E, H = cfg.embedding_size, cfg.hidden_size
        self.dense = nn.Linear(E, H, bias=False) if E != H else None
        self.norm = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def widen(self, x: torch.Tensor) -> torch.Tensor:
        # [..., E] -> [..., H]
        return x if self.dense is None else self.dense(x)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        # x: [B, T, E]; attention_mask: [B, T] bool or None -> [B, T, H]
        x = self.norm(self.widen(x))
        if attention_mask is not None:
            x = x * attention_mask[..., None].to(x.dtype)
        return self.dropout(x)


class DebertaEncoder(nn.Module):
    """Embeddings (possibly shared) -> E->H projection + LayerNorm -> N disentangled layers."""

    def __init__(self, cfg: ModelConfig, embeddings: DebertaEmbeddings | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = embeddings if embeddings is not None else DebertaEmbeddings(cfg)
        self.project = InputProjection(cfg)
        self.relative = RelativePositions(cfg)
        self.layers = nn.ModuleList(DebertaLayer(cfg) for _ in range(cfg.num_layers))
        self.gradient_checkpointing = False  # recompute layer activations in backward (long seqs)

    def layer(self, i: int, x: torch.Tensor, *args: torch.Tensor | None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training:
            return checkpoint(self.layers[i], x, *args, use_reentrant=False)
        return self.layers[i](x, *args)

    def encode(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
               attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """-> (last hidden states [B, T, H], the last layer's input [B, T, H], the attention
        context (mask, table, index) the layers read)."""
        T = input_ids.shape[1]
        x = self.project(self.embeddings(input_ids, token_type_ids), attention_mask)  # [B, T, H]
        mask = None
        if attention_mask is not None:  # a pair attends only if both ends are tokens, as HF
            mask = (attention_mask[:, None, :, None] & attention_mask[:, None, None, :])  # [B, 1, T, T]
        context = (mask, *self.relative(T, input_ids.device))
        prev = x
        for i in range(len(self.layers)):
            prev, x = x, self.layer(i, x, *context)
        return x, prev, context

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        # input_ids, token_type_ids: [B, T]; attention_mask: [B, T] bool or None -> [B, T, H]
        return self.encode(input_ids, token_type_ids, attention_mask)[0]

    def mlm_states(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The hidden states the MLM head reads: with the enhanced mask decoder, the last layer
        runs `emd_depth` more times with queries = absolute positions + its input (keys and values
        stay its input), so absolute position enters just before the softmax. [B, T, H]"""
        h, prev, context = self.encode(input_ids, token_type_ids, attention_mask)
        if self.cfg.emd_depth == 0:
            return h
        T = input_ids.shape[1]
        z = self.project.widen(self.embeddings.position_embeddings.weight[:T]) + prev  # [B, T, H]
        for _ in range(self.cfg.emd_depth):
            z = self.layer(len(self.layers) - 1, prev, *context, z)
        return z
