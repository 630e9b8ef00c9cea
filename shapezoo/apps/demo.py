"""The main job end to end on built-in procedural data, through the pretrained default space, ending in an HTML
report whose first screen shows what the space does.

generate new procedural shapes -> sample -> fit them from the default base (bias-only, as ``fit`` does) -> encode and
decode them through the default space, scored against their meshes -> a latent interpolation between two of them ->
new shapes from the default prior beside their nearest training shapes, scored -> a space of these fields alone
(what ``space train`` does) -> probe -> a small digits classifier zoo and its space -> report. Budget 1 takes about
50-60 s on 2 CPU cores; a rerun skips finished sampling, fitting and training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..core.latents import load_latents, save_latents
from ..core.zoo import load_zoo
from ..fields.evaluation import evaluate_zoo
from ..fields.extract import ExtractConfig, export_mesh, extract_meshes
from ..fields.fit_job import fit_zoo
from ..fields.fitting import FitConfig
from ..fields.learned_init import load_init
from ..fields.mesh_metrics import components
from ..fields.pretrained import default_base, resolve_prior, resolve_space
from ..fields.render import render_grid, render_strip, save_png
from ..fields.samples import SampleConfig, sample_meshes
from ..fields.space import ModelConfig, TrainConfig, load_space, train_space
from ..fields.space.jobs import SCREEN_PIECES, decode_latents, sample_members
from ..fields.space.operations import sequence, sequence_metrics
from ..io import atomic_write_bytes, atomic_write_json, ensure_output_dir
from ..schema import config_from_json
from .report import build_report
from .report_page import read_obj


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; ``scaled(budget)`` multiplies the work."""

    per_family: int = 2
    """New shapes per procedural family (5 families), none of them seen by the default space."""
    points: int | None = None
    """Occupancy samples per shape (None: the default space's recipe)."""
    fit_steps: int = 600
    fit_points: int = 512
    """Bias-only fitting steps per field from the default base, and training points per field and step: 0.6x the
    point evaluations of ``fit``'s recipe (500 x 1024), about half the demo's slowest stage for 0.3 points of encoded
    IoU (BENCHMARKS.md, "The demo in 90 s")."""
    resolution: int = 80
    """Marching-cubes grid for meshes, scores and the report. Surface tracing keeps thin attached parts (airplane
    wings) from a 40^3 start, so 80 scores as 96 did (Chamfer-L1 0.00438 vs 0.00437) for 0.62x the field
    evaluations (BENCHMARKS.md, "Surface tracing")."""
    interp_steps: int = 8
    generated: int = 10
    """Shapes drawn from the default prior, the families in turn (scored against this run's shapes)."""
    classifier_models: int = 48
    """Models in the demo's classifier zoo (mlp-16 on the bundled digits)."""
    classifier_epochs: int = 80
    """Classifier-space training epochs."""

    def scaled(self, budget: float) -> DemoConfig:
        """More shapes and samples for budget > 1 (fewer for < 1); sizes stay valid."""
        b = max(budget, 0.05)
        return replace(
            self,
            per_family=max(2, round(self.per_family * b)),
            generated=max(5, round(self.generated * b)),
            classifier_models=max(24, round(self.classifier_models * b)),
            classifier_epochs=max(10, round(self.classifier_epochs * b)),
        )


GENERATION_BENCHMARK = {
    "what": "benchmark: 400-shape procedural shift space, 80 held-out shapes (BENCHMARKS.md, Generation)",
    "1-nna": 0.613,
    "cov": 0.50,
}
"""The generation numbers measured at full size, printed beside the run's (a few shapes give noisy ones)."""

STAGES = (
    "generate",
    "sample",
    "fit",
    "encode",
    "interpolate",
    "generation",
    "render",
    "space",
    "probe",
    "classifiers",
    "report",
)


def _families(names: list[str]) -> list[str]:
    return [n.rsplit("_", 1)[0] for n in names]


