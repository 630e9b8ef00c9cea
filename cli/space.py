"""``shapezoo space``, ``encode``, ``decode``, ``interpolate``, ``optimize``, ``sample``: the latent space of fields."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors, parse_names, progress
from .fit import resolve_device

app = typer.Typer(help="Train and inspect weight spaces (latent spaces of field zoos).", no_args_is_help=True)
Refine = Annotated[
    int,
    typer.Option(
        help="Latent-optimisation steps after the encoder, against each field's own function (0: encoder only)."
    ),
]


@app.command("train")
@handle_errors
def train(
    zoo: Annotated[Path, typer.Argument(help="Field zoo to learn the space of.")],
    out: Annotated[Path, typer.Option(help="Space folder (created, or resumed when it exists).")],
    design: Annotated[
        str, typer.Option(help="neuron (permutation-invariant) or prep (the paper's baseline).")
    ] = "neuron",
    latent: Annotated[int, typer.Option(help="Latent size.")] = 512,
    trunk: Annotated[
        int, typer.Option(help="Width of the neuron decoder's MLP before its heads (0: weights affine in z).")
    ] = 0,
    codes: Annotated[
        bool, typer.Option(help="Learn a code per training field with the decoder (auto-decoding) or autoencode.")
    ] = True,
    epochs: Annotated[int, typer.Option(help="Passes over the training fields.")] = 400,
    batch: Annotated[int, typer.Option(help="Fields per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    weight_loss: Annotated[float, typer.Option(help="Weight of the normalised weight-MSE term.")] = 0.05,
    points: Annotated[int, typer.Option(help="Query points per field and step.")] = 2048,
    val: Annotated[float, typer.Option(help="Validation share of the fields (best checkpoint).")] = 0.1,
    test: Annotated[float, typer.Option(help="Held-out share of the fields (never trained on).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the model and the data order.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Train an encoder/decoder of field weights with a functional loss; keeps the best validation checkpoint."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.space import ModelConfig, TrainConfig, train_space

    z = load_zoo(zoo)
    model = ModelConfig(design=design, latent=latent, trunk=trunk)  # type: ignore[arg-type]
    config = TrainConfig(
        epochs=epochs,
        batch=batch,
        lr=lr,
        weight_loss=weight_loss,
        points=points,
        val=val,
        test=test,
        seed=seed,
        codes=codes,
    )
    with progress() as bar:
        task = bar.add_task("training", total=epochs, status="")

        def on_eval(entry: dict) -> None:
            tr, v = entry["train"], entry.get("val") or entry.get("train_eval")
            bar.update(
                task,
                completed=entry["epoch"],
                status=f"functional {tr['functional']:.4f} weight {tr['weight']:.3f} | "
                f"val functional {v['functional']:.4f} field IoU {v['field_iou_median']:.3f}",
            )

        summary = train_space(z, out, model, config, resolve_device(device), on_eval)
    rows = [(k, r["functional"], r["field_iou_median"], r["field_iou_mean"]) for k, r in summary["results"].items()]
    finish(
        f"space {out} ({design}, latent {latent}; best epoch {summary['best_epoch']})",
        ["split", "functional", "field IoU median", "field IoU mean"],
        rows,
        summary,
        Path(out) / "train_summary.json",
    )


@app.command("info")
@handle_errors
def info(space: Annotated[Path, typer.Argument(help="Space folder.")]):
    """Print a space's architecture, design, splits and results."""
    import json

    from shapezoo.space import load_space

    s = load_space(space)
    typer.echo(
        json.dumps(
            {
                "spec": s.spec.to_json(),
                "model": s.model.config.__dict__,
                "fields": {k: len(v) for k, v in s.meta.get("split", {}).items()},
                "best": s.meta.get("best"),
                "results": s.meta.get("results", {}).get("results"),
            },
            indent=1,
        )
    )


