"""Moving through a weight space of fields: latent optimisation against evidence and against the fields themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.latents import frozen
from ...core.prior import GaussianPrior
from ...errors import ShapezooError
from ..network import field_forward
from .model import WeightSpace
from .objective import REFINE_POINTS, refine_model_latents


@dataclass(frozen=True)
class Evidence:
    """Occupancy evidence for one shape: points (n, 3) in the frame and target probabilities (n,) in [0, 1].

    Observed surface points have target 0.5 (the level set); points pushed inwards/outwards along known normals
    have targets 1 / 0.
    """

    points: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def from_surface(cls, points: torch.Tensor, normals: torch.Tensor | None = None, offset: float = 0.01) -> Evidence:
        """Evidence from surface points (n, 3) and, if known, outward normals (n, 3)."""
        if points.dim() != 2 or points.shape[1] != 3 or len(points) == 0:
            raise ShapezooError(f"surface points must be a non-empty (n, 3) array, got {tuple(points.shape)}")
        parts, targets = [points], [torch.full((len(points),), 0.5)]
        if normals is not None:
            n = F.normalize(normals, dim=1)
            parts += [points - offset * n, points + offset * n]
            targets += [torch.ones(len(points)), torch.zeros(len(points))]
        return cls(torch.cat(parts).float(), torch.cat(targets).float())


@dataclass(frozen=True)
class OptimizeConfig:
    """Latent optimisation against evidence."""

    steps: int = 300
    lr: float = 0.05
    """Adam step size in whitened latent coordinates."""
    prior: float | None = None
    """Weight of ||u||^2 / d (the Gaussian prior's negative log-likelihood per dimension); None: the measured weight
    of the space's design (``PRIOR_WEIGHTS``)."""
    points: int = 4096
    """Evidence points per step (all if fewer)."""
    seed: int = 0


PRIOR_WEIGHTS = {"shift": 1.0, "neuron": 1e-3, "prep": 1e-3}
"""Prior weight per space design. A learned decoder's compact codes complete shapes well with a light pull towards
the mean; a shift space's latents (one standardised bias per hidden unit) need a strong one, or the unobserved part
of a shape drifts: 1.0 was chosen on validation shapes (BENCHMARKS.md, "256 wide, 8000 steps")."""


def prior_weight(space: WeightSpace, config: OptimizeConfig) -> float:
    """The prior weight ``config`` asks for, or the measured one of the space's design."""
    return PRIOR_WEIGHTS[space.model.config.design] if config.prior is None else config.prior


def optimize_latent(
    space: WeightSpace,
    evidence: Evidence,
    prior: GaussianPrior,
    config: OptimizeConfig = OptimizeConfig(),
    start: torch.Tensor | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """Find z whose decoded field best explains the evidence, starting from the prior mean (or ``start``).

    Optimises whitened coordinates u (z = mean + L u) with Adam; loss = BCE(field logits, targets) + prior term.
    Returns the latent (d,) and the loss history (every 10 steps).
    """
    dev = next(space.model.parameters()).device
    x, y = evidence.points.to(dev), evidence.targets.to(dev)
    u0 = torch.zeros(1, space.latent_size) if start is None else prior.to_whitened(start.reshape(1, -1).cpu())
    u = u0.to(dev).clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    weight = prior_weight(space, config)
    history = []
    with frozen(space.model):
        for step in range(config.steps):
            pick = torch.randperm(len(x), generator=g)[: config.points].to(dev)
            params = space.model.decode(prior.to_latent(u))
            logits = field_forward(space.spec, params, x[pick][None])[0, :, 0]
            fit = F.binary_cross_entropy_with_logits(logits, y[pick])
            reg = (u**2).mean()
            loss = fit + weight * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0 or step == config.steps - 1:
                history.append({"step": step, "evidence": float(fit.detach()), "prior": float(reg.detach())})
                if on_step is not None:
                    on_step(step, history[-1])
    return prior.to_latent(u.detach())[0], history


def refine_latents(
    space: WeightSpace,
    params: torch.Tensor,
    z: torch.Tensor,
    steps: int,
    lr: float = 0.02,
    points: int = REFINE_POINTS,
    pool: int = 16384,
    seed: int = 0,
) -> torch.Tensor:
    """Improve encoder latents (N, d) by gradient steps on the functional loss against the fields (N, P) themselves.

    The encoder is amortised (one pass) and predicts the training codes; latent optimisation against the field's
    own function does the rest, most for fields unlike the training zoo. Fields the encoder reads exactly
    (``WeightSpace.exact``) keep their latents.
    """
    if steps <= 0:
        return z
    todo = (~space.exact(params)).nonzero().flatten()
    if not len(todo):
        return z
    z = z.clone()
    z[todo.to(z.device)] = refine_model_latents(
        space.model,
        space.spec,
        params[todo.to(params.device)],
        z[todo.to(z.device)],
        steps,
        lr,
        points,
        pool,
        seed,
        zoo_meta=space.meta.get("zoo", {}).get("meta"),
    )
    return z
