#!/usr/bin/env bash
# The CUDA checks of fitting and metrics, as run on a lent GPU machine: results land in $OUT (or benchmarks/results).
set -uo pipefail
out=${OUT:-benchmarks/results}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 benchmarks/fit_throughput.py --device cuda --batches 1 8 32 64 128 --steps 400 --sequential-fields 2 \
  --out "$out/fit_throughput_cuda.json" 2>&1 | tee "$out/fit_throughput_cuda.log"
python3 benchmarks/chamfer_timing.py --out "$out/chamfer_timing_cuda.json" 2>&1 | tee "$out/chamfer_cuda.log"
python3 benchmarks/cuda_check.py "${1:-.gpu_data}" --fields 15 --out "$out/cuda_check.json" 2>&1 | tee "$out/cuda_check.log"
python3 benchmarks/fit_budget.py "${1:-.gpu_data}" --shapes 15 --device cuda --out "$out/fit_budget_cuda.json"
[ -n "${2:-}" ] && python3 benchmarks/fit_budget.py "$2" --shapes 30 --device cuda --out "$out/fit_budget_capod_cuda.json"
