"""Latents of any space: the latents file, the train/val/test split by name, interpolation, and optimising latents
through a frozen decoder."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..errors import InputError, ShapezooError
from ..io import atomic_save_tensors, load_tensors
from ..schema import MapOf, Names, Opt, check, check_tensor

LATENTS_FILE = "train_latents.safetensors"
"""The encoded (or auto-decoded) training members saved beside a space's model."""


@dataclass
class Latents:
    """A latents file: ``z`` (N, d), one name per row, and the JSON metadata it was saved with."""

    z: torch.Tensor
    names: list[str]
    meta: dict = field(default_factory=dict)


def save_latents(path: str | Path, z: torch.Tensor, names: list[str], extra: dict | None = None) -> None:
    """latents.safetensors: ``z`` (N, d) float32; names (and any extra JSON) in the metadata."""
    if len(names) != len(z):
        raise ShapezooError(f"{len(names)} names for {len(z)} latents")
    meta = {"names": json.dumps(names), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    atomic_save_tensors(path, {"z": z.detach().float().cpu().contiguous()}, meta)


def read_latents(path: str | Path) -> Latents:
    """A latents file with its metadata; a bad file raises InputError naming it."""
    tensors, raw = load_tensors(path, framework="pt")
    z = check_tensor(tensors, "z", path, (None, None))
    if z.shape[1] == 0:
        raise InputError(path, f"latents of no numbers (shape {tuple(z.shape)})")
    try:
        names = json.loads(raw.get("names", "null")) or [f"z{i:04d}" for i in range(len(z))]
    except json.JSONDecodeError:
        raise InputError(path, "the 'names' metadata is not valid JSON") from None
    check(names, Names(), path, "names")
    if len(names) != len(z):
        raise InputError(path, f"lists {len(names)} names for {len(z)} latents")
    meta = {k: _json_or_text(v) for k, v in raw.items() if k != "names"}
    check(meta, {"labels?": Opt(MapOf(Opt(str)))}, path)
    return Latents(z.float(), names, meta)


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def load_latents(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """(z (N, d), names) from a latents file; a bad file raises InputError."""
    latents = read_latents(path)
    return latents.z, latents.names


def check_latents(z: torch.Tensor, size: int, what: str | Path) -> None:
    """Raise InputError naming ``what`` unless ``z`` is (N, size) and finite."""
    if z.dim() != 2 or z.shape[1] != size:
        raise InputError(what, f"latents of shape {tuple(z.shape)}; this space needs (N, {size})")
    if not torch.isfinite(z).all():
        bad = (~torch.isfinite(z).all(1)).nonzero().flatten().tolist()
        raise InputError(what, f"latent rows {bad[:5]} contain NaN or inf")


def split_names(names: list[str], val: float, test: float, seed: int, train_limit: int = 0) -> dict[str, list[str]]:
    """Deterministic train/val/test split by member name (independent of order). ``train_limit`` > 0 keeps that
    many training members (a random subset, the same for every limit's larger ones); val and test do not change."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ShapezooError(f"validation ({val}) and test ({test}) fractions must be in [0, 1) and sum below 1")
    key = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    n_test, n_val = round(test * len(key)), round(val * len(key))
    if len(key) - n_test - n_val < 1:
        raise ShapezooError(f"{len(names)} fields leave none for training after the validation/test split")
    train = key[n_test + n_val :]
    train = train[:train_limit] if train_limit > 0 else train
    split = {"test": key[:n_test], "val": key[n_test : n_test + n_val], "train": train}
    return {k: sorted(v, key=names.index) for k, v in split.items()}


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, mode: Literal["lerp", "slerp"] = "lerp") -> torch.Tensor:
    """``steps`` points from ``a`` to ``b`` (both (d,)), endpoints included -> (steps, d).

    ``slerp`` follows the great circle between the directions and interpolates the norms linearly; it keeps
    midpoints at a typical norm when latents concentrate on a shell.
    """
    if steps < 2:
        raise ShapezooError(f"--steps must be >= 2, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)[:, None]
    if mode == "lerp":
        return (1 - t) * a + t * b
    if mode != "slerp":
        raise ShapezooError(f"unknown interpolation mode '{mode}' (lerp or slerp)")
    na, nb = a.norm(), b.norm()
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega < 1e-4:
        return (1 - t) * a + t * b
    dirs = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    out = dirs * ((1 - t) * na + t * nb)
    out[0], out[-1] = a, b
    return out


@contextmanager
def frozen(model: torch.nn.Module):
    """Eval mode and no parameter gradients while latents are optimised through the decoder."""
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
