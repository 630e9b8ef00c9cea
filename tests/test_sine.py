"""The CPU sine kernel: as accurate as a float allows, the same fits as torch's sin and cos, and torch's functions
(with one warning) where no C compiler builds it."""

from __future__ import annotations

import shutil

import pytest
import torch

from shapezoo.fields import sine
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldSpec, init_params

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@needs_cc
@pytest.mark.parametrize("n", [1, 17, 4097, 70001])
def test_the_kernel_computes_sin_and_cos_to_a_few_ulp(n):
    """Every variant (the one torch's CPU capability picks) within 4e-7 of float64 (measured <= 1.6e-7 under the
    native ISA, avx2 and default), odd sizes included; the in-place sin agrees with the pair."""
    assert sine.backend() == "kernel"
    g = torch.Generator().manual_seed(n)
    z = torch.randn(n, generator=g) * 40
    ref = z.double()
    s, c = sine.sin_cos_(z.clone())
    inplace = sine.sin_(z.clone())
    assert (s.double() - ref.sin()).abs().max() < 4e-7
    assert (c.double() - ref.cos()).abs().max() < 4e-7
    assert torch.equal(inplace, s)


@needs_cc
def test_large_and_non_finite_inputs_take_the_exact_path():
    """Beyond the reduction's range the kernel calls libm (as torch does): large arguments stay accurate, nan and
    inf give nan, and the rest of the block is unaffected."""
    z = torch.tensor([1e4, -3e5, float("nan"), float("inf"), 0.0, 8191.9, 8192.5, 1.0])
    s, c = sine.sin_cos_(z.clone())
    assert torch.allclose(s, z.sin(), atol=1e-6, equal_nan=True)
    assert torch.allclose(c, z.cos(), atol=1e-6, equal_nan=True)
    assert s[2].isnan() and s[3].isnan() and s[4] == 0 and c[4] == 1


def test_without_a_compiler_torch_computes_and_says_so_once(monkeypatch, tmp_path):
    """A missing compiler is a warning, not a failure: torch's sin and cos run, bitwise."""
    monkeypatch.setattr(sine, "_state", {"enabled": True})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SHAPEZOO_CACHE", str(tmp_path / "cache"))
    z = torch.randn(1000) * 10
    with pytest.warns(UserWarning, match="sine kernel is unavailable"):
        s, c = sine.sin_cos_(z.clone())
    assert sine.backend() == "torch"
    assert torch.equal(s, z.sin()) and torch.equal(c, z.cos())


@needs_cc
def test_the_kernel_is_built_once_into_the_cache(monkeypatch, tmp_path):
    """The compiled library lands in SHAPEZOO_CACHE and a fresh process state loads it without compiling again."""
    monkeypatch.setenv("SHAPEZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(sine, "_state", {"enabled": True})
    assert sine.backend() == "kernel"
    (built,) = (tmp_path / "kernels").glob("sine-*.so")
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(sine, "_state", {"enabled": True})
    assert sine.backend() == "kernel" and built.stat().st_mtime_ns == stamp


@needs_cc
def test_fits_with_the_kernel_match_fits_with_torchs_sine():
    """The same 4 fields fitted 60 steps with the kernel and with torch's sin/cos: weights equal to float rounding
    (measured max difference <= 4.5e-8 over 3 seeds), the same held-out IoU."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 4000, 3, generator=g) - 0.5
    centre = (torch.rand(4, 1, 3, generator=g) - 0.5) * 0.2
    y = ((x - centre).norm(dim=-1) < 0.25).to(torch.uint8)
    spec = FieldSpec(width=32, depth=3)
    names = [f"s{i}" for i in range(4)]
    results = []
    for kernel in (True, False):
        with sine.kernel_enabled(kernel):
            results.append(fit_fields(spec, init_params(spec), x, y, 2000, names, FitConfig(steps=60)))
    (a, b) = results
    assert (a.params - b.params).abs().max() < 1e-5
    for ma, mb in zip(a.metrics, b.metrics):
        assert abs(ma["iou"] - mb["iou"]) < 0.01


@needs_cc
def test_an_unwritable_cache_is_a_warning_naming_it(monkeypatch, tmp_path):
    """A cache path that cannot be a folder: one warning naming it, then torch's sin and cos."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setattr(sine, "_state", {"enabled": True})
    monkeypatch.setenv("SHAPEZOO_CACHE", str(blocker))
    z = torch.randn(100)
    with pytest.warns(UserWarning, match="not-a-folder"):
        assert torch.equal(sine.sin_(z.clone()), z.sin())
    assert sine.backend() == "torch"
