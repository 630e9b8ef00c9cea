"""What every benchmark shares: the device and output options, the environment record, the atomic JSON result, the
fields' IoU against ground-truth meshes, and the tiny procedural data and classifier space the quick runs use."""

from __future__ import annotations

import argparse
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from shapezoo.io import atomic_write_json, ensure_output_dir
from shapezoo.runtime import resolve_device, reuse_freed_memory

RESULTS = Path("benchmarks/results")


def parser(doc: str | None, out: str | None = None, device: bool = True) -> argparse.ArgumentParser:
    """An argument parser with ``--device`` (auto, cpu, cuda, cuda:N; not for CPU-only benchmarks) and ``--out``
    (the result JSON, default ``benchmarks/results/OUT``; none when ``out`` is None). The process keeps freed buffers
    for reuse, as the CLI does, so timings match what users get."""
    reuse_freed_memory()
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if device:
        ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--out", type=Path, default=RESULTS / out if out else None, help="result JSON to write")
    return ap


def device(args: argparse.Namespace) -> torch.device:
    return resolve_device(getattr(args, "device", "cpu"))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(dev: torch.device | str | None = None) -> dict:
    """Versions, CPU and GPU, and threads: what a number depends on besides the code."""
    try:
        shapezoo_version = version("shapezoo")
    except PackageNotFoundError:
        shapezoo_version = None
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "shapezoo": shapezoo_version,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "device": None if dev is None else str(dev),
    }


def finish(out: Path | None, result: dict, dev: torch.device | str | None = None) -> dict:
    """The result with its environment, written atomically to ``out`` (when given); returned."""
    result = {**result, "environment": environment(dev)}
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
        print(f"wrote {out}")
    return result


def truth_occupancy(shapes: list) -> list[np.ndarray]:
    """Each shape's (``fields.meshes.Shape``, in the frame) occupancy of ``eval's seeded uniform IoU points."""
    from shapezoo.fields.mesh_metrics import IOU_POINTS, uniform_points
    from shapezoo.fields.samples import label_points

    points = uniform_points(IOU_POINTS)
    return [label_points(shape, points)[0] for shape in shapes]


def truth_ious(spec, params: torch.Tensor, truth: list[np.ndarray]) -> list[float]:
    """IoU of each field (N, P) (inside: logit > 0) with its shape's occupancy ``truth`` (``truth_occupancy``), as
    ``eval`` scores it."""
    from shapezoo.fields.mesh_metrics import IOU_POINTS, uniform_points, volume_iou
    from shapezoo.fields.network import field_forward

    x = torch.as_tensor(uniform_points(IOU_POINTS), dtype=torch.float32, device=params.device)[None]
    with torch.no_grad():  # on the fields' device: a GPU scores a zoo in a fraction of the CPU's time
        return [
            volume_iou(field_forward(spec, w[None].float(), x).reshape(-1).cpu().numpy() > 0, t)
            for w, t in zip(params.detach(), truth)
        ]


def quick_data(work: Path, upto: str = "space", per_family: int = 3, points: int = 20_000) -> dict[str, Path]:
    """Tiny procedural data for quick runs, made once per folder and only as far as ``upto`` needs: shapes (every
    family), their samples, a field zoo (64x3 SIREN from the bundled init, 200 steps), a small weight space of it."""
    from shapezoo.fields.fit_job import fit_zoo
    from shapezoo.fields.fitting import FitConfig
    from shapezoo.fields.learned_init import bundled_init
    from shapezoo.fields.network import FieldSpec
    from shapezoo.fields.samples import SampleConfig, sample_meshes
    from shapezoo.fields.space import ModelConfig, TrainConfig, train_space
    from shapezoo_datasets import FAMILIES, generate

    paths = {k: work / k for k in ("shapes", "samples", "zoo", "space")}
    for family in FAMILIES:  # byte-identical reruns: cheap to repeat
        generate(family, per_family, paths["shapes"], seed=0)
    sample_meshes(paths["shapes"], paths["samples"], SampleConfig(points=points))
    if upto == "samples":
        return paths
    spec = FieldSpec(width=64)
    fit_zoo(paths["samples"], paths["zoo"], spec, FitConfig(steps=200), batch=32, init=bundled_init(spec))
    if upto == "zoo":
        return paths
    if not (paths["space"] / "train_summary.json").exists():
        from shapezoo.core.zoo import load_zoo

        config = TrainConfig(epochs=20, batch=8, points=512, probe_uniform=2048, probe_near=2048, val_refine=5)
        train_space(load_zoo(paths["zoo"]), paths["space"], ModelConfig(latent=32), config)
    return paths


def quick_classifier_space(zoo: Path, space: Path, models: int) -> None:
    """A small digits zoo of mlp-8 models and a space of it (for quick runs without prepared zoos)."""
    from shapezoo.classifiers.archs import ClassifierSpec
    from shapezoo.classifiers.data import load_digits
    from shapezoo.classifiers.space import SpaceConfig
    from shapezoo.classifiers.train import SpaceTrainConfig, train_classifier_space
    from shapezoo.classifiers.zoo import ZooConfig, train_zoo
    from shapezoo.core.zoo import load_zoo

    data = load_digits()
    spec = ClassifierSpec("mlp", 8, data.in_shape, data.classes)
    train_zoo(spec, data, zoo, ZooConfig(count=models, batch=models, steps=(5, 200), lr=(2e-3, 4e-3)))
    config = SpaceTrainConfig(epochs=20, batch=8, warmup=5)
    zoos = [load_zoo(zoo, kind="classifier")]
    train_classifier_space(zoos, data, space, model_config=SpaceConfig(latent=8, hidden=64), config=config)


def run(main) -> None:
    """Run a benchmark's ``main`` as a program: a ShapezooError (bad input, no CUDA) is one ``error:`` line, exit 1."""
    import sys

    from shapezoo.errors import ShapezooError

    try:
        main()
    except ShapezooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
