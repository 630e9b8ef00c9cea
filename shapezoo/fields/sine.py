"""SIREN's activation on the CPU: sin, and the cos its backward needs, from one small C kernel.

torch's ``sin`` and ``cos`` take about a quarter of a CPU fit (each is Sleef's 1-ulp routine, ~13x a multiply); the
kernel computes both in one pass with a short polynomial (max error ~2e-7, about 2 ulp), built once with the system
C compiler and cached. Without a compiler (or with ``SHAPEZOO_KERNELS=0``) torch's own functions run instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import InputError
from ..io import atomic_write_bytes, ensure_output_dir

_SOURCE = r"""
#include <math.h>
#include <stdint.h>

#define LIMIT 8192.0f   /* beyond it the two-part reduction by pi loses accuracy: such blocks use libm */
#define BLOCK 4096
#define MAGIC 12582912.0f  /* 1.5 * 2^23: adding and subtracting it rounds to the nearest integer */

#define REDUCE(x)                                                                          \
    float k = (x * 0.318309886f + MAGIC) - MAGIC;                                          \
    float r = (x - k * 3.140625f) - k * 9.67653589793e-4f;                                 \
    float sign = 1.0f - 2.0f * (k - 2.0f * ((k * 0.5f - 0.25f + MAGIC) - MAGIC));          \
    float r2 = r * r;
#define SIN_R (r + r * r2 * (-1.6666667e-1f + r2 * (8.3333333e-3f + r2 * (-1.9841270e-4f + r2 * (2.7557319e-6f \
               + r2 * (-2.5052108e-8f + r2 * 1.6059044e-10f))))))
#define COS_R (1.0f + r2 * (-0.5f + r2 * (4.1666667e-2f + r2 * (-1.3888889e-3f + r2 * (2.4801587e-5f \
               + r2 * (-2.7557319e-7f + r2 * (2.0876757e-9f + r2 * -1.1470746e-11f)))))))

/* z <- sin z (s NULL), or s <- sin z and z <- cos z: the two uses, each reading z once and writing in place */
#define KERNEL(NAME, ATTR)                                                                 \
ATTR static void NAME(float *z, float *restrict s, int64_t n) {                            \
    for (int64_t b = 0; b < n; b += BLOCK) {                                               \
        int64_t e = b + BLOCK < n ? b + BLOCK : n;                                         \
        int big = 0;                                                                       \
        for (int64_t i = b; i < e; i++) big |= !(fabsf(z[i]) <= LIMIT);                    \
        if (big && s) {                                                                    \
            for (int64_t i = b; i < e; i++) { float x = z[i]; s[i] = sinf(x); z[i] = cosf(x); } \
        } else if (big) {                                                                  \
            for (int64_t i = b; i < e; i++) z[i] = sinf(z[i]);                             \
        } else if (s) {                                                                    \
            for (int64_t i = b; i < e; i++) { float x = z[i]; REDUCE(x) s[i] = SIN_R * sign; z[i] = COS_R * sign; } \
        } else {                                                                           \
            for (int64_t i = b; i < e; i++) { float x = z[i]; REDUCE(x) z[i] = SIN_R * sign; } \
        }                                                                                  \
    }                                                                                      \
}

