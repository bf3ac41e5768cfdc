#!/usr/bin/env bash
# The "what leaves the unigram plateau soonest per CPU-minute" study (issue: pre-training that pays).
# Usage: studies/context_study.sh DATA_ROOT OUT_ROOT BATCH
#   DATA_ROOT holds d128/ and d64/ (electra preprocess of enwiki-2015/AA with an 8,192-token
#   WordPiece tokenizer, see RESULTS.md); every run uses one thread so two run side by side.
#   ELECTRA_CODE (optional): a checkout of this repository to run, so that editing the working
#   tree does not change runs in flight (e.g. `git worktree add ../study-code HEAD`).
set -uo pipefail
ELECTRA=(python -m electra.cli)
[ -n "${ELECTRA_CODE:-}" ] && export PYTHONPATH="$ELECTRA_CODE"
DATA=${1:?data root}; OUT=${2:?out root}; BATCH=${3:?batch name}
run() {  # run NAME DATA_SUBDIR OVERRIDES...
  local name=$1 sub=$2; shift 2
  [ -f "$OUT/$name/metrics.jsonl" ] && grep -q '"kind": "valid"' "$OUT/$name/metrics.jsonl" && \
    [ -d "$OUT/$name/export" ] && { echo "skip $name"; return; }
  rm -rf "$OUT/$name"
  nice -n 5 "${ELECTRA[@]}" pretrain --data "$DATA/$sub" --preset tiny --out "$OUT/$name" \
    objective.temperature=1.0 train.threads=1 train.log_every=100 train.keep_last=1 "$@" \
    > "$OUT/$name.log" 2>&1
  echo "$name rc=$?"
}
# equal token budget per run: 640 x 32 x 128 = 2.6M tokens
T128="train.steps=640 optim.warmup_steps=64 train.eval_every=160 train.save_every=640"
T64="train.steps=1280 optim.warmup_steps=128 train.eval_every=320 train.save_every=1280"
T64B16="train.steps=2560 optim.warmup_steps=256 train.batch_size=16 train.eval_every=640 train.save_every=2560"
LR3="optim.lr=3e-3 optim.beta2=0.98"
MLM="objective.sharing=all objective.generator_size=1.0 objective.disc_weight=0 objective.mask_token_prob=0.8 objective.random_token_prob=0.1"
case $BATCH in
  1a)
    run base128 d128 $T128
    run seq64 d64 $T64
    run seq64_b16 d64 $T64B16 ;;
  1b)
    run mlm_seq64 d64 $T64 $MLM
    run seq64_b16_lr2e3 d64 $T64B16 optim.lr=2e-3
    run temp2_seq64 d64 $T64 objective.temperature=2.0 ;;
  # batch 2: seq 64, batch 16 (the better of batch 1), with the context-free references
  2a)
    run b2_lr1e3 d64 $T64B16
    run b2_lr3e3 d64 $T64B16 $LR3
    run b2_lr3e3_mask25 d64 $T64B16 $LR3 objective.mask_prob=0.25 ;;
  2b)
    run b2_lr3e3_mlm d64 $T64B16 $LR3 $MLM
    run b2_lr3e3_gen025 d64 $T64B16 $LR3 objective.generator_size=0.25
    run b2_lr5e3 d64 $T64B16 optim.lr=5e-3 optim.beta2=0.98 ;;
  # batch 2, second half: the encoder trained by MLM as well (sharing=all), and MLM alone
  2c)
    run b2_shareall d64 $T64B16 objective.sharing=all objective.generator_size=1.0 ;;
  2d)
    run b2_mlm d64 $T64B16 objective.sharing=all objective.generator_size=1.0 objective.disc_weight=0 ;;
  # batch 3: two stages at the same token budget: MLM for half the steps, then ELECTRA warm-started
  # from that encoder (the paper's two-stage idea, with a fresh small generator)
  3a)
    run b3_mlm_half d64 $T64B16 objective.sharing=all objective.generator_size=1.0 \
      objective.disc_weight=0 train.stop_at=1280
    run b3_two_stage d64 train.steps=1280 optim.warmup_steps=128 train.batch_size=16 \
      train.eval_every=320 train.save_every=1280 --init-from "$OUT/b3_mlm_half/export/discriminator" ;;
  # batch 4: screens at half the 2.6M budget (same schedule as batch 2, stopped at 1.29M tokens)
  # of a sinusoidal start for the learned position table (model.position_init)
  4a)
    run b4_mlm_sin d64 $T64B16 train.stop_at=1280 objective.sharing=all objective.generator_size=1.0 \
      objective.disc_weight=0 model.position_init=sinusoidal
    run b4_mlm_sin_h4 d64 $T64B16 train.stop_at=1280 objective.sharing=all objective.generator_size=1.0 \
      objective.disc_weight=0 model.position_init=sinusoidal model.num_heads=4
    run b4_sin d64 $T64B16 train.stop_at=1280 model.position_init=sinusoidal ;;
  # one encoder for both losses (sharing=all) with the MLM loss in charge: lambda 1 and 5
  4b)
    run b4_shareall_l1 d64 $T64B16 train.stop_at=1280 objective.sharing=all objective.generator_size=1.0 \
      objective.disc_weight=1
    run b4_shareall_l5 d64 $T64B16 train.stop_at=1280 objective.sharing=all objective.generator_size=1.0 \
      objective.disc_weight=5 ;;
  # batch 5: the lambda-1 shared encoder for 8,000 steps (8.2M tokens; = --preset mini), and the
  # same at lr 2e-3 (diverges near step 1,300: `electra doctor` names it)
  5a)
    run long_l1 d64 objective.sharing=all objective.generator_size=1.0 objective.disc_weight=1 \
      optim.lr=1e-3 optim.warmup_steps=400 train.batch_size=16 train.steps=8000 train.eval_every=1000 \
      train.save_every=2000 train.save_every_minutes=15 train.keep_last=12 train.log_every=200 ;;
  5b)
    run long_l1_lr2e3 d64 objective.sharing=all objective.generator_size=1.0 objective.disc_weight=1 \
      optim.lr=2e-3 optim.warmup_steps=400 train.batch_size=16 train.steps=8000 train.eval_every=1000 \
      train.save_every=2000 train.save_every_minutes=15 train.keep_last=12 train.log_every=200 ;;
esac
