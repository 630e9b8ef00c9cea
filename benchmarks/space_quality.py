"""Train weight spaces on one zoo with the same budget and compare: designs side by side, latent sizes.

Each run is ``design:latent:epochs[:key=value...]`` (TrainConfig fields). Prints a table (field IoU of decodes
vs the originals, per split)
and writes JSON. Runs are done in the given order; once ``--deadline`` seconds have passed the rest are skipped.

    python3 benchmarks/space_quality.py ZOO --spaces DIR --runs neuron:512:600 prep:512:600 --out results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shapezoo.core.zoo import load_zoo
from shapezoo.space import ModelConfig, TrainConfig, train_space


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--spaces", type=Path, required=True, help="folder for the trained spaces (one per run)")
    ap.add_argument("--runs", nargs="+", default=["neuron:512:400", "prep:512:400"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds; later runs are skipped")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/space_quality.json"))
    a = ap.parse_args(argv)
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
            device=a.device,
        )
        rows.append({"run": run, "seconds": round(time.perf_counter() - t0, 1), **s})
        r = s["results"]
        print(
            f"{run:18s} {rows[-1]['seconds']:7.1f}s {s['fields_per_second'] or 0:8.1f} fields/s  field IoU median "
            + "  ".join(f"{k} {r[k]['field_iou_median']:.4f}" for k in r)
            + f"  best epoch {s['best_epoch']}",
            flush=True,
        )
        _write(a, rows)
    return _write(a, rows)


def _write(a, rows: list[dict]) -> dict:
    """The JSON so far (written after every run, so a cut-off job keeps what it finished)."""
    out = {"zoo": str(a.zoo), "device": str(a.device), "gpu": _gpu(), "runs": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    return out


def _gpu() -> str | None:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
