"""CUDA check of the learned starts (issues 16 and 17): fits from a learned full-weight init (hard points on) and
bias-only fits from a shift base, CPU == CUDA (fp32), CUDA graph == eager, batched == independent on CUDA; and the
two learners, ``init learn`` (Reptile) and ``init base``, on CPU and on CUDA from the same start and draws.

Usage: python -m benchmarks.learned_cuda_check SAMPLES_DIR [--devices cpu,cuda] [--out FILE]
(``--devices cpu,cpu`` runs the same comparisons without a GPU: a dry run of the script itself.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

import shapezoo.fields.fitting as fit_module
from benchmarks import _common
from benchmarks._fitbench import load_batch
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.learned_init import InitConfig, bundled_init, learn_init, load_init
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.shift_base import BaseConfig, learn_base


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return _max_abs(a, b) / float(a.float().abs().max())


def _fits(spec, init, pts, occ, nu, names, config, dev) -> dict:
    """One recipe on both devices: CPU vs the second device (graph and eager), batched vs one field at a time."""
    cpu = fit_fields(spec, init, pts, occ, nu, names, config)
    gpu = fit_fields(spec, init.to(dev), pts.to(dev), occ.to(dev), nu, names, config)
    graphs = fit_module.USE_CUDA_GRAPHS
    fit_module.USE_CUDA_GRAPHS = False
    try:
        eager = fit_fields(spec, init.to(dev), pts.to(dev), occ.to(dev), nu, names, config)
    finally:
        fit_module.USE_CUDA_GRAPHS = graphs
    singles = [
        fit_fields(spec, init.to(dev), pts[b : b + 1].to(dev), occ[b : b + 1].to(dev), nu, names[b : b + 1], config)
        for b in range(len(names))
    ]
    change = cpu.params - init.cpu()
    moved = change.abs().amax(0) > 0  # the weights the recipe trains
    return {
        "steps": config.steps,
        "trainable": config.trainable,
        "hard_fraction": config.hard_fraction,
        "weights_moved": int(moved.sum()),
        "cpu_vs_device_max_abs_weight_diff": _max_abs(cpu.params, gpu.params),
        "cpu_vs_device_max_rel_weight_change_diff": _max_abs(cpu.params, gpu.params) / float(change.abs().max()),
        "graph_vs_eager_max_abs_weight_diff": _max_abs(eager.params, gpu.params),
        "batched_vs_independent_max_abs_weight_diff": max(
            _max_abs(s.params[0], gpu.params[b]) for b, s in enumerate(singles)
        ),
        "frozen_weights_unchanged_on_device": bool(((gpu.params - init.cpu()).abs().amax(0)[~moved] == 0).all()),
        "iou_cpu": [m["iou"] for m in cpu.metrics],
        "iou_device": [m["iou"] for m in gpu.metrics],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "learned_cuda_check.json", device=False)
    ap.add_argument("samples", type=Path)
    ap.add_argument("--devices", default="cpu,cuda", help="the reference device and the one compared with it")
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100, help="fitting steps compared (the learners run up to 60 / 20)")
    a = ap.parse_args(argv)
    ref, dev = (torch.device(d) for d in a.devices.split(","))
    assert ref.type == "cpu"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    spec = FieldSpec()
    learned = bundled_init(spec)
    assert learned is not None
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    report: dict = {"devices": a.devices, "device_name": name}
    pts, occ, nu, names = load_batch(a.samples, a.fields, "cpu")
    hard = FitConfig(steps=a.steps, precision="fp32", hard_fraction=0.5)
    report["learned_init_hard_points"] = _fits(spec, learned.params, pts, occ, nu, names, hard, dev)

    with tempfile.TemporaryDirectory() as tmp:
        # The two learners from the same start and draws, on each device (small, so the CPU side stays short).
        base_cfg = BaseConfig(steps=min(60, a.steps), batch=8, checkpoint_every=30, val=0.0, test=0.0)
        init_cfg = InitConfig(outer_steps=4, inner_steps=min(20, a.steps), batch=4, checkpoint_every=2)
        bases, inits = {}, {}
        for tag, d in (("ref", ref), ("dev", dev)):
            rb = learn_base([a.samples], Path(tmp) / f"base_{tag}", spec, base_cfg, device=d)
            bases[tag] = (load_init(Path(tmp) / f"base_{tag}").params, rb["curve"][-1]["loss"])
            learn_init([a.samples], Path(tmp) / f"init_{tag}", spec, init_cfg, device=d)
            inits[tag] = load_init(Path(tmp) / f"init_{tag}").params
        start = learned.params
        report["init_base"] = {
            "steps": base_cfg.steps,
            "max_rel_weight_diff": _rel(bases["ref"][0], bases["dev"][0]),
            "max_rel_change_diff": _max_abs(bases["ref"][0], bases["dev"][0])
            / float((bases["ref"][0] - start).abs().max()),
            "last_loss": {"ref": bases["ref"][1], "dev": bases["dev"][1]},
        }
        report["init_learn"] = {
            "outer_steps": init_cfg.outer_steps,
            "inner_steps": init_cfg.inner_steps,
            "max_rel_weight_diff": _rel(inits["ref"], inits["dev"]),
            "max_rel_change_diff": _max_abs(inits["ref"], inits["dev"]) / float((inits["ref"] - start).abs().max()),
        }
        shift = FitConfig(steps=a.steps, precision="fp32").resolve("shift")
        report["shift_base_biases"] = _fits(spec, bases["ref"][0], pts, occ, nu, names, shift, dev)
    print(json.dumps(report, indent=1))
    return _common.finish(a.out, report, dev)


if __name__ == "__main__":
    _common.run(main)
