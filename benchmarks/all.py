"""Every benchmark at a small size, in one run: a smoke test of the benchmarks and a quick look at the numbers.

Usage: python -m benchmarks.all --quick [--only NAME,NAME] [--work DIR] [--out FILE]

Builds tiny procedural data once under --work (shapes of every family, samples, a 64x3 zoo, a small space), runs
each benchmark's ``main`` on it with small sizes (its own JSON under WORK/results), and writes one JSON: per
benchmark its status (ok, failed with the error, or skipped with the reason, e.g. no CUDA), seconds and result.
Under 10 minutes on 2 CPU cores. The full-size runs, with real data, are the commands in BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import _common

BUNDLED_INIT = Path(__file__).parents[1] / "shapezoo" / "assets" / "init-siren-128x3"

Args = Callable[[dict[str, Path], Path], list[str]]
QUICK: dict[str, tuple[str | None, Args]] = {
    # name: (data it needs: None, samples, zoo or space; argv given the data paths and the work folder)
    "chamfer_timing": (None, lambda d, w: ["--sizes", "5000"]),
    "fit_throughput": (
        None,
        lambda d, w: ["--batches", "1", "4", "--sequential-fields", "1", "--steps", "5", "--peak-size", "512"],
    ),
    "inr_classification": (None, lambda d, w: ["--quick", "--work", str(w / "inr_classification")]),
    "fit_budget": ("samples", lambda d, w: [str(d["samples"]), "--shapes", "3", "--budgets", "50x512", "100x512"]),
    "fit_sweep": (
        "samples",
        lambda d, w: (
            [str(d["samples"]), "--shapes", "3", "--variants", "default", "lr 7e-4", "--steps", "50"]
            + ["--init", str(BUNDLED_INIT)]
        ),
    ),
    "init_budget": (
        "samples",
        lambda d, w: (
            [str(d["samples"]), "--init", str(BUNDLED_INIT), "--budgets", "30", "--starts", "learned"]
            + ["seeded", "--shapes", "3", "--resolution", "32", "--meshes", str(d["shapes"])]
        ),
    ),
    "sampling_throughput": (
        None,
        lambda d, w: ["--points", "5000", "--per-family", "1", "--holed-per-family", "1", "--capod", str(w / "none")],
    ),
    "extract_speed": (
        "zoo",
        lambda d, w: [str(d["zoo"]), "--fields", "2", "--dense-fields", "1", "--resolutions", "32"],
    ),
    "encode_meshes": ("space", lambda d, w: [str(d["shapes"]), "--space", f"quick={d['space']}:50", "--refine", "5"]),
    "space_throughput": (None, lambda d, w: ["--width", "32", "--batch", "4", "--points", "256", "--steps", "1"]),
    "space_quality": (
        "zoo",
        lambda d, w: (
            [str(d["zoo"]), "--spaces", str(w / "spaces"), "--runs", "neuron:16:2", "prep:16:2"] + ["--batch", "8"]
        ),
    ),
    "space_iou": ("space", lambda d, w: [str(d["zoo"]), str(d["shapes"]), str(d["space"]), "--refine", "5"]),
    "space_curve": (
        "space",
        lambda d, w: (
            [str(d["shapes"]), "--run", f"quick={d['zoo']}:{d['space']}", "--run", f"fields={d['zoo']}"]
            + ["--split-from", str(d["space"]), "--refine", "0", "3"]
        ),
    ),
    "shift_recipe": (
        "samples",
        lambda d, w: (
            [str(d["samples"]), "--base", str(w / "base"), "--base-steps", "3", "--width", "16"]
            + ["--variants", "5x2e-3", "full", "--every", "1", "--resolution", "32"]
        ),
    ),
    "space_eval": (
        "space",
        lambda d, w: (
            [str(d["zoo"]), str(d["shapes"]), "--space", f"quick={d['space']}", "--refine", "0"]
            + ["--train-count", "2", "--resolution", "32"]
        ),
    ),
    "space_tasks": (
        "space",
        lambda d, w: (
            ["interpolation", str(d["zoo"]), str(d["shapes"]), str(d["space"]), "--pairs", "1"]
            + ["--split", "train", "--refine", "5"]
        ),
    ),
    "generation": (
        "space",
        lambda d, w: (
            [str(d["shapes"]), "--space", str(d["space"]), "--zoo", str(d["zoo"]), "--prior", str(w / "prior")]
            + [
                "--conditional",
                str(w / "prior_c"),
                "--prior-steps",
                "20",
                "--count",
                "3",
                "--resolution",
                "32",
                "--points",
                "256",
                "--per-family",
                "2",
            ]
        ),
    ),
    "generation_classifiers": (
        None,
        lambda d, w: (
            ["--space", str(w / "gc" / "space"), "--zoo", str(w / "gc" / "zoo"), "--prior", str(w / "gc" / "prior")]
            + ["--build", "24", "--prior-steps", "20", "--count", "6"]
        ),
    ),
    "build_default": (
        None,
        lambda d, w: (
            ["--work", str(w / "bd"), "--assets", str(w / "bd_assets"), "--per-family", "2"]
            + ["--heldout-per-family", "1", "--base-steps", "10", "--width", "16", "--points", "3000"]
            + ["--prior-steps", "10", "--prior-components", "4"]
        ),
    ),
    "modulation": (
        "samples",
        lambda d, w: (
            [str(d["shapes"]), str(d["samples"]), "--work", str(w / "mod"), "--learn", "0", "2"]
            + ["--train", str(d["samples"]), "--base-steps", "5", "--width", "16", "--full", "--steps", "20"]
            + ["--resolution", "32"]
        ),
    ),
    "peer_jax": ("samples", lambda d, w: [str(d["samples"]), "--shapes", "2", "--steps", "5"]),
    "default_path": (
        None,
        lambda d, w: ["--work", str(w / "dp"), "--per-family", "3", "--quick", "5", "2"],
    ),
    "probe_ceiling": (None, lambda d, w: [str(w / "pc" / "zoo"), str(w / "pc" / "space"), "--build", "24"]),
    "classifiers": (
        None,
        lambda d, w: ["throughput", "--arch", "mlp-8", "--models", "4", "--steps", "10", "--work", str(w / "cls")],
    ),
    "scale_out": (
        "samples",
        lambda d, w: (
            ["--meshes", str(d["shapes"]), "--count", "6", "--points", "5000", "--fit-shapes", "4"]
            + ["--fit-steps", "20", "--batch", "2"]
        ),
    ),
    "cuda_check": ("samples", lambda d, w: [str(d["samples"]), "--fields", "3"]),
    "space_cuda_check": (
        "space",
        lambda d, w: [str(d["space"]), str(d["zoo"]), "--fields", "2", "--refine", "2", "--devices", _PAIR],
    ),
    "learned_cuda_check": (
        "samples",
        lambda d, w: [str(d["samples"]), "--fields", "2", "--steps", "20", "--devices", _PAIR],
    ),
}
_PAIR = "cpu,cuda" if torch.cuda.is_available() else "cpu,cpu"
"""The device pair of the comparison scripts: without a GPU they compare the CPU with itself, a run of the script."""
NEEDS_CUDA = {"cuda_check"}
NEEDS_MODULE = {"peer_jax": "jax"}
"""Benchmarks that need an optional extra (``shapezoo[peer]``): skipped, with the reason, where it is not installed."""
ORDER = {None: 0, "samples": 1, "zoo": 2, "space": 3}


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "all_quick.json", device=False)
    ap.add_argument("--quick", action="store_true", help="small sizes on tiny procedural data (the only mode)")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the data and each benchmark's JSON")
    args = ap.parse_args(argv)
    if not args.quick:
        ap.error("only --quick runs here; the full-size runs need real data: see the commands in BENCHMARKS.md")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(QUICK)
    unknown = sorted(set(names) - set(QUICK))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; known: {', '.join(QUICK)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        need = max((QUICK[n][0] for n in names), key=lambda k: ORDER[k])
        t0 = time.perf_counter()
        data = _common.quick_data(work / "data", upto=need) if need else {}
        report: dict = {"quick": True, "data_seconds": round(time.perf_counter() - t0, 1), "benchmarks": {}}
        for name in names:
            row: dict = {}
            if name in NEEDS_CUDA and not torch.cuda.is_available():
                row = {"status": "skipped", "reason": "needs CUDA"}
            elif name in NEEDS_MODULE and importlib.util.find_spec(NEEDS_MODULE[name]) is None:
                row = {"status": "skipped", "reason": f"needs {NEEDS_MODULE[name]} (pip install 'shapezoo[peer]')"}
            else:
                argv_b = QUICK[name][1](data, work) + ["--out", str(work / "results" / f"{name}.json")]
                t = time.perf_counter()
                try:
                    result = importlib.import_module(f"benchmarks.{name}").main(argv_b)
                    row = {"status": "ok", "result": result}
                except Exception as exc:  # a broken benchmark is reported, the others still run
                    row = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
                row["seconds"] = round(time.perf_counter() - t, 1)
            report["benchmarks"][name] = row
            print(f"== {name}: {row['status']} {row.get('seconds', '')}", flush=True)
        print(f"{'benchmark':<22}{'status':>9}{'seconds':>9}")
        for name, row in report["benchmarks"].items():
            print(f"{name:<22}{row['status']:>9}{row.get('seconds', 0):>9.1f}")
        return _common.finish(args.out, report)


if __name__ == "__main__":
    _common.run(main)
