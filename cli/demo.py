"""``shapezoo demo``: the whole job on built-in data, through the pretrained default space, ending in a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, finish, handle_errors, progress


@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run folder (created; a rerun resumes).")] = Path("runs/demo"),
    budget: Annotated[float, typer.Option(help="Scale of the job: 1 takes about 1 minute on 2 CPU cores.")] = 1.0,
    device: Device = "auto",
):
    """New shapes -> fields from the default base -> encode/decode through the default space -> interpolate ->
    sample the default prior -> probe -> classifiers -> report.html."""
    from shapezoo.apps.demo import STAGES, DemoConfig, run_demo
    from shapezoo.runtime import resolve_device

    config = DemoConfig().scaled(budget)
    with progress() as bar:
        task = bar.add_task("demo", total=len(STAGES), status="generate")

        def on_stage(stage: str, seconds: float) -> None:
            nxt = STAGES.index(stage) + 1
            bar.update(
                task, advance=1, status=f"{stage} {seconds:.0f}s" + (f" -> {STAGES[nxt]}" if nxt < len(STAGES) else "")
            )

        summary = run_demo(out, config, resolve_device(device), on_stage)
    finish(
        f"demo in {out}: open {summary['report']}",
        ["stage", "seconds"],
        list(summary["timing"]["seconds"].items()),
        summary,
    )
