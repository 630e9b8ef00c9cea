"""shapezoo's benchmarks: each module is runnable as ``python -m benchmarks.NAME`` (``main(argv) -> dict``, a table on
stdout, the result JSON with its environment under ``benchmarks/results``); ``python -m benchmarks.all --quick`` runs
every one at a small size."""
