#!/usr/bin/env bash
# Weight-space runs on a lent GPU. Data: .gpu/zoo (a field zoo), or .gpu/samples5.safetensors
# (python -m benchmarks._transport pack), which is unpacked and fitted with the seeded recipe first.
# Order: main neuron space -> CUDA == CPU check -> its files to $OUT -> prep baseline (same budget) -> latent sweep.
# Everything written to $OUT as it finishes (tar parts of <= 15 MB), so a cut-off run keeps what it did.
set -uo pipefail
out=${OUT:-/tmp/space_out}; w=.gpu; mkdir -p "$out" $w/res
export PYTHONUNBUFFERED=1
dev=${DEVICE:-cuda}
E=${EPOCHS:-250}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if [ ! -d $w/zoo ]; then
  python3 -m benchmarks._transport unpack $w/samples5.safetensors $w/samples
  shapezoo fit $w/samples --out $w/zoo --init seeded --steps "${FIT_STEPS:-4800}" --batch 80 --device "$dev" \
    2>&1 | tee $w/res/fit.log
  cp $w/zoo/fit_summary.json $w/res/
  tar cf - -C $w zoo | split -b 15M - "$out/zoo_part_"
fi
q() { python3 -m benchmarks.space_quality $w/zoo --spaces $w/spaces --device "$dev" "$@"; }
q --runs neuron:512:$E --out $w/res/space_main_cuda.json 2>&1 | tee $w/res/space_main.log
[ "$dev" = cuda ] && python3 -m benchmarks.space_cuda_check $w/spaces/neuron_512_$E $w/zoo --out $w/res/space_cuda_check.json
tar cf - -C $w/spaces --exclude=checkpoint.safetensors neuron_512_$E | split -b 15M - "$out/neuron_part_"
tar cf "$out/results.tar" -C $w res
timeout "${PREP_TIMEOUT:-120}" bash -c "$(declare -f q); w=$w dev=$dev; q --runs prep:512:$E --out $w/res/space_prep_cuda.json" \
  2>&1 | tee $w/res/space_prep.log
python3 -m benchmarks.space_eval $w/zoo none --space prep=$w/spaces/prep_512_$E --refine 0 --train-count 32 \
  --device "$dev" --decode-to $w/decoded_prep
tar cf "$out/decoded_prep.tar" -C $w decoded_prep
tar cf "$out/results.tar" -C $w res
SWEEP=${SWEEP:-"neuron:128:$E neuron:256:$E neuron:1024:$E"}
timeout "${SWEEP_TIMEOUT:-150}" bash -c "$(declare -f q); w=$w dev=$dev; q --runs $SWEEP \
  --out $w/res/space_sweep_cuda.json" 2>&1 | tee $w/res/space_sweep.log
tar cf "$out/results.tar" -C $w res
ls -la "$out"
