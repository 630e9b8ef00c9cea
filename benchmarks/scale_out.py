"""Scale-out on this machine: Ray (``--ray auto``) against the single process, side by side in one run.

Usage: python -m benchmarks.scale_out [--meshes ../shared/data/capod] [--count 60] [--points 100000]
       [--fit-shapes 16] [--fit-steps 500] [--batch 8] [--out FILE]

sampling: the first --count meshes (every class in turn) sampled by one process and by Ray tasks of one thread each;
fitting: --fit-shapes of them fitted from the bundled 128x3 init in batches of --batch, one process with all threads
vs Ray tasks of one thread each (one batch per task); overhead: starting the local Ray instance, the round trip of an
empty task, and a fitting task's fixed cost (worker start, imports, moving its inputs), from which the break-even
size follows. CPU only (the GPU path is the same code with one GPU per task).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.fit_job import fit_zoo
from shapezoo.fields.fitting import FitConfig
from shapezoo.fields.learned_init import bundled_init
from shapezoo.fields.meshes import find_meshes
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.samples import SampleConfig, sample_meshes


def _spread(items: list, count: int) -> list:
    """``count`` meshes taking every class folder in turn (names are class__...)."""
    by_class: dict[str, list] = {}
    for name, path in items:
        by_class.setdefault(name.split("__")[0], []).append((name, path))
    out, k = [], 0
    while len(out) < min(count, len(items)):
        for members in by_class.values():
            if k < len(members) and len(out) < count:
                out.append(members[k])
        k += 1
    return out


def _noop() -> int:
    return 0


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "scale_out.json", device=False)
    ap.add_argument("--meshes", type=Path, default=Path(__file__).parents[2] / "shared" / "data" / "capod")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--fit-shapes", type=int, default=16)
    ap.add_argument("--fit-steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)
    import ray

    from shapezoo.core.ray_tasks import connect

    items = _spread(find_meshes(args.meshes), args.count)
    threads = torch.get_num_threads()
    result: dict = {"meshes": str(args.meshes), "count": len(items), "points": args.points, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        resources = connect("auto")
        result["ray_start_seconds"] = time.perf_counter() - t
        result["ray_cpus"] = resources.get("CPU")
        t = time.perf_counter()
        ray.get([ray.remote(num_cpus=1)(_noop).remote() for _ in range(50)])  # warm the workers
        t = time.perf_counter()
        ray.get([ray.remote(num_cpus=1)(_noop).remote() for _ in range(200)])
        result["empty_task_ms"] = 1e3 * (time.perf_counter() - t) / 200

        config = SampleConfig(points=args.points)
        t = time.perf_counter()
        local = sample_meshes(items, work / "s_local", config)
        single = time.perf_counter() - t
        t = time.perf_counter()
        remote = sample_meshes(items, work / "s_ray", config, ray="auto", threads=1)
        parallel = time.perf_counter() - t
        result["sampling"] = {
            "single_seconds": single,
            "ray_seconds": parallel,
            "speedup": single / parallel,
            "seconds_per_shape_single": single / len(items),
            "same_index": local == remote,
            "failed": len(local["failed"]),
        }

        spec = FieldSpec()
        init = bundled_init(spec)
        recipe = FitConfig(steps=args.fit_steps)
        names = {s["name"] for s in local["shapes"][: args.fit_shapes]}
        keep = {"shapes": [s for s in local["shapes"] if s["name"] in names]}
        fit_dir = work / "s_fit"
        shutil.copytree(work / "s_local", fit_dir)
        full = json.loads((fit_dir / "samples.json").read_text())
        (fit_dir / "samples.json").write_text(json.dumps({**full, **keep, "failed": []}))
        t = time.perf_counter()
        fit_zoo(fit_dir, work / "z_local", spec, recipe, batch=args.batch, init=init)
        single = time.perf_counter() - t
        t = time.perf_counter()
        fit_zoo(fit_dir, work / "z_ray", spec, recipe, batch=args.batch, init=init, ray="auto", threads=1)
        parallel = time.perf_counter() - t
        ious = {k: load_zoo(work / k).entries for k in ("z_local", "z_ray")}
        median = {k: sorted(e["metrics"]["iou"] for e in v)[len(v) // 2] for k, v in ious.items()}
        tiny = FitConfig(steps=1, points_per_step=64)
        t = time.perf_counter()
        fit_zoo(fit_dir, work / "z_tiny", spec, tiny, batch=args.batch, init=init, ray="auto", threads=1)
        fixed = (time.perf_counter() - t) / max(1, -(-len(names) // args.batch))
        result["fitting"] = {
            "fields": len(names),
            "steps": args.fit_steps,
            "single_seconds": single,
            "single_threads": threads,
            "ray_seconds": parallel,
            "ray_tasks_x_threads": f"{-(-len(names) // args.batch)} x 1",
            "speedup": single / parallel,
            "median_iou_single": median["z_local"],
            "median_iou_ray": median["z_ray"],
            "task_fixed_seconds": fixed,
        }
        per_shape_gain = result["sampling"]["seconds_per_shape_single"] * (1 - 1 / result["sampling"]["speedup"])
        result["break_even_shapes_sampling"] = (
            result["ray_start_seconds"] / per_shape_gain if per_shape_gain > 0 else None
        )
    ray.shutdown()
    s, f = result["sampling"], result["fitting"]
    print(f"Ray start {result['ray_start_seconds']:.2f} s, empty task {result['empty_task_ms']:.2f} ms")
    print(f"{'stage':<10}{'items':>7}{'single s':>10}{'Ray s':>8}{'speed-up':>10}")
    print(f"{'sampling':<10}{len(items):>7}{s['single_seconds']:>10.1f}{s['ray_seconds']:>8.1f}{s['speedup']:>9.2f}x")
    print(f"{'fitting':<10}{f['fields']:>7}{f['single_seconds']:>10.1f}{f['ray_seconds']:>8.1f}{f['speedup']:>9.2f}x")
    return _common.finish(args.out, result)


if __name__ == "__main__":
    _common.run(main)