@handle_errors
def encode(
    source: Annotated[
        Path, typer.Argument(help="A field zoo, or a mesh file or folder of meshes (sampled and fitted first).")
    ],
    space: Annotated[Path, typer.Option(help="Space folder.")],
    out: Annotated[Path, typer.Option(help="latents.safetensors to write.")],
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (default: all usable).")] = None,
    refine: Refine = 100,
    steps: Annotated[
        int, typer.Option(help="Meshes only: fitting steps per shape (0: the recipe of the space's zoo).")
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Map fields to latents (encoder pass, optionally refined against each field's own function).

    Meshes are sampled and fitted (batched, from the start point and with the recipe of the space's zoo) first.
    """
    import torch

    from shapezoo.core.zoo import ZOO_JSON, load_zoo
    from shapezoo.errors import ShapezooError
    from shapezoo.meshes import find_meshes
    from shapezoo.space import load_space, save_latents
    from shapezoo.space.explore import fit_meshes
    from shapezoo.space.latent import refine_latents

    if refine < 0:
        raise ShapezooError(f"--refine must be >= 0, got {refine}")
    dev = resolve_device(device)
    s = load_space(space, dev)
    failures: list[str] = []
    skipped: list[str] = []
    if (source / ZOO_JSON).exists():
        z = load_zoo(source)
        s.check_spec(z.spec, source)
        chosen = parse_names(names)
        if chosen is None:  # every usable field; each one left out is said
            problems = {n: z.unusable(n) for n in z.names}
            skipped = [p for p in problems.values() if p]
            wanted = [n for n, p in problems.items() if p is None]
        else:
            wanted = chosen
            for n in wanted:
                problem = z.unusable(n)
                if problem:
                    raise ShapezooError(problem)
        params = torch.stack([z.weights(n) for n in wanted]) if wanted else torch.zeros(0, z.spec.layout().size)
        norms = {n: z.entries[z.index(n)].get("normalisation") for n in wanted}
        fits: dict = {}
    else:
        items = find_meshes(source)
        chosen = parse_names(names)
        if chosen is not None:
            items = [(n, p) for n, p in items if n in chosen]
        with progress() as bar:
            task = bar.add_task("sampling and fitting", total=None, status=f"{len(items)} meshes")
            params, records, failed = fit_meshes(s, items, dev, steps or None)
            bar.update(task, total=1, completed=1, status="done")
        failures = [f["error"] for f in failed]
        wanted = [r["name"] for r in records]
        norms = {r["name"]: r["normalisation"] for r in records}
        fits = {
            r["name"]: {"source": r["source"], "fit_iou": r["fit_iou"], "fit_steps": r["fit_steps"]} for r in records
        }
    latents = refine_latents(s, params, s.encode(params), refine)
    extra = {"space": str(space), ("zoo" if not fits else "meshes"): str(source), "normalisation": norms}
    if fits:
        extra["fits"] = fits
    save_latents(out, latents, wanted, extra)
    summary = {
        "out": str(out),
        "latents": len(wanted),
        "latent_size": s.latent_size,
        "refine_steps": refine,
        "skipped": skipped,
        "failed": failures,
    }
    for line in skipped:
        typer.echo(f"warning: skipped {line}", err=True)
    if fits:
        summary["fit_iou_median"] = float(torch.tensor([f["fit_iou"] for f in fits.values()]).median())
    finish(
        f"{len(wanted)} latents in {out}",
        ["name", "norm"],
        [(n, float(v.norm())) for n, v in zip(wanted[:10], latents)],
        summary,
        failures=failures,
    )


@handle_errors
def decode(
    latents: Annotated[Path, typer.Argument(help="latents.safetensors (z: (N, d)).")],
    space: Annotated[Path, typer.Option(help="Space folder.")],
    out: Annotated[Path, typer.Option(help="New zoo folder for the decoded fields.")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Decode latents into a field zoo (mesh, eval and encode work on it like on any zoo)."""
    import json

    from shapezoo.core.zoo import ZOO_JSON, save_zoo
    from shapezoo.io import load_tensors, read_json, sha256_file
    from shapezoo.space import load_latents, load_space

    s = load_space(space, resolve_device(device))
    z, names = load_latents(latents)
    s.check_latents(z, latents)
    source = {"space": str(space), "latents": str(latents), "sha256": sha256_file(latents)}
    if (out / ZOO_JSON).exists() and read_json(out / ZOO_JSON).get("decoded") == source:
        summary = {"zoo": str(out), "fields": 0, "skipped": "already holds these decodes; nothing to do"}
        finish(f"{out}: nothing to do", ["name"], [], summary)
        return
    norms = json.loads(load_tensors(latents)[1].get("normalisation", "{}"))
    params = s.decode(z).cpu()
    entries = [{"name": n, "status": "ok", "normalisation": norms.get(n), "decoded_from": str(latents)} for n in names]
    save_zoo(out, s.spec, params, entries, s.field_init(), {"decoded": source})
    finish(
        f"{len(names)} fields decoded into {out}",
        ["name"],
        [(n,) for n in names[:10]],
        {"zoo": str(out), "fields": len(names)},
    )


def _endpoint(s, spec_or_name: str, zoo, dev):
    """A field (P,) and a label for an interpolation endpoint: a field name in ``zoo`` or a mesh file."""
    from shapezoo.errors import ShapezooError

    if Path(spec_or_name).is_file():
        from shapezoo.space.explore import fit_mesh

        params, record = fit_mesh(s, spec_or_name, dev)
        return params.cpu(), record["name"], {"mesh": spec_or_name, "fit_iou": record["fit_iou"]}
    if zoo is None:
        raise ShapezooError(f"'{spec_or_name}' is not a mesh file; give --zoo to use field names")
    problem = zoo.unusable(spec_or_name)
    if problem:
        raise ShapezooError(problem)
    return zoo.weights(spec_or_name), spec_or_name, {"field": spec_or_name}


@handle_errors
def interpolate(
    a: Annotated[str, typer.Argument(help="Start: a field name in --zoo, or a mesh file (fitted on the fly).")],
    b: Annotated[str, typer.Argument(help="End: a field name in --zoo, or a mesh file.")],
    space: Annotated[Path, typer.Option(help="Space folder.")],
    out: Annotated[Path, typer.Option(help="Folder for step_NN.obj files and interpolation.json.")],
    zoo: Annotated[Path | None, typer.Option(help="Zoo holding the named fields.")] = None,
    steps: Annotated[int, typer.Option(help="Number of steps, endpoints included.")] = 8,
    mode: Annotated[str, typer.Option(help="lerp or slerp (latent interpolation).")] = "lerp",
    weights: Annotated[bool, typer.Option("--weights", help="Interpolate raw weights instead (baseline).")] = False,
    refine: Refine = 100,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Walk from A to B through the latent space (or raw weights) and mesh every step."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.extract import ExtractConfig, export_mesh
    from shapezoo.io import ensure_output_dir
    from shapezoo.space import load_space
    from shapezoo.space.explore import sequence, sequence_metrics

    dev = resolve_device(device)
    s = load_space(space, dev)
    z = load_zoo(zoo) if zoo is not None else None
    if z is not None:
        s.check_spec(z.spec, zoo)
    ensure_output_dir(out)
    with progress() as bar:
        task = bar.add_task("interpolating", total=3, status="endpoints")
        pa, na, ia = _endpoint(s, a, z, dev)
        pb, nb, ib = _endpoint(s, b, z, dev)
        bar.update(task, advance=1, status="decoding")
        params = sequence(s, pa, pb, steps, mode, weights, refine)
        bar.update(task, advance=1, status="meshing")
        meshes, rows = sequence_metrics(s, params, ExtractConfig(resolution=resolution), dev)
        bar.update(task, advance=1, status="done")
    for row, (v, f) in zip(rows, meshes):
        row["file"] = str(out / f"step_{row['step']:02d}.obj")
        export_mesh(v, f, row["file"])
    summary = {"a": {"name": na, **ia}, "b": {"name": nb, **ib}, "mode": "weights" if weights else mode, "steps": rows}
    finish(
        f"{na} -> {nb} ({summary['mode']}), {steps} steps in {out}",
        ["step", "volume", "faces", "CD-L2 to A x1e3", "CD-L2 to B x1e3"],
        [
            (
                r["step"],
                r["volume"],
                r["faces"],
                1e3 * r.get("chamfer_l2_to_start", float("nan")),
                1e3 * r.get("chamfer_l2_to_end", float("nan")),
            )
            for r in rows
        ],
        summary,
        out / "interpolation.json",
    )


def _read_points(path: Path, normalise: bool):
    """(n, 3) points and optional (n, 3) normals from a point-cloud or mesh file (vertices are used)."""
    import numpy as np
    import torch

    from shapezoo.errors import InputError

    if not path.is_file():
        raise InputError(path, "file not found")
    normals = None
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
            pts, normals = arr[:, :3], (arr[:, 3:6] if arr.shape[1] >= 6 else None)
        elif path.suffix.lower() == ".xyz":
            arr = np.loadtxt(path, ndmin=2)
            pts, normals = arr[:, :3], (arr[:, 3:6] if arr.shape[1] >= 6 else None)
        else:
            import trimesh

            geom = trimesh.load(path, process=False)
            if not hasattr(geom, "vertices"):
                raise InputError(path, "holds no points (an empty point cloud or mesh)")
            pts = np.asarray(geom.vertices)
            raw = geom.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
            if raw is not None and {"nx", "ny", "nz"} <= set(raw.dtype.names or ()):
                normals = np.stack([raw["nx"], raw["ny"], raw["nz"]], 1)
    except (ValueError, OSError, IndexError, AttributeError) as exc:
        raise InputError(path, f"cannot read points ({exc})") from None
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
        raise InputError(path, "holds no finite (n, 3) points")
    if normalise:
        lo, hi = pts.min(0), pts.max(0)
        pts = (pts - (lo + hi) / 2) * (0.9 / max(float((hi - lo).max()), 1e-12))
    elif np.abs(pts).max() > 0.5:
        raise InputError(path, "points lie outside the frame [-0.5, 0.5]^3; pass --normalise to fit them into it")
    return torch.as_tensor(pts, dtype=torch.float32), (
        None if normals is None else torch.as_tensor(np.asarray(normals, dtype=np.float64), dtype=torch.float32)
    )


@handle_errors
def optimize(
    space: Annotated[Path, typer.Option(help="Space folder.")],
    points: Annotated[Path, typer.Option(help="Partial/noisy point cloud (.ply with optional normals, .xyz, .npy).")],
    out: Annotated[Path, typer.Option(help="Output folder (completed.obj, optimize.json, latent.safetensors).")],
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    lr: Annotated[float, typer.Option(help="Adam step size in whitened latent units.")] = 0.05,
    prior: Annotated[float, typer.Option(help="Weight of the Gaussian latent prior.")] = 1e-3,
    normalise: Annotated[bool, typer.Option(help="Centre and scale the points into the frame.")] = False,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Find the latent whose decoded field best explains a point cloud (shape completion) and mesh it."""
    from shapezoo.extract import ExtractConfig, export_mesh, extract_meshes
    from shapezoo.io import ensure_output_dir
    from shapezoo.space import Evidence, OptimizeConfig, load_space, optimize_latent, save_latents
    from shapezoo.space.explore import prior_from_space

    dev = resolve_device(device)
    s = load_space(space, dev)
    pts, normals = _read_points(points, normalise)
    evidence = Evidence.from_surface(pts, normals)
    prior_, _, _ = prior_from_space(s, space)
    ensure_output_dir(out)
    with progress() as bar:
        task = bar.add_task("optimising", total=steps, status="")
        z, history = optimize_latent(
            s,
            evidence,
            prior_,
            OptimizeConfig(steps=steps, lr=lr, prior=prior),
            on_step=lambda i, h: bar.update(task, completed=i + 1, status=f"evidence {h['evidence']:.4f}"),
        )
    params = s.decode(z[None])
    (mesh,), _ = extract_meshes(s.spec, params, ExtractConfig(resolution=resolution), ["completed"])
    export_mesh(*mesh, out / "completed.obj")
    save_latents(out / "latent.safetensors", z[None], ["completed"])
    summary = {
        "points": len(pts),
        "normals": normals is not None,
        "evidence_points": len(evidence.points),
        "mesh": str(out / "completed.obj"),
        "faces": len(mesh[1]),
        "history": history,
    }
    finish(
        f"completed shape in {out}",
        ["step", "evidence", "prior"],
        [(h["step"], h["evidence"], h["prior"]) for h in history[:: max(1, len(history) // 8)]],
        summary,
        out / "optimize.json",
    )


@handle_errors
def sample(
    space: Annotated[Path, typer.Option(help="Space folder.")],
    count: Annotated[int, typer.Option(help="Number of new members.")] = 8,
    out: Annotated[Path, typer.Option(help="Output folder (sample_NN.obj, sample.json, latents.safetensors).")] = Path(
        "samples_out"
    ),
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Draw new members from a Gaussian fitted to the training latents; report how close each is to training."""
    from shapezoo.errors import ShapezooError
    from shapezoo.extract import ExtractConfig, export_mesh, extract_meshes
    from shapezoo.io import ensure_output_dir
    from shapezoo.space import load_space, save_latents
    from shapezoo.space.explore import nearest_training, prior_from_space

    if count < 1:
        raise ShapezooError(f"--count must be >= 1, got {count}")
    dev = resolve_device(device)
    s = load_space(space, dev)
    prior_, train_z, train_names = prior_from_space(s, space)
    z = prior_.sample(count, seed)
    ensure_output_dir(out)
    config = ExtractConfig(resolution=resolution)
    rows = []
    with progress() as bar:
        task = bar.add_task("sampling", total=count, status="")
        for i in range(count):
            (mesh,), _ = extract_meshes(s.spec, s.decode(z[i : i + 1]), config, [f"sample_{i:02d}"])
            name = f"sample_{i:02d}"
            row = {"name": name, "file": str(out / f"{name}.obj"), "faces": len(mesh[1])}
            if len(mesh[1]):
                export_mesh(*mesh, row["file"])
                row.update(nearest_training(s, z[i], train_z, train_names, mesh, config, device=dev))
            rows.append(row)
            bar.update(task, advance=1, status=name)
    save_latents(out / "latents.safetensors", z, [r["name"] for r in rows])
    finish(
        f"{count} samples in {out}",
        ["name", "faces", "nearest shape", "CD-L2 x1e3", "latent dist"],
        [
            (
                r["name"],
                r["faces"],
                r.get("nearest_shape", "-"),
                1e3 * r.get("chamfer_l2_to_nearest_shape", float("nan")),
                r.get("latent_distance", float("nan")),
            )
            for r in rows
        ],
        {"samples": rows, "prior": "gaussian (shrunk covariance) over the training latents"},
        out / "sample.json",
    )
