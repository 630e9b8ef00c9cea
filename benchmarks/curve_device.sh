#!/usr/bin/env bash
# Issue 17's learning curve on a lent GPU, both designs in one run on the same samples: today's default (full fits
# from the bundled init -> neuron spaces learned from 80 / 160 / all training fields, encoder alone and + 100
# refinement steps) beside shift bases (the held-out shapes fitted from each base in .gpu3/bases, made by
# learned_device.sh), all scored against the ground truth read from a labels file (`space_curve --truth`).
# Data: .gpu/samples.safetensors (benchmarks._transport pack), .gpu3/{split.json,truth.safetensors,bases/}.
# DEV=cpu with small FIT_STEPS / EPOCHS: a dry run of this script. BASE_DIR / BASES: other bases; NEURON="": no neuron
# spaces.
set -uo pipefail
out=${OUT:-/tmp/curve_out}; w=/tmp/wc; mkdir -p "$out" $w/logs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
source benchmarks/_device_env.sh
dev=${DEV:-cuda}; E=${EPOCHS:-200}; F=${FIT_STEPS:-0}
NEURON=${NEURON-80 160 0}  # training-field counts of the neuron spaces ("": none)
python3 -m benchmarks._transport unpack .gpu/samples.safetensors $w/samples >/dev/null || exit 1
python3 - "$w" <<'EOF' || exit 1
import json, shutil, sys
from pathlib import Path
w = Path(sys.argv[1]); index = json.loads((w / "samples/samples.json").read_text())
test = set(json.loads(Path(".gpu3/split.json").read_text())["split"]["test"])
(w / "samples_test").mkdir(exist_ok=True)
index["shapes"] = [s for s in index["shapes"] if s["name"] in test]
for s in index["shapes"]:
    shutil.copy(w / "samples" / s["file"], w / "samples_test" / s["file"])
(w / "samples_test/samples.json").write_text(json.dumps(index))
EOF
[ -n "$NEURON" ] && { sz fit $w/samples --out $w/zoo_full --steps "$F" --batch 400 --device $dev >$w/logs/zoo_full.log 2>&1 || exit 1; }
for n in $NEURON; do
  sz space train $w/zoo_full --out $w/neuron_$n --train-limit $n --epochs "$E" --device $dev >$w/logs/neuron_$n.log 2>&1 &
done
runs=()
B=${BASE_DIR:-.gpu3/bases}
for b in ${BASES:-$(ls $B)}; do
  sz fit $w/samples_test --out $w/zt_$b --init $B/$b --steps "$F" --batch 80 --device $dev \
    >$w/logs/zt_$b.log 2>&1 && runs+=(--run "$b=$w/zt_$b")
done
wait
for n in $NEURON; do runs+=(--run "neuron_$n=$w/zoo_full:$w/neuron_$n"); done
python3 -m benchmarks.space_curve /none --truth .gpu3/truth.safetensors --split-from .gpu3/split.json "${runs[@]}" \
  --refine 0 100 --device $dev --out "$out/space_curve_gpu.json"
for f in $w/logs/*.log; do echo "$f: $(tail -c 300 "$f" | tr '\n' ' ')"; done > "$out/logs.txt"
cp $w/zoo_full/fit_summary.json "$out/zoo_full_summary.json" 2>/dev/null
ls -la "$out"
