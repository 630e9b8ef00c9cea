"""CUDA check of batched fitting: CPU == CUDA (fp32), batched == independent on CUDA, default-recipe quality.

Usage: python -m benchmarks.cuda_check SAMPLES_DIR [--fields 40] [--out FILE]  (needs CUDA)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

import shapezoo.fields.fitting as fit_module
from benchmarks import _common
from benchmarks._fitbench import load_batch
from shapezoo.errors import ShapezooError
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldSpec, init_params


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "cuda_check.json")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--fields", type=int, default=40)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise ShapezooError("cuda_check needs a CUDA device")
    cuda = torch.device("cuda")
    spec = FieldSpec()
    init = init_params(spec)
    report = {"device": torch.cuda.get_device_name(cuda), "torch": torch.__version__}

    pts, occ, nu, names = load_batch(args.samples, 4, "cpu", stride=4)  # shapes spread over the families
    short = FitConfig(steps=100, precision="fp32")
    cpu = fit_fields(spec, init, pts, occ, nu, names, short)
    gpu = fit_fields(spec, init, pts.to(cuda), occ.to(cuda), nu, names, short)
    fit_module.USE_CUDA_GRAPHS = False
    eager = fit_fields(spec, init, pts.to(cuda), occ.to(cuda), nu, names, short)
    fit_module.USE_CUDA_GRAPHS = True
    singles = [
        fit_fields(spec, init, pts[b : b + 1].to(cuda), occ[b : b + 1].to(cuda), nu, names[b : b + 1], short)
        for b in range(4)
    ]
    report["fp32_100_steps"] = {
        "cpu_vs_cuda_max_abs_weight_diff": float((cpu.params - gpu.params).abs().max()),
        "cuda_graph_vs_eager_max_abs_weight_diff": float((eager.params - gpu.params).abs().max()),
        "cuda_batched_vs_independent_max_abs_weight_diff": max(
            float((s.params[0] - gpu.params[b]).abs().max()) for b, s in enumerate(singles)
        ),
        "max_iou_diff_cpu_cuda": max(abs(a["iou"] - b["iou"]) for a, b in zip(cpu.metrics, gpu.metrics)),
    }
    long = FitConfig(steps=600, precision="fp32")
    cpu = fit_fields(spec, init, pts, occ, nu, names, long)
    gpu = fit_fields(spec, init, pts.to(cuda), occ.to(cuda), nu, names, long)
    report["fp32_600_steps"] = {
        "cpu_vs_cuda_max_abs_weight_diff": float((cpu.params - gpu.params).abs().max()),
        "iou_cpu": [m["iou"] for m in cpu.metrics],
        "iou_cuda": [m["iou"] for m in gpu.metrics],
    }
    pts, occ, nu, names = load_batch(args.samples, args.fields, "cpu", stride=1)
    torch.cuda.synchronize()
    t = time.perf_counter()
    full = fit_fields(spec, init, pts.to(cuda), occ.to(cuda), nu, names, FitConfig())
    seconds = time.perf_counter() - t
    ious = [m["iou"] for m in full.metrics]
    report["default_recipe_cuda"] = {
        "fields": len(names),
        "seconds": seconds,
        "fields_per_hour": len(names) * 3600 / seconds,
        "median_iou": float(np.median(ious)),
        "min_iou": float(np.min(ious)),
        "median_iou_near": float(np.median([m["iou_near"] for m in full.metrics])),
    }
    print(json.dumps(report, indent=1))
    return _common.finish(args.out, report, cuda)


if __name__ == "__main__":
    _common.run(main)
