"""Sampling throughput (shapes/s, points/s) on procedural shapes and a mesh folder, plus label spot checks.

Usage: python -m benchmarks.sampling_throughput [--capod ../shared/data/capod] [--points 100000]
       [--per-family 8] [--holed-per-family 4] [--out FILE]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _common
from shapezoo.fields.meshes import find_meshes, load_mesh, shape_from_arrays
from shapezoo.fields.samples import SampleConfig, inside_winding, open3d_module, sample_meshes, sample_shape
from shapezoo_datasets import FAMILIES, generate


def throughput(source, out, points):
    t = time.perf_counter()
    index = sample_meshes(source, out, SampleConfig(points=points))
    dt = time.perf_counter() - t
    n = len(index["shapes"])
    return index, {
        "shapes": n,
        "failed": len(index["failed"]),
        "seconds": dt,
        "shapes_per_s": n / dt,
        "points_per_s": n * points / dt,
        "not_watertight": sum(1 for s in index["shapes"] if not s["watertight"]),
    }


def holed_accuracy(work: Path, points: int, per_family: int = 4) -> dict:
    """Robust path on known truth: punch 2% of the faces out of watertight procedural shapes."""
    rng = np.random.default_rng(0)
    accs = []
    for family in FAMILIES:
        for rec in generate(family, per_family, work / f"holed_{family}", seed=100):
            full = load_mesh(work / f"holed_{family}" / f"{rec['name']}.obj")
            keep = np.sort(rng.permutation(len(full.faces))[int(0.02 * len(full.faces)) :])
            holed = shape_from_arrays("h", full.vertices, full.faces[keep])
            s = sample_shape(holed, SampleConfig(points=points))
            truth = inside_winding(full.vertices, full.faces, s["points"])
            accs.append(float((truth == s["occupancy"].astype(bool)).mean()))
    return {"shapes": len(accs), "mean": float(np.mean(accs)), "min": float(np.min(accs))}


def capod_agreement(index: dict, root: Path, points: int = 20000) -> dict:
    """Non-watertight real meshes: winding-number labels vs open3d's 9-ray majority vote (an independent test)."""
    o3d = open3d_module()
    if o3d is None:
        return {}
    agree = []
    for entry in index["shapes"]:
        if entry["watertight"]:
            continue
        shape = load_mesh(entry["source"], name=entry["name"])
        p = np.random.default_rng(1).random((points, 3)) - 0.5
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(
            o3d.core.Tensor(shape.vertices.astype(np.float32)), o3d.core.Tensor(shape.faces.astype(np.uint32))
        )
        vote = scene.compute_occupancy(o3d.core.Tensor(p.astype(np.float32)), nsamples=9).numpy() > 0.5
        agree.append((entry["name"], float((vote == inside_winding(shape.vertices, shape.faces, p)).mean())))
    vals = np.array([a for _, a in agree])
    worst = sorted(agree, key=lambda x: x[1])[:5]
    return {
        "shapes": len(agree),
        "median": float(np.median(vals)),
        "mean": float(vals.mean()),
        "share_above_99": float((vals > 0.99).mean()),
        "worst": worst,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "sampling.json", device=False)
    ap.add_argument("--capod", type=Path, default=Path(__file__).parents[2] / "shared" / "data" / "capod")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--per-family", type=int, default=8)
    ap.add_argument("--holed-per-family", type=int, default=4)
    args = ap.parse_args(argv)
    result: dict = {"points": args.points, "open3d": open3d_module() is not None}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family in FAMILIES:
            generate(family, args.per_family, work / "proc", seed=0)
        _, result["procedural"] = throughput(work / "proc", work / "proc_s", args.points)
        result["holed_procedural_accuracy"] = holed_accuracy(work, 20000, args.holed_per_family)
        if args.capod.is_dir():
            index, result["capod"] = throughput(find_meshes(args.capod), work / "capod_s", args.points)
            result["capod"]["faces_median"] = float(
                np.median(
                    [len(load_mesh(s["source"]).faces) for s in index["shapes"][:: max(1, len(index["shapes"]) // 30)]]
                )
            )
            result["capod_winding_vs_raycast9"] = capod_agreement(index, args.capod)
    print(f"{'data':<12}{'shapes':>8}{'not wt':>8}{'s':>9}{'shapes/s':>10}{'Mpoints/s':>11}")
    for key in ("procedural", "capod"):
        if key in result:
            r = result[key]
            print(
                f"{key:<12}{r['shapes']:>8}{r['not_watertight']:>8}{r['seconds']:>9.2f}{r['shapes_per_s']:>10.2f}"
                f"{r['points_per_s'] / 1e6:>11.2f}"
            )
    print(json.dumps({k: v for k, v in result.items() if k not in ("procedural", "capod")}, indent=1))
    return _common.finish(args.out, result)


if __name__ == "__main__":
    _common.run(main)