typedef void (*kernel_fn)(float *, float *, int64_t);
KERNEL(kernel_base, )
#if defined(__x86_64__)
KERNEL(kernel_avx2, __attribute__((target("avx2,fma"))))
KERNEL(kernel_avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma"))))
static kernel_fn KERNELS[3] = {kernel_base, kernel_avx2, kernel_avx512};
#else
static kernel_fn KERNELS[3] = {kernel_base, kernel_base, kernel_base};
#endif

/* the variant `isa` picks (0 baseline, 1 AVX2 + FMA, 2 AVX-512) on n floats */
void sine_run(int isa, float *z, float *s, int64_t n) { KERNELS[isa < 0 || isa > 2 ? 0 : isa](z, s, n); }
"""

_ISA = {"AVX512": 2, "AVX2": 1}
"""torch's CPU capability (which ``ATEN_CPU_CAPABILITY`` lowers) -> the kernel variant computing as torch does."""
MAX_THREADS = 4
"""The kernel runs on one thread: with torch's OpenMP workers spinning after each matmul, a second thread of its own
ran slower here (2 cores). One thread beats torch's sin and cos on 2 threads about 3x; with many more threads
torch's own parallel functions are used (not measured here: this machine has 2 cores)."""
_FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno"]
_state: dict[str, object] = {"enabled": os.environ.get("SHAPEZOO_KERNELS", "1") != "0"}


def _cache_dir() -> Path:
    root = os.environ.get("SHAPEZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "shapezoo"
    )
    return Path(root) / "kernels"


def _build() -> ctypes.CDLL:
    """Compile the kernel once per source, compiler and machine type (written atomically) and load it."""
    found = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if found is None:
        raise OSError("no C compiler (cc) on PATH")
    cc = shlex.split(found)  # $CC may carry flags
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256("\0".join([_SOURCE, *cc, version, *_FLAGS, platform.machine()]).encode()).hexdigest()[:20]
    target = _cache_dir() / f"sine-{key}.so"
    if not target.exists():
        ensure_output_dir(target.parent)
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "sine.c", Path(tmp) / "sine.so"
            src.write_text(_SOURCE)
            command = [*cc, *_FLAGS, str(src), "-o", str(out), "-lm"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise OSError(f"{found} failed: {' '.join(done.stderr.split())[:300]}")
            atomic_write_bytes(target, out.read_bytes())
    lib = ctypes.CDLL(str(target))
    lib.sine_run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return lib


def _library() -> ctypes.CDLL | None:
    """The loaded kernel, or None where it is off or cannot be built (said once, then torch's functions run)."""
    if not _state["enabled"]:
        return None
    if "lib" not in _state:
        try:
            _state["lib"] = _build()
        except (OSError, subprocess.SubprocessError, InputError) as exc:
            warnings.warn(f"shapezoo's sine kernel is unavailable ({exc}); using torch's sin/cos", stacklevel=3)
            _state["lib"] = None
    return _state["lib"]  # type: ignore[return-value]


def backend() -> str:
    """``kernel`` when the compiled kernel computes the CPU activation, else ``torch``."""
    return "kernel" if _library() is not None else "torch"


@contextlib.contextmanager
def kernel_enabled(enabled: bool) -> Iterator[None]:
    """Turn the kernel on or off inside the block (benchmarks compare both in one run; tests check they agree)."""
    old = _state["enabled"]
    _state["enabled"] = enabled
    try:
        yield
    finally:
        _state["enabled"] = old


def _runs_here(z: torch.Tensor) -> ctypes.CDLL | None:
    if z.device.type != "cpu" or z.dtype != torch.float32 or not z.is_contiguous():
        return None
    if torch.get_num_threads() > MAX_THREADS:
        return None
    return _library()


def _call(lib: ctypes.CDLL, z: torch.Tensor, s: torch.Tensor | None) -> None:
    isa = _ISA.get(torch.backends.cpu.get_cpu_capability(), 0)
    lib.sine_run(isa, z.data_ptr(), None if s is None else s.data_ptr(), z.numel())


def sin_cos_(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin z, cos z) with the cos written over ``z``: a layer's output and what its backward multiplies by, in one
    pass on the CPU and one new buffer."""
    lib = _runs_here(z)
    if lib is None:
        return torch.sin(z), z.cos_()
    s = torch.empty_like(z)
    _call(lib, z, s)
    return s, z


def sin_(z: torch.Tensor) -> torch.Tensor:
    """sin in place (evaluation and extraction, where nothing is saved for a backward)."""
    lib = _runs_here(z)
    if lib is None:
        return z.sin_()
    _call(lib, z, None)
    return z
