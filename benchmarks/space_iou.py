"""Held-out reconstruction IoU vs the ground truth, fast: no meshes, no Chamfer (space_eval.py does both).

Encodes the test fields (and 16 training fields) of a space's split with encoder + N refinement steps, decodes,
and scores decodes and originals with the evaluation protocol's IoU (100k seeded uniform points, logit > 0 vs the
mesh's inside test). Prints per split and per family, writes JSON.

Usage: python -m benchmarks.space_iou ZOO MESHES SPACE [--refine 100] [--train-count 16] [--out FILE]
"""

from __future__ import annotations

import collections
import json
import statistics
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.mesh_metrics import IOU_POINTS, uniform_points, volume_iou
from shapezoo.fields.meshes import find_meshes, load_mesh
from shapezoo.fields.network import field_forward
from shapezoo.fields.samples import label_points
from shapezoo.fields.space import load_space
from shapezoo.fields.space.inference import refine_latents


def ious(spec, params: torch.Tensor, names: list[str], refs: dict) -> list[float]:
    pts = uniform_points(IOU_POINTS)
    x = torch.as_tensor(pts, dtype=torch.float32)[None]
    out = []
    with torch.no_grad():
        for n, w in zip(names, params):
            inside = field_forward(spec, w[None].float(), x).reshape(-1).numpy() > 0
            out.append(volume_iou(inside, label_points(load_mesh(refs[n]), pts)[0]))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_iou.json")
    ap.add_argument("zoo", type=Path)
    ap.add_argument("meshes", type=Path)
    ap.add_argument("space", type=Path)
    ap.add_argument("--refine", type=int, default=100)
    ap.add_argument("--train-count", type=int, default=16, help="training fields scored beside the test ones")
    a = ap.parse_args(argv)
    dev = _common.device(a)
    zoo, space, refs = load_zoo(a.zoo), load_space(a.space, dev), dict(find_meshes(a.meshes))
    result: dict = {"zoo": str(a.zoo), "space": str(a.space), "refine": a.refine}
    for split, count in (("test", None), ("train", a.train_count)):
        names = space.meta["split"][split][:count]
        w = torch.stack([zoo.weights(n) for n in names]).to(dev)
        decoded = space.decode(refine_latents(space, w, space.encode(w), a.refine)).cpu()
        dec, orig = ious(zoo.spec, decoded, names, refs), ious(zoo.spec, w.cpu(), names, refs)
        family = collections.defaultdict(list)
        for n, v in zip(names, dec):
            family[n.split("_")[0]].append(v)
        result[split] = {
            "n": len(names),
            "orig_median": statistics.median(orig),
            "decoded_median": statistics.median(dec),
            "per_family": {f: statistics.median(v) for f, v in sorted(family.items())},
        }
        print(split, json.dumps(result[split]), flush=True)
    return _common.finish(a.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
