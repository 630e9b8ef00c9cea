"""The main job end to end on built-in procedural data, sized by one budget knob, ending in an HTML report.

generate -> sample -> fit -> mesh -> eval -> train a weight space -> interpolate (latent and raw weights) ->
renders -> probe -> new shapes from a learned prior, scored -> a small digits classifier zoo and its space ->
report. Budget 1 takes about 1 minute on 2 CPU cores; a rerun skips finished sampling, fitting, zoo and space training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .core.zoo import load_zoo
from .errors import ShapezooError
from .evaluation import evaluate_zoo
from .extract import ExtractConfig, export_mesh, extract_meshes
from .fields import FieldSpec
from .fit import FitConfig
from .io import atomic_write_json, ensure_output_dir
from .learned_init import bundled_init
from .render import render_grid, render_strip, save_png
from .report import build_report
from .sampling import SampleConfig, sample_meshes
from .space import ModelConfig, TrainConfig, load_space, train_space
from .space.explore import sequence, sequence_metrics
from .zoo_fit import fit_zoo


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; ``scaled(budget)`` multiplies the work."""

    per_family: int = 4
    """Shapes per procedural family (5 families)."""
    points: int = 20_000
    """Occupancy samples per shape."""
    fit_steps: int = 500
    """Fitting steps per field (from the learned init bundled for the field architecture, where there is one)."""
    width: int = 64
    """Field width (hidden units)."""
    epochs: int = 300
    """Weight-space training epochs."""
    latent: int = 64
    resolution: int = 96
    """Marching-cubes grid for meshes, scores and the report."""
    interp_steps: int = 8
    generated: int = 8
    """Shapes drawn from the learned prior (scored against the held-out shapes)."""
    classifier_models: int = 48
    """Models in the demo's classifier zoo (mlp-16 on the bundled digits)."""
    classifier_epochs: int = 80
    """Classifier-space training epochs."""

    def scaled(self, budget: float) -> DemoConfig:
        """More shapes, steps and epochs for budget > 1 (fewer for < 1); sizes stay valid."""
        b = max(budget, 0.05)
        return DemoConfig(
            per_family=max(3, round(self.per_family * b)),
            points=self.points,
            fit_steps=max(100, round(self.fit_steps * b)),
            width=self.width if b <= 1 else 128,
            epochs=max(10, round(self.epochs * b)),
            latent=self.latent if b <= 1 else 256,
            resolution=self.resolution if b <= 1 else 128,
            interp_steps=self.interp_steps,
            generated=max(4, round(self.generated * b)),
            classifier_models=max(24, round(self.classifier_models * b)),
            classifier_epochs=max(10, round(self.classifier_epochs * b)),
        )


STAGES = (
    "generate",
    "sample",
    "fit",
    "mesh",
    "eval",
    "space",
    "interpolate",
    "render",
    "probe",
    "generation",
    "classifiers",
    "report",
)


def run_probe(out: Path, space, zoo, meshes: list) -> dict:
    """Families from the zoo's fields encoded by the space (encoder alone) vs their raw weights and PCA, stratified
    folds (as many as the smallest family allows, at most 5) into ``probe.json``; and a retrieval strip: the first
    field and its five nearest by latent (cosine)."""
    import numpy as np

    from .core.latents import save_latents
    from .core.probe import ProbeConfig
    from .probing import probe_latents

    z = space.encode(zoo.params.to(next(space.model.parameters()).device)).cpu()
    labels = {n: zoo.entries[zoo.index(n)]["label"] for n in zoo.names}
    save_latents(out / "probe_latents.safetensors", z, zoo.names, {"zoo": str(out / "zoo"), "labels": labels})
    counts = np.unique(list(labels.values()), return_counts=True)[1]
    config = ProbeConfig(folds=int(min(5, counts.min())))
    kinds = ("latents", "weights", "pca")
    result = probe_latents(out / "probe_latents.safetensors", ("classify", "retrieve"), kinds, out / "zoo", config)
    atomic_write_json(out / "probe.json", result)
    unit = torch.nn.functional.normalize(z, dim=1)
    picked = [zoo.names[i] for i in (unit @ unit[0]).argsort(descending=True)[:6].tolist()]  # the query first
    strip = [meshes[zoo.names.index(n)] for n in picked]
    labels_shown = [f"query: {picked[0]}"] + picked[1:]
    save_png(render_strip(strip, labels_shown, size=200), out / "renders" / "retrieval_strip.png")
    return {k: result[k]["classify"]["linear_accuracy"] for k in kinds}


