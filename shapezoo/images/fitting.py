"""Batched fitting of image fields: B SIRENs regress B images' pixels at once with per-field Adam, each stopping
at its target PSNR; and the learned shared start (Reptile over training images) the meta-learned protocol uses."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..core.training import adam_step_
from ..errors import ShapezooError
from ..fields.network import field_forward, init_params
from .network import ImageSpec, pixel_grid, psnr

Protocol = Literal["independent", "shared"]
RECIPE_STEPS = {"independent": 1000, "shared": 200}
"""Adam steps per field: DWSNets' recipe from a random init (~1k steps, early stop at 40 dB; Navon et al. 2023,
appendix), and from a learned shared start, which reaches its PSNR in a fraction (BENCHMARKS.md, "Image INRs")."""


@dataclass(frozen=True)
class ImageFitConfig:
    """How each image's field is fitted (every pixel, every step)."""

    protocol: Protocol = "shared"
    """``independent``: every field starts from its own seeded SIREN init (the random-init zoos of DWSNets, NFN,
    ScaleGMN); ``shared``: every field starts from one start learned over training images (MWT, Functa)."""
    steps: int | None = None
    """Adam steps per field; None: the protocol's (``RECIPE_STEPS``)."""
    lr: float = 1e-3
    """Peak learning rate, cosine decay to ``lr * lr_final``."""
    lr_final: float = 0.1
    target_psnr: float | None = 40.0
    """A field stops once its reconstruction reaches this PSNR (dB); None: every field runs every step."""
    seed: int = 0
    """Base seed of the independent inits (each field's is ``member_seed(seed, name)``) and of the shared start."""
    check_every: int = 25
    """Steps between early-stopping checks (the finished fields then leave the batch)."""

    def __post_init__(self):
        if self.protocol not in RECIPE_STEPS:
            raise ShapezooError(f"unknown protocol '{self.protocol}' (independent or shared)")
        if (self.steps is not None and self.steps < 1) or self.check_every < 1:
            raise ShapezooError(f"steps and check_every must be >= 1, got {self.steps}, {self.check_every}")
        if not (math.isfinite(self.lr) and self.lr > 0 and 0 < self.lr_final <= 1):
            raise ShapezooError(f"lr must be > 0 and lr_final in (0, 1], got {self.lr}, {self.lr_final}")

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else RECIPE_STEPS[self.protocol]


def fit_images(
    spec: ImageSpec,
    start: torch.Tensor,
    pixels: torch.Tensor,
    config: ImageFitConfig,
    on_check: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit B image fields together.

    Args:
        start: (B, P) each field's starting weights.
        pixels: (B, H * W, C) target values in [0, 1], row-major (``pixel_grid``).
        on_check: called with (step, fields still running) at every check.

    Returns:
        (B, P) fitted weights, (B,) reconstruction PSNR (dB), (B,) steps each field ran.
    """
    B, n, channels = pixels.shape
    side = math.isqrt(n)
    if start.shape != (B, spec.layout().size) or side * side != n or channels != spec.out_dim:
        raise ShapezooError(
            f"fit_images needs start (B, {spec.layout().size}) and square images (B, H*W, {spec.out_dim}); got "
            f"{tuple(start.shape)}, {tuple(pixels.shape)}"
        )
    device = pixels.device
    grid = pixel_grid(side, side).to(device)
    params = start.to(device=device, dtype=torch.float32).clone()
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    ran = torch.zeros(B, dtype=torch.long)
    total = config.total_steps
    active = torch.arange(B, device=device)
    step = 0
    while len(active) and step < total:
        p_a, m_a, v_a, y_a = params[active], m[active], v[active], pixels[active]
        x = grid.expand(len(active), -1, -1)
        for _ in range(min(config.check_every, total - step)):
            step += 1
            p = p_a.detach().requires_grad_(True)
            loss = (field_forward(spec, p, x) - y_a).square().mean((1, 2))
            (grad,) = torch.autograd.grad(loss.sum(), p)
            cosine = 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
            lr = config.lr * (config.lr_final + (1 - config.lr_final) * cosine)
            with torch.no_grad():
                adam_step_(p_a, grad, m_a, v_a, float(step), lr)
        params[active], m[active], v[active] = p_a, m_a, v_a
        ran[active.cpu()] = step
        if config.target_psnr is not None:
            with torch.no_grad():
                quality = psnr((field_forward(spec, p_a, x) - y_a).square().mean((1, 2)))
            active = active[(quality < config.target_psnr) & torch.isfinite(quality)]
        if on_check is not None:
            on_check(step, len(active))
    with torch.no_grad():
        final = psnr((field_forward(spec, params, grid.expand(B, -1, -1)) - pixels).square().mean((1, 2)))
    return params.cpu(), final.cpu(), ran


@dataclass(frozen=True)
class StartConfig:
    """Reptile (Nichol et al. 2018, Alg. 2) over training images: the shared start of the meta-learned protocol."""

    outer_steps: int = 300
    batch: int = 64
    """Images fitted per outer step."""
    inner_steps: int = 10
    inner_lr: float = 1e-3
    step_size: float = 1.0
    """Reptile's outer step ε, decaying linearly to zero."""
    seed: int = 0


def learn_start(
    spec: ImageSpec, pixels: torch.Tensor, config: StartConfig, on_step: Callable[[int, float], None] | None = None
) -> torch.Tensor:
    """(P,) a start from which every training image's field is a few steps away: each outer step fits ``batch``
    random images (``pixels`` (N, H * W, C)) for ``inner_steps`` from the start ``phi``, then moves ``phi`` towards
    their mean, ``phi += ε_t (mean θ - phi)``."""
    g = torch.Generator().manual_seed(config.seed)
    phi = init_params(spec, config.seed).to(pixels.device)
    inner = ImageFitConfig(steps=config.inner_steps, lr=config.inner_lr, lr_final=1.0, target_psnr=None)
    for t in range(config.outer_steps):
        pick = torch.randint(len(pixels), (config.batch,), generator=g).to(pixels.device)
        theta, quality, _ = fit_images(spec, phi.expand(config.batch, -1), pixels[pick], inner)
        phi += config.step_size * (1 - t / config.outer_steps) * (theta.to(phi.device).mean(0) - phi)
        if on_step is not None:
            on_step(t, float(quality.median()))
    return phi.cpu()
