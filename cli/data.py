"""``shapezoo data``: generate procedural shapes and sample occupancy from meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import images
from ._common import Ray, finish, handle_errors, progress

app = typer.Typer(help="Make data: procedural families, occupancy samples, image folders.", no_args_is_help=True)


@app.command()
@handle_errors
def generate(
    family: Annotated[str, typer.Argument(help="Shape family: chair, table, airplane, vase or mug.")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder for FAMILY_SSSS.obj + .json (default ./FAMILY).")
    ] = None,
    count: Annotated[int, typer.Option(help="Number of shapes.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the first shape; shape i uses seed + i.")] = 0,
):
    """Generate COUNT watertight shapes of a procedural FAMILY, each with its parameters saved beside it."""
    from shapezoo_datasets.families import generate_run

    records, summary = generate_run(family, count, out or Path(family), seed=seed)
    finish(
        f"{family}: {len(records)} shapes",
        ["name", "faces", "watertight"],
        [(r["name"], r["faces"], r["watertight"]) for r in records[:10]],
        summary,
    )


@app.command()
@handle_errors
def sample(
    meshes: Annotated[Path, typer.Argument(help="A mesh file or a folder tree of meshes.")],
    out: Annotated[Path, typer.Option(help="Output folder: NAME.safetensors per shape + samples.json.")],
    points: Annotated[
        int,
        typer.Option(help="Samples per shape (half uniform, half near the surface); 300000 for 4800-step fits."),
    ] = 100_000,
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    inside: Annotated[str, typer.Option(help="Inside test: auto, raycast (watertight) or winding.")] = "auto",
    sigmas: Annotated[
        str, typer.Option(help="Noise scales of the near-surface samples, comma-separated, mixed in equal parts.")
    ] = "0.003,0.01,0.03,0.06",
    ray: Ray = None,
    threads: Annotated[int, typer.Option(help="CPU threads per Ray task.")] = 1,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV of name,label (default: procedural family, or the top folder of a class/... tree)."),
    ] = None,
):
    """Sample labelled occupancy points for every mesh; resumes, and skips (but reports) bad files."""
    from shapezoo.errors import ShapezooError
    from shapezoo.fields.meshes import find_meshes, read_labels
    from shapezoo.fields.samples import SampleConfig, sample_meshes

    if inside not in ("auto", "raycast", "winding"):
        raise ShapezooError(f"--inside must be auto, raycast or winding, got '{inside}'")
    try:
        scales = tuple(float(v) for v in sigmas.split(","))
    except ValueError:
        raise ShapezooError(f"--sigmas must be comma-separated numbers, got '{sigmas}'") from None
    items = find_meshes(meshes)
    config = SampleConfig(points=points, seed=seed, inside=inside, sigmas=scales)  # type: ignore[arg-type]
    with progress() as bar:
        task = bar.add_task("sampling", total=len(items), status="")

        def step(entry: dict) -> None:
            bar.advance(task)
            bar.update(task, status=entry["name"] + (" [red]failed" if "error" in entry else ""))

        chosen = read_labels(labels) if labels else None
        index = sample_meshes(items, out, config, on_shape=step, ray=ray, threads=threads, labels=chosen)
    shapes, failed = index["shapes"], index["failed"]
    robust = sum(1 for s in shapes if not s["watertight"])
    rows = [(s["name"], s["method"], s["inside_fraction"], s.get("warning", "")) for s in shapes[:8]]
    summary = {
        "out": str(out),
        "shapes": len(shapes),
        "failed": failed,
        "robust_inside_test": robust,
        "skipped": sum(1 for s in shapes if s.get("skipped")),
        "points": points,
    }
    finish(
        f"sampled {len(shapes)} shapes ({robust} not watertight)",
        ["name", "inside test", "inside share", "note"],
        rows,
        summary,
        failures=[f["error"] for f in failed],
    )


app.command("images")(images.images)
