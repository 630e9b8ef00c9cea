"""``shapezoo fit`` and ``shapezoo zoo``: batched fitting of field zoos, and looking inside them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Ray, Threads, finish, handle_errors, progress

zoo_app = typer.Typer(help="Inspect and export field zoos.", no_args_is_help=True)


@handle_errors
def fit(
    samples: Annotated[Path, typer.Argument(help="Samples folder made by 'shapezoo data sample'.")],
    out: Annotated[Path, typer.Option(help="Zoo folder (created, or resumed when it exists).")],
    arch: Annotated[
        str | None,
        typer.Option(
            help="siren (sine, ω0=30) or relu_pe (ReLU + Fourier features). Without --arch, --width and --depth a "
            "fit from an --init folder takes that init's architecture, others siren 128 x 3."
        ),
    ] = None,
    width: Annotated[int | None, typer.Option(help="Hidden units per layer (default 128).")] = None,
    depth: Annotated[int | None, typer.Option(help="Hidden layers (default 3).")] = None,
    steps: Annotated[
        int, typer.Option(help="Adam steps per field (0: the recipe's, 500 from a learned init, else 4800).")
    ] = 0,
    points_per_step: Annotated[int, typer.Option(help="Training points per field per step.")] = 1024,
    lr: Annotated[
        float,
        typer.Option(help="Peak learning rate, cosine decay (0: the recipe's, 2e-3 from a shift base, else 5e-4)."),
    ] = 0.0,
    target_iou: Annotated[float, typer.Option(help="Stop a field early at this training IoU (0: never).")] = 0.0,
    hard_fraction: Annotated[
        float,
        typer.Option(
            help="Share of each step's points picked as the highest-loss (-1: the recipe's, 0.5 in fits of <= 500 "
            "steps from a learned init, else 0; 0: none)."
        ),
    ] = -1.0,
    batch: Annotated[int, typer.Option(help="Fields fitted together in one job.")] = 32,
    device: Device = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the shared initialisation.")] = 0,
    template: Annotated[
        str, typer.Option(help="Shape fitted first; every field then starts from its weights (for weight spaces).")
    ] = "",
    init: Annotated[
        str,
        typer.Option(
            help="Where fields start: 'default' (without --arch/--width/--depth/--template: the pretrained base, so "
            "the fields are bias-only fields of the default space; else as 'learned'), 'learned' (the init bundled "
            "for the architecture, full-weight fits; seeded where there is none), 'seeded', or an init folder "
            "('shapezoo init learn' or 'init base')."
        ),
    ] = "default",
    ray: Ray = None,
    threads: Threads = 0,
):
    """Fit one occupancy field per sampled shape, BATCH fields at a time; a rerun resumes an interrupted job.

    With --ray every batch is a task (one GPU each where the cluster has GPUs); the zoo is the same as without."""
    from shapezoo.fields.fit_job import fit_zoo
    from shapezoo.fields.fitting import FitConfig
    from shapezoo.fields.learned_init import choose_init, load_init
    from shapezoo.fields.network import FieldSpec
    from shapezoo.fields.pretrained import fit_start
    from shapezoo.runtime import resolve_device

    sized = arch is not None or width is not None or depth is not None
    if init == "default" and not sized and not template:
        init = fit_start(out)
    if not sized and init not in ("default", "learned", "seeded"):
        start = load_init(init)  # e.g. a wider shift base: its fields take its architecture
        spec = start.spec
    else:
        sizes = {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}
        spec = FieldSpec.from_arch(arch or "siren", **sizes)
        start = choose_init(init, spec, out, template=bool(template))
    shift = start is not None and start.modulation == "shift"
    config = FitConfig(
        steps=steps,
        points_per_step=points_per_step,
        lr=lr or FitConfig.default_lr("biases" if shift else "all"),
        target_iou=target_iou or None,
        hard_fraction=None if hard_fraction < 0 else hard_fraction,
        init_seed=seed,
        template=template or None,
    )
    dev = device if ray else resolve_device(device)  # with Ray the tasks choose (a GPU each where there are GPUs)
    ious: list[float] = []
    lost: list[str] = []
    with progress() as bar:
        task = bar.add_task("fitting", total=None, status="")

        def on_batch(entries: list[dict]) -> None:
            ious.extend(e["metrics"]["iou"] for e in entries if e["status"] == "ok")
            mean = sum(ious) / len(ious) if ious else float("nan")
            bar.update(task, advance=len(entries), status=f"mean IoU {mean:.3f}")

        def on_check(record: dict) -> None:
            bar.update(task, status=f"step {record['step']} loss {record['loss']:.4f} IoU {record['iou']:.3f}")

        summary = fit_zoo(
            samples,
            out,
            spec,
            config,
            batch=batch,
            device=dev,
            on_batch=on_batch,
            on_check=on_check,
            init=start,
            on_start=lambda stored, total: bar.update(task, completed=stored, total=total),
            ray=ray,
            threads=threads,
            on_lost=lost.append,
        )
    rows = [
        (k, summary[k].get("median", ""), summary[k].get("mean", ""), summary[k].get("min", ""))
        for k in ("iou", "iou_near")
        if summary[k]
    ]
    finish(
        f"zoo {out}: {summary['ok']}/{summary['fields']} fields ok on {dev}",
        ["held-out metric", "median", "mean", "min"],
        rows,
        summary,
        failures=[f"lost {line}" for line in lost]
        + [f["error"] for f in summary["failed"] if "task lost" not in f["error"]],
    )


@zoo_app.command("info")
@handle_errors
def info(zoo: Annotated[Path, typer.Argument(help="Zoo folder.")]):
    """Print the zoo's spec, field counts and metric summary."""
    from shapezoo.core.zoo import load_zoo

    z = load_zoo(zoo)
    summary = {"zoo": str(zoo), **z.info()}
    worst = sorted((e for e in z.entries if "iou" in e.get("metrics", {})), key=lambda e: e["metrics"]["iou"])[:5]
    rows = [(e["name"], e["status"], e["metrics"]["iou"], e["metrics"].get("iou_near", "")) for e in worst]
    finish(
        f"{zoo}: {summary['fields']} fields, P = {summary['param_count']} (worst 5)",
        ["name", "status", "iou", "iou_near"],
        rows,
        summary,
    )


@zoo_app.command("export")
@handle_errors
def export(
    zoo: Annotated[Path, typer.Argument(help="Zoo folder.")],
    name: Annotated[str, typer.Argument(help="Field name.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .safetensors (state_dict), or .pt: a torch pickle of tensors and strings only, "
            "which torch.load(path, weights_only=True) reads without running code."
        ),
    ],
):
    """Export one field as a state_dict that loads into ``shapezoo.fields.network.FieldModule(spec)``."""
    from shapezoo.core.zoo import export_member, load_zoo

    summary = export_member(load_zoo(zoo), name, out)
    finish(f"exported {name}", ["file", "parameters"], [(str(out), summary["parameters"])], summary)
