"""Training FLOPs per token (6N convention, non-causal attention).

The one FLOP counter used by the training logs, `electra plan` and the benchmarks, following
REFERENCE.md: encoder 6*(matmul params) + 12*L*H*T, plus the heads; the generator's vocabulary
projection costs only at the gathered positions (fraction P/T)."""

from __future__ import annotations

from electra.config import ModelConfig, PretrainConfig
from electra.objective.masking import MaskSpec


def encoder_matmul_params(cfg: ModelConfig) -> int:
    """Weights that take part in a matmul for every token (embedding lookups excluded)."""
    H, F, L, E = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers, cfg.embedding_size
    project = E * H if E != H else 0
    return L * (4 * H * H + 2 * H * F) + project


def encoder_train_flops(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per token of one encoder."""
    return 6.0 * encoder_matmul_params(cfg) + 12.0 * cfg.num_layers * cfg.hidden_size * seq_len


def mlm_head_flops(cfg: ModelConfig, positions_frac: float) -> float:
    """Forward + backward FLOPs per token of an MLM head (dense H->E, tied E->V) applied at a
    fraction `positions_frac` of the tokens."""
    return 6.0 * (cfg.hidden_size * cfg.embedding_size + cfg.embedding_size * cfg.vocab_size) * positions_frac


def rtd_head_flops(cfg: ModelConfig) -> float:
    """The per-token sigmoid head (dense H->H, H->1): RTD, and All-Tokens MLM's copy gate."""
    return 6.0 * (cfg.hidden_size * cfg.hidden_size + cfg.hidden_size)


def electra_train_flops(cfg: PretrainConfig, seq_len: int, gathered: bool = True) -> float:
    """FLOPs per token of one training step of `cfg.objective.kind` (every model and head)."""
    d, g, kind = cfg.model, cfg.generator_model(), cfg.objective.kind
    spec = MaskSpec.from_config(cfg.objective, 0, d.vocab_size)
    frac = spec.predictions_for(seq_len) / seq_len if gathered else 1.0
    if kind == "mlm":  # one encoder and its MLM head: no generator, no discriminator pass
        return encoder_train_flops(d, seq_len) + mlm_head_flops(d, frac)
    generator = encoder_train_flops(g, seq_len) + mlm_head_flops(g, frac)
    if kind in ("electra", "electra15") and cfg.objective.disc_weight == 0:  # masked LM alone
        return generator
    disc = encoder_train_flops(d, seq_len)
    if kind == "replace_mlm":  # the discriminator-sized MLM head at the picked positions
        return generator + disc + mlm_head_flops(d, frac)
    if kind == "all_tokens_mlm":  # a vocabulary head and the copy gate at every token
        return generator + disc + mlm_head_flops(d, 1.0) + rtd_head_flops(d)
    return generator + disc + rtd_head_flops(d)
