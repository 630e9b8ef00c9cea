"""The functional objective of a space: where a decode is compared with its field, by which loss, and the score
that picks the best checkpoint (``Functional``; occupancy fields' is ``OCCUPANCY``, other kinds register theirs),
and refining latents by that loss through a frozen decoder (training and encoding both use it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.latents import frozen
from ...core.measure import set_iou
from ...errors import ShapezooError
from ..network import FieldSpec, field_forward


@dataclass(frozen=True)
class Functional:
    """How a space compares fields of one kind by what they compute.

    - ``queries(spec, params, n_uniform, n_near, seed, zoo_meta)``: the (N, n, in_dim) query points of N fields and
      their outputs there, the targets (the first ``n_uniform`` of each field spread over the domain; ``zoo_meta``,
      the fields' zoo record, says e.g. an image's size);
    - ``loss(outputs, targets)``: the distillation loss (outputs of ``field_forward``);
    - ``score(outputs, targets, n_uniform)``: (N,) how closely each decode computes its field, higher is better,
      reported as ``{score_name}_mean`` / ``_median`` and shown to people as ``score_label``;
    - ``pool``: the most query points per field and pool worth drawing (``TrainConfig``'s pools are capped there).
    """

    score_name: str
    score_label: str
    queries: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
    pool: int = 1 << 20


def probe_points(
    spec: FieldSpec, params: torch.Tensor, n_uniform: int, n_near: int, seed: int, bisections: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query points for N fields and the fields' logits there.

    Near-surface points come from the field itself, so a zoo alone is enough to train a space: each inside
    candidate is paired with its nearest outside candidate, the segment between them is bisected down to the
    level set, and the crossing is jittered by 0.01 / 0.003 (the sampling sigmas). A field without both signs
    gets uniform points instead.

    Args:
        params: (N, P) original weights.

    Returns:
        points (N, n_uniform + n_near, 3) and logits (N, n_uniform + n_near).
    """
    dev = params.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    sigma = torch.where(torch.arange(n_near) < n_near // 2, 0.01, 0.003)[:, None]
    xs, ts = [], []
    with torch.no_grad():
        for p in params:
            p = p[None]
            uniform = torch.rand(n_uniform, 3, generator=g) - 0.5
            cand = torch.rand(4 * max(n_near, 1), 3, generator=g) - 0.5
            inside = field_forward(spec, p, cand[None].to(dev))[0, :, 0].cpu() > 0
            ins, outs = cand[inside], cand[~inside]
            if len(ins) and len(outs) and n_near:
                a = ins[torch.randint(0, len(ins), (n_near,), generator=g)]
                outs = outs[torch.randperm(len(outs), generator=g)[:2048]]
                b = outs[torch.cdist(a, outs).argmin(1)]
                for _ in range(bisections):
                    mid = (a + b) / 2
                    m_in = field_forward(spec, p, mid[None].to(dev))[0, :, 0].cpu() > 0
                    a, b = torch.where(m_in[:, None], mid, a), torch.where(m_in[:, None], b, mid)
                near = ((a + b) / 2 + sigma * torch.randn(n_near, 3, generator=g)).clamp(-0.5, 0.5)
            else:
                near = torch.rand(n_near, 3, generator=g) - 0.5
            x = torch.cat([uniform, near]).to(dev)[None]
            xs.append(x)
            ts.append(field_forward(spec, p, x)[..., 0])
    return torch.cat(xs), torch.cat(ts)


def binary_kl(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(Bernoulli(σ(target)) || Bernoulli(σ(logits))): distillation of occupancy probabilities."""
    p = torch.sigmoid(target_logits)
    return (
        F.binary_cross_entropy_with_logits(logits, p) - F.binary_cross_entropy_with_logits(target_logits, p)
    ).clamp_min(0)


OCCUPANCY = Functional(
    "field_iou",
    "field IoU",
    lambda spec, params, n_uniform, n_near, seed, zoo_meta: probe_points(spec, params, n_uniform, n_near, seed),
    lambda out, targets: binary_kl(out[..., 0], targets),
    lambda out, targets, n: set_iou(out[:, :n, 0] > 0, targets[:, :n] > 0),
)
"""Occupancy fields: points uniform in the domain and near the field's surface, binary KL of the occupancy
probabilities, IoU of the occupied sets on the uniform points."""

_FUNCTIONALS: dict[str, Functional] = {"field": OCCUPANCY}

SPACE_KINDS = ("field", "image")
"""Zoo kinds a weight space is trained on: occupancy fields and image fields (``images.network`` registers theirs)."""


def register_functional(kind: str, functional: Functional) -> None:
    """Make spaces over zoos of ``kind`` (a registered network kind) train and score with ``functional``."""
    _FUNCTIONALS[kind] = functional


def functional_of(spec: FieldSpec) -> Functional:
    """The functional objective of fields of ``spec``'s kind."""
    kind = type(spec).zoo_kind
    if kind not in _FUNCTIONALS:
        raise ShapezooError(f"no weight space is defined for {kind} fields")
    return _FUNCTIONALS[kind]


def take(values: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """(B, n, ...) per-field values at (B, k) indices -> (B, k, ...)."""
    return values[torch.arange(len(pick), device=pick.device)[:, None], pick]


REFINE_POINTS = 2048
"""Query points per field and refinement step (1024 take 60% of the time and decode 0.1 points of IoU worse:
BENCHMARKS.md, "Encode straight from meshes")."""


def refine_model_latents(
    model,
    spec: FieldSpec,
    params,
    z,
    steps: int,
    lr: float = 0.02,
    points: int = REFINE_POINTS,
    pool: int = 16384,
    seed: int = 0,
    batch: int = 64,
    zoo_meta: dict | None = None,
) -> torch.Tensor:
    """Improve latents (N, d) by Adam steps on the functional loss of their decodes against the fields (N, P) (of a
    zoo whose record is ``zoo_meta``).

    Each step draws ``points`` query points per field afresh from a pool of ``pool`` probe points (half uniform,
    half near the surface): with one fixed small set the latent overfits those points (BENCHMARKS.md, weight space).
    """
    if steps <= 0:
        return z
    functional = functional_of(spec)
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    pool = max(pool, points)
    out = []
    with frozen(model):
        for pb, zb in zip(params.split(batch), z.split(batch)):
            x_pool, t_pool = functional.queries(spec, pb.to(dev), pool // 2, pool - pool // 2, seed, zoo_meta)
            zb = zb.to(dev).detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([zb], lr=lr)
            for _ in range(steps):
                pick = torch.randint(0, pool, (len(zb), points), generator=g).to(dev)
                loss = functional.loss(field_forward(spec, model.decode(zb), take(x_pool, pick)), take(t_pool, pick))
                opt.zero_grad()
                loss.backward()
                opt.step()
            out.append(zb.detach())
    return torch.cat(out)
