#!/usr/bin/env bash
# The README's explorer screenshots: three short CPU runs (one thread, epoch budgets), then
# bench/explore_screenshots.py. Usage: bench/explore_screenshots.sh [WORK_DIR]
set -euo pipefail
work=${1:-outputs/explore_screenshots}
python -m attnlab task=vision trainer.epochs=40 trainer.num_threads=1 trainer.progress=false hydra.run.dir="$work/vit"
python -m attnlab data=synthetic data.kind=reverse model=transformer trainer.max_steps=600 trainer.max_minutes=0 \
  trainer.num_threads=1 trainer.progress=false hydra.run.dir="$work/transformer_reverse"
python -m attnlab model.emb_dim=64 model.hidden_dim=128 model.attn_dim=64 data.max_train_pairs=20000 data.vocab_size=1000 \
  trainer.max_steps=400 trainer.max_tokens=1024 trainer.max_minutes=0 trainer.num_threads=1 trainer.progress=false \
  data.max_eval_sentences=50 decode.valid_sentences=50 viz.num_examples=2 hydra.run.dir="$work/rnn"
python bench/explore_screenshots.py "$work/rnn" "$work/transformer_reverse" "$work/vit" --out docs/figures
