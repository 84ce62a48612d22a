#!/usr/bin/env bash
# The seeds' comparison, measured: DCGAN baseline vs SAGAN without attention vs SAGAN on the
# offline mnist5k set, each trained for the same CPU time, then scored with the offline
# classifier backbone on the 500 held-out digits. Usage: MINUTES=5 bash benchmarks/compare_mnist5k.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-5}
OUT=${OUT:-runs/compare}
declare -A ARGS=(
  [baseline]="--preset=baseline_32"
  [sagan_no_attention]="--preset=dcgan_32 --g_attention= --d_attention="
  [sagan]="--preset=dcgan_32"
)
for name in baseline sagan_no_attention sagan; do
  rm -rf "$OUT/$name" "savedmodels/compare_$name"
  python3 -m sagan_tf.train --dataset=mnist5k ${ARGS[$name]} --steps=1000000 \
    --max_minutes="$MINUTES" --batch_size=64 --seed=0 --log_every=100 --sample_every=100000 \
    --checkpoint_every=100000 --workdir="$OUT/$name" --export_name="compare_$name" 2>"$OUT.$name.log" || {
      tail -3 "$OUT.$name.log"; exit 1; }
  step=$(grep -o "done: step [0-9]*" "$OUT.$name.log" | grep -o "[0-9]*$")
  speed=$(grep -o "[0-9.]* img/s" "$OUT.$name.log" | tail -1)
  python3 -m sagan_tf.evaluate --model="savedmodels/compare_$name" --dataset=mnist5k --split=test \
    --num_samples=2000 2>/dev/null | python3 -c "
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(json.dumps({'model': '$name', 'steps': $step, 'train_speed': '$speed', 'fid': r['fid'],
                  'kid': r['kid'], 'kid_std': r['kid_std'], 'is': r['is'], 'label': r['label']}))"
done
