"""The obvious path a newcomer takes on their own shapes, with every default: ``fit`` -> ``space train`` -> ``encode``
-> ``decode`` -> ``eval`` against the meshes, once per start of ``fit`` (``--init default``: the pretrained base,
bias-only fields; ``--init learned``: the bundled learned init, full-weight fields), side by side on the same shapes.

Usage: python3 -m benchmarks.default_path --work WORK [--per-family 16] [--families chair table]
       [--starts default learned] [--seed 40000]

Each command runs as the CLI (``python3 -m shapezoo_cli.main ...``) with only the paths given, and is timed; the
table gives per start the fitted fields' and the decodes' median IoU against the meshes and each stage's seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _common
from shapezoo.io import ensure_output_dir
from shapezoo_datasets import generate


def _cli(*args: object) -> tuple[dict, float]:
    """Run one shapezoo command; its JSON summary (the last line) and wall seconds."""
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "shapezoo_cli.main", *map(str, args)], capture_output=True, text=True, check=False
    )
    if res.returncode:
        raise SystemExit(f"shapezoo {' '.join(map(str, args))} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def run_start(work: Path, start: str, device: str, quick: list[str]) -> dict:
    """fit -> space train -> encode -> decode -> eval of the decodes and of the fields, all defaults but --init
    (``quick``: the smoke test's shorter fit and training)."""
    w = ensure_output_dir(work / start)
    row: dict = {"start": start, "seconds": {}}
    fit_args = ["--steps", quick[0]] if quick else []
    train_args = ["--epochs", quick[1]] if quick else []
    fit, row["seconds"]["fit"] = _cli(
        "fit", work / "samples", "--out", w / "zoo", "--init", start, "--device", device, *fit_args
    )
    space, row["seconds"]["space train"] = _cli(
        "space", "train", w / "zoo", "--out", w / "space", "--device", device, *train_args
    )
    _, row["seconds"]["encode"] = _cli(
        "encode", w / "zoo", "--space", w / "space", "--out", w / "z.safetensors", "--device", device
    )
    _, row["seconds"]["decode"] = _cli(
        "decode", w / "z.safetensors", "--space", w / "space", "--out", w / "decoded", "--device", device
    )
    coarse = ["--resolution", "32"] if quick else []
    decoded, _ = _cli("eval", w / "decoded", "--reference", work / "meshes", "--out", w / "eval_decoded.json", *coarse)
    fields, _ = _cli("eval", w / "zoo", "--reference", work / "meshes", "--out", w / "eval_fields.json", *coarse)
    row.update(
        design=space["design"],
        fields=fit["ok"],
        fields_iou=fields["summary"]["iou"]["median"],
        decoded_iou=decoded["summary"]["iou"]["median"],
        decoded_chamfer_l2=decoded["summary"]["chamfer_l2"]["median"],
    )
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "default_path.json")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--per-family", type=int, default=16)
    ap.add_argument("--families", nargs="+", default=["chair", "table"])
    ap.add_argument("--starts", nargs="+", default=["default", "learned"])
    ap.add_argument("--seed", type=int, default=40000)
    ap.add_argument("--quick", nargs=2, default=[], metavar=("STEPS", "EPOCHS"), help="smoke test only")
    args = ap.parse_args(argv)
    work = ensure_output_dir(args.work)
    for family in args.families:
        generate(family, args.per_family, work / "meshes", seed=args.seed)
    _cli("data", "sample", work / "meshes", "--out", work / "samples", *(["--points", "5000"] if args.quick else []))
    rows = [run_start(work, start, args.device, args.quick) for start in args.starts]
    print(f"{'--init':<10} {'design':<8} {'fields IoU':>10} {'decoded IoU':>11} {'CD-L2 x1e3':>10}  seconds")
    for r in rows:
        secs = " ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items())
        print(
            f"{r['start']:<10} {r['design']:<8} {r['fields_iou']:>10.3f} {r['decoded_iou']:>11.3f} "
            f"{1e3 * r['decoded_chamfer_l2']:>10.3f}  {secs}"
        )
    return _common.finish(args.out, {"shapes": args.per_family * len(args.families), "rows": rows})


if __name__ == "__main__":
    _common.run(main)