def run_generation(out: Path, space, extract: ExtractConfig, count: int, device: str | torch.device = "cpu") -> dict:
    """New shapes from a small learned prior over the space's training latents (``out/prior``), meshed into
    ``out/generated`` (without pieces under 5% of a mesh: the demo's space is small, its decodes rough), scored
    against the held-out shapes and for novelty against the training shapes into
    ``out/generation`` (``generation.json`` and ``nearest.png``, which the report shows)."""
    from dataclasses import replace

    from .core.prior import PriorConfig, train_prior
    from .generation import evaluate_generation
    from .space.jobs import sample_members

    train_prior(out / "space", out / "prior", PriorConfig(steps=300, hidden=128, blocks=2, eval_every=25), device)
    config = replace(extract, min_component=0.05)
    sample_members(
        space,
        out / "space",
        count,
        out / "generated",
        0,
        config,
        device,
        prior=out / "prior",
        nearest=False,
        temperature=0.7,
    )
    try:
        result = evaluate_generation(
            out / "generated", out / "shapes", out / "shapes", out / "generation", out / "space"
        )
    except ShapezooError as exc:  # e.g. a space too small to decode surfaces: the report says so, the run goes on
        return {"skipped": str(exc)}
    return {**result["metrics"], "novelty_ratio": result["novelty"]["ratio"]}


def run_classifiers(out: Path, models: int, epochs: int, device: str | torch.device = "cpu") -> dict:
    """The classifier modality in small: a digits zoo of mlp-16 models -> space -> original vs decoded accuracy ->
    accuracy along the latent and raw-weight paths from the weakest to the strongest model."""
    from .classifiers.archs import ClassifierSpec
    from .classifiers.data import load_digits
    from .classifiers.jobs import evaluate_to_file, interpolate_models
    from .classifiers.space import SpaceConfig, load_classifier_space
    from .classifiers.train import SpaceTrainConfig, train_classifier_space
    from .classifiers.zoo import ZooConfig, train_zoo

    data = load_digits().to(device)
    spec = ClassifierSpec("mlp", 16, data.in_shape, data.classes)
    train_zoo(spec, data, out / "zoo", ZooConfig(count=models, batch=models, steps=(5, 300), lr=(2e-3, 4e-3)))
    zoo = load_zoo(out / "zoo", kind="classifier")
    train_classifier_space(
        [zoo],
        data,
        out / "space",
        None,
        SpaceConfig(latent=16, hidden=128),
        SpaceTrainConfig(epochs=epochs, batch=8, warmup=20),
    )
    space = load_classifier_space(out / "space", device)
    result = evaluate_to_file(space, zoo, out / "zoo", data, out / "eval.json")
    acc = {r["name"]: r["accuracy_original"] for r in result["models"]}
    a, b = min(acc, key=lambda n: acc[n]), max(acc, key=lambda n: acc[n])
    path = interpolate_models(space, a, b, [zoo], [out / "zoo"], data, out, steps=9)
    return {
        "models": len(zoo.names),
        "summary": result["summary"],
        "interpolation": [a, b],
        "accuracy_latent": path["accuracy_latent"],
        "accuracy_raw": path["accuracy_raw"],
    }