def run_encode(out: Path, space, space_dir: Path, zoo, extract: ExtractConfig, device) -> dict:
    """The run's fields encoded and decoded through the space (``latents.safetensors``, the ``decoded`` zoo), scored
    against the ground truth into ``eval.json`` with their meshes in ``fields/`` (extracted once)."""
    labels = dict(zip(zoo.names, _families(zoo.names)))
    z = space.encode(zoo.params.to(device)).cpu()
    save_latents(out / "latents.safetensors", z, zoo.names, {"zoo": str(out / "zoo"), "labels": labels})
    decode_latents(space, space_dir, out / "latents.safetensors", out / "decoded")
    decoded = load_zoo(out / "decoded")
    report = evaluate_zoo(
        decoded, out / "shapes", config=extract, device=device, out=out / "eval.json", meshes=out / "fields"
    )
    meshes = [read_obj(out / "fields" / f"{name}.obj") for name in decoded.names]
    return {"meshes": meshes, "report": report, "z": z}


SHOWN_FAMILY = "chair"
"""The family the demo's interpolation walks: every pair of the demo's families, walked through the default space,
is in BENCHMARKS.md ("Pretrained default"); chairs stay one piece in it, tables and vases break mid-way."""


def choose_pair(names: list[str], z: torch.Tensor) -> tuple[str, str]:
    """The interpolation's ends: of the pairs of one family (``SHOWN_FAMILY`` when it has two shapes), the two
    furthest apart in latent space (the walk with the most to show that stays among shapes of that family)."""
    families = _families(names)
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names)) if families[i] == families[j]]
    shown = [(i, j) for i, j in pairs if families[i] == SHOWN_FAMILY]
    pairs = shown or pairs
    if not pairs:
        return names[0], names[-1]
    i, j = max(pairs, key=lambda p: float((z[p[0]] - z[p[1]]).norm()))
    return names[i], names[j]


def run_interpolation(out: Path, space, zoo, a: str, b: str, steps: int, extract: ExtractConfig, device) -> tuple:
    """A latent walk from field ``a`` to ``b``, meshed into ``interpolation/`` with each step's metrics and pieces:
    (meshes, rows)."""
    params = sequence(space, zoo.weights(a), zoo.weights(b), steps, "lerp")
    meshes, rows = sequence_metrics(space, params, extract, device)
    ensure_output_dir(out / "interpolation")
    for row, (v, f) in zip(rows, meshes):
        row.update(components(v, f))
        export_mesh(v, f, out / "interpolation" / f"step_{row['step']:02d}.obj")
    atomic_write_json(
        out / "interpolation" / "interpolation.json",
        {"a": {"name": a}, "b": {"name": b}, "mode": "lerp", "steps": rows},
    )
    return meshes, rows


def training_meshes(names: list[str]) -> dict[str, bytes]:
    """The OBJ files of those of the default space's training shapes ``names`` that the procedural generators rebuild
    (``procedural__FAMILY_SEED`` shapes whose rebuilt bytes have the SHA-256 the card records); the others (CAPOD
    meshes: the training meshes do not ship) are left out."""
    import hashlib

    from shapezoo_datasets import FAMILIES, build, obj_bytes, sample_params

    from ..fields.pretrained import card

    recorded = {s["name"]: s["sha256"] for s in card()["data"]["shapes"]}
    found = {}
    for name in names:
        family, _, seed = name.removeprefix("procedural__").rpartition("_")
        if name.startswith("procedural__") and family in FAMILIES and seed.isdigit() and name in recorded:
            data = obj_bytes(build(family, sample_params(family, int(seed))))
            if hashlib.sha256(data).hexdigest() == recorded[name]:
                found[name] = data
    return found


