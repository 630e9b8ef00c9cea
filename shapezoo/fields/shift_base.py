"""Shift bases: shared weights that every field of a zoo keeps, each shape fitting only its biases (the shift
modulation of Functa, Dupont et al. 2022). A weight space reads such fields exactly (the ``shift`` design;
BENCHMARKS.md, "An encoder that generalises"). The base is written as a learned init folder (``load_init`` reads
it) whose record says ``modulation: shift``, so ``fit --init BASE`` fits biases only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.latents import split_names
from ..core.training import adam_step_
from ..core.zoo import member_seed
from ..errors import ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, locks
from .fitting import FitConfig
from .learned_init import (
    INIT_JSON,
    INIT_WEIGHTS,
    bundled_init,
    init_header,
    load_training_shapes,
    provenance,
    read_resumable,
)
from .network import FieldSpec, field_forward, init_params, modulation_lr
from .training_points import jitter_radii, split_holdout


@dataclass(frozen=True)
class BaseConfig:
    """The recipe of a shift base (saved in its JSON): shared weights and one bias vector per training shape,
    trained together on the shapes' occupancy (auto-decoding, DeepSDF-style)."""

    steps: int = 8000
    """Adam steps; each draws ``batch`` shapes. A 256-wide base's loss still falls at 3000; 16000 fitted held-out
    shapes less closely than 8000 (BENCHMARKS.md, "A wider base")."""
    batch: int = 32
    """Shapes per step (their biases and the shared weights move)."""
    points_per_step: int = 1024
    """Training points per shape per step, jittered as the fitter does."""
    lr: float = 1e-4
    """Peak Adam learning rate of the shared weights (cosine decay to lr * lr_final)."""
    bias_lr: float = 1e-3
    """Peak Adam learning rate of the per-shape biases."""
    lr_final: float = 0.05
    jitter_margin: float = 0.01
    """The fitter's label-preserving jitter (``FitConfig.jitter_margin``)."""
    seed: int = 0
    """Seed of the shape draws, of the starting weights when there is no bundled init, and of the split."""
    val: float = 0.1
    test: float = 0.2
    """The base learns only on the training split of the shapes, the split ``space train`` makes with the same
    shares and seed (``core.latents.split_names``): its validation and held-out fields stay unseen. 0 and 0: all."""
    train_shapes: int = 0
    """Learn on only this many of the training shapes (a random subset, as ``space train --train-limit``; 0: all)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (the folder is rewritten atomically)."""
    columns: int = 6
    """Modulated input columns of each hidden -> hidden weight that every shape moves besides its biases
    (``FieldSpec.modulation_mask``): a per-shape rank-``columns`` weight delta the space still reads exactly. 0: the
    biases alone (Functa's shift). 6 at width 256 (3841 numbers per field) fitted held-out CAPOD meshes 2.6 points
    and procedural shapes 0.7 closer than the biases alone, at 1.26x the fit time (BENCHMARKS.md, "Real meshes in
    the space")."""

    def __post_init__(self):
        if self.columns < 0:
            raise ShapezooError(f"columns must be >= 0, got {self.columns}")
        for name in ("steps", "batch", "points_per_step", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ShapezooError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "bias_lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ShapezooError(f"{name.replace('_', '-')} must be a positive number, got {value}")


BASE_WIDTH = 256
"""Hidden units of a shift base unless asked otherwise (``init base --width``): 256-wide bases fit held-out shapes
closer than 128-wide ones from every number of training shapes measured (80 / 160 / 280), with far fewer floating
blobs (BENCHMARKS.md, "A wider base"); their fields have 769 biases and 133k weights."""

BASE_STATE = "base_state.safetensors"
"""A shift base's training state beside its init (weights, per-shape biases, Adam moments, step): the checkpoint."""


@locks("out")
def learn_base(
    samples: Sequence[str | Path],
    out: str | Path,
    spec: FieldSpec,
    config: BaseConfig = BaseConfig(),
    device: str | torch.device = "cpu",
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Learn a shift base for fields of ``spec`` from the shapes of the samples folders into ``out``: shared weights
    and one code per shape (its biases and ``config.columns`` modulated columns), trained together (BCE on jittered
    training points, Adam, cosine schedule). The init it writes holds the shared weights with the mean of the shapes'
    codes; fields fitted from it move only their codes (``FitConfig.trainable='biases'``, ``columns``). Starts from
    the bundled init for ``spec`` when there is one.

    Learns on the training split of the shapes only (``config.val``/``config.test``, as ``space train`` splits).
    Resumes from ``out/base_state.safetensors`` (same spec, recipe and shapes; a finished base is returned as it
    is). Returns the record written to ``init.json``.
    """
    device = torch.device(device)
    out = ensure_output_dir(out)
    folders = [Path(s) for s in samples]
    shapes, n_uniform = load_training_shapes(folders)
    split = split_names([s["name"] for s in shapes], config.val, config.test, config.seed, config.train_shapes)
    training = set(split["train"])
    shapes = [s for s in shapes if s["name"] in training]
    start = bundled_init(spec)
    header = {
        **init_header(spec, "shift base: shared weights and per-shape biases trained together (auto-decoding)"),
        "modulation": "shift",
        "config": {k: v for k, v in asdict(config).items() if k != "columns" or v},  # biases alone: as bases before
        "start": start.provenance() if start is not None else {"kind": "seeded", "seed": config.seed},
        **provenance(folders, shapes),
    }
    manifest = out / INIT_JSON
    mask = spec.modulation_mask(config.columns).to(device)
    rates = modulation_lr(spec, config.columns).to(device)[mask]  # of the code's entries
    n = len(shapes)
    state = _fresh_state((start.params if start is not None else init_params(spec, config.seed)).to(device), mask, n)
    curve: list[dict] = []
    if manifest.exists():
        old = read_resumable(manifest, header, ("format", "spec", "modulation", "config", "shapes"))
        if old.get("complete"):
            return old
        saved = load_tensors(out / BASE_STATE, framework="pt")[0]
        state = {k: saved[k].to(device) if k != "step" else saved[k] for k in state}
        curve = [e for e in old.get("curve", []) if e["step"] <= int(state["step"])]

    def save(complete: bool) -> dict:
        params = state["weights"].clone()
        params[mask] = state["biases"].mean(0)
        atomic_save_tensors(out / BASE_STATE, {k: v.detach().cpu().contiguous() for k, v in state.items()})
        atomic_save_tensors(out / INIT_WEIGHTS, {"params": params.cpu().contiguous()})
        record = {**header, "steps_done": int(state["step"]), "complete": complete, "curve": curve}
        atomic_write_json(manifest, record)
        return record

    data = _training_data(shapes, n_uniform, config.jitter_margin)
    M = min(config.points_per_step, data[0].shape[1])
    per_pass = max(1, (8192 if device.type == "cpu" else 1 << 22) // M)
    if not manifest.exists():
        save(False)
    done, record = int(state["step"]), None
    while done < config.steps:
        tic = time.perf_counter()
        pick, x, y = _draw_batch(np.random.default_rng([config.seed, done]), data, n, M, config.batch, device)
        total = _step(spec, state, (mask, rates), pick, x, y, per_pass, done, config)
        done += 1
        state["step"] = torch.tensor(done)
        entry = {"step": done, "loss": total / len(pick), "seconds": time.perf_counter() - tic}
        if done % 10 == 0 or done == config.steps:
            curve.append({k: v for k, v in entry.items() if k != "seconds"})  # the record holds no wall-clock times
        if on_step is not None:
            on_step(entry)
        if done % config.checkpoint_every == 0 or done == config.steps:
            record = save(done == config.steps)
    return record if record is not None else save(True)


def _fresh_state(weights: torch.Tensor, mask: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """The state of a new base: its start's weights, every shape's biases at the start's, zero Adam moments."""
    biases = weights[mask].expand(n, -1).clone()
    state = {
        "weights": weights,
        "biases": biases,
        "m_w": torch.zeros_like(weights),
        "v_w": torch.zeros_like(weights),
        "step": torch.zeros((), dtype=torch.long),
    }
    state.update(m_b=torch.zeros_like(biases), v_b=torch.zeros_like(biases))
    state["t_b"] = torch.zeros(n, device=weights.device)
    return state


def _training_data(shapes: list[dict], n_uniform: int, margin: float) -> tuple[torch.Tensor, ...]:
    """The fitter's hold-out split (those points stay unseen): each shape's training indices (S, n), all its points
    and labels, and the jitter radii of the training points (S, n)."""
    N = shapes[0]["points"].shape[0]
    seeds = [member_seed(FitConfig().init_seed, s["name"]) for s in shapes]
    train_idx = torch.as_tensor(np.stack([split_holdout(N, n_uniform, FitConfig().holdout, sd)[0] for sd in seeds]))
    points = torch.stack([s["points"] for s in shapes]).float()
    occupancy = torch.stack([s["occupancy"] for s in shapes]).float()
    radii = torch.stack(
        [
            torch.as_tensor(jitter_radii(points[i, idx].numpy(), occupancy[i, idx].numpy(), margin))
            for i, idx in enumerate(train_idx)
        ]
    )
    return train_idx, points, occupancy, radii


def _draw_batch(rng: np.random.Generator, data: tuple, n: int, M: int, batch: int, device: torch.device):
    """One step's shapes (sorted indices), M jittered training points each and their labels, from ``rng``."""
    train_idx, points, occupancy, radii = data
    pick = torch.as_tensor(np.sort(rng.choice(n, size=min(batch, n), replace=False)))
    cols = torch.as_tensor(rng.integers(0, train_idx.shape[1], size=(len(pick), M)))
    idx = torch.gather(train_idx[pick], 1, cols)
    x = torch.gather(points[pick], 1, idx[..., None].expand(-1, -1, 3))
    y = torch.gather(occupancy[pick], 1, idx).to(device)
    u = torch.as_tensor(rng.normal(size=(len(pick), M, 3)), dtype=torch.float32)
    u *= (torch.as_tensor(rng.random((len(pick), M)), dtype=torch.float32) ** (1 / 3) / u.norm(dim=-1))[..., None]
    x = (x + u * torch.gather(radii[pick], 1, cols)[..., None]).clamp_(-0.5, 0.5).to(device)
    return pick, x, y


def _step(spec, state, modulation, pick, x, y, per_pass: int, done: int, config: BaseConfig) -> float:
    """One Adam step of the shared weights and of the picked shapes' codes (``modulation`` = (mask (P,), the codes'
    relative learning rates)) on their BCE; returns the summed loss."""
    mask, rates = modulation
    device = state["weights"].device
    w = state["weights"].clone().requires_grad_(True)
    b = state["biases"][pick.to(device)].clone().requires_grad_(True)
    total = 0.0
    for lo in range(0, len(pick), per_pass):
        bb = b[lo : lo + per_pass]
        p = w.masked_fill(mask, 0.0) + torch.zeros(len(bb), len(w), device=device).masked_scatter(
            mask.expand(len(bb), -1), bb
        )
        logits = field_forward(spec, p, x[lo : lo + per_pass])[..., 0]
        loss = F.binary_cross_entropy_with_logits(logits, y[lo : lo + per_pass], reduction="none").mean(-1).sum()
        loss.backward()
        total += float(loss.detach())
    if not np.isfinite(total):
        raise ShapezooError(f"shift base training diverged at step {done + 1} (loss {total}); try a lower --lr")
    with torch.no_grad():
        cosine = 0.5 * (1 + np.cos(np.pi * done / config.steps))
        decay = config.lr_final + (1 - config.lr_final) * cosine
        t = float(done + 1)
        assert w.grad is not None and b.grad is not None
        grad_w = (w.grad * ~mask)[None]
        adam_step_(state["weights"][None], grad_w, state["m_w"][None], state["v_w"][None], t, config.lr * decay)
        rows = pick.to(device)
        state["t_b"][rows] += 1
        bias, m_b, v_b = state["biases"][rows], state["m_b"][rows], state["v_b"][rows]
        code_lr = config.bias_lr * decay * (rates if config.columns else 1.0)  # biases alone: the scalar, as before
        adam_step_(bias, b.grad, m_b, v_b, state["t_b"][rows][:, None], code_lr)
        state["biases"][rows], state["m_b"][rows], state["v_b"][rows] = bias, m_b, v_b
    return total
