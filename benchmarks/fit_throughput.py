"""Fitting throughput: one nn.Module per shape trained sequentially vs the batched fitter at several B.

Prints a table and writes JSON: ms per field-step, fields/hour for the default recipe's step count, achieved
GFLOP/s (MLP matmul FLOPs, forward + backward = 6 x weights x points) and that as a share of this machine's fp32
matmul peak, measured in the same run.

Usage: python -m benchmarks.fit_throughput [--device cpu|cuda] [--batches 1 8 32 64] [--steps 20]
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from benchmarks import _common
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldModule, FieldSpec, init_params


def matmul_peak(device: torch.device, n: int = 4096, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(count: int, n: int, device: torch.device, seed: int = 0):
    """Uniform points labelled by spheres of random radius and centre (the data does not affect speed)."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(count, n, 3, generator=g) - 0.5
    centre = (torch.rand(count, 1, 3, generator=g) - 0.5) * 0.2
    radius = 0.15 + 0.2 * torch.rand(count, 1, generator=g)
    occ = ((pts - centre).norm(dim=-1) < radius).to(torch.uint8)
    return pts.to(device), occ.to(device)


def sequential(spec, config, pts, occ, steps, device) -> float:
    """Seconds per field-step for plain per-shape training: an nn.Module and torch.optim.Adam per shape."""
    total, count = 0.0, pts.shape[0]
    for b in range(count):
        model = FieldModule(spec).to(device)
        model.load_state_dict(spec.layout().to_state_dict(init_params(spec, 0)))
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps, eta_min=config.lr * config.lr_final)
        x, y = pts[b], occ[b].float()
        for i in range(steps + 3):
            if i == 3:
                sync(device)
                t = time.perf_counter()
            idx = torch.randint(0, x.shape[0], (config.points_per_step,), device=device)
            loss = F.binary_cross_entropy_with_logits(model(x[idx]).squeeze(-1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        sync(device)
        total += time.perf_counter() - t
    return total / (count * steps)


def batched(spec, config, pts, occ, steps, device) -> float:
    names = [f"f{i}" for i in range(pts.shape[0])]
    warm = FitConfig(**{**config.__dict__, "steps": 3})
    fit_fields(spec, init_params(spec), pts, occ, pts.shape[1] // 2, names, warm)
    run = FitConfig(**{**config.__dict__, "steps": steps, "check_every": 10**9})
    sync(device)
    t = time.perf_counter()
    fit_fields(spec, init_params(spec), pts, occ, pts.shape[1] // 2, names, run)
    sync(device)
    return (time.perf_counter() - t) / (pts.shape[0] * steps)


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, None)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--sequential-fields", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-size", type=int, default=4096, help="matrix size of the fp32 matmul peak measurement")
    args = ap.parse_args(argv)
    device = _common.device(args)
    spec, config = FieldSpec(), FitConfig().resolve("seeded")
    weights = sum(math.prod(s) for n, s in spec.layout().entries if n.endswith("weight"))
    flops_per_field_step = 6 * weights * config.points_per_step
    peak = matmul_peak(device, args.peak_size)
    pts, occ = make_data(max(args.batches + [args.sequential_fields]), 20_000, device)
    rows = [
        (
            "sequential nn.Module",
            args.sequential_fields,
            sequential(spec, config, pts[: args.sequential_fields], occ[: args.sequential_fields], args.steps, device),
        )
    ]
    for b in args.batches:
        rows.append(("batched fitter", b, batched(spec, config, pts[:b], occ[:b], args.steps, device)))
    seq = rows[0][2]
    print(f"device {device}, torch threads {torch.get_num_threads()}, fp32 matmul peak {peak:.1f} GFLOP/s")
    print(f"recipe: width {spec.width} depth {spec.depth}, {config.points_per_step} points/step, {config.steps} steps")
    print(f"{'mode':<22}{'B':>4}{'ms/field-step':>15}{'fields/hour':>13}{'GFLOP/s':>10}{'% peak':>8}{'vs seq':>8}")
    results = []
    for mode, b, sec in rows:
        gflops = flops_per_field_step / sec / 1e9
        r = {
            "mode": mode,
            "B": b,
            "ms_per_field_step": sec * 1e3,
            "fields_per_hour": 3600 / (sec * config.steps),
            "gflops": gflops,
            "fraction_of_peak": gflops / peak,
            "speedup_vs_sequential": seq / sec,
        }
        results.append(r)
        print(
            f"{mode:<22}{b:>4}{sec * 1e3:>15.2f}{r['fields_per_hour']:>13.0f}{gflops:>10.1f}"
            f"{100 * r['fraction_of_peak']:>7.1f}%{r['speedup_vs_sequential']:>7.2f}x"
        )
    out = args.out or _common.RESULTS / f"fit_throughput_{device.type}.json"
    return _common.finish(out, {"peak_gflops": peak, "results": results}, device)


if __name__ == "__main__":
    _common.run(main)
