"""Fitting throughput: one nn.Module per shape trained sequentially vs the batched fitter at several B.

Prints a table and writes JSON: ms per field-step, fields/hour for the default recipe's step count, achieved
GFLOP/s (MLP matmul FLOPs, forward + backward = 6 x weights x points) and that as a share of this machine's fp32
matmul peak, measured in the same run.

Usage: python -m benchmarks.fit_throughput [--device cpu|cuda] [--batches 1 8 32 64] [--steps 20] [--recipe learned]

``--against DIR`` times the batched fitter of the largest B side by side with another checkout (a worktree of an
older commit, imported through PYTHONPATH) and with this tree's sine kernel off, alternating fresh processes for
``--rounds`` rounds; it reports each contender's best and median and the ratios of the bests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def sequential(spec, config, pts, occ, steps, device, init) -> float:
    """Seconds per field-step for plain per-shape training: an nn.Module and torch.optim.Adam per shape."""
    total, count = 0.0, pts.shape[0]
    for b in range(count):
        model = FieldModule(spec).to(device)
        model.load_state_dict(spec.layout().to_state_dict(init))
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


def batched(spec, config, pts, occ, steps, device, init) -> float:
    names = [f"f{i}" for i in range(pts.shape[0])]
    warm = FitConfig(**{**config.__dict__, "steps": 3})
    fit_fields(spec, init, pts, occ, pts.shape[1] // 2, names, warm)
    run = FitConfig(**{**config.__dict__, "steps": steps, "check_every": 10**9})
    sync(device)
    t = time.perf_counter()
    fit_fields(spec, init, pts, occ, pts.shape[1] // 2, names, run)
    sync(device)
    return (time.perf_counter() - t) / (pts.shape[0] * steps)


def recipe(name: str) -> tuple[FieldSpec, FitConfig, torch.Tensor]:
    """The architecture, resolved recipe and start of ``seeded`` (4800 steps) or ``learned`` fits (the default
    500-step fits from the bundled learned init, with hard points and jitter)."""
    spec = FieldSpec()
    if name == "seeded":
        return spec, FitConfig().resolve("seeded"), init_params(spec)
    from shapezoo.fields.learned_init import bundled_init

    init = bundled_init(spec)
    assert init is not None, "the 128 x 3 learned init ships with shapezoo"
    return spec, FitConfig().resolve("learned"), init.params


def child(b: int, steps: int, name: str) -> None:
    """One contender's timing, printed as JSON (run in a fresh process by ``side_by_side``)."""
    torch.set_num_threads(int(os.environ.get("FIT_THREADS", torch.get_num_threads())))
    spec, config, init = recipe(name)
    pts, occ = make_data(b, 20_000, torch.device("cpu"))
    sec = batched(spec, config, pts, occ, steps, torch.device("cpu"), init)
    try:
        from shapezoo.fields import sine

        backend = sine.backend()
    except ImportError:
        backend = "torch (before the kernel)"
    print(json.dumps({"ms_per_field_step": sec * 1e3, "sine": backend}))


def side_by_side(args, flops: float, peak: float) -> list[dict]:
    """Alternate fresh processes of: the other checkout, this tree with its sine kernel off, this tree."""
    here = Path(__file__).resolve().parents[1]
    contenders = {
        f"before ({args.against})": {"PYTHONPATH": str(Path(args.against).resolve())},
        "now, sine kernel off": {"PYTHONPATH": str(here), "SHAPEZOO_KERNELS": "0"},
        "now": {"PYTHONPATH": str(here)},
    }
    b, times = max(args.batches), {name: [] for name in contenders}
    backends = {}
    for r in range(args.rounds):
        for name, env in contenders.items():
            argv = [sys.executable, __file__, "--child", str(b), "--steps", str(args.steps), "--recipe", args.recipe]
            done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            line = json.loads(done.stdout.strip().splitlines()[-1])
            times[name].append(line["ms_per_field_step"])
            backends[name] = line["sine"]
            print(f"round {r + 1} {name:<40} {line['ms_per_field_step']:.3f} ms/field-step", flush=True)
    base = min(times[next(iter(contenders))])
    rows = []
    print(f"\nB = {b}, {args.steps} steps, recipe {args.recipe}, {args.rounds} alternated rounds")
    print(f"fp32 matmul peak {peak:.1f} GFLOP/s")
    print(f"{'contender':<42}{'best ms':>9}{'median':>9}{'% peak':>8}{'fields/h vs before':>20}")
    for name, ts in times.items():
        best = min(ts)
        row = {
            "contender": name,
            "sine": backends[name],
            "ms_per_field_step": ts,
            "best": best,
            "median": statistics.median(ts),
            "fraction_of_peak": flops / (best / 1e3) / 1e9 / peak,
            "speedup_vs_before": base / best,
        }
        rows.append(row)
        print(f"{name:<42}{best:>9.3f}{row['median']:>9.3f}{100 * row['fraction_of_peak']:>7.1f}%{base / best:>19.2f}x")
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, None)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--sequential-fields", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-size", type=int, default=4096, help="matrix size of the fp32 matmul peak measurement")
    ap.add_argument("--recipe", choices=["seeded", "learned"], default="seeded")
    ap.add_argument("--against", help="another checkout to time side by side (CPU; see the module docstring)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.steps, args.recipe) or {}
    device = _common.device(args)
    spec, config, init = recipe(args.recipe)
    weights = sum(math.prod(s) for n, s in spec.layout().entries if n.endswith("weight"))
    flops_per_field_step = 6 * weights * config.points_per_step
    peak = matmul_peak(device, args.peak_size)
    if args.against:
        rows = side_by_side(args, flops_per_field_step, peak)
        out = args.out or _common.RESULTS / f"fit_throughput_against_{args.recipe}.json"
        return _common.finish(out, {"peak_gflops": peak, "recipe": args.recipe, "side_by_side": rows}, device)
    pts, occ = make_data(max(args.batches + [args.sequential_fields]), 20_000, device)
    k = args.sequential_fields
    rows = [("sequential nn.Module", k, sequential(spec, config, pts[:k], occ[:k], args.steps, device, init))]
    for b in args.batches:
        rows.append(("batched fitter", b, batched(spec, config, pts[:b], occ[:b], args.steps, device, init)))
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
