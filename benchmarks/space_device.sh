#!/usr/bin/env bash
# Weight-space runs on a lent GPU. Data: .gpu/zoo (a field zoo), or .gpu/samples5.safetensors
# (benchmarks/_transport.py pack), which is unpacked and fitted with the default recipe first.
# Order: main neuron space -> CUDA == CPU check -> its files to $OUT -> prep baseline (same budget) -> latent sweep.
# Everything written to $OUT as it finishes (tar parts of <= 15 MB), so a cut-off run keeps what it did.
set -uo pipefail
out=${OUT:-/tmp/space_out}; w=.gpu; mkdir -p "$out" $w/res
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
dev=${DEVICE:-cuda}; export dev
E=${EPOCHS:-250}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if [ ! -d $w/zoo ]; then
  python3 benchmarks/_transport.py unpack $w/samples5.safetensors $w/samples
  python3 - <<'PY' 2>&1 | tee $w/res/fit.log
import json, os, time
from shapezoo.fields import FieldSpec
from shapezoo.fit import FitConfig, fit_zoo
t = time.perf_counter()
config = FitConfig(steps=int(os.environ.get("FIT_STEPS", 4800)))
s = fit_zoo(".gpu/samples", ".gpu/zoo", FieldSpec(), config, batch=80, device=os.environ["dev"])
s["seconds"] = time.perf_counter() - t
json.dump(s, open(".gpu/res/fit_summary.json", "w"), indent=1)
PY
  tar cf - -C $w zoo | split -b 15M - "$out/zoo_part_"
fi
q() { python3 benchmarks/space_quality.py $w/zoo --spaces $w/spaces --device $dev "$@"; }
q --runs neuron:512:$E --out $w/res/space_main_cuda.json 2>&1 | tee $w/res/space_main.log
[ "$dev" = cuda ] && python3 benchmarks/space_cuda_check.py $w/spaces/neuron_512_$E $w/zoo --out $w/res/space_cuda_check.json
tar cf - -C $w/spaces --exclude=checkpoint.safetensors neuron_512_$E | split -b 15M - "$out/neuron_part_"
tar cf "$out/results.tar" -C $w res
timeout ${PREP_TIMEOUT:-120} bash -c "$(declare -f q); w=$w dev=$dev; q --runs prep:512:$E --out $w/res/space_prep_cuda.json" \
  2>&1 | tee $w/res/space_prep.log
python3 - <<PY
import os, torch
from shapezoo.space import load_space
from shapezoo.zoo import load_zoo, save_zoo
zoo = load_zoo(".gpu/zoo")
s = load_space(".gpu/spaces/prep_512_$E", os.environ["dev"])
names = s.meta["split"]["test"] + s.meta["split"]["train"][:32]
p = s.decode(s.encode(torch.stack([zoo.weights(n) for n in names]).to(os.environ["dev"]))).cpu()
save_zoo(".gpu/decoded_prep", zoo.spec, p, [{"name": n, "status": "ok"} for n in names], zoo.init, {})
PY
tar cf "$out/decoded_prep.tar" -C $w decoded_prep
tar cf "$out/results.tar" -C $w res
SWEEP=${SWEEP:-"neuron:128:$E neuron:256:$E neuron:1024:$E"}
timeout ${SWEEP_TIMEOUT:-150} bash -c "$(declare -f q); w=$w dev=$dev; q --runs $SWEEP \
  --out $w/res/space_sweep_cuda.json" 2>&1 | tee $w/res/space_sweep.log
tar cf "$out/results.tar" -C $w res
ls -la "$out"