def run_generation(out: Path, space, space_dir: Path, z_run: torch.Tensor, count: int, extract, device) -> dict:
    """``count`` shapes from the default prior, the families of this run in turn, meshed into ``generated/FAMILY``
    (screened by ``sample_members``: fragmented draws are redrawn); scored (MMD, COV, 1-NNA)
    against this run's ground-truth shapes and for novelty against the training shape nearest in latent to each
    sample and each run shape, into ``generation/``. Those training shapes go into ``train_nearest``: rebuilt by
    the generators when procedural (checked against the card's SHA-256), decoded by the space otherwise (the CAPOD
    meshes do not ship)."""
    from ..fields.generation import evaluate_generation

    prior = resolve_prior("auto", space_dir)
    families = list(dict.fromkeys(_families(load_latents(out / "latents.safetensors")[1])))
    drawn, draws, screen = [], 0, 1
    for k, family in enumerate(families):
        n = count // len(families) + (k < count % len(families))
        if n:
            summary = sample_members(
                space,
                space_dir,
                n,
                out / "generated" / family,
                k,
                extract,
                device,
                prior=prior,
                family=family,
                nearest=False,
            )
            draws, screen = draws + sum(r.get("draws", 1) for r in summary["samples"]), summary["screen"]
            drawn.append(load_latents(out / "generated" / family / "latents.safetensors")[0])
    train_z, train_names = space.train_latents(space_dir)
    wanted = torch.cat([*drawn, z_run])
    nearest = sorted({int(i) for i in torch.cdist(wanted, train_z).argmin(1)})
    ensure_output_dir(out / "train_nearest")
    rebuilt = training_meshes([train_names[i] for i in nearest])  # the procedural ones, as trained on
    for name, data in rebuilt.items():
        atomic_write_bytes(out / "train_nearest" / f"{name}.obj", data)
    decoded = [i for i in nearest if train_names[i] not in rebuilt]  # the others as the space decodes them
    if decoded:
        picked = [train_names[i] for i in decoded]
        meshes, _ = extract_meshes(space.spec, space.decode(train_z[decoded]).to(device), extract, picked)
        for name, (v, f) in zip(picked, meshes):
            if len(f):
                export_mesh(v, f, out / "train_nearest" / f"{name}.obj")
    result = evaluate_generation(out / "generated", out / "shapes", out / "train_nearest", out / "generation")
    pieces = [components(*m)["components"] for m in _read_meshes(out / "generated")]
    return {
        **result["metrics"],
        "novelty_ratio": result["novelty"]["ratio"],
        "pieces_median": float(np.median(pieces)),
        "samples": len(pieces),
        "draws": draws,
        "screen": screen,
        "screen_pieces": SCREEN_PIECES,
        "benchmark": GENERATION_BENCHMARK,
    }


def _read_meshes(folder: Path) -> list:
    from ..fields.generation import read_shapes

    return read_shapes(folder)[1]


def run_probe(out: Path, zoo, meshes: list) -> dict:
    """Families from the run's latents (through the default space) vs the PCA of their raw weights, stratified folds
    (as many as the smallest family allows, at most 5) into ``probe.json``; and a retrieval strip: the first field
    and its five nearest by latent (cosine)."""
    from ..core.kfold import ProbeConfig
    from ..fields.probing import probe_latents

    z, names = load_latents(out / "latents.safetensors")
    counts = np.unique(_families(names), return_counts=True)[1]
    config = ProbeConfig(folds=int(min(5, counts.min())))
    kinds = ("latents", "pca")  # raw weights (133k per field) are the slow probe; PCA is their summary
    result = probe_latents(out / "latents.safetensors", ("classify", "retrieve"), kinds, out / "zoo", config)
    atomic_write_json(out / "probe.json", result)
    unit = torch.nn.functional.normalize(z, dim=1)
    picked = [names[i] for i in (unit @ unit[0]).argsort(descending=True)[:6].tolist()]  # the query first
    strip = [meshes[names.index(n)] for n in picked]
    save_png(render_strip(strip, [f"query: {picked[0]}"] + picked[1:], size=200), out / "renders" / "retrieval.png")
    return {k: result[k]["classify"]["linear_accuracy"] for k in kinds}


def run_classifiers(out: Path, models: int, epochs: int, device: str | torch.device = "cpu") -> dict:
    """The classifier modality in small: a digits zoo of mlp-16 models -> space -> original vs decoded accuracy ->
    accuracy along the latent and raw-weight paths from the weakest to the strongest model."""
    from ..classifiers.archs import ClassifierSpec
    from ..classifiers.data import load_digits
    from ..classifiers.jobs import evaluate_to_file, interpolate_models
    from ..classifiers.space import SpaceConfig, load_classifier_space
    from ..classifiers.train import SpaceTrainConfig, train_classifier_space
    from ..classifiers.zoo import ZooConfig, train_zoo

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


