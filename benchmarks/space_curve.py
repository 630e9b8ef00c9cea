"""Held-out reconstruction against the number of training fields: IoU vs the ground truth of each (zoo, space) run.

Each ``--run NAME=ZOO:SPACE`` scores the test fields of the space's split (the same names for every run made with
the same split seed and shares) decoded with the encoder alone and with encoder + N refinement steps, by the
evaluation protocol's IoU (100k seeded uniform points vs the mesh's inside test; labels computed once per shape),
per family as well. ``--run NAME=ZOO`` scores a zoo's own fields on the test names of ``--split-from SPACE`` (or of
a JSON holding a ``split``, as ``space_eval --split-from`` reads): for a zoo of a shift base that is what its shift
space decodes with the encoder alone (exact, tested), without building the space. ``--truth FILE`` keeps the
labels in a file, for runs on a machine without the meshes' inside test. Prints one row per run and refinement,
writes JSON.

Usage: python -m benchmarks.space_curve MESHES --run shift280=ZOO:SPACE --run neuron280=ZOO2:SPACE2 --refine 0 100
"""

from __future__ import annotations

import collections
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.meshes import find_meshes, load_mesh, shape_label
from shapezoo.fields.space import load_space
from shapezoo.fields.space.inference import refine_latents
from shapezoo.io import atomic_save_tensors, load_tensors


def _summary(names: list[str], values: list[float], refs: dict) -> dict:
    family = collections.defaultdict(list)
    for n, v in zip(names, values):
        family[shape_label(n, refs.get(n, Path(n))) or "-"].append(v)
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "per_family": {f: statistics.median(v) for f, v in sorted(family.items())},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_curve.json")
    ap.add_argument("meshes", type=Path, help="ground-truth meshes, named like the fields")
    ap.add_argument("--run", action="append", default=[], help="NAME=ZOO:SPACE")
    ap.add_argument("--refine", type=int, nargs="*", default=[0, 100])
    ap.add_argument(
        "--split-from",
        type=Path,
        help="space (or JSON with its 'split') whose test names the zoo-only runs are scored on",
    )
    ap.add_argument(
        "--truth",
        type=Path,
        help="labels file: the shapes' ground-truth occupancy is read from it; those it lacks are computed from MESHES "
        "and added",
    )
    a = ap.parse_args(argv)
    dev = _common.device(a)
    refs = dict(find_meshes(a.meshes)) if a.meshes.exists() else {}
    labels: dict = {}
    if a.truth is not None and a.truth.exists():
        packed, meta = load_tensors(a.truth)
        labels = {k: np.unpackbits(v)[: int(meta["points"])].astype(bool) for k, v in packed.items()}
    result: dict = {"meshes": str(a.meshes), "runs": {}}
    print(f"{'run':14s} {'design':7s} {'train':>5s} {'refine':>6s} {'test':>4s} {'IoU med':>8s}  per family")
    for name, spec_str in (r.split("=", 1) for r in a.run):
        zoo_path, _, space_path = spec_str.partition(":")
        zoo = load_zoo(zoo_path)
        if not space_path and a.split_from is None:
            ap.error(f"--run {name}={zoo_path} names no space: give --split-from")
        if space_path or a.split_from.is_dir():
            space = load_space(space_path or a.split_from, dev)
            names = space.meta["split"]["test"]
        else:
            names = json.loads(a.split_from.read_text())["split"]["test"]
        missing = [n for n in names if n not in labels]
        for n in missing:
            labels[n] = _common.truth_occupancy([load_mesh(refs[n])])[0]
        if missing and a.truth is not None:
            packed = {k: np.packbits(v.astype(bool)) for k, v in labels.items()}
            atomic_save_tensors(a.truth, packed, {"points": str(len(labels[names[0]]))})
        w = torch.stack([zoo.weights(n) for n in names]).to(dev)
        truth = [labels[n] for n in names]
        z = space.encode(w) if space_path else None  # zoo-only runs score their fields (of any width) as they are
        row = {
            "zoo": zoo_path,
            "space": space_path,
            "design": space.model.config.design if space_path else "fields",
            "train_fields": len(space.meta["split"]["train"]) if space_path else None,
            "test_fields": len(names),
            "original": _summary(names, _common.truth_ious(zoo.spec, w, truth), refs),
        }
        for steps in a.refine if z is not None else []:
            decoded = space.decode(refine_latents(space, w, z, steps))
            row[f"refine{steps}"] = _summary(names, _common.truth_ious(zoo.spec, decoded, truth), refs)
        result["runs"][name] = row
        for key in ["original"] + [f"refine{s}" for s in a.refine if space_path]:
            fam = " ".join(f"{f} {v:.3f}" for f, v in row[key]["per_family"].items())
            print(
                f"{name:14s} {row['design']:7s} {row['train_fields'] or 0:5d} {key:>8s} {len(names):4d} "
                f"{row[key]['median']:.4f}  {fam}",
                flush=True,
            )
    return _common.finish(a.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
