"""``shapezoo mesh`` and ``shapezoo eval``: fields to mesh files, and scoring against reference meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapezoo.io import locks

from ._common import finish, handle_errors, parse_names, progress
from .fit import resolve_device


@handle_errors
@locks("out")
def mesh(
    zoo: Annotated[Path, typer.Argument(help="Zoo folder.")],
    out: Annotated[Path, typer.Option(help="Output folder for NAME.FORMAT files.")],
    resolution: Annotated[int, typer.Option(help="Grid cells per side.")] = 256,
    format: Annotated[str, typer.Option(help="obj, ply, off, stl or glb.")] = "obj",
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (default: all).")] = None,
    dense: Annotated[bool, typer.Option(help="Evaluate the full grid instead of coarse-to-fine.")] = False,
    coarse: Annotated[
        int,
        typer.Option(
            help="First coarse-to-fine level (cells per side); parts thinner than "
            "1/COARSE of the domain can be missed: raise it for thin shapes."
        ),
    ] = 64,
    original_frame: Annotated[bool, typer.Option(help="Map vertices back to the source mesh's frame.")] = False,
    min_component: Annotated[float, typer.Option(help="Drop components below this share of faces.")] = 0.0,
    batch: Annotated[int, typer.Option(help="Fields evaluated together.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Extract a mesh from every field (marching cubes at logit 0) and write it in FORMAT."""
    import time
    import warnings

    from shapezoo.core.zoo import load_zoo
    from shapezoo.errors import ShapezooError
    from shapezoo.extract import EXPORT_FORMATS, ExtractConfig, export_mesh, extract_meshes
    from shapezoo.io import ensure_output_dir, read_json
    from shapezoo.meshes import Normalisation

    if format not in EXPORT_FORMATS:
        raise ShapezooError(f"unsupported --format '{format}' ({', '.join(EXPORT_FORMATS)})")
    z = load_zoo(zoo)
    config = ExtractConfig(resolution=resolution, coarse=None if dense else coarse, min_component=min_component)
    dev = resolve_device(device)
    ensure_output_dir(out)
    settings = {"zoo": str(Path(zoo).resolve()), "format": format, "original_frame": original_frame, **config.__dict__}
    previous = read_json(out / "mesh.json") if (out / "mesh.json").exists() else {}
    finished = {r["name"]: r for r in previous.get("meshes", [])} if previous.get("settings") == settings else {}
    wanted = parse_names(names) or z.names
    failures, rows, todo = [], [], []
    for name in wanted:
        problem = z.unusable(name)
        if problem:
            failures.append(problem)
        elif name in finished and Path(finished[name]["file"]).exists():
            rows.append(finished[name])  # a rerun with the same settings skips finished meshes
        else:
            todo.append(z.index(name))
    evals, start = 0, time.perf_counter()
    with progress() as bar, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = bar.add_task("meshing", total=len(todo), status="")
        for k in range(0, len(todo), batch):
            idx = todo[k : k + batch]
            names_k = [z.names[i] for i in idx]
            meshes, count = extract_meshes(z.spec, z.params[idx].to(dev), config, names_k)
            evals += count
            for i, name, (v, f) in zip(idx, names_k, meshes):
                norm = z.entries[i].get("normalisation")
                if original_frame and not norm:
                    raise ShapezooError(f"{name}: the zoo records no normalisation; drop --original-frame")
                path = out / f"{name}.{format}"
                export_mesh(v, f, path, Normalisation.from_dict(norm) if original_frame else None)
                rows.append({"name": name, "file": str(path), "vertices": len(v), "faces": len(f)})
            bar.update(task, advance=len(idx), status=names_k[-1])
    warnings_seen = [str(w.message) for w in caught]
    summary = {
        "zoo": str(zoo),
        "out": str(out),
        "settings": settings,
        "meshed_now": len(todo),
        "meshes": rows,
        "resolution": resolution,
        "dense": dense,
        "field_evaluations": evals,
        "seconds": time.perf_counter() - start,
        "warnings": warnings_seen,
        "failed": failures,
    }
    for w in warnings_seen:
        typer.echo(f"warning: {w}", err=True)
    finish(
        f"{len(rows)} meshes in {out}",
        ["name", "vertices", "faces"],
        [(r["name"], r["vertices"], r["faces"]) for r in rows[:10]],
        summary,
        Path(out) / "mesh.json",
        failures,
    )


@handle_errors
def evaluate(
    zoo: Annotated[Path | None, typer.Argument(help="Zoo folder (or use --pred for mesh files).")] = None,
    reference: Annotated[Path | None, typer.Option(help="Reference meshes, matched by name.")] = None,
    pred: Annotated[Path | None, typer.Option(help="Predicted mesh files instead of a zoo.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side (zoo mode).")] = 256,
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (zoo mode).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
):
    """Score fields (or mesh files) against reference meshes: IoU, Chamfer-L1/L2, F-score, normal consistency."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.errors import ShapezooError
    from shapezoo.evaluation import evaluate_meshes, evaluate_zoo
    from shapezoo.extract import ExtractConfig

    if reference is None or (zoo is None) == (pred is None):
        raise ShapezooError("give --reference MESHES and exactly one of ZOO or --pred DIR")
    dev = resolve_device(device)
    with progress() as bar:
        task = bar.add_task("evaluating", total=None, status="")

        def step(item: dict) -> None:
            bar.update(task, advance=1, status=item["name"] + (" [red]failed" if "error" in item else ""))

        if zoo is not None:
            z = load_zoo(zoo)
            bar.update(task, total=len(parse_names(names) or z.names))
            result = evaluate_zoo(z, reference, parse_names(names), ExtractConfig(resolution=resolution), dev, step)
        else:
            result = evaluate_meshes(pred, reference, dev, step)
    s = result["summary"]
    rows = [
        (
            key,
            s[key]["mean"] * (1e3 if key == "chamfer_l2" else 1),
            s[key]["median"] * (1e3 if key == "chamfer_l2" else 1),
            s[key]["worst"][0]["name"],
        )
        for key in s
    ]
    if out is not None:
        from shapezoo.io import atomic_write_json, ensure_output_dir

        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    finish(
        f"{len(result['entries'])} scored (CD-L2 x 10^3)",
        ["metric", "mean", "median", "worst"],
        rows,
        {"entries": len(result["entries"]), "summary": s, "failed": result["failed"], "report": str(out)},
        failures=[f["error"] for f in result["failed"]],
    )
