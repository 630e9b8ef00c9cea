"""Atomic file writes (write to a temporary file, then rename) and safe readers for JSON and safetensors."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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
        from safetensors.torch import save as save_torch

        data = save_torch(tensors, metadata=metadata)
    else:
        from safetensors.numpy import save as save_numpy

        data = save_numpy(tensors, metadata=metadata)
    atomic_write_bytes(path, data)


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


def plain_name(name: Any, where: str | Path) -> str:
    """``name`` (read from the file ``where``) checked to be usable as one file name inside a folder: a non-empty
    string without path separators, NUL or a leading dot (so neither '..' nor a hidden file); InputError otherwise."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise InputError(where, f"invalid name {name!r} (names must be plain file names, no '/', '..' or '\\')")
    return name


def inside(folder: str | Path, relative: Any, where: str | Path) -> Path:
    """``folder / relative`` for a file reference read from ``where``, refused (InputError naming ``where``) unless
    it is a relative path that resolves inside ``folder`` (symbolic links followed)."""
    if not isinstance(relative, str) or not relative or "\0" in relative or Path(relative).is_absolute():
        raise InputError(where, f"invalid file reference {relative!r} (must be a relative path inside {folder})")
    root = Path(folder).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise InputError(where, f"file reference {relative!r} points outside {folder}")
    return Path(folder) / relative


LOCK_FILE = ".shapezoo.lock"
_held: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def folder_lock(path: str | Path) -> Iterator[Path]:
    """Hold the advisory lock of an output folder (``.shapezoo.lock``: the owner's PID and host) while writing it.

    A second writer gets one InputError line naming the owner; a lock whose process is gone (same host) is stale
    and taken over. Re-entrant within one process (a library call inside a command that holds it).
    """
    folder = ensure_output_dir(path).resolve()
    if folder in _held:
        yield folder
        return
    lock = folder / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lock.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        try:
            os.link(tmp, lock)  # atomic, and fails when the lock exists
            break
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):
                owner = {}
            if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise InputError(
                path,
                f"another shapezoo process (pid {owner.get('pid', '?')} on {owner.get('host', '?')}) is writing "
                f"this folder; wait for it to finish, or delete {lock} if that process is gone",
            ) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
    else:
        raise InputError(path, f"cannot take the folder lock {lock}")
    _held.add(folder)
    try:
        yield folder
    finally:
        _held.discard(folder)
        lock.unlink(missing_ok=True)


F = TypeVar("F", bound=Callable[..., Any])


def locks(argument: str) -> Callable[[F], F]:
    """Decorator: the function writes the folder passed as ``argument`` and holds its ``folder_lock`` meanwhile."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            folder = signature.bind(*args, **kwargs).arguments[argument]
            with folder_lock(folder):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return wrap
