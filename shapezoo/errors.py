"""User-facing errors: one clear line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class ShapezooError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line, no traceback."""


class InputError(ShapezooError):
    """A specific input file (or folder) is unusable; the message starts with its path."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
