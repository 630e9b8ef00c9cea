"""Space folders on disk, for every modality: model.safetensors (the autoencoder's state) and space.json."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, read_record
from ..schema import MapOf, Names, check

SPACE_JSON = "space.json"
MODEL_FILE = "model.safetensors"


def write_space_folder(path: str | Path, model: torch.nn.Module, header: dict, meta: dict) -> None:
    """Write model.safetensors (``model``'s state), then space.json (``header`` + the ``meta`` keys it lacks);
    both atomic."""
    path = ensure_output_dir(path)
    atomic_save_tensors(path / MODEL_FILE, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    atomic_write_json(path / SPACE_JSON, {**header, **{k: v for k, v in meta.items() if k not in header}})


def read_space_header(path: str | Path, space_format: str, what: str) -> dict:
    """space.json of a space folder, checked to be of ``space_format``; problems raise InputError naming the file."""
    header = read_record(path, SPACE_JSON, space_format, what)
    return check(header, {"model": dict, "split?": MapOf(Names())}, Path(path) / SPACE_JSON)


def load_space_state(path: str | Path, model: torch.nn.Module) -> None:
    """Load model.safetensors of a space folder into ``model``; a mismatch raises InputError naming the file."""
    state, _ = load_tensors(Path(path) / MODEL_FILE, framework="pt")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(Path(path) / MODEL_FILE, f"weights do not match space.json ({first})") from None
