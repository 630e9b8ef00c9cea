"""Flow matching over vectors (rectified flow): a small velocity network, its training loss and a Heun sampler.

x_t = (1 - t) noise + t z for t in [0, 1]; the network predicts z - noise from (x_t, t, label), so integrating it from
noise at t = 0 reaches a sample at t = 1. Used by the latent priors (``core.prior``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def _time_features(t: torch.Tensor, size: int = 64) -> torch.Tensor:
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), size // 2, device=t.device))
    angles = t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.net = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(2 * hidden, hidden)
        )

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return h + self.net(self.norm(h) + cond)


class Velocity(nn.Module):
    """v(x_t, t, label): residual MLP; label index ``classes`` means "no label"."""

    def __init__(self, dim: int, hidden: int, blocks: int, classes: int, dropout: float = 0.0):
        super().__init__()
        self.classes = classes
        self.inp = nn.Linear(dim, hidden)
        self.time = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.label = nn.Embedding(classes + 1, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, dropout) for _ in range(blocks))
        last = nn.Linear(hidden, dim)
        nn.init.zeros_(last.weight)  # starts at v = 0: no drift before it learns one
        nn.init.zeros_(last.bias)
        self.out = nn.Sequential(nn.LayerNorm(hidden), last)

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        cond = self.time(_time_features(t)) + self.label(label)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)


def flow_loss(model: Velocity, z: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mean squared error of the predicted velocity at a random time between noise and ``z`` (B, d)."""
    noise = torch.randn(z.shape, generator=g).to(z)
    t = torch.rand(len(z), generator=g).to(z)
    x = (1 - t[:, None]) * noise + t[:, None] * z
    return ((model(x, t, labels) - (z - noise)) ** 2).mean()


def heun(velocity: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 in ``steps`` Heun (trapezoidal predictor-corrector) steps."""
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        v = velocity(x, t)
        x = x + h / 2 * (v + velocity(x + h * v, t + h))
    return x
