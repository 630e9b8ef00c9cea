"""Every output of a seeded tiny CLI pipeline, hashed: run it before and after a refactor and compare the two JSONs.

Both modalities end to end at toy sizes (3 families x 2 shapes, a 32x2 seeded zoo and a zoo from the shipped base, a
space of 8, the default space, a learned init, a prior, a probe, a 6-model digits zoo and its space). The CLI runs
as ``python -m shapezoo_cli.main`` in a child process, so the code under test is whatever that process imports (a
worktree of an older commit through ``PYTHONPATH``, for instance). Hashes: safetensors by their sorted metadata and
tensor bytes, JSON and metadata without timing keys and with the work folder's and the package's paths replaced,
anything else by its bytes.

    python3 -m benchmarks._pipeline_hashes --work /tmp/ph --out before.json
    python3 -m benchmarks._pipeline_hashes --compare before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open

ASSETS = re.compile(r"[^\"']*/shapezoo/assets/")  # where the package is installed
TIMING = ("time", "seconds", "wall", "elapsed", "per_field_s", "fields_per_hour", "created", "started", "finished")


def steps(w: Path) -> list[list[str]]:
    """The pipeline, one CLI call per entry (relative to the work folder ``w``)."""
    cpu = ["--device", "cpu"]
    out: list[list[str]] = [
        ["data", "generate", f, "--count", "2", "--seed", "0", "--out", f"{w}/meshes/{f}"]
        for f in ("chair", "table", "airplane")
    ]
    return out + [
        ["data", "sample", f"{w}/meshes", "--out", f"{w}/samples", "--points", "20000"],
        [
            "fit",
            f"{w}/samples",
            "--out",
            f"{w}/zoo",
            "--init",
            "seeded",
            "--steps",
            "150",
            "--width",
            "32",
            "--depth",
            "2",
            *cpu,
        ],
        ["fit", f"{w}/samples", "--out", f"{w}/zoo_base", "--steps", "60", *cpu],
        ["zoo", "export", f"{w}/zoo", "chair__chair_0000", "--out", f"{w}/export/chair.safetensors"],
        ["mesh", f"{w}/zoo", "--out", f"{w}/mesh", "--resolution", "32", *cpu],
        ["eval", f"{w}/zoo", "--reference", f"{w}/meshes", "--resolution", "32", "--out", f"{w}/eval.json", *cpu],
        ["space", "train", f"{w}/zoo", "--out", f"{w}/space", "--latent", "8", "--epochs", "4", *cpu],
        ["encode", f"{w}/zoo", "--space", f"{w}/space", "--out", f"{w}/z.safetensors", "--refine", "5", *cpu],
        ["decode", f"{w}/z.safetensors", "--space", f"{w}/space", "--out", f"{w}/decoded", *cpu],
        [
            "interpolate",
            "chair__chair_0000",
            "chair__chair_0001",
            "--zoo",
            f"{w}/zoo",
            "--space",
            f"{w}/space",
            "--steps",
            "3",
            "--resolution",
            "32",
            "--out",
            f"{w}/interp",
            *cpu,
        ],
        ["sample", "--space", f"{w}/space", "--count", "2", "--resolution", "32", "--out", f"{w}/sampled", *cpu],
        [
            "optimize",
            "--points",
            f"{w}/points.npy",
            "--space",
            f"{w}/space",
            "--steps",
            "20",
            "--resolution",
            "32",
            "--out",
            f"{w}/completed",
            *cpu,
        ],
        ["encode", f"{w}/zoo_base", "--out", f"{w}/z_default.safetensors", *cpu],
        ["probe", f"{w}/z_default.safetensors", "--folds", "2", "--out", f"{w}/probe.json"],
        [
            "prior",
            "train",
            f"{w}/space",
            "--out",
            f"{w}/prior",
            "--steps",
            "30",
            "--hidden",
            "32",
            "--val",
            "0.5",
            *cpu,
        ],
        [
            "init",
            "learn",
            f"{w}/samples",
            "--out",
            f"{w}/init",
            "--width",
            "32",
            "--depth",
            "2",
            "--outer-steps",
            "3",
            *cpu,
        ],
        [
            "classifiers",
            "zoo",
            "--arch",
            "mlp-16",
            "--count",
            "6",
            "--batch",
            "6",
            "--steps-min",
            "40",
            "--steps-max",
            "80",
            "--out",
            f"{w}/czoo",
            *cpu,
        ],
        [
            "classifiers",
            "space",
            "train",
            f"{w}/czoo",
            "--latent",
            "8",
            "--hidden",
            "32",
            "--epochs",
            "3",
            "--out",
            f"{w}/cspace",
            *cpu,
        ],
        ["classifiers", "encode", f"{w}/czoo", "--space", f"{w}/cspace", "--out", f"{w}/cz.safetensors", *cpu],
        ["classifiers", "decode", f"{w}/cz.safetensors", "--space", f"{w}/cspace", "--out", f"{w}/cdecoded", *cpu],
        ["classifiers", "eval", f"{w}/czoo", "--space", f"{w}/cspace", "--out", f"{w}/ceval.json", *cpu],
    ]


def _scrub(value, work: str):
    if isinstance(value, dict):
        return {k: _scrub(v, work) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [_scrub(v, work) for v in value]
    return ASSETS.sub("PACKAGE/assets/", value.replace(work, "WORK")) if isinstance(value, str) else value


def file_hash(path: Path, work: str) -> str:
    h = hashlib.sha256()
    if path.suffix == ".safetensors":
        with safe_open(str(path), "np") as f:
            h.update(json.dumps(_scrub(f.metadata() or {}, work), sort_keys=True).encode())
            for k in sorted(f.keys()):
                t = f.get_tensor(k)
                h.update(f"{k}{t.dtype}{t.shape}".encode() + np.ascontiguousarray(t).tobytes())
    elif path.suffix == ".json":
        h.update(json.dumps(_scrub(json.loads(path.read_text()), work), sort_keys=True).encode())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def run(work: Path) -> dict[str, str]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(400, 3))
    np.save(work / "points.npy", (0.3 * pts / np.linalg.norm(pts, axis=1, keepdims=True)).astype(np.float32))
    for args in steps(work):
        done = subprocess.run([sys.executable, "-m", "shapezoo_cli.main", *args], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
        print("ok", " ".join(a.replace(str(work), "W") for a in args[:3]), flush=True)
    return {str(p.relative_to(work)): file_hash(p, str(work)) for p in sorted(work.rglob("*")) if p.is_file()}


def compare(a: dict[str, str], b: dict[str, str]) -> None:
    same = [k for k in a if b.get(k) == a[k]]
    print(
        f"{len(same)} of {len(a)} files identical; only before: {sorted(set(a) - set(b))}; "
        f"only after: {sorted(set(b) - set(a))}"
    )
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            print("differs:", k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/pipeline_hashes"))
    ap.add_argument("--out", type=Path, default=Path("pipeline_hashes.json"))
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        compare(*(json.loads(p.read_text()) for p in args.compare))
        return
    hashes = run(args.work)
    args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    print(f"{len(hashes)} files hashed -> {args.out}")


if __name__ == "__main__":
    main()