def run_renders(out: Path, names: list[str], decoded: list, strip: list) -> None:
    """PNG renders beside the report: each shape's ground truth beside its decode, the decoded zoo, the strip."""
    ensure_output_dir(out / "renders")
    truth = _read_meshes(out / "shapes")
    pairs = [m for pair in zip(truth, decoded) for m in pair]
    pair_labels = [label for n in names for label in (f"{n}: ground truth", "encoded + decoded")]
    save_png(render_grid(pairs, pair_labels, cols=4, size=200), out / "renders" / "encoded_vs_truth.png")
    save_png(render_grid(decoded, names, cols=5, size=200), out / "renders" / "zoo_grid.png")
    labels = [f"t={i / (len(strip) - 1):.2f}" for i in range(len(strip))]
    save_png(render_strip(strip, labels, size=200), out / "renders" / "interpolation_strip.png")


def write_capability(out: Path, shapes: int, ev: dict, interpolation: dict, generation: dict) -> None:
    """capability.json: what the report's first section shows (encoding, interpolation, generation)."""
    encoded = {"shapes": shapes, "iou_median": ev["iou"]["median"], "chamfer_l2_median": ev["chamfer_l2"]["median"]}
    capability = {"space": "default", "encoded": encoded, "interpolation": interpolation, "generation": generation}
    atomic_write_json(out / "capability.json", capability)


def run_demo(
    out: str | Path,
    config: DemoConfig = DemoConfig(),
    device: str | torch.device = "cpu",
    on_stage: Callable[[str, float], None] | None = None,
) -> dict:
    """Run every stage into ``out``; returns the summary also written to ``out/demo.json`` (times under
    ``timing``)."""
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

    space_dir = resolve_space("default")
    space = load_space(space_dir, device)
    for family in FAMILIES:
        generate(family, config.per_family, out / "shapes", seed=0)
    done("generate")
    recipe = space.meta.get("zoo", {}).get("meta", {}).get("samples", {}).get("config", {})
    samples = config_from_json(SampleConfig, recipe, space_dir / "space.json")
    sample_meshes(out / "shapes", out / "samples", replace(samples, points=config.points or samples.points))
    done("sample")
    base = load_init(default_base())
    fit = FitConfig(steps=config.fit_steps, points_per_step=config.fit_points)  # else the shift recipe, as `fit`
    fit_summary = fit_zoo(out / "samples", out / "zoo", base.spec, fit, batch=32, device=device, init=base)
    zoo = load_zoo(out / "zoo")
    done("fit")
    extract = ExtractConfig(resolution=config.resolution)
    encoded = run_encode(out, space, space_dir, zoo, extract, device)
    done("encode")
    a, b = choose_pair(zoo.names, encoded["z"])
    strip, rows = run_interpolation(out, space, zoo, a, b, config.interp_steps, extract, device)
    done("interpolate")
    generation = run_generation(out, space, space_dir, encoded["z"], config.generated, extract, device)
    done("generation")
    run_renders(out, zoo.names, encoded["meshes"], strip)
    done("render")
    # What `space train` does with a user's own zoo of base fields: a shift space of these fields alone, exact.
    own = train_space(zoo, out / "space", ModelConfig(), TrainConfig(val=0.0, test=0.2), device)
    assert own is not None  # a single process is its own lead rank
    done("space")
    probe = run_probe(out, zoo, encoded["meshes"])
    done("probe")
    classifiers = run_classifiers(out / "classifiers", config.classifier_models, config.classifier_epochs, device)
    done("classifiers")
    steps = [{k: r[k] for k in ("step", "components", "floating_area")} for r in rows]
    ev = encoded["report"]["summary"]
    write_capability(out, len(zoo.names), ev, {"a": a, "b": b, "steps": steps}, generation)
    sections = build_report(out, out / "report.html")
    done("report")
    summary = {
        "out": str(out),
        "config": config.__dict__,
        "fields": len(zoo.names),
        "fit_iou_median": fit_summary["iou"].get("median"),
        "eval": {k: v["median"] for k, v in ev.items()},
        "space": {k: v["field_iou_median"] for k, v in own["results"].items()},
        "design": own["design"],
        "interpolation": [a, b],
        "interpolation_pieces_max": max(s["components"] for s in steps),
        "interpolation_floating_max": max(s["floating_area"] for s in steps),
        "probe": probe,
        "generation": generation,
        "classifiers": classifiers,
        "report": str(out / "report.html"),
        "sections": sections,
        "timing": {"seconds": timings, "total_seconds": round(sum(timings.values()), 1)},
        "device": str(device),
    }
    atomic_write_json(out / "demo.json", summary)
    return summary
