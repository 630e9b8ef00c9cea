"""``shapezoo report``: the self-contained HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors


@handle_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run folder (as made by 'shapezoo demo').")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
):
    """Write a self-contained HTML report: 3-D viewers, interpolation slider, metrics, curves, latent map."""
    from shapezoo.apps.report import build_report
    from shapezoo.errors import InputError

    if not run.is_dir():
        raise InputError(run, "run folder not found")
    sections = build_report(run, out)
    finish(f"report {out}", ["section", "items"], list(sections.items()), {"report": str(out), "sections": sections})
