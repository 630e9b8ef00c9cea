"""The functional objective of fields: query points where a field's occupancy is decided, the distillation loss
between two fields' logits there, and refining latents by that loss through a frozen decoder (training and
encoding both use it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...core.latents import frozen
from ..network import FieldSpec, field_forward


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
) -> torch.Tensor:
    """Improve latents (N, d) by Adam steps on the functional loss of their decodes against the fields (N, P).

    Each step draws ``points`` query points per field afresh from a pool of ``pool`` probe points (half uniform,
    half near the surface): with one fixed small set the latent overfits those points (BENCHMARKS.md, weight space).
    """
    if steps <= 0:
        return z
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    pool = max(pool, points)
    out = []
    with frozen(model):
        for pb, zb in zip(params.split(batch), z.split(batch)):
            x_pool, t_pool = probe_points(spec, pb.to(dev), pool // 2, pool - pool // 2, seed)
            zb = zb.to(dev).detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([zb], lr=lr)
            for _ in range(steps):
                pick = torch.randint(0, pool, (len(zb), points), generator=g).to(dev)
                x = torch.gather(x_pool, 1, pick[..., None].expand(-1, -1, 3))
                loss = binary_kl(field_forward(spec, model.decode(zb), x)[..., 0], torch.gather(t_pool, 1, pick))
                opt.zero_grad()
                loss.backward()
                opt.step()
            out.append(zb.detach())
    return torch.cat(out)
