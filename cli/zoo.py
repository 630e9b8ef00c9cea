"""``shapezoo zoo info`` and ``shapezoo zoo export``: looking inside field zoos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors

app = typer.Typer(help="Inspect and export field zoos.", no_args_is_help=True)


@app.command("info")
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


@app.command("export")
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
