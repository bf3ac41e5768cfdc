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


def electra_train_flops(cfg: PretrainConfig, seq_len: int, gathered: bool = True) -> float:
    """FLOPs per token of one ELECTRA training step (generator + discriminator + heads)."""
    d, g = cfg.model, cfg.generator_model()
    spec = MaskSpec.from_config(cfg.objective, 0, d.vocab_size)
    frac = spec.predictions_for(seq_len) / seq_len if gathered else 1.0
    gen_head = 6.0 * (g.hidden_size * g.embedding_size + g.embedding_size * g.vocab_size) * frac
    if cfg.objective.disc_weight == 0:  # masked LM alone: no sampling, no discriminator pass
        return encoder_train_flops(g, seq_len) + gen_head
    disc_head = 6.0 * (d.hidden_size * d.hidden_size + d.hidden_size)
    return encoder_train_flops(g, seq_len) + gen_head + encoder_train_flops(d, seq_len) + disc_head
