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
from .schema import check


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


def output_file(path: str | Path) -> Path:
    """``path`` checked to be writable as a file (not a folder), its folder created; InputError otherwise. Commands
    call it before their work, so a wrong --out costs nothing."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; --out names the file to write")
    ensure_output_dir(path.parent if str(path.parent) else Path("."))
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; a file of that name cannot be written")
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


def lasting(summary: dict) -> dict:
    """``summary`` without its ``timing`` (the run's own wall-clock measurements): what commands write to disk, so
    the same command on the same input writes the same bytes. The timing is printed and returned."""
    return {k: v for k, v in summary.items() if k != "timing"}


def read_json(path: str | Path, shape: Any = object) -> Any:
    """Read a JSON file and check it against ``shape`` (``schema.check``); a missing, corrupt or ill-shaped file
    raises InputError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a JSON file") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of 5000 digits
        raise InputError(path, f"corrupt JSON ({str(exc).splitlines()[0]})") from None
    return check(data, shape, path)


def read_record(folder: str | Path, name: str, fmt: str, what: str) -> dict:
    """The JSON record ``name`` of a shapezoo folder (a zoo's zoo.json, a space's space.json, ...), checked to be of
    format ``fmt``: a missing folder, a missing or corrupt file or another format raise InputError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{what.split()[-1]} folder not found")
    record = read_json(folder / name, dict)
    if record.get("format") != fmt:
        raise InputError(folder / name, f"not a shapezoo {what} (format {record.get('format')!r}, expected {fmt})")
    return record


def atomic_save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save numpy arrays or torch tensors as safetensors, atomically (never pickle)."""
    first = next(iter(tensors.values()))
    if hasattr(first, "detach"):
        from safetensors.torch import save as save_torch

        data = save_torch(tensors, metadata=metadata)
    else:
        from safetensors.numpy import save as save_numpy

        data = save_numpy(tensors, metadata=metadata)
    atomic_write_bytes(path, canonical_safetensors(data))


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in one canonical order (sorted keys, compact), so the same
    tensors and metadata give the same bytes in every process (safetensors orders the header by hash)."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data that follows stays 8-byte aligned
    return len(header).to_bytes(8, "little") + header + data[8 + n :]


def load_tensors(path: str | Path, framework: str = "np") -> tuple[dict, dict[str, str]]:
    """Load all tensors and the metadata of a safetensors file; corrupt files raise InputError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not a safetensors file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            # copies in torch's own 64-byte-aligned memory: safetensors hands out tensors wherever the file's bytes
            # landed, which changes from process to process, and matrix products (MKL) round differently by
            # alignment, so without the copy the same command could compute other bits in another run
            tensors = {k: fh.get_tensor(k).clone() for k in fh.keys()}
        if framework != "pt":
            tensors = {k: v.numpy() for k, v in tensors.items()}
    except Exception as exc:  # safetensors raises several unrelated types for a damaged file
        raise InputError(path, f"corrupt safetensors file ({exc})") from None
    return tensors, meta


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the content hash recorded for every source mesh)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
