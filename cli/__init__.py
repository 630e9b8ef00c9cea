"""The ``shapezoo`` command line: a thin Typer layer over the library (installed as ``shapezoo_cli``)."""
