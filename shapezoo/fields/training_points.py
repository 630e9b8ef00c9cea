"""Which training points a fit sees: each shape's hold-out split, the points of each step (a walk over the shuffled
samples plus, optionally, hard points), and a label-preserving jitter that moves them.

Hard points: part of a step's points are the highest-loss of a few times as many candidates scattered over the
samples, ranked by the loss each had when last trained on (no extra evaluations), so a short fit spends its budget
where the field is still wrong (BENCHMARKS.md, "Hard points").

Jitter: each point may move less than its distance to the nearest sample of the other label (minus a margin) without
changing its label, wherever the other label's samples cover the surface densely, as near-surface samples do (with
the default samples about one moved point in 1600 changes side: label noise far below the fit's error, tested). The
fitter moves every training point by such an offset each step, so empty space and the solid's interior are not
left free between the fixed samples (where fields grew floating blobs and hollow bubbles).
"""

from __future__ import annotations

import numpy as np
import torch


def split_holdout(n: int, n_uniform: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out) of one shape's samples; both keep the uniform / near-surface proportions.

    The held-out indices list the uniform ones first.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for lo, hi in ((0, n_uniform), (n_uniform, n)):
        perm = lo + rng.permutation(hi - lo)
        k = int(round((hi - lo) * holdout))
        parts.append((perm[k:], perm[:k]))
    return np.concatenate([parts[0][0], parts[1][0]]), np.concatenate([parts[0][1], parts[1][1]])


HARD_POOL = 4
"""Candidates per hard point (the fit's ``hard_fraction``): the hard points are the top quarter of them."""
_POOL_SHARE = 1 / 16
"""At most this share of a field's training points are a step's candidates, so its hard points are the hardest of
a fresh sample, not the same few every step (on a small sample set those would take over the fit)."""
_SCATTER = (31, 104729, 7919)
"""Primes placing a step's candidates at 31 offset + 104729 t + 7919 k (mod n_train), k < the pool: scattered over
the shuffled order and moved on every step (the best of three placements measured: BENCHMARKS.md, "Hard
points")."""


def step_indices(
    M: int,
    n_train: int,
    hard: int,
    offset: torch.Tensor,
    t: torch.Tensor,
    seen_loss: torch.Tensor | None,
    until: int,
) -> torch.Tensor:
    """(A, M) training-point indices of one step per field: ``M - hard`` walking the field's shuffled order from
    its ``offset``, then the ``hard`` highest ``seen_loss`` (A, n_train) among ``HARD_POOL * hard`` candidates
    placed by the field's own offset and step count ``t`` (so a field's points do not depend on its batch); from
    step ``until`` on, the first ``hard`` candidates instead."""
    walk = (offset[:, None] + torch.arange(M - hard, device=offset.device)) % n_train
    if not hard or seen_loss is None:
        return walk
    k = torch.arange(HARD_POOL * hard, device=offset.device)
    a, b, c = _SCATTER
    candidates = (a * offset[:, None] + b * t[:, None] + c * k) % n_train
    score = torch.gather(seen_loss, 1, candidates)
    late = (t >= until)[:, None]  # past the hard phase: the first candidates, spread evenly over the samples
    score = torch.where(late, -k.to(score.dtype), score)
    # A stable sort, not topk: the loss table starts at one value, and topk breaks such ties differently on CPU and
    # CUDA (the first candidates win here, on every device).
    top = score.sort(dim=1, descending=True, stable=True).indices[:, :hard]
    return torch.cat([walk, torch.gather(candidates, 1, top)], 1)


def hard_count(M: int, n_train: int, fraction: float | None) -> int:
    """Hard points per step: ``fraction`` of the step's ``M`` points, capped so that a step's candidates are at most
    ``_POOL_SHARE`` of the field's ``n_train`` training points."""
    return min(int(M * (fraction or 0)), int(n_train * _POOL_SHARE) // HARD_POOL)


JITTER_STRIDE = 7919
"""Step-to-step shift of the offset each point takes (a prime, so a point meets every offset of the table)."""


_JITTER_REACH = 0.06
"""Distances to the other label are searched up to this far (a bounded KD-tree search is ~4x faster): no point
moves more than ``_JITTER_REACH - margin``, which still fills the gaps between the uniform samples (~0.03 apart)."""


def jitter_radii(points: np.ndarray, labels: np.ndarray, margin: float) -> np.ndarray:
    """(n,) safe jitter radius of each labelled point (n, 3): its distance to the nearest point of the other label
    (at most ``_JITTER_REACH``) minus ``margin``, at least 0. Moving a point less than that keeps its label wherever
    the other label's points sample the surface densely (within ``margin``), as the near-surface samples do."""
    from scipy.spatial import cKDTree

    inside = labels > 0.5
    radius = np.zeros(len(points), dtype=np.float32)
    if inside.all() or not inside.any():
        return radius
    for side in (inside, ~inside):
        dist, _ = cKDTree(points[~side]).query(points[side], k=1, distance_upper_bound=_JITTER_REACH)
        radius[side] = np.clip(dist, 0.0, _JITTER_REACH) - margin
    return np.maximum(radius, 0.0)


def jitter_tables(
    train_x: torch.Tensor, train_y: torch.Tensor, seeds: list[int], margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per field: unit-ball offsets (B, n, 3) drawn from the field's own seed, and safe radii (B, n), on the device
    of the (B, n, 3) training points ``train_x`` with labels ``train_y`` (B, n)."""
    offsets, radii = [], []
    for x, y, seed in zip(train_x.cpu().numpy(), train_y.cpu().numpy(), seeds):
        rng = np.random.default_rng(seed)
        u = rng.normal(size=(len(x), 3))
        u *= (rng.random(len(x)) ** (1 / 3) / np.linalg.norm(u, axis=1))[:, None]
        offsets.append(u.astype(np.float32))
        radii.append(jitter_radii(x, y, margin))
    device = train_x.device
    return torch.as_tensor(np.stack(offsets), device=device), torch.as_tensor(np.stack(radii), device=device)
