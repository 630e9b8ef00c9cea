"""Train weight spaces on one zoo with the same budget and compare: designs side by side, latent sizes.

Each run is ``design:latent:epochs[:key=value...]`` (TrainConfig fields). Prints a table (field IoU of decodes
vs the originals, per split)
and writes JSON. Runs are done in the given order; once ``--deadline`` seconds have passed the rest are skipped.

Usage: python -m benchmarks.space_quality ZOO --spaces DIR --runs neuron:512:600 prep:512:600 --out results.json
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.space import ModelConfig, TrainConfig, train_space


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_quality.json")
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--spaces", type=Path, required=True, help="folder for the trained spaces (one per run)")
    ap.add_argument("--runs", nargs="+", default=["neuron:512:400", "prep:512:400"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds; later runs are skipped")
    a = ap.parse_args(argv)
    dev = _common.device(a)
    zoo = load_zoo(a.zoo)
    started, rows = time.perf_counter(), []
    for run in a.runs:
        design, latent, epochs, *extra = run.split(":")
        if time.perf_counter() - started > a.deadline:
            rows.append({"run": run, "skipped": "deadline"})
            continue
        t0 = time.perf_counter()
        s = train_space(
            zoo,
            a.spaces / run.replace(":", "_"),
            ModelConfig(design=design, latent=int(latent)),
            TrainConfig(
                epochs=int(epochs),
                batch=a.batch,
                **{k: (int(v) if v.isdigit() else float(v)) for k, v in (e.split("=") for e in extra)},
            ),
            device=dev,
        )
        rows.append({"run": run, "seconds": round(time.perf_counter() - t0, 1), **s})
        r = s["results"]
        print(
            f"{run:18s} {rows[-1]['seconds']:7.1f}s {s['timing']['fields_per_second'] or 0:8.1f} fields/s  "
            + "field IoU median "
            + "  ".join(f"{k} {r[k]['field_iou_median']:.4f}" for k in r)
            + f"  best epoch {s['best_epoch']}",
            flush=True,
        )
        _common.finish(a.out, {"zoo": str(a.zoo), "runs": rows}, dev)  # after every run: a cut-off job keeps them
    return _common.finish(a.out, {"zoo": str(a.zoo), "runs": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
