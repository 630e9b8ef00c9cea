"""Entry point: ``shapezoo`` and its sub-command groups (imports stay lazy so ``--help`` is instant)."""

from __future__ import annotations

import warnings

import typer

from . import classifiers, data, fit, generate, init, mesh, probe, report, space

warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"

app = typer.Typer(
    help="shapezoo: neural fields of 3D shapes as data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.command("fit")(fit.fit)
app.add_typer(fit.zoo_app, name="zoo")
app.add_typer(init.app, name="init")
app.command("mesh")(mesh.mesh)
app.command("eval")(mesh.evaluate)
app.add_typer(space.app, name="space")
for _name in ("encode", "decode", "interpolate", "optimize", "sample"):
    app.command(_name)(getattr(space, _name))
app.add_typer(generate.prior_app, name="prior")
app.command("eval-generation")(generate.eval_generation)
app.command("probe")(probe.probe)
app.command("report")(report.report)
app.command("demo")(report.demo)
app.add_typer(classifiers.app, name="classifiers")


def main() -> None:
    """Console-script entry; the process keeps freed buffers for reuse (a process-wide choice the library leaves
    to its caller: 2-3x faster CPU fitting, ``shapezoo.runtime.reuse_freed_memory``)."""
    from shapezoo.runtime import reuse_freed_memory

    reuse_freed_memory()
    app()


if __name__ == "__main__":
    main()
