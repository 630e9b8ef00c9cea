"""Atomic file writes (write to a temporary file, then rename) and safe readers for JSON and safetensors."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError


def ensure_output_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that it is writable; raises InputError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(path, f"cannot create output directory ({exc.strerror or exc})") from None
    if not path.is_dir():
        raise InputError(path, "output path exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, "output directory is not writable")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def config_from_json(cls, data: dict | None):
    """A frozen config dataclass from its stored JSON: lists become tuples again, keys it does not know are
    ignored (zoos written by other versions), missing keys take their defaults."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in (data or {}).items() if k in names})


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or corrupt file raises InputError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"corrupt JSON ({exc})") from None


def atomic_save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save numpy arrays or torch tensors as safetensors, atomically (never pickle)."""
    first = next(iter(tensors.values()))
    if hasattr(first, "detach"):
        from safetensors.torch import save
    else:
        from safetensors.numpy import save
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_tensors(path: str | Path, framework: str = "np") -> tuple[dict, dict[str, str]]:
    """Load all tensors and the metadata of a safetensors file; corrupt files raise InputError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with safe_open(str(path), framework=framework) as fh:
            meta = fh.metadata() or {}
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta
    except Exception as exc:  # safetensors raises several unrelated types for a damaged file
        raise InputError(path, f"corrupt safetensors file ({exc})") from None


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the content hash recorded for every source mesh)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
