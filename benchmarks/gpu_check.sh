#!/usr/bin/env bash
# The CUDA checks of fitting and metrics, as run on a lent GPU machine: results land in $OUT (or benchmarks/results).
# Usage: bash benchmarks/gpu_check.sh [SAMPLES (default .gpu_data)] [CAPOD_SAMPLES]
set -uo pipefail
out=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m benchmarks.fit_throughput --device cuda --batches 1 8 32 64 128 --steps 400 --sequential-fields 2 \
  --out "$out/fit_throughput_cuda.json" 2>&1 | tee "$out/fit_throughput_cuda.log"
python3 -m benchmarks.chamfer_timing --out "$out/chamfer_timing_cuda.json" 2>&1 | tee "$out/chamfer_cuda.log"
python3 -m benchmarks.cuda_check "${1:-.gpu_data}" --fields 15 --out "$out/cuda_check.json" 2>&1 | tee "$out/cuda_check.log"
python3 -m benchmarks.fit_budget "${1:-.gpu_data}" --shapes 15 --device cuda --out "$out/fit_budget_cuda.json"
[ -n "${2:-}" ] && python3 -m benchmarks.fit_budget "$2" --shapes 30 --device cuda --out "$out/fit_budget_capod_cuda.json"
