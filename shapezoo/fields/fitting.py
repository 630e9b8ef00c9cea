"""Batched fitting: B occupancy fields trained together from one shared initialisation, one Adam per field.

Read top to bottom: data layout, the loop (schedule, loss, per-field Adam, divergence restarts, early stopping),
and the held-out metrics. Adam is elementwise, so one update over stacked (B, P) parameters with a per-field
step count is exactly B independent optimisers; fields never influence each other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..core.measure import set_iou
from ..core.training import adam_step_
from ..core.zoo import member_seed
from ..errors import ShapezooError
from ..runtime import available_memory, cuda_graph, precision
from .network import FieldSpec, Moving, field_forward, layers_forward
from .samples import check_samples
from .training_points import JITTER_STRIDE, hard_count, jitter_tables, split_holdout, step_indices

Start = Literal["seeded", "learned", "shift"]
"""Where a zoo's fields start: the seeded init (or a template fitted from it), a learned init (full-weight fits) or
a shift base (bias-only fits)."""

RECIPE_STEPS = {"seeded": 4800, "learned": 500, "shift": 500}
"""Fitting steps of the recipe for each start (``FitConfig.resolve``)."""


@dataclass(frozen=True)
class FitConfig:
    """The fitting recipe (saved in every zoo)."""

    steps: int | None = None
    """Optimisation steps per field (a restarted field starts its count again). None: the recipe's (``resolve``)."""
    points_per_step: int = 1024
    """Training points per field per step; point-evaluations per field = steps * points_per_step."""
    lr: float | None = None
    """Peak Adam learning rate. None: the recipe's (``resolve``)."""
    lr_final: float = 0.05
    """Cosine decay ends at lr * lr_final (keeps thin parts from oscillating late in training)."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    holdout: float = 0.1
    """Share of each shape's samples (uniform and near-surface alike) kept out of training for metrics."""
    target_iou: float | None = None
    """Stop a field early once its IoU on training points reaches this (None: always run all steps)."""
    check_every: int = 100
    """Steps between early-stopping checks."""
    max_restarts: int = 2
    """Restarts (from the shared initialisation) of a field whose loss turns NaN/inf or explodes."""
    init_seed: int = 0
    """Seed of the shared initial weight vector."""
    template: str | None = None
    """Name of a shape fitted first (from the seeded init, same recipe); every field then starts from its
    weights (HyperDiffusion's recipe for zoos meant for weight-space learning)."""
    jitter_margin: float | None = 0.01
    """Label-preserving jitter (the free-space samples drawn afresh every step): each training point moves by a
    random offset no longer than its distance to the nearest training sample of the other label minus this margin
    (near-surface samples stay put; the surface lies within that distance, and dense near-surface samples put it no
    closer than the margin). Without it the field is free between the fixed uniform samples and grows floating
    blobs there (BENCHMARKS.md, "Learned initialisation and floaters"). None: train on the fixed samples only."""
    precision: Literal["auto", "fp32", "tf32"] = "auto"
    """``auto``: TF32 matmuls on CUDA, fp32 on CPU."""
    points_per_pass: int | None = None
    """Points (fields x points_per_step) per forward/backward pass; None: 8192 on CPU, where activations that
    stay in cache beat one huge batched matmul, and everything at once on CUDA."""
    hard_fraction: float | None = None
    """Share of each step's points chosen as the highest-loss of ``HARD_POOL`` times as many candidates scattered
    over the field's training points (``training_points.step_indices``), ranked by the loss each had when last
    trained on (no extra evaluations); the rest walk the shuffled order. Spends a short fit's budget where the field
    is still wrong (BENCHMARKS.md, "Hard points"). 0: the walk alone; None: the recipe's (``resolve``)."""
    hard_until: float = 0.6
    """Share of the steps that train on hard points; later steps take evenly spread candidates in their place, which
    clears the floating blobs a fit focused on hard points leaves in free space."""
    trainable: Literal["all", "biases"] = "all"
    """``biases``: only the biases (and ``columns``) move, every other weight stays at the start point's - fields
    are a shared base plus a per-shape modulation (Functa's shift), which a weight space reads exactly (``shapezoo
    init base``, ``shift_base.learn_base``, learns such a base; fitting from it sets this)."""
    columns: int = 0
    """With ``trainable='biases'``: the first ``columns`` input columns of each hidden -> hidden weight move too
    (``FieldSpec.modulation_mask``; a base's own, ``BaseConfig.columns``), at ``network.CODE_WEIGHT_LR`` x the lr."""

    def resolve(self, start: Start = "seeded", stored: dict | None = None) -> FitConfig:
        """The recipe with every value left None filled in - the one place fitting defaults live. A resumed zoo
        keeps its own steps and hard points (``stored``: its zoo.json ``fit``); otherwise the recipe of the start:
        4800 steps from the seeded init (or a template), 500 from a learned init or a shift base (BENCHMARKS.md,
        "Learned initialisation and floaters"); peak lr 5e-4, 2e-3 when only the biases move ("An encoder that
        generalises"); hard points 0.5 in the short fits from a learned init or a shift base, where they were
        measured to help ("Hard points"; a 6-column base's held-out fields: +0.7 IoU on CAPOD, +0.2 procedural, at
        the same time: "Hard points in a base's fields"), none from the seeded init. A shift base's fields train
        their biases only."""
        trainable = "biases" if start == "shift" else self.trainable
        steps = self.steps if self.steps is not None else (stored or {}).get("steps") or RECIPE_STEPS[start]
        hard = self.hard_fraction
        if hard is None:  # a resumed zoo keeps its own (none in zoos made before hard points)
            short = start != "seeded" and steps <= RECIPE_STEPS["learned"]
            hard = (0.5 if short else 0.0) if stored is None else stored.get("hard_fraction", 0.0)
        lr = self.lr if self.lr is not None else (2e-3 if trainable == "biases" else 5e-4)
        return replace(self, steps=steps, lr=lr, hard_fraction=hard, trainable=trainable)

    def for_encoding(self, exact: bool) -> FitConfig:
        """The recipe for meshes fitted only to be encoded into a space of a zoo fitted with this one: the same when
        the space reads fields exactly (a ``shift`` space), else a third of its steps - a space that refines decodes
        no closer than ~0.88 IoU, and the rest of the fit adds under a point to the decode for 2.5x the wall time
        (BENCHMARKS.md, "Encode straight from meshes")."""
        recipe = self.resolve()
        assert recipe.steps is not None
        return recipe if exact else replace(recipe, steps=max(1, recipe.steps // 3))

    def __post_init__(self):
        if (self.steps is not None and self.steps < 1) or self.points_per_step < 1:
            raise ShapezooError(
                f"steps must be >= 1 and points_per_step >= 1, got {self.steps}, {self.points_per_step}"
            )
        if not (0.0 <= (self.hard_fraction or 0.0) < 1.0 and 0.0 <= self.hard_until <= 1.0):
            raise ShapezooError(
                f"hard_fraction must be in [0, 1) and hard_until in [0, 1], got {self.hard_fraction}, {self.hard_until}"
            )
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ShapezooError(f"the learning rate must be a positive number, got {self.lr}")
        if not 0.0 < self.lr_final <= 1.0:
            raise ShapezooError(f"lr_final must be in (0, 1], got {self.lr_final}")
        if self.target_iou is not None and not 0.0 < self.target_iou <= 1.0:
            raise ShapezooError(f"the target IoU must be in (0, 1], got {self.target_iou}")
        if self.jitter_margin is not None and not (math.isfinite(self.jitter_margin) and self.jitter_margin >= 0):
            raise ShapezooError(f"jitter_margin must be >= 0 or None, got {self.jitter_margin}")
        if not 0.0 < self.holdout < 1.0:
            raise ShapezooError(f"holdout must be in (0, 1), got {self.holdout}")
        if self.trainable not in ("all", "biases"):
            raise ShapezooError(f"trainable must be 'all' or 'biases', got {self.trainable!r}")
        if self.columns < 0 or (self.columns and self.trainable != "biases"):
            raise ShapezooError(f"modulated columns need trainable='biases' and must be >= 0, got {self.columns}")


@dataclass
class FitResult:
    """Per-field outcome of one batched fit (all tensors on CPU)."""

    params: torch.Tensor
    """(B, P) fitted weights (the shared init for failed fields)."""
    status: list[str]
    """'ok' or 'failed' per field."""
    metrics: list[dict]
    """Per field: iou (held-out uniform points), iou_near (held-out near-surface points), loss, steps, restarts."""
    history: list[dict] = field(default_factory=list)
    """Per check: step, mean training loss and IoU over active fields."""


USE_CUDA_GRAPHS = True
"""Replay each training step as one CUDA graph on CUDA devices (set False to run the eager loop)."""
_SYNC_EVERY = 20
"""Steps between host syncs (divergence checks); between them the device runs ahead without waiting."""


def _train_step(
    spec: FieldSpec,
    config: FitConfig,
    M: int,
    n_train: int,
    fields_per_pass: int,
    state: tuple[torch.Tensor, ...],
    x_a: torch.Tensor,
    y_a: torch.Tensor,
    jitter_a: tuple[torch.Tensor, torch.Tensor] | None,
    trainable: Moving | None,
    seen_loss: torch.Tensor | None,
) -> torch.Tensor:
    """One step for every running field, in place on ``state`` = (params, m, v, t, offset, bad) of the A running
    fields: BCE gradients (a pass per group of fields), then Adam with each field's own step count and cosine
    learning rate. ``jitter_a`` = (unit-ball offsets (A, n, 3), safe radii (A, n)) moves each point by an offset
    picked by the field's own step count. ``trainable``: the entries a fit of a shift base's fields moves
    (``Moving``): only the tensors holding them enter autograd, and Adam runs on those entries alone; None: every
    weight moves. ``seen_loss`` (A, n_train): each point's loss when last trained on, updated here, from which
    ``step_indices`` picks the hard points. Returns the (A,) mean losses of the walked points (the hard ones would
    bias them up)."""
    p_a, m_a, v_a, t_a, off_a, bad = state
    steps, peak = config.steps, config.lr
    assert steps is not None and peak is not None  # resolved by fit_fields
    hard = 0 if seen_loss is None else hard_count(M, n_train, config.hard_fraction)
    idx = step_indices(M, n_train, hard, off_a, t_a, seen_loss, int(config.hard_until * steps))
    if jitter_a is not None:
        pick = (idx + t_a[:, None] * JITTER_STRIDE) % n_train
    grads, losses = [], []
    for lo in range(0, len(p_a), fields_per_pass):
        sl = slice(lo, lo + fields_per_pass)
        x = torch.gather(x_a[sl], 1, idx[sl, :, None].expand(-1, -1, 3))
        y = torch.gather(y_a[sl], 1, idx[sl])
        if jitter_a is not None:
            offset = torch.gather(jitter_a[0][sl], 1, pick[sl, :, None].expand(-1, -1, 3))
            radius = torch.gather(jitter_a[1][sl], 1, idx[sl])
            x = (x + offset * radius[..., None]).clamp_(-0.5, 0.5)
        if trainable is None:
            p = p_a[sl].detach().requires_grad_(True)
            logits = field_forward(spec, p, x).squeeze(-1)
        else:  # a modulation: only the tensors it moves enter autograd, the others' gradients are never computed
            layers = spec.layout().unflatten(p_a[sl].detach())
            moving = {k: v.clone().requires_grad_(True) for k, v in layers.items() if k in trainable.names}
            logits = layers_forward(spec, {**layers, **moving}, x, config.columns).squeeze(-1)
        point_loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        if seen_loss is not None:
            seen_loss[sl].scatter_(1, idx[sl], point_loss.detach())
        if trainable is None:
            grads.append(torch.autograd.grad(point_loss.mean(-1).sum(), p)[0])
        else:
            found = dict(zip(moving, torch.autograd.grad(point_loss.mean(-1).sum(), list(moving.values()))))
            grads.append(trainable.gather(found))  # the moving entries alone, no full-size flat gradient
        losses.append(point_loss.detach()[:, : M - hard].mean(-1))  # the walk's: an unbiased training loss
    grad, loss = torch.cat(grads), torch.cat(losses)
    with torch.no_grad():
        t_a.add_(1)
        tt = t_a.to(torch.float32)[:, None]
        cosine = 0.5 * (1 + torch.cos(math.pi * (tt - 1) / steps))
        lr = peak * (config.lr_final + (1 - config.lr_final) * cosine)
        if trainable is None:
            adam_step_(p_a, grad, m_a, v_a, tt, lr, config.betas, config.eps)
            moved = p_a
        else:  # the moving entries only: the others would stay put at learning rate 0 anyway
            k = trainable.index
            moved, m_k, v_k = p_a[:, k], m_a[:, k], v_a[:, k]
            adam_step_(moved, grad, m_k, v_k, tt, lr * trainable.rates, config.betas, config.eps)
            p_a[:, k], m_a[:, k], v_a[:, k] = moved, m_k, v_k
        off_a.add_(M - hard).remainder_(n_train)
        bad.logical_or_(~torch.isfinite(loss) | (loss > 5.0) | ~torch.isfinite(moved).all(-1))
    return loss


def pass_memory(spec: FieldSpec, points: int) -> int:
    """Rough peak bytes of one forward+backward pass over ``points`` points (activations, saved tensors, grads)."""
    return 4 * points * (spec.width * (3 * spec.depth + 2) + spec.input_features + 8)


def _passes(config: FitConfig, points: int, device: torch.device) -> tuple[int, int]:
    """(training points per field and step, fields per forward pass) of a fit over ``points`` samples per field."""
    M = min(config.points_per_step, int(round(points * (1 - config.holdout))))
    per_pass = config.points_per_pass or (8192 if device.type == "cpu" else 1 << 22)
    return M, max(1, per_pass // M)


def fit_memory(spec: FieldSpec, batch: int, points: int, config: FitConfig, device: torch.device) -> int:
    """Rough peak bytes of fitting ``batch`` fields of ``points`` samples each: one pass's activations, plus about
    six float32 copies of every field's weights (weights, start, Adam's moments, gradient, best) and the init, and
    the samples."""
    M, fields_per_pass = _passes(config, points, device)
    weights = 4 * (6 * batch + 1) * spec.layout().size
    return pass_memory(spec, min(batch, fields_per_pass) * M) + weights + 3 * 4 * batch * 4 * points


def _out_of_memory(fields: int, config: FitConfig, device: torch.device) -> ShapezooError:
    return ShapezooError(
        f"out of memory fitting {fields} fields x {config.points_per_step} points per step on "
        f"{device}; use a smaller --batch (e.g. {max(1, fields // 4)}) or --points-per-step"
    )


def fit_fields(
    spec: FieldSpec,
    init: torch.Tensor,
    points: torch.Tensor,
    occupancy: torch.Tensor,
    n_uniform: int,
    names: list[str],
    config: FitConfig = FitConfig(),
    on_check: Callable[[dict], None] | None = None,
    start: torch.Tensor | None = None,
) -> FitResult:
    """Fit B fields to their occupancy samples on the device of ``points``.

    On CPU, call ``shapezoo.runtime.reuse_freed_memory()`` once in your process first (the CLI does): without it
    each step page-faults its activations in again, 2-3x slower. The library leaves that process-wide choice to you.

    Args:
        init: (P,) shared initial weights (also where a diverged field restarts).
        start: optional (B, P) starting weights (warm start); default ``init`` for every field.
        points: (B, N, 3) samples per field; the first ``n_uniform`` of each are uniform in the domain.
        occupancy: (B, N) labels in {0, 1}.
        names: B field names; they seed each field's data order and hold-out split.
    """
    check_samples(points, occupancy, names)
    config = config.resolve("shift" if config.trainable == "biases" else "seeded")  # values left None
    device, B, N = points.device, points.shape[0], points.shape[1]
    spec.layout().check(init)
    M, fields_per_pass = _passes(config, N, device)
    if fit_memory(spec, B, N, config, device) > available_memory(device):
        raise _out_of_memory(B, config, device)
    try:
        return _fit(spec, init, start, points, occupancy, n_uniform, names, config, M, fields_per_pass, on_check)
    except torch.OutOfMemoryError:
        raise _out_of_memory(B, config, device) from None
    except RuntimeError as exc:
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc):
            raise _out_of_memory(B, config, device) from None
        raise


def _fit(spec, init, start, points, occupancy, n_uniform, names, config, M, fields_per_pass, on_check) -> FitResult:
    """The loop of ``fit_fields`` (arguments validated there)."""
    device, B = points.device, points.shape[0]
    occupancy = occupancy.to(device=device, dtype=torch.float32)
    train_x, train_y, held_idx, jitter = _training_data(points, occupancy, n_uniform, names, config)
    n_train = train_x.shape[1]
    check_x, check_y = train_x[:, :4096], train_y[:, :4096]  # training points for early stopping

    # Each training point's loss when last trained on (the hard points' ranking); 1.0, above a fitted loss, until then.
    seen_loss = torch.ones(B, n_train, device=device) if hard_count(M, n_train, config.hard_fraction) else None
    trainable = None if config.trainable == "all" else Moving.of(spec, config.columns, device)

    # Optimiser state, one row per field.
    init = init.to(device=device, dtype=torch.float32)
    params = init.expand(B, -1).clone() if start is None else start.to(device=device, dtype=torch.float32).clone()
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    t = torch.zeros(B, dtype=torch.long, device=device)
    offset = torch.zeros(B, dtype=torch.long, device=device)
    t_host, restarts, steps_done = [0] * B, [0] * B, [0] * B
    status = ["running"] * B
    history: list[dict] = []
    step = 0

    with precision(config.precision, device):
        active = list(range(B))
        while active:
            # The running fields' rows, gathered once; the inner loop only syncs with the host every few steps.
            act = torch.as_tensor(active, device=device)
            p_a, m_a, v_a, t_a, off_a = params[act], m[act], v[act], t[act], offset[act]
            x_a, y_a = train_x[act], train_y[act]
            bad = torch.zeros(len(active), dtype=torch.bool, device=device)
            horizon = min(config.steps - t_host[b] for b in active)
            since, changed = 0, False

            jitter_a = None if jitter is None else (jitter[0][act], jitter[1][act])
            seen_a = None if seen_loss is None else seen_loss[act]
            rows, data = (p_a, m_a, v_a, t_a, off_a, bad), (x_a, y_a, jitter_a, trainable, seen_a)
            train_step = functools.partial(_train_step, spec, config, M, n_train, fields_per_pass, rows, *data)
            graphs = device.type == "cuda" and USE_CUDA_GRAPHS
            state = [p_a, m_a, v_a, t_a, off_a, bad] + ([] if seen_a is None else [seen_a])
            run_step = cuda_graph(train_step, state) if graphs else None
            while not changed:
                loss = run_step() if run_step is not None else train_step()
                step, since = step + 1, since + 1
                checking = step % config.check_every == 0
                if not (since % _SYNC_EVERY == 0 or since == horizon or checking):
                    continue
                # Host bookkeeping: divergence restarts, end of schedule, early stopping.
                for b, is_bad in zip(active, bad.tolist()):
                    t_host[b] += since
                    steps_done[b] += since
                    if is_bad:
                        status[b], changed = "restart", True
                    elif t_host[b] >= config.steps:
                        status[b], changed = "ok", True
                horizon, since = horizon - since, 0
                if checking:
                    with torch.no_grad():
                        check_iou = set_iou(
                            _forward_chunked(spec, p_a, check_x[act], fields_per_pass) > 0, check_y[act] > 0.5
                        )
                    history.append(_check_record(step, loss, check_iou, len(active)))
                    if on_check is not None:
                        on_check(history[-1])
                    if config.target_iou is not None:
                        for b, value in zip(active, check_iou.tolist()):
                            if status[b] == "running" and value >= config.target_iou:
                                status[b], changed = "ok", True
            full = (params, m, v, t, offset, seen_loss)
            _end_pass(act, active, (p_a, m_a, v_a, t_a, off_a, seen_a), full, init, status, restarts, t_host, config)
            active = [b for b in range(B) if status[b] == "running"]

        metrics = _held_out(
            spec, params, points, occupancy, held_idx, round(n_uniform * config.holdout), fields_per_pass
        )
    for b in range(B):
        metrics[b].update(steps=steps_done[b], point_evals=steps_done[b] * M, restarts=restarts[b])
        if status[b] == "failed":
            params[b] = init
    return FitResult(params.detach().cpu(), status, metrics, history)


def _end_pass(act, active, rows, full, init, status, restarts, t_host, config) -> None:
    """Write the running fields' rows back into the full state; a diverged field starts again from ``init`` with
    fresh moments (or fails after ``max_restarts``)."""
    params, m, v, t, offset, seen_loss = full
    params[act], m[act], v[act], t[act], offset[act] = rows[:5]
    if seen_loss is not None and rows[5] is not None:
        seen_loss[act] = rows[5]
    for b in active:
        if status[b] == "restart":
            restarts[b] += 1
            params[b], m[b], v[b], t[b], offset[b], t_host[b] = init, 0.0, 0.0, 0, 0, 0
            if seen_loss is not None:
                seen_loss[b] = 1.0
            status[b] = "failed" if restarts[b] > config.max_restarts else "running"


def _training_data(points, occupancy, n_uniform, names, config):
    """Per field a fixed hold-out split (seeded by its name) and its training points and labels; the label-preserving
    jitter tables when the recipe jitters. Returns train_x (B, n, 3), train_y (B, n), held_idx (B, h), jitter."""
    device, N = points.device, points.shape[1]
    train_idx, held_idx = zip(
        *(split_holdout(N, n_uniform, config.holdout, member_seed(config.init_seed, n)) for n in names)
    )
    train_idx = torch.as_tensor(np.stack(train_idx), device=device)
    train_x = torch.gather(points, 1, train_idx[..., None].expand(-1, -1, 3))
    train_y = torch.gather(occupancy, 1, train_idx)
    jitter = None
    if config.jitter_margin is not None:
        seeds = [member_seed(config.init_seed, "jitter:" + n) for n in names]
        jitter = jitter_tables(train_x, train_y, seeds, config.jitter_margin)
    return train_x, train_y, torch.as_tensor(np.stack(held_idx), device=device), jitter


def _check_record(step: int, loss: torch.Tensor, check_iou: torch.Tensor, active: int) -> dict:
    """One entry of the fit's history: mean loss of the finite fields, mean training IoU, fields still running."""
    finite = loss[torch.isfinite(loss)]
    return {
        "step": step,
        "loss": float(finite.mean()) if len(finite) else float("nan"),
        "iou": float(check_iou.mean()),
        "active": active,
    }


def _held_out(spec, params, points, occupancy, held_idx, n_held_uniform: int, fields_per_pass: int) -> list[dict]:
    """Each field's metrics on its held-out points: IoU of the uniform and of the near-surface ones, mean loss."""
    with torch.no_grad():
        hx = torch.gather(points, 1, held_idx[..., None].expand(-1, -1, 3))
        hy = torch.gather(occupancy, 1, held_idx)
        logits = _forward_chunked(spec, params, hx, fields_per_pass)
        held_loss = F.binary_cross_entropy_with_logits(logits, hy, reduction="none").mean(-1)
        iou_uniform = set_iou(logits[:, :n_held_uniform] > 0, hy[:, :n_held_uniform] > 0.5)
        iou_near = set_iou(logits[:, n_held_uniform:] > 0, hy[:, n_held_uniform:] > 0.5)
    return [
        {"iou": float(iou_uniform[b]), "iou_near": float(iou_near[b]), "loss": float(held_loss[b])}
        for b in range(len(params))
    ]


def _forward_chunked(spec: FieldSpec, params: torch.Tensor, x: torch.Tensor, fields: int) -> torch.Tensor:
    """(B, P), (B, N, 3) -> (B, N) logits, ``fields`` fields per pass."""
    return torch.cat([field_forward(spec, p, xx).squeeze(-1) for p, xx in zip(params.split(fields), x.split(fields))])
