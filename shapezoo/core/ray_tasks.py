"""Running a job's tasks on a Ray cluster: connect, run every task with a retry budget, hand the results back in
submission order (so the driver writes its index exactly as the single-process job does), and name what was lost.

Ray is imported only here and only when a job asks for it; the tasks themselves are the single-process job's own
functions, so a cluster run computes the same bytes as a local one on the same kind of device and thread count.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ShapezooError


class StorageError(ShapezooError):
    """A worker cannot write to (or the driver cannot see) the output folder: it is not on shared storage."""


@dataclass(frozen=True)
class TaskSpec:
    """Resources and behaviour of each task: CPU threads (torch's thread count inside the task, so results match a
    local run with the same count), GPUs (1 puts each task on its own GPU), and Ray's retries of lost workers."""

    threads: int = 1
    gpus: float = 0.0
    retries: int = 2


def connect(address: str) -> dict:
    """Join the Ray cluster at ``address``, or with ``auto`` start a local instance (all this machine's CPUs); a
    no-op when this process is connected already. Returns the cluster's resources."""
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
        try:
            if address == "auto":
                ray.init(num_cpus=os.cpu_count(), **kwargs)
            else:
                _answers(address)
                ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ShapezooError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}


CONNECT_TIMEOUT = 10.0
"""Seconds a cluster address has to accept a connection before ``connect`` gives up (Ray itself would wait on)."""


def _answers(address: str) -> None:
    """Raise ShapezooError unless something accepts a TCP connection at ``address`` (``host:port`` or
    ``ray://host:port``) within ``CONNECT_TIMEOUT``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ShapezooError(f"--ray '{address}': expected 'auto' or a cluster address HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ShapezooError(
            f"cannot reach the Ray cluster at '{address}': nothing answers there within {CONNECT_TIMEOUT:g} s "
            f"({exc.strerror or exc}); start it with 'ray start --head' or use --ray auto"
        ) from None


def _in_task(threads: int, fn: Callable, args: tuple) -> Any:
    """A task's body: the thread count the driver asked for and the CLI's allocator setting, then the job's own
    function."""
    import torch

    from ..runtime import reuse_freed_memory

    torch.set_num_threads(threads)
    reuse_freed_memory()
    return fn(*args)


def _probe(folder: str, token: str) -> str:
    path = Path(folder) / f".shapezoo-probe-{token}"
    try:
        path.write_text(socket.gethostname())
    except OSError as exc:
        return f"{socket.gethostname()}: {exc}"
    return ""


def check_shared(folder: Path) -> None:
    """Refuse, with one line, an output folder that a worker cannot write to or whose worker-written files the
    driver cannot see (the folder must be on storage every node reaches)."""
    import ray

    token = uuid.uuid4().hex
    problem = ray.get(ray.remote(num_cpus=0)(_probe).remote(str(folder), token))
    probe = folder / f".shapezoo-probe-{token}"
    if problem or not probe.exists():
        raise StorageError(
            f"{folder}: a Ray worker cannot write here or its files are not visible to this process "
            f"({problem or 'file written on the worker is missing here'}); put --out on storage every node reaches"
        )
    probe.unlink()


def run_tasks(
    fn: Callable,
    args: Sequence[tuple],
    spec: TaskSpec,
    on_result: Callable[[int, Any], None],
    on_error: Callable[[int, str], None],
) -> None:
    """Run ``fn(*a)`` for every ``a`` on the cluster. ``on_result(i, result)`` is called in submission order (a
    result waits for those before it); a task that failed past its retries calls ``on_error(i, message)`` in its
    place. A StorageError inside a task stops the job (it would fail every task the same way)."""
    import ray

    remote = ray.remote(_in_task).options(num_cpus=spec.threads, num_gpus=spec.gpus, max_retries=spec.retries)
    refs = [remote.remote(spec.threads, fn, a) for a in args]
    try:
        _collect(refs, on_result, on_error)
    except BaseException:  # the driver stops (an error, Ctrl-C): tasks not collected yet are not left running
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def _collect(refs: list, on_result: Callable[[int, Any], None], on_error: Callable[[int, str], None]) -> None:
    """Results as they arrive, handed on in submission order."""
    import ray

    index = {ref: i for i, ref in enumerate(refs)}
    done: dict[int, tuple[bool, Any]] = {}
    pending, nxt = list(refs), 0
    while nxt < len(refs):
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            try:
                done[index[ref]] = (True, ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                if isinstance(cause, StorageError):
                    raise cause from None
                done[index[ref]] = (False, f"{type(cause).__name__}: {cause}")
            except ray.exceptions.RayError as exc:  # the worker died past its retries, or the node was lost
                done[index[ref]] = (False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        while nxt in done:
            ok, value = done.pop(nxt)
            (on_result if ok else on_error)(nxt, value)
            nxt += 1
