"""Device runtime: choosing the device, and helpers for the hot loops (TF32 scope, CUDA graph capture, CPU allocator
tuning, free memory)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch


@contextlib.contextmanager
def precision(mode: str, device: torch.device):
    """TF32 matmuls on CUDA when asked (or auto); restores the global flag afterwards."""
    use_tf32 = device.type == "cuda" and mode in ("auto", "tf32")
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = use_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def cuda_graph(step: Callable[[], torch.Tensor], state: list[torch.Tensor]) -> Callable[[], torch.Tensor] | None:
    """Capture ``step`` (which updates ``state`` in place) as a CUDA graph and return its replay.

    A training step is ~100 small kernels whose launch cost, not the GPU, bounds an eager loop; one graph replay
    launches them all at once. Warm-up steps run on a side stream and are undone (``state`` is restored), so
    results equal the eager loop. Returns None (eager fallback) if capture fails.
    """
    saved = [s.clone() for s in state]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
    except RuntimeError as exc:  # capture is an optimisation: never fail a fit over it
        warnings.warn(f"CUDA graph capture failed, using the eager loop: {exc}", stacklevel=2)
        graph = None
    for s, v in zip(state, saved):
        s.copy_(v)
    if graph is None:
        return None

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def reuse_freed_memory() -> None:
    """Keep freed activation buffers in glibc's heap instead of unmapping them after every step.

    Without this, each training step page-faults its activations in again (~400k faults per step measured here,
    2-3x slower batched training). Process-wide and harmless: it only raises glibc's mmap/trim thresholds.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except OSError:
        pass


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device`` (MemAvailable on CPU, free memory on CUDA)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; an unavailable CUDA request or an unknown name is a clear error."""
    from .errors import ShapezooError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ShapezooError(f"--device {device} requested but CUDA is not available on this machine")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ShapezooError(f"unknown --device '{device}' (auto, cpu, cuda, cuda:N)") from None
