"""ELECTRA: a small generator and a discriminator trained jointly (replaced token detection).

forward = dynamic masking -> generator on the masked input -> MLM logits at the picked positions
only -> a sample (Gumbel-max or inverse CDF, no grad) -> corrupted input -> discriminator -> RTD
logits for every token.
Loss is `mlm_weight * MLM + disc_weight * RTD`. Sharing modes: `none`, `embeddings` (one
Embeddings module used by both, the paper's default), `all` (one encoder, equal sizes), `gdes`
(DeBERTaV3: the discriminator's word table is sg(generator's) + its own delta, objective/gdes.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from electra.config import ModelConfig, ObjectiveConfig, PretrainConfig
from electra.model.build import build_encoder, mlm_states
from electra.model.heads import (
    DiscriminatorHead,
    GeneratorHead,
    SentenceOrderHead,
    gather_positions,
)
from electra.model.layers import Embeddings, Encoder, init_positions, init_weights, zero_pad_row
from electra.objective.base import ObjectiveOutput, PretrainingObjective, TokenIds
from electra.objective.gdes import merged_encoder, share_gdes
from electra.objective.losses import mlm_loss, rtd_loss, top1_hits
from electra.objective.masking import MaskedBatch, MaskSpec, mask_tokens
from electra.objective.sampling import SAMPLERS
from electra.objective.sop import SOP_STAT_NAMES, SentenceOrder, sop_loss, swap_segments
from electra.objective.weighting import LossWeighting


@dataclass(frozen=True)
class PretrainOutput(ObjectiveOutput):
    mlm_loss: torch.Tensor  # scalar
    rtd_loss: torch.Tensor  # scalar
    gen_correct: torch.Tensor  # scalar, picked positions where argmax(G) == original (top1_hits)
    gen_count: torch.Tensor  # scalar, picked positions
    disc_correct: torch.Tensor  # scalar, tokens where (logit > 0) == replaced
    disc_count: torch.Tensor  # scalar, non-pad tokens
    replaced_count: torch.Tensor  # scalar, tokens whose sample differs from the original
    disc_logits: torch.Tensor  # [B, T]
    replaced: torch.Tensor  # [B, T] bool, the RTD labels
    token_mask: torch.Tensor  # [B, T] bool, non-pad tokens
    masked: MaskedBatch  # the generator's input and targets
    corrupted: torch.Tensor  # [B, T] the discriminator's input


class ElectraModel(PretrainingObjective):
    STAT_NAMES = ("mlm_loss", "rtd_loss", "gen_correct", "gen_count", "disc_correct", "disc_count",
                  "replaced")
    DISC_VOCAB_HEAD = False  # subclasses whose discriminator-sized model predicts tokens

    def __init__(self, disc: ModelConfig, gen: ModelConfig, objective: ObjectiveConfig,
                 ids: TokenIds) -> None:
        super().__init__()
        if gen.embedding_size != disc.embedding_size and objective.sharing != "none":
            raise ValueError("shared embeddings need equal embedding sizes")
        self.objective = objective
        self.temperature = objective.temperature_at(0)
        self.sample_kernel = "gumbel"  # or "cdf": set by the runtime (train.sample_kernel)
        self.disc_cfg, self.gen_cfg = disc, gen
        self.mask_spec = MaskSpec.from_config(objective, ids.mask_id, disc.vocab_size)
        self.register_buffer("special_ids", torch.tensor(ids.special_ids), persistent=False)
        if ids.word_continuation and len(ids.word_continuation) != disc.vocab_size:
            raise ValueError("the word-continuation table must have one entry per vocabulary id")
        self.register_buffer("word_continuation", torch.tensor(  # [V] bool, for whole-word masking
            ids.word_continuation or (False,) * disc.vocab_size, dtype=torch.bool), persistent=False)
        self.word_bits: torch.Tensor | None = None  # [B, T] the batch's own (set_word_bits)
        # the discriminator is built first so shared parameters are named discriminator.*
        self.discriminator = build_encoder(disc)
        shared = self.discriminator.embeddings if objective.sharing == "embeddings" else None
        self.generator: Encoder | None = (
            None if objective.sharing == "all" else build_encoder(gen, embeddings=shared))
        if objective.sharing == "gdes":  # before the init: E_delta stays zero
            share_gdes(self.discriminator.embeddings, self.generator.embeddings)
        self.generator_head = GeneratorHead(gen.hidden_size, gen.embedding_size, gen.vocab_size,
                                            gen.layer_norm_eps)
        self.discriminator_head = DiscriminatorHead(disc.hidden_size)
        self.discriminator_mlm_head = (  # the MLM warm start's, or a subclass's; not exported
            GeneratorHead(disc.hidden_size, disc.embedding_size, disc.vocab_size, disc.layer_norm_eps)
            if objective.disc_mlm_steps or self.DISC_VOCAB_HEAD else None)
        self.disc_mlm_phase = objective.disc_mlm_steps > 0
        self.sop_head = (  # sentence order from the discriminator's [CLS] (ALBERT); exported
            SentenceOrderHead(disc.hidden_size, disc.dropout) if objective.sop_weight > 0 else None)
        if self.sop_head is not None:
            self.STAT_NAMES = (*self.STAT_NAMES, *SOP_STAT_NAMES)
        init_weights(self, disc.initializer_range)
        for emb in self.all_embeddings():
            zero_pad_row(emb, disc.pad_token_id)
            init_positions(emb, disc.position_init, disc.initializer_range)
        self.loss_weighting = LossWeighting(objective)  # objective.loss_weighting; after the init
        self.STAT_NAMES = (*self.STAT_NAMES, *self.loss_weighting.STAT_NAMES)

    @classmethod
    def from_config(cls, cfg: PretrainConfig, ids: TokenIds) -> ElectraModel:
        return cls(cfg.model, cfg.generator_model(), cfg.objective, ids)

    @property
    def encoder(self) -> Encoder:
        """The discriminator; under GDES a plain copy with E_G + E_delta merged (no gradient path)."""
        return merged_encoder(self.discriminator) if self.objective.sharing == "gdes" else self.discriminator

    @property
    def has_idle_parameters(self) -> bool:
        # a deberta discriminator's own EMD position table is read only by an MLM head on it
        idle_emd = self.disc_cfg.emd_depth > 0 and self.objective.sharing in ("none", "gdes")
        return self.objective.disc_mlm_steps > 0 or self.objective.disc_weight == 0 or idle_emd

    def set_step(self, step: int) -> None:
        self.temperature = self.objective.temperature_at(step)
        self.disc_mlm_phase = step < self.objective.disc_mlm_steps
        self.loss_weighting.set_step(step)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Trade compute for memory (long sequences): activations are recomputed in backward."""
        for enc in (self.discriminator, self.generator_encoder):
            enc.gradient_checkpointing = enabled

    @property
    def generator_encoder(self) -> Encoder:
        return self.discriminator if self.generator is None else self.generator

    def all_embeddings(self) -> list[Embeddings]:
        embs = [self.discriminator.embeddings, self.generator_encoder.embeddings]
        return list({id(e): e for e in embs}.values())

    def set_word_bits(self, continues_word: torch.Tensor | None) -> None:
        self.word_bits = continues_word

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             generator: torch.Generator | None = None) -> MaskedBatch:
        continues = None
        if self.mask_spec.unit != "token":  # whole words: the batch's segmentation, else the vocabulary's
            continues = self.word_continuation[input_ids] if self.word_bits is None else self.word_bits
        return mask_tokens(input_ids, attention_mask, self.special_ids, self.mask_spec, generator,
                           continues)

    def generator_logits(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                         attention_mask: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """MLM logits at `positions` ([B, P] -> [B, P, V]) or, if None, everywhere ([B, T, V])."""
        g = self.generator_encoder
        h = mlm_states(g, input_ids, token_type_ids, attention_mask)  # [B, T, H_g]
        if positions is not None:
            h = gather_positions(h, positions)  # [B, P, H_g]
        return self.generator_head(h, g.embeddings.word_embeddings.weight)

    def discriminator_logits(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                             attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.discriminator(input_ids, token_type_ids, attention_mask)  # [B, T, H]
        return self.discriminator_head(h)  # [B, T]

    def corrupt(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, masked: MaskedBatch,
                g_logits: torch.Tensor, generator: torch.Generator | None = None,
                no_special: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator samples written at the picked positions -> (corrupted [B, T], replaced [B, T]
        bool); a sample equal to the original counts as original. `no_special`: never sample a
        special token ([MASK], [CLS], ...), for objectives whose point is that no [MASK] is seen."""
        logits = g_logits.detach()  # [B, P, V]
        if no_special:
            logits = logits.index_fill(-1, self.special_ids, float("-inf"))
        sampled = SAMPLERS[self.sample_kernel](logits, self.temperature, generator)  # [B, P]
        picked = masked.weights > 0
        corrupted = input_ids.scatter(1, masked.positions,
                                      torch.where(picked, sampled, masked.targets))  # [B, T]
        return corrupted, (corrupted != input_ids) & attention_mask

    def generator_loss(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                       attention_mask: torch.Tensor, masked: MaskedBatch | None,
                       generator: torch.Generator | None) -> tuple[MaskedBatch, torch.Tensor, torch.Tensor]:
        """Mask (unless given), run the generator at the picked positions -> (masked, logits
        [B, P, V], MLM loss)."""
        if masked is None:
            masked = self.mask(input_ids, attention_mask, generator)
        if self.disc_mlm_phase:  # warm start: the discriminator predicts the masked tokens
            h = gather_positions(self.discriminator(masked.input_ids, token_type_ids, attention_mask),
                                 masked.positions)  # [B, P, H]
            g_logits = self.discriminator_mlm_head(h, self.discriminator.embeddings.word_embeddings.weight)
        else:
            g_logits = self.generator_logits(masked.input_ids, token_type_ids, attention_mask,
                                             masked.positions)  # [B, P, V]
        return masked, g_logits, mlm_loss(g_logits, masked.targets, masked.weights)

    def rtd_positions(self, masked: MaskedBatch, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] bool, where the RTD loss applies: every non-pad token (ELECTRA)."""
        return attention_mask

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor, masked: MaskedBatch | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        # input_ids (original), token_type_ids, attention_mask: [B, T]; `masked` (tests, fixed
        # masks) or None: drawn here from `generator` (None: the global RNG)
        obj = self.objective
        order = self.sentence_order(input_ids, token_type_ids, attention_mask, generator)
        if order is not None:  # SOP: rows (and their originals) in the drawn order
            input_ids, token_type_ids = order.input_ids, order.token_type_ids
        masked, g_logits, mlm = self.generator_loss(input_ids, token_type_ids, attention_mask,
                                                    masked, generator)
        scored = self.rtd_positions(masked, attention_mask)  # [B, T] bool
        h = None
        if obj.disc_weight == 0 or self.disc_mlm_phase:  # masked LM alone: no RTD pass
            corrupted, replaced = input_ids, torch.zeros_like(attention_mask)
            d_logits = torch.zeros(input_ids.shape, device=input_ids.device)
            rtd = d_logits.sum()
        else:
            corrupted, replaced = self.corrupt(input_ids, attention_mask, masked, g_logits, generator)
            h = self.discriminator(corrupted, token_type_ids, attention_mask)  # [B, T, H]
            d_logits = self.discriminator_head(h)  # [B, T]
            rtd = rtd_loss(d_logits, replaced, scored)
        loss = self.loss_weighting(mlm, rtd)  # fixed: obj.mlm_weight * mlm + obj.disc_weight * rtd
        out = self.output(loss, mlm, rtd, g_logits, masked, d_logits, replaced, scored, corrupted)
        return self.with_loss_weights(self.with_sentence_order(out, h, order))

    def with_loss_weights(self, out: PretrainOutput) -> PretrainOutput:
        """`out` with the loss weights of this forward appended to its statistics (the learned or
        scheduled ones; nothing for `loss_weighting=fixed`)."""
        weights = self.loss_weighting.stats(out.mlm_loss)
        return replace(out, stats=torch.cat([out.stats, torch.stack(weights)])) if weights else out

    def sentence_order(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                       attention_mask: torch.Tensor, generator: torch.Generator | None
                       ) -> SentenceOrder | None:
        """SOP's rows, half of the two-segment ones swapped (drawn before masking); None: SOP off.
        The batch's word bits (`set_word_bits`, set before each forward) follow their tokens."""
        if self.sop_head is None:
            return None
        order = swap_segments(input_ids, token_type_ids, attention_mask, generator)
        if self.word_bits is not None:
            self.word_bits = order.reorder(self.word_bits)
        return order

    def with_sentence_order(self, out: PretrainOutput, h: torch.Tensor | None,
                            order: SentenceOrder | None) -> PretrainOutput:
        """`out` plus `sop_weight` x the SOP loss on the encoder output `h` [B, T, H] of the
        discriminator's pass, with the SOP statistics appended (SOP_STAT_NAMES)."""
        if order is None:
            return out
        loss, stats = sop_loss(self.sop_head(h), order)
        return replace(out, loss=out.loss + self.objective.sop_weight * loss,
                       stats=torch.cat([out.stats, stats]))

    def output(self, loss: torch.Tensor, mlm: torch.Tensor, rtd: torch.Tensor,
               g_logits: torch.Tensor, masked: MaskedBatch, d_logits: torch.Tensor,
               replaced: torch.Tensor, scored: torch.Tensor, corrupted: torch.Tensor,
               extra: tuple[torch.Tensor, ...] = ()) -> PretrainOutput:
        """The typed output and its additive statistics; `scored` [B, T] bool: the tokens the
        discriminator's statistics count; `extra`: a subclass's further scalar statistics."""
        with torch.no_grad():
            gen_hit = (top1_hits(g_logits, masked.targets).float() * masked.weights).sum()
            disc_hit = (((d_logits > 0) == replaced) & scored).sum().float()
            gen_n, disc_n = masked.weights.sum(), scored.sum().float()
            n_replaced = (replaced & scored).sum().float()
            stats = torch.stack([mlm.detach(), rtd.detach(), gen_hit, gen_n, disc_hit, disc_n,
                                 n_replaced, *extra])
        return PretrainOutput(
            loss=loss, stats=stats, mlm_loss=mlm.detach(), rtd_loss=rtd.detach(),
            gen_correct=gen_hit, gen_count=gen_n, disc_correct=disc_hit, disc_count=disc_n,
            replaced_count=n_replaced, disc_logits=d_logits.detach(), replaced=replaced,
            token_mask=scored, masked=masked, corrupted=corrupted)

    def output_without_rtd(self, loss: torch.Tensor, mlm: torch.Tensor, g_logits: torch.Tensor,
                           masked: MaskedBatch, replaced: torch.Tensor, scored: torch.Tensor,
                           corrupted: torch.Tensor, extra: tuple[torch.Tensor, ...] = ()
                           ) -> PretrainOutput:
        """`output` for the kinds that train no RTD head (mlm, replace_mlm, all_tokens_mlm): zero
        RTD loss and logits, so the statistics keep one layout across kinds."""
        no_rtd = torch.zeros(corrupted.shape, device=corrupted.device)  # [B, T]
        return self.output(loss, mlm, no_rtd.sum(), g_logits, masked, no_rtd, replaced, scored,
                           corrupted, extra=extra)

    def summarize(self, sums: dict[str, float], micro_batches: int) -> dict[str, float]:
        sop = {} if self.sop_head is None else {
            "sop_loss": sums["sop_loss"] / max(micro_batches, 1),
            "sop_acc": sums["sop_correct"] / max(sums["sop_count"], 1)}
        return {
            "mlm_loss": sums["mlm_loss"] / max(micro_batches, 1),
            "rtd_loss": sums["rtd_loss"] / max(micro_batches, 1),
            "gen_acc": sums["gen_correct"] / max(sums["gen_count"], 1),
            "disc_acc": sums["disc_correct"] / max(sums["disc_count"], 1),
            "replaced_frac": sums["replaced"] / max(sums["disc_count"], 1),
        } | sop | self.loss_weighting.summarize(sums, micro_batches)
