"""The tiny field zoo and space shared by the weight-space tests: 12 analytic solids fitted as width-16 SIRENs,
and a space trained on them for a few epochs (built once per session in conftest.py); small mesh folders and a
hidden-unit permutation for the tests that need them."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import trimesh

from shapezoo.core.zoo import save_zoo
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldSpec, init_params
from shapezoo.fields.samples import SampleConfig
from shapezoo.fields.space import ModelConfig, TrainConfig

SEED = int(os.environ.get("SHAPEZOO_TEST_SEED", "0"))
"""Seed of the session's shared zoos and spaces (0 in CI); other values re-run the suite on other draws, which is
how the thresholds of the tests built on them were checked for their margin across seeds."""
SPEC = FieldSpec(width=16, depth=3)
FIT = FitConfig(steps=150, points_per_step=256, lr=3e-3, check_every=50)
SMALL = ModelConfig(latent=16, hidden=16)
QUICK = TrainConfig(epochs=6, batch=4, points=256, probe_uniform=512, probe_near=512, eval_every=2, warmup=5, seed=SEED)


def _shapes(n: int, seed: int = 0):
    """n analytic solids (spheres and boxes of varying size/centre) as occupancy labellers."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c, r = rng.uniform(-0.1, 0.1, 3), rng.uniform(0.15, 0.35)
        if i % 2:
            out.append(lambda p, c=c, r=r: np.linalg.norm(p - c, axis=1) < r)
        else:
            out.append(lambda p, c=c, r=r: (np.abs(p - c) < r * np.array([1.0, 0.6, 0.8])).all(1))
    return out


def fit_tiny_zoo(path: Path) -> Path:
    """A zoo of 12 fitted tiny SIRENs (width 16, depth 3) from one shared initialisation, written to ``path``."""
    rng = np.random.default_rng(SEED)
    pts = rng.random((12, 3000, 3)).astype(np.float32) - 0.5
    occ = np.stack([f(p) for f, p in zip(_shapes(12, SEED), pts)]).astype(np.uint8)
    init = init_params(SPEC, SEED)
    names = [f"shape_{i:02d}" for i in range(12)]
    res = fit_fields(SPEC, init, torch.from_numpy(pts), torch.from_numpy(occ), 3000, names, FIT)
    entries = [{"name": n, "status": "ok", "metrics": m} for n, m in zip(names, res.metrics)]
    meta = {"init_seed": SEED, "fit": asdict(FIT), "samples": {"config": asdict(SampleConfig(points=2000))}}
    save_zoo(path, SPEC, res.params, entries, init, meta)
    return path


def permute_hidden(spec: FieldSpec, flat: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute every hidden layer's units consistently (rows of W_k, b_k and columns of W_{k+1})."""
    w = {k: v.clone() for k, v in spec.layout().unflatten(flat).items()}
    g = torch.Generator().manual_seed(seed)
    for k in range(spec.depth):
        perm = torch.randperm(spec.width, generator=g)
        w[f"layers.{k}.weight"] = w[f"layers.{k}.weight"][perm]
        w[f"layers.{k}.bias"] = w[f"layers.{k}.bias"][perm]
        w[f"layers.{k + 1}.weight"] = w[f"layers.{k + 1}.weight"][:, perm]
    return spec.layout().flatten(w)


def write_meshes(folder, count: int, seed: int = 0):
    """``count`` boxes and spheres of random size and position written as .obj files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = rng.uniform(0.5, 1.0, 3)
        if i % 2:
            mesh = trimesh.creation.icosphere(2, radius=float(size[0]))
        else:
            mesh = trimesh.creation.box(extents=size)
        mesh.apply_translation(rng.uniform(-0.5, 0.5, 3))
        # a fixed frame box far away keeps every shape at the same scale after normalisation
        frame = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
        frame.apply_translation((2.0, 2.0, 2.0))
        mesh = trimesh.util.concatenate([mesh, frame]) if i % 3 == 2 else mesh
        mesh.export(folder / f"shape_{seed}_{i:02d}.obj")
    return folder
