#!/usr/bin/env bash
# The README's explorer screenshots: three short CPU runs (one thread, epoch budgets), then
# bench/explore_screenshots.py. Usage: bench/explore_screenshots.sh [WORK_DIR]
set -euo pipefail
work=${1:-outputs/explore_screenshots}
common="trainer.num_threads=1 trainer.max_minutes=0 trainer.progress=false data.max_eval_sentences=50 decode.valid_sentences=50 viz.num_examples=2"
python -m attnlab task=vision trainer.epochs=40 trainer.num_threads=1 trainer.progress=false hydra.run.dir="$work/vit"
python -m attnlab model=transformer model.d_model=128 model.d_ff=256 model.enc_layers=2 model.dec_layers=2 \
  data.max_train_pairs=40000 data.vocab_size=2000 trainer.epochs=1 $common hydra.run.dir="$work/transformer"
python -m attnlab model.emb_dim=128 model.hidden_dim=256 model.attn_dim=128 \
  data.max_train_pairs=40000 data.vocab_size=2000 trainer.epochs=1 $common hydra.run.dir="$work/rnn"
python bench/explore_screenshots.py "$work/rnn" "$work/transformer" "$work/vit" --out docs/figures
