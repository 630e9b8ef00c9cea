#!/usr/bin/env bash
# The learned starts on a lent GPU (issues 16 and 17), as one run. Data: .gpu/samples.safetensors (the 400-shape zoo's
# samples) and .gpu/small.safetensors (25 shapes), made with `python3 -m benchmarks._transport pack`.
# 1. Shift bases for the learning curve, all at once on the GPU: widths 128 and 256, 80 / 160 / all training shapes,
#    8000 steps (and the 256-wide one on all shapes for 16000).
# 2. Meanwhile the CPU == CUDA checks: fits from a learned init and from a base, `init learn`, `init base`
#    (learned_cuda_check), and encode / decode / refine of a shift space and of a neuron space (space_cuda_check).
# 3. The bases (without their training state) to $OUT; they are fitted and scored on the CPU machine.
# BASES=... picks the bases, CHECKS=0 skips step 2.
set -uo pipefail
out=${OUT:-/tmp/learned_out}; w=/tmp/w; mkdir -p "$out" $w/logs
export OMP_NUM_THREADS=2
source benchmarks/_device_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m benchmarks._transport unpack .gpu/samples.safetensors $w/samples >/dev/null || exit 1
python3 -m benchmarks._transport unpack .gpu/small.safetensors $w/small >/dev/null || exit 1
STEPS=${STEPS:-8000}; dev=${DEV:-cuda}  # DEV=cpu: a dry run of this script
for spec in ${BASES:-128:80 128:160 128:0 256:80 256:160 256:0 256:0:16000}; do  # WIDTH:SHAPES[:STEPS], 0: all
  IFS=: read -r width n steps <<<"$spec"; steps=${steps:-$STEPS}
  timeout "${BASE_TIMEOUT:-360}" "${SZ[@]}" init base $w/samples --out $w/bases/b${width}_${n}_$steps \
    --width "$width" --train-shapes "$n" --steps "$steps" --device $dev >$w/logs/b${width}_${n}_$steps.log 2>&1 &
done
[ "${CHECKS:-1}" = 1 ] && python3 -m benchmarks.learned_cuda_check $w/small --devices cpu,$dev --out "$out/learned_cuda_check.json" 2>&1 | tail -4
[ "${CHECKS:-1}" = 1 ] && sz init base $w/small --out $w/sb --steps 300 --device $dev >/dev/null 2>&1 \
  && sz fit $w/small --out $w/szoo --init $w/sb --device $dev >/dev/null 2>&1 \
  && sz space train $w/szoo --out $w/sspace --device $dev >/dev/null 2>&1 \
  && python3 -m benchmarks.space_cuda_check $w/sspace $w/szoo --devices cpu,$dev --out "$out/space_cuda_check_shift.json" | tail -3
[ "${CHECKS:-1}" = 1 ] && sz fit $w/small --out $w/fzoo --device $dev >/dev/null 2>&1 \
  && sz space train $w/fzoo --out $w/nspace --epochs 40 --device $dev >/dev/null 2>&1 \
  && python3 -m benchmarks.space_cuda_check $w/nspace $w/fzoo --devices cpu,$dev --out "$out/space_cuda_check_neuron.json" | tail -3
wait
for f in $w/logs/*.log; do echo "$f: $(tail -c 400 "$f" | tr '\n' ' ')"; done | tee "$out/bases.txt"
tar cf "$out/bases.tar" -C $w --exclude=base_state.safetensors bases
ls -la "$out"
