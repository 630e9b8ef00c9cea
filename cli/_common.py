"""Shared CLI plumbing: one-line errors, rich progress, and the closing table + JSON summary."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SpaceOption = Annotated[
    str,
    typer.Option(
        help="Space folder, or 'default': the pretrained space shipped with shapezoo (its model card: "
        "'shapezoo space info default')."
    ),
]
Root = Annotated[Path | None, typer.Option(help="Dataset folder (default: the one recorded in the zoo/space).")]


Ray = Annotated[
    str | None,
    typer.Option(
        help="Run the tasks on Ray: 'auto' starts a local instance, an address joins a cluster (the output folder "
        "must be on storage every node reaches)."
    ),
]
Threads = Annotated[int, typer.Option(help="CPU threads per task (0: this process's torch thread count).")]
Distributed = Annotated[
    bool,
    typer.Option(
        "--distributed",
        help="One rank of a torchrun job (DistributedDataParallel; gloo on CPU, NCCL on CUDA): each rank takes its "
        "share of every batch, rank 0 writes. Same global batch, so the same run as one process.",
    ),
]


@contextmanager
def training_run(distributed: bool, device: str) -> Iterator[tuple[Any, Any]]:
    """(device, progress bar or None) for a space-training command: under ``--distributed`` this process is one rank
    of the torchrun group for the duration, and only rank 0 shows progress."""
    import os

    from shapezoo.core.training import distributed as join
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    lead = not distributed or os.environ.get("RANK", "0") == "0"
    with progress() if lead else nullcontext() as bar, join(dev) if distributed else nullcontext(dev) as rank_dev:
        yield rank_dev, bar


def pct(x: float | None) -> str:
    """An accuracy in [0, 1] as a percentage with one decimal, '-' when unknown."""
    return "-" if x is None else f"{100 * x:.1f}"


def parse_names(names: str | None) -> list[str] | None:
    """'a, b,c' -> ['a', 'b', 'c']; None or empty -> None (all)."""
    return [n.strip() for n in names.split(",") if n.strip()] if names else None


def handle_errors(fn: Callable) -> Callable:
    """Turn library errors into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from shapezoo.errors import ShapezooError

        try:
            return fn(*args, **kwargs)
        except ShapezooError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: finished work is kept; rerun the same command to resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


def progress():
    """A rich progress bar with count, elapsed time and ETA, written to stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def finish(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    summary: dict,
    failures: Sequence[str] = (),
) -> None:
    """Print a short table and the JSON summary (the library has written every file already).

    Each failure is printed as its own ``error:`` line, and the command then exits 1.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    Console(stderr=True).print(table)
    typer.echo(json.dumps(summary))
    for line in failures:
        typer.echo(f"error: {line}", err=True)
    if failures:
        typer.echo(f"error: {len(failures)} input(s) failed and were skipped; the others are done", err=True)
        raise typer.Exit(1)
