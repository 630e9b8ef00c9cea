"""Is the latent space meaningful? Interpolation against known midpoint shapes, and shape completion.

interpolation: for same-family pairs of procedural shapes, the latent midpoint's decode and the raw-weight
midpoint are compared (Chamfer-L2) with the ground-truth shape built from the midpoint parameters.
completion: from surface points (with normals) of one half (x > 0) of held-out shapes, latent optimisation is
compared with a field fitted directly to the same evidence, both against the full ground truth.

crossclass: pairs of held-out meshes of different classes (CAPOD), every step's connected pieces, and the latent
midpoint's Chamfer to both ends beside the raw-weight midpoint of full fits of the same meshes (--full ZOO).

Usage: python -m benchmarks.space_tasks interpolation ZOO MESHES SPACE [--pairs 24]
       python -m benchmarks.space_tasks crossclass ZOO MESHES SPACE --full FULL_ZOO [--pairs 10] [--steps-path 5]
       python -m benchmarks.space_tasks completion ZOO MESHES SPACE [--shapes 12] [--split test] [--prior W]
(CPU only.)
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.errors import ShapezooError
from shapezoo.fields.extract import ExtractConfig, extract_meshes
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.mesh_metrics import components, point_metrics, surface_points
from shapezoo.fields.meshes import load_mesh
from shapezoo.fields.space import Evidence, OptimizeConfig, load_space, optimize_latent
from shapezoo.fields.space.inference import prior_weight, refine_latents
from shapezoo.fields.space.operations import prior_from_space
from shapezoo.schema import config_from_json
from shapezoo_datasets.families import build

EXTRACT = ExtractConfig(resolution=128, coarse=64)


def _cd(spec, params: torch.Tensor, gt_points: np.ndarray) -> float:
    (mesh,), _ = extract_meshes(spec, params.reshape(1, -1), EXTRACT)
    if len(mesh[1]) == 0:
        return float("inf")
    return point_metrics(surface_points(*mesh)[0], gt_points)["chamfer_l2"]


def interpolation(a) -> dict:
    zoo, space = load_zoo(a.zoo), load_space(a.space)
    names = space.meta["split"][a.split]
    info = {n: json.loads((a.meshes / f"{n}.json").read_text()) for n in names}
    rng = np.random.default_rng(0)
    by_family: dict[str, list[str]] = {}
    for n in names:
        by_family.setdefault(info[n]["family"], []).append(n)
    by_family = {f: members for f, members in by_family.items() if len(members) > 1}  # a pair needs two
    if not by_family:
        raise ShapezooError(f"no family has two shapes in the {a.split} split; pick another --split")
    pairs = []
    while len(pairs) < a.pairs:
        fam = sorted(by_family)[len(pairs) % len(by_family)]
        x, y = rng.choice(by_family[fam], 2, replace=False)
        pairs.append((str(x), str(y)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for x, y in pairs:
            fam = info[x]["family"]
            mid = {k: (info[x]["params"][k] + info[y]["params"][k]) / 2 for k in info[x]["params"]}
            path = Path(tmp) / f"{fam}_mid.obj"
            build(fam, mid).export(path)
            gt = load_mesh(path)
            gt_pts = surface_points(gt.vertices, gt.faces)[0]
            wa, wb = zoo.weights(x), zoo.weights(y)
            ends_w = torch.stack([wa, wb])
            z = refine_latents(space, ends_w, space.encode(ends_w), a.refine)
            latent = _cd(space.spec, space.decode(z.mean(0, keepdim=True)), gt_pts)
            raw = _cd(space.spec, (wa + wb) / 2, gt_pts)
            ends = [
                _cd(space.spec, space.decode(z[i : i + 1]), surface_points(*_gt(a.meshes, n))[0])
                for i, n in enumerate((x, y))
            ]
            rows.append(
                {
                    "family": fam,
                    "a": x,
                    "b": y,
                    "latent_mid_cd_l2": latent,
                    "raw_mid_cd_l2": raw,
                    "ratio": latent / raw,
                    "endpoint_decode_cd_l2": ends,
                }
            )
            print(f"{x} + {y}: latent {1e3 * latent:.3f}  raw {1e3 * raw:.3f}  ratio {latent / raw:.3f}", flush=True)
    ratios = [r["ratio"] for r in rows]
    return {
        "pairs": len(rows),
        "split": a.split,
        "median_ratio_latent_over_raw": statistics.median(ratios),
        "latent_better_share": sum(r < 1 for r in ratios) / len(ratios),
        "median_latent_mid_cd_l2": statistics.median(r["latent_mid_cd_l2"] for r in rows),
        "median_raw_mid_cd_l2": statistics.median(r["raw_mid_cd_l2"] for r in rows),
        "rows": rows,
    }


def crossclass(a) -> dict:
    """Pairs of held-out meshes of different classes, ZOO's fields of them through SPACE: connected pieces and
    floating area at every step of the latent path, and the midpoint's Chamfer-L2 to both end meshes (summed) beside
    the raw-weight midpoint of --full's fields of the same meshes (full fits)."""
    zoo, full, space = load_zoo(a.zoo), load_zoo(a.full), load_space(a.space)
    names = sorted(n for n in zoo.names if n.startswith(a.prefix) and n in full.names)
    labels = {n: zoo.entries[zoo.index(n)].get("label") for n in names}
    rng, pairs = np.random.default_rng(0), []
    while len(pairs) < a.pairs:
        x, y = (str(n) for n in rng.choice(names, 2, replace=False))
        if labels[x] != labels[y] and (x, y) not in pairs:
            pairs.append((x, y))
    rows = []
    for x, y in pairs:
        ends = [
            surface_points(*_gt(Path(zoo.entries[zoo.index(n)]["source"]).parent, n.split("__")[-1]))[0] for n in (x, y)
        ]
        z = space.encode(zoo.stack([x, y]))
        path = space.decode(torch.stack([(1 - t) * z[0] + t * z[1] for t in np.linspace(0, 1, a.path_steps)]))
        meshes, _ = extract_meshes(space.spec, path, EXTRACT)
        steps = [components(*m) for m in meshes]
        raw = extract_meshes(full.spec, ((full.weights(x) + full.weights(y)) / 2)[None], EXTRACT)[0][0]
        mid = [
            sum(point_metrics(surface_points(*m)[0], e)["chamfer_l2"] for e in ends)
            for m in (meshes[a.path_steps // 2], raw)
        ]
        rows.append(
            {
                "a": x,
                "b": y,
                "pieces": [s["components"] for s in steps],
                "floating_area": [s["floating_area"] for s in steps],
                "latent_mid_cd_to_ends": mid[0],
                "raw_full_mid_cd_to_ends": mid[1],
            }
        )
        print(
            f"{x} + {y}: pieces {rows[-1]['pieces']}  mid CD latent {1e3 * mid[0]:.3f} raw full {1e3 * mid[1]:.3f}",
            flush=True,
        )
    return {
        "pairs": len(rows),
        "median_max_pieces": statistics.median(max(r["pieces"]) for r in rows),
        "one_piece_share": sum(max(r["pieces"]) == 1 for r in rows) / len(rows),
        "latent_mid_closer_share": sum(r["latent_mid_cd_to_ends"] < r["raw_full_mid_cd_to_ends"] for r in rows)
        / len(rows),
        "median_latent_mid_cd_to_ends": statistics.median(r["latent_mid_cd_to_ends"] for r in rows),
        "median_raw_full_mid_cd_to_ends": statistics.median(r["raw_full_mid_cd_to_ends"] for r in rows),
        "rows": rows,
    }


def _gt(meshes: Path, name: str):
    s = load_mesh(meshes / f"{name}.obj")
    return s.vertices, s.faces


def completion(a) -> dict:
    zoo, space = load_zoo(a.zoo), load_space(a.space)
    prior = prior_from_space(space, a.space)[0]
    split = space.meta["split"][a.split]
    names = split[:: max(1, len(split) // a.shapes)][: a.shapes]  # spread over the families (the split keeps zoo order)
    fit_cfg = config_from_json(FitConfig, zoo.meta["fit"], Path(a.zoo) / "zoo.json", "fit")
    init = zoo.init  # the zoo's shared starting point (seeded, or its --template field)
    opt = OptimizeConfig(steps=a.steps, prior=a.prior)
    rows = []
    for n in names:
        v, f = _gt(a.meshes, n)
        full = surface_points(v, f)[0]
        pts, normals = surface_points(v, f, count=4000, seed=1)
        keep = pts[:, 0] > 0
        ev = Evidence.from_surface(torch.as_tensor(pts[keep]).float(), torch.as_tensor(normals[keep]).float())
        z, _ = optimize_latent(space, ev, prior, opt)
        latent = _cd(zoo.spec, space.decode(z[None]), full)
        labelled = ev.targets != 0.5
        ev_points, ev_labels = ev.points[labelled][None], ev.targets[labelled][None].round().to(torch.uint8)
        res = fit_fields(zoo.spec, init, ev_points, ev_labels, 0, [n], fit_cfg)
        direct = _cd(zoo.spec, res.params[0], full)
        original = _cd(zoo.spec, zoo.weights(n), full)
        row = {
            "name": n,
            "observed_points": int(keep.sum()),
            "latent_cd_l2": latent,
            "direct_fit_cd_l2": direct,
            "original_field_cd_l2": original,
        }
        if fit_cfg.trainable != "all":  # the zoo's recipe fits biases only: a full fit from the same start beside it
            full_cfg = replace(fit_cfg, trainable="all", lr=None).resolve("learned")
            res = fit_fields(zoo.spec, init, ev_points, ev_labels, 0, [n], full_cfg)
            row["direct_full_fit_cd_l2"] = _cd(zoo.spec, res.params[0], full)
        rows.append(row)
        print(
            f"{n}: latent {1e3 * latent:.3f}  direct fit {1e3 * direct:.3f}  (full-data field {1e3 * original:.3f})",
            flush=True,
        )
    summary = {
        "split": a.split,
        "prior": prior_weight(space, opt),
        "shapes": len(rows),
        "median_latent_cd_l2": statistics.median(r["latent_cd_l2"] for r in rows),
        "median_direct_fit_cd_l2": statistics.median(r["direct_fit_cd_l2"] for r in rows),
        "latent_better_share": sum(r["latent_cd_l2"] < r["direct_fit_cd_l2"] for r in rows) / len(rows),
        "rows": rows,
    }
    if "direct_full_fit_cd_l2" in rows[0]:
        summary["median_direct_full_fit_cd_l2"] = statistics.median(r["direct_full_fit_cd_l2"] for r in rows)
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, None, device=False)
    ap.add_argument("task", choices=["interpolation", "completion", "crossclass"])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("meshes", type=Path)
    ap.add_argument("space", type=Path)
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--split", default="test", help="pairs (shapes to complete) are drawn from this split of the space")
    ap.add_argument("--shapes", type=int, default=12)
    ap.add_argument("--steps", type=int, default=300, help="latent optimisation steps (completion)")
    ap.add_argument(
        "--prior", type=float, help="weight of the latent prior (completion; default: the space design's measured one)"
    )
    ap.add_argument("--refine", type=int, default=100, help="refinement steps after encoding (interpolation)")
    ap.add_argument("--full", type=Path, help="crossclass: full fits of the same meshes (the raw-midpoint reference)")
    ap.add_argument("--prefix", default="capod", help="crossclass: pair the members whose names start so")
    ap.add_argument("--steps-path", dest="path_steps", type=int, default=5, help="crossclass: steps along each path")
    a = ap.parse_args(argv)
    result = {
        "task": a.task,
        "space": str(a.space),
        **{"interpolation": interpolation, "completion": completion, "crossclass": crossclass}[a.task](a),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    return _common.finish(a.out or _common.RESULTS / f"space_{a.task}.json", result, "cpu")


if __name__ == "__main__":
    _common.run(main)
