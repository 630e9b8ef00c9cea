"""Mesh extraction: dense grid vs coarse-to-fine, network evaluations and wall time, on a fitted zoo.

Usage: python -m benchmarks.extract_speed ZOO [--fields 32] [--dense-fields 32] [--resolutions 128 256]
Dense extraction of many fields at 256^3 is slow on a CPU; --dense-fields limits how many fields the dense batch
row evaluates (its per-field numbers are then scaled to the batch, and the table says so). The second table times
coarse-to-fine with the device's pass size (``extract.default_chunk``) against one of --big-chunk points, same meshes.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from scipy.spatial import cKDTree

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.extract import ExtractConfig, default_chunk, extract_meshes


def run(spec, params, config):
    t = time.perf_counter()
    meshes, evals = extract_meshes(spec, params, config)
    return meshes, evals, time.perf_counter() - t


def agreement(dense, fine) -> dict:
    """Vertex sets and face counts of two meshes of the same field."""
    (dv, df), (fv, ff) = dense, fine
    if len(dv) == 0 or len(fv) == 0:
        return {"max_vertex_dist": None, "face_diff": abs(len(df) - len(ff))}
    return {
        "max_vertex_dist": float(cKDTree(dv).query(fv)[0].max()),
        "missed_dense_vertices": float((cKDTree(fv).query(dv)[0] > 1e-6).mean()),
        "face_diff": abs(len(df) - len(ff)),
        "faces": len(df),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "extract_speed.json")
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--fields", type=int, default=32)
    ap.add_argument("--dense-fields", type=int, default=32)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--big-chunk", type=int, default=1 << 18, help="the pass size the device default is timed against")
    args = ap.parse_args(argv)
    dev = _common.device(args)
    zoo = load_zoo(args.zoo)
    params = zoo.params[: args.fields].to(dev)
    rows = []
    print(
        f"zoo {args.zoo} ({zoo.spec.width}x{zoo.spec.depth} {zoo.spec.activation}), device {dev}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'res':>5}{'fields':>7}{'mode':>8}{'evals':>14}{'eval %':>8}{'seconds':>10}{'speed-up':>9}  agreement")
    for res in args.resolutions:
        for count in (1, len(params)):
            p = params[:count]
            n_dense = min(count, args.dense_fields)
            dense_meshes, dense_evals, dense_s = run(zoo.spec, p[:n_dense], ExtractConfig(resolution=res, coarse=None))
            dense_evals, dense_s = dense_evals * count / n_dense, dense_s * count / n_dense
            fine_meshes, fine_evals, fine_s = run(zoo.spec, p, ExtractConfig(resolution=res))
            agree = [agreement(d, f) for d, f in zip(dense_meshes, fine_meshes)]
            worst = max((a["max_vertex_dist"] or 0.0) for a in agree)
            missed = max(a.get("missed_dense_vertices", 0.0) for a in agree)
            face_diff = max(a["face_diff"] / max(a.get("faces", 1), 1) for a in agree)
            row = {
                "resolution": res,
                "fields": count,
                "dense_fields_measured": n_dense,
                "dense_evals": dense_evals,
                "dense_seconds": dense_s,
                "c2f_evals": fine_evals,
                "c2f_seconds": fine_s,
                "eval_ratio": fine_evals / dense_evals,
                "speedup": dense_s / fine_s,
                "max_vertex_dist": worst,
                "max_missed_dense_vertex_share": missed,
                "max_face_count_diff_share": face_diff,
            }
            rows.append(row)
            scaled = "" if n_dense == count else f" (dense: {n_dense} fields measured, scaled)"
            print(f"{res:>5}{count:>7}{'dense':>8}{dense_evals:>14.0f}{100:>7.1f}%{dense_s:>10.2f}{'':>9}{scaled}")
            print(
                f"{res:>5}{count:>7}{'c2f':>8}{fine_evals:>14.0f}{100 * row['eval_ratio']:>7.2f}%{fine_s:>10.2f}"
                f"{row['speedup']:>8.1f}x  vertex dist {worst:.1e}, missed {100 * missed:.2f}%, "
                f"faces ±{100 * face_diff:.3f}%"
            )
    passes = [pass_sizes(zoo.spec, params, res, args.big_chunk) for res in args.resolutions]
    return _common.finish(args.out, {"zoo": str(args.zoo), "rows": rows, "pass_sizes": passes}, dev)


def pass_sizes(spec, params, resolution: int, big: int) -> dict:
    """Coarse-to-fine extraction of every field with the device's pass size and with ``big``, alternated twice (the
    best of each), and how far apart their meshes are (float rounding differs with the pass size)."""
    small = default_chunk(params.device)
    best = {small: float("inf"), big: float("inf")}
    meshes = {}
    for _ in range(2):
        for chunk in (small, big):
            meshes[chunk], _, seconds = run(spec, params, ExtractConfig(resolution=resolution, chunk=chunk))
            best[chunk] = min(best[chunk], seconds)
    agree = [agreement(a, b) for a, b in zip(meshes[small], meshes[big], strict=True)]
    worst = max((a["max_vertex_dist"] or 0.0) for a in agree)
    row = {"resolution": resolution, "fields": len(params), "default_chunk": small, "default_seconds": best[small]}
    row |= {"big_chunk": big, "big_seconds": best[big], "speedup": best[big] / best[small], "max_vertex_dist": worst}
    print(
        f"{resolution:>5}{len(params):>7} pass {small} points {best[small]:.2f} s vs {big}: {best[big]:.2f} s "
        f"({row['speedup']:.2f}x), vertex dist {worst:.1e}"
    )
    return row


if __name__ == "__main__":
    _common.run(main)
