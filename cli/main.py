"""Entry point: ``shapezoo`` and its sub-command groups (imports stay lazy so ``--help`` is instant)."""

from __future__ import annotations

import warnings

import typer

from . import (
    classifiers,
    data,
    demo,
    encode,
    eval,
    fit,
    init,
    interpolate,
    mesh,
    optimize,
    prior,
    probe,
    report,
    sample,
    space,
    zoo,
)

warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"

app = typer.Typer(
    help="shapezoo: neural fields of 3D shapes as data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.command("fit")(fit.fit)
app.add_typer(zoo.app, name="zoo")
app.add_typer(init.app, name="init")
app.command("mesh")(mesh.mesh)
app.command("eval")(eval.evaluate)
app.add_typer(space.app, name="space")
app.command("encode")(encode.encode)
app.command("decode")(encode.decode)
app.command("interpolate")(interpolate.interpolate)
app.command("optimize")(optimize.optimize)
app.command("sample")(sample.sample)
app.add_typer(prior.app, name="prior")
app.command("eval-generation")(eval.eval_generation)
app.command("probe")(probe.probe)
app.command("report")(report.report)
app.command("demo")(demo.demo)
app.add_typer(classifiers.app, name="classifiers")


def main() -> None:
    """Console-script entry; the process keeps freed buffers for reuse (a process-wide choice the library leaves
    to its caller: 2-3x faster CPU fitting, ``shapezoo.runtime.reuse_freed_memory``)."""
    from shapezoo.runtime import reuse_freed_memory

    reuse_freed_memory()
    app()


if __name__ == "__main__":
    main()
