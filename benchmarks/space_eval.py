"""Reconstruction through a weight space, scored against the ground-truth meshes: originals vs decodes.

For the held-out (test) fields of a space's split and a subset of its training fields, scores the original
fields and each method's decodes (encoder only = refine 0, encoder + N latent refinement steps, or a decoded zoo
made elsewhere) with the evaluation protocol (IoU on 100k points, Chamfer-L2 on surface samples). Prints a table,
writes JSON after every scored group; run again with the same --out, it resumes (groups already scored are kept).

Usage: python -m benchmarks.space_eval ZOO MESHES --space neuron=SPACE --refine 0 100 400 --decoded prep=ZOO2

On a GPU without the meshes, ``--decode-to DIR --device cuda`` only writes each method's decodes as zoos (and the
split) to DIR; score them later on any machine with ``--decoded NAME=DIR/NAME --split-from DIR/split.json``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo, save_zoo
from shapezoo.fields.evaluation import evaluate_zoo
from shapezoo.fields.extract import ExtractConfig
from shapezoo.fields.network import FieldZoo
from shapezoo.fields.space import load_space
from shapezoo.fields.space.inference import refine_latents
from shapezoo.io import atomic_write_json


def _score(zoo: FieldZoo, params: torch.Tensor, names: list[str], meshes: Path, res: int) -> list[dict]:
    entries = [{"name": n, "status": "ok"} for n in names]
    sub = FieldZoo(zoo.spec, params.cpu(), entries, zoo.init, {})
    return evaluate_zoo(sub, meshes, names, ExtractConfig(resolution=res))["entries"]


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_eval.json")
    ap.add_argument("zoo", type=Path)
    ap.add_argument("meshes", type=Path, help="ground-truth meshes, named like the fields")
    ap.add_argument("--space", action="append", default=[], help="NAME=SPACE_DIR (its split defines test/train)")
    ap.add_argument("--decoded", action="append", default=[], help="NAME=ZOO of decodes made elsewhere")
    ap.add_argument(
        "--refine", type=int, nargs="*", default=[0], help="score encoder + N refinement steps (0: encoder)"
    )
    ap.add_argument("--decode-to", type=Path, help="write the decodes as zoos here and stop (no scoring)")
    ap.add_argument("--split-from", type=Path, help="JSON with the 'split' (when no --space is given)")
    ap.add_argument("--train-count", type=int, default=32)
    ap.add_argument("--resolution", type=int, default=128)
    a = ap.parse_args(argv)
    dev = _common.device(a)
    zoo = load_zoo(a.zoo)
    spaces = {k: load_space(v, dev) for k, v in (s.split("=", 1) for s in a.space)}
    split = next(iter(spaces.values())).meta["split"] if spaces else json.loads(a.split_from.read_text())["split"]
    stride = max(1, len(split["train"]) // max(1, a.train_count))  # spread over the families (zoo order)
    groups = (
        {"test": split["test"], "train": split["train"][::stride][: a.train_count]}
        if a.train_count
        else {"test": split["test"]}
    )
    methods: dict[str, dict[str, torch.Tensor]] = {"original": {}}
    for g, names in groups.items():
        params = torch.stack([zoo.weights(n) for n in names])
        methods["original"][g] = params
        for key, s in spaces.items():
            z = s.encode(params)
            for n in a.refine:
                methods.setdefault(f"{key}+refine{n}" if n else key, {})[g] = s.decode(
                    refine_latents(s, params, z, n)
                ).cpu()
        for key, path in (d.split("=", 1) for d in a.decoded):
            dz = load_zoo(path)
            if set(names) <= set(dz.names):  # a decoded zoo is scored on the groups it holds
                methods.setdefault(key, {})[g] = torch.stack([dz.weights(n) for n in names])
    if a.decode_to:
        for m, by_group in methods.items():
            if m == "original":
                continue
            names = [n for g in by_group for n in groups[g]]
            entries = [{"name": n, "status": "ok"} for n in names]
            save_zoo(a.decode_to / m, zoo.spec, torch.cat(list(by_group.values())), entries, zoo.init, {})
        (a.decode_to / "split.json").write_text(json.dumps({"split": split}))
        return _common.finish(None, {"decoded": sorted(methods)}, dev)
    previous = json.loads(a.out.read_text()) if a.out.exists() else {}
    if (previous.get("zoo"), previous.get("resolution")) != (str(a.zoo), a.resolution):
        previous = {}
    results, t0 = {}, time.perf_counter()
    out = {"zoo": str(a.zoo), "resolution": a.resolution, "results": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for m, by_group in methods.items():
        for g, params in by_group.items():
            done = previous.get("results", {}).get(m, {}).get(g)
            if done and [r["name"] for r in done["entries"]] == groups[g]:
                results.setdefault(m, {})[g] = done
            else:
                rows = _score(zoo, params, groups[g], a.meshes, a.resolution)
                results.setdefault(m, {})[g] = {
                    "iou_median": _median(rows, "iou"),
                    "chamfer_l2_median": _median(rows, "chamfer_l2"),
                    "fields": len(rows),
                    "entries": rows,
                }
                atomic_write_json(a.out, out)
            print(
                f"{m:22s} {g:5s} n={results[m][g]['fields']:3d} IoU median {results[m][g]['iou_median']:.4f}  "
                f"CD-L2 x1e3 median {1e3 * results[m][g]['chamfer_l2_median']:.4f}",
                flush=True,
            )
    for m in results:
        for g in results[m]:
            base = results["original"][g]["chamfer_l2_median"]
            results[m][g]["chamfer_l2_ratio_to_original"] = results[m][g]["chamfer_l2_median"] / base
    out["seconds_this_run"] = time.perf_counter() - t0
    return _common.finish(a.out, out, dev)


if __name__ == "__main__":
    _common.run(main)
