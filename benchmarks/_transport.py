"""Pack a samples folder into one compact file (int16 coordinates, packed labels) to carry to a lent GPU machine.

Only for moving benchmark data under the device tool's size limit; ``unpack`` rebuilds a normal samples folder.
A tool, not a benchmark: ``python -m benchmarks._transport pack|unpack SRC DST``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks import _common
from shapezoo.fields.samples import INDEX_NAME, load_samples
from shapezoo.io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, read_json

SCALE = 60000.0  # int16 step 1.7e-5 frame units over [-0.546, 0.546]


def pack(samples: Path, out: Path, per_part: int) -> None:
    index = read_json(samples / INDEX_NAME)
    pts, occ, shapes = [], [], []
    for s in index["shapes"]:
        d = load_samples(samples / s["file"])
        nu = int(d["n_uniform"])
        sel = np.r_[0:per_part, nu : nu + per_part]
        pts.append(np.round(d["points"][sel] * SCALE).astype(np.int16))
        occ.append(np.packbits(d["occupancy"][sel].astype(bool)))
        shapes.append({**s, "points": 2 * per_part})
    index = {**index, "shapes": shapes, "config": {**index["config"], "points": 2 * per_part}}
    atomic_save_tensors(out, {"points": np.stack(pts), "occupancy": np.stack(occ)}, {"index": json.dumps(index)})


def unpack(file: Path, out: Path) -> None:
    t, meta = load_tensors(file)
    index = json.loads(meta["index"])
    out = ensure_output_dir(out)
    n = t["points"].shape[1]
    for s, p, o in zip(index["shapes"], t["points"], t["occupancy"]):
        occ = np.unpackbits(o)[:n].astype(np.uint8)
        meta = {"name": s["name"], "n_uniform": str(n // 2), "sha256": s["sha256"], "source": s["source"]}
        atomic_save_tensors(out / s["file"], {"points": p.astype(np.float32) / SCALE, "occupancy": occ}, meta)
    atomic_write_json(out / INDEX_NAME, index)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=["pack", "unpack"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--per-part", type=int, default=12000, help="uniform and near-surface points kept per shape")
    a = ap.parse_args(argv)
    pack(a.src, a.dst, a.per_part) if a.mode == "pack" else unpack(a.src, a.dst)
    return {"mode": a.mode, "src": str(a.src), "dst": str(a.dst)}


if __name__ == "__main__":
    _common.run(main)
