"""``shapezoo init``: learn where fields start (a Reptile init) or what they share (a shift base)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Ray, Threads, finish, handle_errors, progress

app = typer.Typer(help="Learned initialisations: where fields start.", no_args_is_help=True)


@app.command("learn")
@handle_errors
def learn(
    samples: Annotated[list[Path], typer.Argument(help="Samples folders of the training shapes.")],
    out: Annotated[Path, typer.Option(help="Init folder (created, or resumed when it exists).")],
    arch: Annotated[str, typer.Option(help="siren or relu_pe.")] = "siren",
    width: Annotated[int, typer.Option(help="Hidden units per layer.")] = 128,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 3,
    outer_steps: Annotated[int, typer.Option(help="Outer (meta-learning) updates of the start point.")] = 300,
    inner_steps: Annotated[int, typer.Option(help="Fitting steps per shape inside each update.")] = 100,
    batch: Annotated[int, typer.Option(help="Shapes fitted per update.")] = 8,
    method: Annotated[str, typer.Option(help="reptile, or fomaml (first-order MAML).")] = "reptile",
    outer_lr: Annotated[
        float | None,
        typer.Option(help="Outer step size, decaying linearly to 0 (default: the method's, 1.0 / Adam 1e-4)."),
    ] = None,
    inner_lr: Annotated[float, typer.Option(help="Peak Adam learning rate of the inner fits.")] = 5e-4,
    seed: Annotated[int, typer.Option(help="Seed of the starting weights and the shape draws.")] = 0,
    device: Device = "auto",
    ray: Ray = None,
    threads: Threads = 0,
):
    """Meta-learn one start point (first-order: Reptile or FOMAML, the batched fitter as inner loop); a rerun
    resumes."""
    import torch

    from shapezoo.fields.learned_init import InitConfig, learn_init
    from shapezoo.fields.network import FieldSpec
    from shapezoo.runtime import resolve_device

    spec = FieldSpec.from_arch(arch, width, depth)
    config = InitConfig(
        outer_steps=outer_steps,
        inner_steps=inner_steps,
        batch=batch,
        method=method,  # type: ignore[arg-type]  # checked by InitConfig
        outer_lr=outer_lr,
        inner_lr=inner_lr,
        seed=seed,
    )
    dev = torch.device("cpu") if ray else resolve_device(device)  # with Ray the inner fits run in CPU tasks
    with progress() as bar:
        task = bar.add_task("learning init", total=outer_steps, status="")

        def on_step(entry: dict) -> None:
            bar.update(task, completed=entry["step"], status=f"inner loss {entry['loss']:.4f} IoU {entry['iou']:.3f}")

        record = learn_init(samples, out, spec, config, dev, on_step, ray=ray, threads=threads)
    curve = record["curve"]
    shown = sorted({*range(0, len(curve), max(1, len(curve) // 8)), len(curve) - 1}) if curve else []
    rows = [(curve[i]["step"], curve[i]["loss"], curve[i]["iou"]) for i in shown]
    summary = {
        "out": str(out),
        "spec": record["spec"],
        "shapes": len(record["shapes"]),
        "outer_steps": record["outer_steps_done"],
        "complete": record["complete"],
        "final": curve[-1] if curve else None,
        "device": str(dev),
    }
    finish(f"learned init {out} ({len(record['shapes'])} shapes)", ["outer step", "inner loss", "IoU"], rows, summary)


@app.command("base")
@handle_errors
def base(
    samples: Annotated[list[Path], typer.Argument(help="Samples folders of the training shapes.")],
    out: Annotated[Path, typer.Option(help="Base folder (created, or resumed when it exists).")],
    arch: Annotated[str, typer.Option(help="siren or relu_pe.")] = "siren",
    width: Annotated[int, typer.Option(help="Hidden units per layer (256: 769 biases per field).")] = 256,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 3,
    steps: Annotated[int, typer.Option(help="Adam steps (each over --batch shapes).")] = 8000,
    batch: Annotated[int, typer.Option(help="Shapes per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the shared weights.")] = 1e-4,
    bias_lr: Annotated[float, typer.Option(help="Peak learning rate of the per-shape biases.")] = 1e-3,
    columns: Annotated[
        int,
        typer.Option(
            help="Input columns of each hidden -> hidden weight that every field moves besides its biases (a low-rank "
            "weight delta a space still reads exactly; 0: biases only)."
        ),
    ] = 6,
    val: Annotated[float, typer.Option(help="Validation share left out (as 'space train --val').")] = 0.1,
    test: Annotated[float, typer.Option(help="Held-out share left out (as 'space train --test').")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split and the shape draws (as 'space train --seed').")] = 0,
    train_shapes: Annotated[
        int, typer.Option(help="Learn on this many of the training shapes (as 'space train --train-limit'; 0: all).")
    ] = 0,
    device: Device = "auto",
):
    """Learn a shift base on the training split of the shapes: shared weights that every field keeps, each shape
    fitting only its code: its biases (Functa's shift modulation) and --columns columns of its hidden weights.
    'shapezoo fit --init BASE' fits such fields; a space of them reads every field exactly."""
    import torch

    from shapezoo.fields.network import FieldSpec
    from shapezoo.fields.shift_base import BaseConfig, learn_base
    from shapezoo.runtime import resolve_device

    spec = FieldSpec.from_arch(arch, width, depth)
    config = BaseConfig(
        steps=steps,
        batch=batch,
        lr=lr,
        bias_lr=bias_lr,
        seed=seed,
        val=val,
        test=test,
        train_shapes=train_shapes,
        columns=columns,
    )
    dev = resolve_device(device)
    with progress() as bar:
        task = bar.add_task("learning base", total=steps, status="")

        def on_step(entry: dict) -> None:
            bar.update(task, completed=entry["step"], status=f"loss {entry['loss']:.4f}")

        record = learn_base(samples, out, spec, config, dev, on_step)
    curve = record["curve"]
    shown = sorted({*range(0, len(curve), max(1, len(curve) // 8)), len(curve) - 1}) if curve else []
    rows = [(curve[i]["step"], curve[i]["loss"]) for i in shown]
    summary = {
        "out": str(out),
        "spec": record["spec"],
        "shapes": len(record["shapes"]),
        "steps": record["steps_done"],
        "complete": record["complete"],
        "final": curve[-1] if curve else None,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
    }
    finish(f"shift base {out} ({len(record['shapes'])} shapes)", ["step", "loss"], rows, summary)
