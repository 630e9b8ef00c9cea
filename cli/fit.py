"""``shapezoo fit``: batched fitting of a field zoo (parse the options, one library call, print what ran)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Ray, Threads, finish, handle_errors, progress

Arch = Annotated[
    str | None,
    typer.Option(
        help="siren (sine, ω0=30) or relu_pe (ReLU + Fourier features). Without --arch, --width and --depth a "
        "fit from an --init folder takes that init's architecture, others siren 128 x 3."
    ),
]
Steps = Annotated[
    int | None,
    typer.Option(help="Adam steps per field (default: the recipe's, 500 from a learned init or base, else 4800)."),
]
Lr = Annotated[
    float | None,
    typer.Option(help="Peak learning rate, cosine decay (default: the recipe's, 2e-3 from a shift base, else 5e-4)."),
]
HardFraction = Annotated[
    float | None,
    typer.Option(
        help="Share of each step's points picked as the highest-loss (default: the recipe's, 0.5 in fits of <= 500 "
        "steps from a learned init or a shift base, else 0; 0: none)."
    ),
]
Template = Annotated[
    str | None,
    typer.Option(help="Shape fitted first; every field then starts from its weights (for weight spaces)."),
]
ImageProtocol = Annotated[
    str,
    typer.Option(
        help="Image folders: 'shared' (every field starts from one start learned on the training images; the test "
        "split takes it from --init TRAIN_ZOO) or 'independent' (a seeded random init per image)."
    ),
]
TargetPsnr = Annotated[float, typer.Option(help="Image folders: stop a field at this PSNR (dB; 0: never).")]
Init = Annotated[
    str,
    typer.Option(
        help="Where fields start: 'default' (without --arch/--width/--depth/--template: the pretrained base, so "
        "the fields are bias-only fields of the default space; else as 'learned'), 'learned' (the init bundled "
        "for the architecture, full-weight fits; seeded where there is none), 'seeded', or an init folder "
        "('shapezoo init learn' or 'init base')."
    ),
]


@handle_errors
def fit(
    samples: Annotated[Path, typer.Argument(help="Samples ('shapezoo data sample') or images ('data images').")],
    out: Annotated[Path, typer.Option(help="Zoo folder (created, or resumed when it exists).")],
    arch: Arch = None,
    width: Annotated[int | None, typer.Option(help="Hidden units per layer (default 128).")] = None,
    depth: Annotated[int | None, typer.Option(help="Hidden layers (default 3).")] = None,
    steps: Steps = None,
    points_per_step: Annotated[int, typer.Option(help="Training points per field per step.")] = 1024,
    lr: Lr = None,
    target_iou: Annotated[float | None, typer.Option(help="Stop a field early at this training IoU.")] = None,
    hard_fraction: HardFraction = None,
    batch: Annotated[int, typer.Option(help="Fields fitted together in one job.")] = 32,
    device: Device = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the shared initialisation.")] = 0,
    template: Template = None,
    init: Init = "default",
    ray: Ray = None,
    threads: Threads = 0,
    protocol: ImageProtocol = "shared",
    target_psnr: TargetPsnr = 40.0,
):
    """Fit one occupancy field per sampled shape (or image), BATCH fields at a time; a rerun resumes a stopped job.

    With --ray every batch is a task (one GPU each where the cluster has GPUs); the zoo is the same as without."""
    from .images import fit_images, is_image_folder

    if is_image_folder(samples):
        return fit_images(samples, out, protocol, width, depth, steps, lr, target_psnr, batch, seed, init, device)
    from shapezoo.fields.fit_job import choose_start, fit_zoo
    from shapezoo.fields.fitting import FitConfig
    from shapezoo.runtime import resolve_device

    spec, start = choose_start(init, out, arch, width, depth, template=bool(template))
    config = FitConfig(steps=steps, points_per_step=points_per_step, lr=lr, target_iou=target_iou)
    config = replace(config, hard_fraction=hard_fraction, init_seed=seed, template=template)
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
    r = summary["recipe"]
    rows = [
        (k, summary[k].get("median", ""), summary[k].get("mean", ""), summary[k].get("min", ""))
        for k in ("iou", "iou_near")
        if summary[k]
    ]
    finish(
        f"zoo {out}: {summary['ok']}/{summary['fields']} fields ok on {dev} ({r['steps']} steps, lr {r['lr']:g}, "
        f"hard points {r['hard_fraction'] or 0:g}, {'biases only' if r['trainable'] == 'biases' else 'all weights'})",
        ["held-out metric", "median", "mean", "min"],
        rows,
        summary,
        failures=[f"lost {line}" for line in lost]
        + [f["error"] for f in summary["failed"] if "task lost" not in f["error"]],
    )
