"""Training classifier zoos: B models per job from one shared initialisation, each with its own data order,
learning rate and training length (so accuracies spread, as in the paper), written as resumable zoo shards.

Adam is elementwise, so one update over stacked (B, P) parameters with per-model learning rates and step
counts is exactly B independent optimisers; a model whose training length is reached stops moving.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.measure import metric_summary
from ..core.training import adam_step_
from ..core.zoo import ZooWriter, load_zoo, member_seed
from ..errors import ShapezooError
from ..io import atomic_write_json, lasting, locks
from .archs import ClassifierSpec, accuracy, classifier_forward, init_params
from .data import ImageData

EVAL_IMAGES = 10000
"""Training and validation accuracy are measured on at most this many images (test accuracy on all)."""


@dataclass(frozen=True)
class ZooConfig:
    """The training recipe of a classifier zoo (saved in the zoo)."""

    count: int = 64
    """Models in the zoo."""
    batch: int = 32
    """Models trained together in one job (one shard)."""
    steps: tuple[int, int] = (20, 800)
    """Training length per model, log-uniform in [min, max]: short runs give the weak models of the zoo."""
    lr: tuple[float, float] = (1e-3, 3e-3)
    """Adam learning rate per model, log-uniform in [min, max]."""
    images: int = 64
    """Images per model per step (each model draws its own minibatches)."""
    weight_decay: float = 0.0
    init_seed: int = 0
    """Seed of the shared initial weights."""
    seed: int = 0
    """Base seed of the per-model hyperparameters and data orders."""

    def __post_init__(self):
        if self.count < 1 or self.batch < 1 or self.images < 1:
            raise ShapezooError(f"count, batch and images must be >= 1, got {self.count}, {self.batch}, {self.images}")
        if not 1 <= self.steps[0] <= self.steps[1] or not 0 < self.lr[0] <= self.lr[1]:
            raise ShapezooError(f"invalid ranges: steps {self.steps}, lr {self.lr}")


def model_names(spec: ClassifierSpec, count: int) -> list[str]:
    return [f"{spec.name}-{i:04d}" for i in range(count)]


def hyperparameters(config: ZooConfig, name: str) -> dict:
    """A model's seed, training length and learning rate, from the base seed and its name alone."""
    seed = member_seed(config.seed, name)
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(2, generator=g, dtype=torch.float64).tolist()
    (s0, s1), (l0, l1) = config.steps, config.lr
    return {
        "seed": seed,
        "steps": int(round(math.exp(math.log(s0) + u[0] * (math.log(s1) - math.log(s0))))),
        "lr": math.exp(math.log(l0) + u[1] * (math.log(l1) - math.log(l0))),
    }


def train_models(
    spec: ClassifierSpec,
    init: torch.Tensor,
    data: ImageData,
    hparams: list[dict],
    config: ZooConfig,
) -> tuple[torch.Tensor, list[float]]:
    """Train B models together on the device of ``data``: returns (B, P) weights and their final training losses."""
    dev = data.train[0].device
    x_all, y_all = data.train
    B, n = len(hparams), len(y_all)
    p = init.to(dev).expand(B, -1).clone()
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    lr = torch.tensor([h["lr"] for h in hparams], device=dev)[:, None]
    stop = torch.tensor([h["steps"] for h in hparams], device=dev)
    gens = [torch.Generator(device="cpu").manual_seed(h["seed"]) for h in hparams]
    last = torch.zeros(B, device=dev)
    for t in range(1, int(stop.max()) + 1):
        idx = torch.stack([torch.randint(0, n, (config.images,), generator=g) for g in gens]).to(dev)
        p.requires_grad_(True)
        logits = classifier_forward(spec, p, x_all[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), y_all[idx].flatten(), reduction="none").view(B, -1).mean(1)
        (grad,) = torch.autograd.grad(loss.sum(), p)
        with torch.no_grad():
            p = p.detach()
            active = (t <= stop)[:, None].float()
            if config.weight_decay:
                grad = grad + config.weight_decay * p
            adam_step_(p, grad, m, v, t, active * lr)
            last = torch.where(active[:, 0] > 0, loss.detach(), last)
            if not torch.isfinite(p).all():
                raise ShapezooError(f"classifier training diverged at step {t}; lower --lr")
    return p.detach(), last.tolist()


@locks("out")
def train_zoo(
    spec: ClassifierSpec,
    data: ImageData,
    out: str | Path,
    config: ZooConfig = ZooConfig(),
    data_meta: dict | None = None,
    on_shard: Callable[[int, int], None] | None = None,
) -> dict:
    """Train ``config.count`` models of ``spec`` into the zoo folder ``out``; reruns resume after the last shard.

    Models are grouped into jobs by training length, so a job's short runs do not wait long for its long ones.
    Each entry records the model's hyperparameters and its accuracy on the train/val/test splits.
    """
    if data.in_shape != spec.in_shape or data.classes != spec.classes:
        raise ShapezooError(
            f"{spec.name} is built for {spec.in_shape} images and {spec.classes} classes; "
            f"{data.name} has {data.in_shape} and {data.classes}"
        )
    init = init_params(spec, config.init_seed)
    meta = {"recipe": asdict(config), "data": data_meta or {"name": data.name}}
    writer = ZooWriter(out, spec, init, meta)
    names = [n for n in model_names(spec, config.count) if n not in writer.done()]
    hp = {n: hyperparameters(config, n) for n in names}
    names.sort(key=lambda n: hp[n]["steps"])
    started, trained = time.perf_counter(), 0
    for lo in range(0, len(names), config.batch):
        job = names[lo : lo + config.batch]
        params, losses = train_models(spec, init, data, [hp[n] for n in job], config)
        acc = {}
        for s in ("train", "val"):
            images, labels = data.split(s)
            acc[s] = accuracy(spec, params, images[:EVAL_IMAGES], labels[:EVAL_IMAGES]).tolist()
        acc["test"] = accuracy(spec, params, *data.test).tolist()
        entries = [
            {
                "name": name,
                "arch": spec.name,
                "status": "ok",
                **{k: hp[name][k] for k in ("seed", "steps", "lr")},
                "metrics": {"loss": losses[i], **{f"accuracy_{s}": acc[s][i] for s in acc}},
            }
            for i, name in enumerate(job)
        ]
        writer.append(params, entries)
        trained += len(job)
        if on_shard is not None:
            on_shard(trained, len(names))
    seconds = time.perf_counter() - started
    zoo = load_zoo(out, kind="classifier")
    summary = {
        "zoo": str(out),
        "arch": spec.name,
        "data": data.name,
        "models": len(zoo.names),
        "trained_this_run": trained,
        "parameters_per_model": spec.layout().size,
        "accuracy_test": metric_summary(zoo.entries, "accuracy_test"),
        "timing": {
            "seconds_this_run": round(seconds, 2),
            "models_per_hour": round(3600 * trained / seconds, 1) if trained else None,
        },
    }
    atomic_write_json(Path(out) / "train_summary.json", lasting(summary))
    return summary
