"""A classifier trained end to end on whole fields that reads a field by what it computes (the ``queries`` probe
feature): each field runs at a few learned coordinates and an MLP classifies its outputs there (the probing family of
weight-space methods, e.g. ProbeGen, Kahana et al. ICLR 2025). Its features are functions of the field, not of how
its weights are arranged: it needs no shared start and no permutation of hidden units changes them."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapezooError
from ..fields.network import FieldSpec, field_forward


@dataclass(frozen=True)
class ReaderConfig:
    """The query classifier and how it is trained."""

    queries: int = 128
    """Learned input coordinates every field is evaluated at."""
    hidden: int = 512
    """Width of the MLP head's hidden layers."""
    dropout: float = 0.2
    epochs: int = 30
    batch: int = 128
    lr: float = 2e-3
    """Peak AdamW learning rate (cosine decay to zero)."""
    weight_decay: float = 1e-4
    seed: int = 0
    mirror: bool | None = None
    """Train on each field mirrored left-right (its last coordinate negated) half the time, and classify by the mean
    of both views' probabilities: for classes a mirror keeps (Fashion-MNIST, CIFAR-10; not digits). Fashion-MNIST,
    50000 -> 10000 shared-start train fields: 89.8% against 89.2% (BENCHMARKS.md, "Mirrored reads"). None: by the
    zoo's dataset (``probe_image_zoo``; off where no dataset is known)."""
    readers: int = 1
    """Readers trained alike from seeds ``seed``, ``seed + 1``, ... whose probabilities are averaged (an ensemble:
    each costs one reader's time)."""

    def __post_init__(self):
        sizes = (self.queries, self.hidden, self.epochs, self.batch, self.readers)
        if min(sizes) < 1 or not 0 <= self.dropout < 1 or self.lr <= 0:
            raise ShapezooError(f"query classifier: sizes must be >= 1, 0 <= dropout < 1, lr > 0; got {self}")


class QueryClassifier(nn.Module):
    """Learned query coordinates in the fields' domain [-1, 1]^d, then an MLP over the fields' outputs there."""

    def __init__(self, spec: FieldSpec, classes: int, config: ReaderConfig):
        super().__init__()
        self.spec = spec
        self.coords = nn.Parameter(torch.rand(config.queries, spec.in_dim) * 2 - 1)
        self.head = nn.Sequential(
            nn.Linear(config.queries * spec.out_dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, classes),
        )

    def forward(self, params: torch.Tensor, mirrored: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P) field weights -> (B, classes) logits; ``mirrored`` (B,) bool: read those fields mirrored (their
        last coordinate negated)."""
        coords = self.coords.expand(len(params), -1, -1)
        if mirrored is not None:
            flipped = torch.cat([coords[..., :-1], -coords[..., -1:]], -1)
            coords = torch.where(mirrored.to(coords.device)[:, None, None], flipped, coords)
        return self.head(field_forward(self.spec, params, coords).flatten(1))

    @torch.no_grad()
    def probabilities(self, params: torch.Tensor, mirror: bool) -> torch.Tensor:
        """(B, classes) class probabilities, the mean of both views' when ``mirror``."""
        probs = self(params).softmax(-1)
        if mirror:
            probs = (probs + self(params, torch.ones(len(params), dtype=torch.bool)).softmax(-1)) / 2
        return probs


def train_reader(
    spec: FieldSpec, params: torch.Tensor, y: torch.Tensor, classes: int, config: ReaderConfig
) -> QueryClassifier:
    """A query classifier fitted to (B, P) fields with (B,) class ids: AdamW, cosine decay, shuffled batches, all
    seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    model = QueryClassifier(spec, classes, config)
    torch.manual_seed(config.seed)  # the batch order's stream starts at the seed too, whatever the model drew
    steps = config.epochs * -(-len(params) // config.batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    model.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(params)).split(config.batch):
            mirrored = torch.rand(len(batch)) < 0.5 if config.mirror else None
            loss = F.cross_entropy(model(params[batch], mirrored), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def reader_classify(
    spec: FieldSpec,
    params: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: ReaderConfig = ReaderConfig(),
) -> dict:
    """Held-out accuracy (mean and per fold) of a query classifier (or ``config.readers`` of them, averaged) trained on
    each fold's training fields, under the keys of ``core.kfold.classify``'s MLP (it has no linear variant)."""
    p, labels = torch.as_tensor(params, dtype=torch.float32), torch.as_tensor(y)
    classes = int(labels.max()) + 1
    scores = []
    for train, test in folds:
        probs = torch.zeros(len(test), classes)
        for k in range(config.readers):
            model = train_reader(spec, p[train], labels[train], classes, replace(config, seed=config.seed + k))
            probs += torch.cat([model.probabilities(chunk, bool(config.mirror)) for chunk in p[test].split(4096)])
        predicted = probs.argmax(-1)
        scores.append(float((predicted == labels[test]).float().mean()))
    accuracy = float(np.mean(scores))
    return {"linear_accuracy": None, "mlp_accuracy": accuracy, "mlp_per_fold": scores, "config": config.__dict__}
