"""CUDA check of batched fitting: CPU == CUDA (fp32), batched == independent on CUDA, default-recipe quality.

Usage: python benchmarks/cuda_check.py SAMPLES_DIR [--fields 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import shapezoo.fit as fit_module
from shapezoo.fields import FieldSpec, init_params
from shapezoo.fit import FitConfig, fit_fields
from shapezoo.io import read_json
from shapezoo.sampling import load_samples


def load(samples: Path, count: int, stride: int = 1):
    shapes = read_json(samples / "samples.json")["shapes"][::stride][:count]
    data = [load_samples(samples / s["file"]) for s in shapes]
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data])
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data])
    return pts, occ, int(data[0]["n_uniform"]), [s["name"] for s in shapes]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples", type=Path)
    ap.add_argument("--fields", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cuda_check.json"))
    args = ap.parse_args()
    cuda = torch.device("cuda")
    spec = FieldSpec()
    init = init_params(spec)
    report = {"device": torch.cuda.get_device_name(cuda), "torch": torch.__version__}

    pts, occ, nu, names = load(args.samples, 4, stride=4)  # shapes spread over the families
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
    pts, occ, nu, names = load(args.samples, args.fields)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
