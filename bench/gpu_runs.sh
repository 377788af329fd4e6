#!/usr/bin/env bash
# The GPU numbers of docs/benchmarks.md (one H100: about 11 minutes for all three parts):
#   bench     bench_transformer.py on the GPU: training tokens/s against torch.nn.Transformer,
#             and decoding with and without the KV cache (under a minute);
#   multi30k  the Transformer on Multi30k de->en and en->de (test_2016_flickr), 2.5 minutes of
#             training each with the GPU recipe below (about 4 minutes each with validation);
#   vit       the default ViT recipe for 24 s in fp32 and in bf16 autocast (images/s, accuracy).
#
#   bash bench/gpu_runs.sh OUT_DIR [CACHE_DIR]              # all three parts
#   PARTS="vit" bash bench/gpu_runs.sh OUT_DIR              # some of them
#
# CACHE_DIR holds (or receives) the Multi30k download, as data.cache_dir does. Everything a run
# writes lands in OUT_DIR/runs.tgz (checkpoints left out) and a summary in OUT_DIR/summary.txt.
set -u -o pipefail
out=${1:?usage: bash bench/gpu_runs.sh OUT_DIR [CACHE_DIR]}
cache=${2:-}
parts=" ${PARTS:-bench multi30k vit} "
py=${PYTHON:-python3}
runs=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1
cache_arg=(data.cache_dir="${cache:-null}")  # null: $ATTNLAB_CACHE or ~/.cache/attnlab
# Pack what the runs wrote after each step, so a run cut short still leaves the earlier ones.
pack() { tar czf "$out/runs.tgz" --exclude='*.pt' -C "$runs" . 2>/dev/null; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/summary.txt"
"$py" -c "import torch, hydra, sacrebleu; print('torch', torch.__version__, 'hydra', hydra.__version__, 'sacrebleu', sacrebleu.__version__)" \
  | tee -a "$out/summary.txt" || exit 1

# 1. Benchmark: bigger batches than on the CPU, so the GPU has work to do.
if [[ $parts == *" bench "* ]]; then
  timeout -k 20 120 "$py" bench/bench_transformer.py --device cuda --batch 256 --steps 20 --rounds 5 \
    --decode-batch 128 --decode-len 40 2>&1 | tee "$out/bench_transformer.md" \
    || echo "bench_transformer.py: exit $?" | tee -a "$out/summary.txt"
fi

# 2. Multi30k with a recipe for a GPU: 8k-token batches, the full 1024-wide feed-forward layers,
#    dropout 0.2 against over-fitting in many epochs of 29k pairs, 8k joint subwords, beam 5.
gpu_recipe=(task=translation model=transformer data=multi30k device=cuda "${cache_arg[@]}"
  trainer.max_minutes=2.5 trainer.epochs=200 trainer.max_tokens=8192 trainer.lr=1e-3
  trainer.warmup_steps=300 trainer.progress=false model.d_ff=1024 model.dropout=0.2
  data.vocab_size=8000 decode.beam_size=5)
for pair in "de en" "en de"; do
  [[ $parts == *" multi30k "* ]] || break
  set -- $pair
  name="multi30k_transformer_$1$2"
  start=$(date +%s)
  timeout -k 20 300 "$py" -m attnlab "${gpu_recipe[@]}" data.src_lang="$1" data.tgt_lang="$2" \
    hydra.run.dir="$runs/$name" > "$runs/$name.log" 2>&1
  rc=$?
  echo "$name: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
  grep -E "test:|test chrF" "$runs/$name.log" | tee -a "$out/summary.txt"
  if [ $rc -ne 0 ]; then
    tail -20 "$runs/$name.log"
    [ $(( $(date +%s) - start )) -lt 90 ] && break  # an early failure: the next run would fail too
  fi
  pack
done

# 3. ViT: fp32 against bf16 autocast on the default recipe.
for precision in fp32 bf16; do
  [[ $parts == *" vit "* ]] || break
  name="vit_digits_$precision"
  timeout -k 20 60 "$py" -m attnlab task=vision device=cuda trainer.precision=$precision trainer.max_minutes=0.4 \
    trainer.progress=false viz.enabled=false \
    hydra.run.dir="$runs/$name" > "$runs/$name.log" 2>&1
  echo "$name: exit $?" | tee -a "$out/summary.txt"
  pack
done

# One line per run: its results and its median training throughput.
"$py" - "$runs" <<'PY' | tee -a "$out/summary.txt"
import json, statistics, sys
from pathlib import Path
for run in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "results.json").exists()):
    r = json.loads((run / "results.json").read_text())
    rates = [v for line in (run / "metrics.jsonl").read_text().splitlines()
             for k, v in json.loads(line).items() if k.endswith("_per_s")]
    keys = ("bleu", "chrf", "accuracy", "epochs", "train_seconds", "wall_seconds", "gpu_peak_memory_mb", "device_name")
    shown = ", ".join(f"{k} {r[k]:.4g}" if isinstance(r[k], float) else f"{k} {r[k]}" for k in keys if k in r)
    print(f"{run.name}: {shown}, median {statistics.median(rates) if rates else 0:,.0f}/s")
PY
pack
rm -rf "$runs"