def run_demo(
    out: str | Path,
    config: DemoConfig = DemoConfig(),
    device: str | torch.device = "cpu",
    on_stage: Callable[[str, float], None] | None = None,
) -> dict:
    """Run every stage into ``out``; returns the summary also written to ``out/demo.json``."""
    from shapezoo_datasets import FAMILIES, generate

    out = ensure_output_dir(out)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()
        if on_stage is not None:
            on_stage(stage, timings[stage])

    for family in FAMILIES:
        generate(family, config.per_family, out / "shapes", seed=0)
    done("generate")
    sample_meshes(out / "shapes", out / "samples", SampleConfig(points=config.points))
    done("sample")
    spec = FieldSpec(width=config.width)
    fit = fit_zoo(
        out / "samples",
        out / "zoo",
        spec,
        # No hard points: on the demo's 20k samples they leave specks in the gallery (BENCHMARKS.md, "Hard points").
        FitConfig(steps=config.fit_steps, hard_fraction=0.0),
        batch=32,
        device=device,
        init=bundled_init(spec),
    )
    done("fit")
    zoo = load_zoo(out / "zoo")
    extract = ExtractConfig(resolution=config.resolution)
    meshes, _ = extract_meshes(zoo.spec, zoo.params.to(device), extract, zoo.names)
    ensure_output_dir(out / "fields")
    for name, (v, f) in zip(zoo.names, meshes):
        export_mesh(v, f, out / "fields" / f"{name}.obj")
    done("mesh")
    report = evaluate_zoo(zoo, out / "shapes", config=extract, device=device, out=out / "eval.json")
    done("eval")
    # Too few fields for a useful validation split: the checkpoint is chosen on the training fields. With ~17
    # training fields the auto-decoder's codes do not generalise (held-out field IoU 0.04 vs 0.39 measured), so the
    # demo trains the plain autoencoder with an MLP trunk.
    space_summary = train_space(
        zoo,
        out / "space",
        ModelConfig(latent=config.latent, trunk=256),
        TrainConfig(epochs=config.epochs, batch=16, points=1024, eval_every=10, val=0.0, test=0.15, codes=False),
        device,
    )
    assert space_summary is not None  # a single process is its own lead rank
    done("space")
    space = load_space(out / "space", device)
    train = space.meta["split"]["train"]
    a = train[0]
    b = next((n for n in train[1:] if n.rsplit("_", 1)[0] == a.rsplit("_", 1)[0]), train[-1])
    strips = {}
    for key, raw in (("interpolation", False), ("interpolation_weights", True)):
        params = sequence(space, zoo.weights(a), zoo.weights(b), config.interp_steps, "lerp", weights=raw)
        seq_meshes, rows = sequence_metrics(space, params, extract, device)
        ensure_output_dir(out / key)
        for row, (v, f) in zip(rows, seq_meshes):
            export_mesh(v, f, out / key / f"step_{row['step']:02d}.obj")
        atomic_write_json(
            out / key / "interpolation.json",
            {"a": {"name": a}, "b": {"name": b}, "mode": "weights" if raw else "lerp", "steps": rows},
        )
        strips[key] = seq_meshes
    done("interpolate")
    ensure_output_dir(out / "renders")
    save_png(render_grid(meshes, zoo.names, cols=5, size=200), out / "renders" / "zoo_grid.png")
    for key, seq_meshes in strips.items():
        labels = [f"t={i / (len(seq_meshes) - 1):.2f}" for i in range(len(seq_meshes))]
        save_png(render_strip(seq_meshes, labels, size=200), out / "renders" / f"{key}_strip.png")
    done("render")
    probe = run_probe(out, space, zoo, meshes)
    done("probe")
    generation = run_generation(out, space, extract, config.generated, device)
    done("generation")
    classifiers = run_classifiers(out / "classifiers", config.classifier_models, config.classifier_epochs, device)
    done("classifiers")
    sections = build_report(out, out / "report.html")
    done("report")
    summary = {
        "out": str(out),
        "config": config.__dict__,
        "fields": len(zoo.names),
        "fit_iou_median": fit["iou"].get("median"),
        "eval": {k: v["median"] for k, v in report["summary"].items()},
        "space": {k: v["field_iou_median"] for k, v in space_summary["results"].items()},
        "interpolation": [a, b],
        "probe": probe,
        "generation": generation,
        "classifiers": classifiers,
        "report": str(out / "report.html"),
        "sections": sections,
        "seconds": timings,
        "total_seconds": round(sum(timings.values()), 1),
        "device": str(device),
    }
    atomic_write_json(out / "demo.json", summary)
    return summary
