"""Classifiers trained end to end on whole fields that read a field by what it computes (``queries``: each field run
at a few learned coordinates, an MLP over its outputs; the probing family of weight-space methods, e.g. ProbeGen,
Kahana et al. ICLR 2025). Its features are functions of the field, not of how its weights are arranged: it needs no
shared start and no permutation of hidden units changes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapezooError
from ..fields.network import FieldSpec, field_forward

READERS = ("queries",)


@dataclass(frozen=True)
class ReaderConfig:
    """A field reader and how it is trained."""

    queries: int = 128
    """Learned input coordinates every field is evaluated at."""
    hidden: int = 512
    """Width of the MLP head's hidden layers."""
    dropout: float = 0.2
    jitter: float = 0.0
    """Training only: every field's queries move together by a uniform random offset of up to this
    much of its domain per axis, i.e. the image shifts (an augmentation no raw-weight reader has)."""
    epochs: int = 30
    batch: int = 128
    lr: float = 2e-3
    """Peak AdamW learning rate (cosine decay to zero)."""
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        sizes = (self.queries, self.hidden, self.epochs, self.batch)
        if min(sizes) < 1 or not 0 <= self.dropout < 1 or self.lr <= 0 or self.jitter < 0:
            raise ShapezooError(f"field reader: sizes must be >= 1, 0 <= dropout < 1, lr > 0, jitter >= 0; got {self}")


def _head(inputs: int, classes: int, config: ReaderConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, config.hidden),
        nn.ReLU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, config.hidden),
        nn.ReLU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, classes),
    )


class QueryClassifier(nn.Module):
    """Learned query coordinates in the fields' domain [-1, 1]^d, then an MLP over the fields' outputs there."""

    def __init__(self, spec: FieldSpec, classes: int, config: ReaderConfig):
        super().__init__()
        self.spec, self.jitter = spec, config.jitter
        self.coords = nn.Parameter(torch.rand(config.queries, spec.in_dim) * 2 - 1)
        self.head = _head(config.queries * spec.out_dim, classes, config)

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P) field weights -> (B, classes) logits."""
        x = self.coords.expand(len(params), -1, -1)
        if self.training and self.jitter:
            x = x + (torch.rand(len(params), 1, self.spec.in_dim) * 2 - 1) * self.jitter
        return self.head(field_forward(self.spec, params, x).flatten(1))


def make_reader(kind: str, spec: FieldSpec, classes: int, config: ReaderConfig) -> nn.Module:
    """A fresh reader of ``kind`` seeded by ``config.seed``."""
    if kind not in READERS:
        raise ShapezooError(f"unknown field reader '{kind}' ({', '.join(READERS)})")
    torch.manual_seed(config.seed)
    return QueryClassifier(spec, classes, config)


def train_reader(model: nn.Module, params: torch.Tensor, y: torch.Tensor, config: ReaderConfig) -> nn.Module:
    """Fit a reader to (B, P) fields with (B,) class ids: AdamW, cosine decay, shuffled batches (seeded)."""
    torch.manual_seed(config.seed)
    steps = config.epochs * -(-len(params) // config.batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    model.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(params)).split(config.batch):
            loss = F.cross_entropy(model(params[batch]), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def reader_classify(
    kind: str,
    spec: FieldSpec,
    params: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: ReaderConfig = ReaderConfig(),
) -> dict:
    """Held-out accuracy (mean and per fold) of a ``kind`` reader trained on each fold's training fields, under the
    keys of ``core.kfold.classify``'s MLP (a reader has no linear variant)."""
    p, labels = torch.as_tensor(params, dtype=torch.float32), torch.as_tensor(y)
    classes = int(labels.max()) + 1
    scores = []
    for train, test in folds:
        model = train_reader(make_reader(kind, spec, classes, config), p[train], labels[train], config)
        with torch.no_grad():
            predicted = torch.cat([model(chunk).argmax(-1) for chunk in p[test].split(4096)])
        scores.append(float((predicted == labels[test]).float().mean()))
    accuracy = float(np.mean(scores))
    return {"linear_accuracy": None, "mlp_accuracy": accuracy, "mlp_per_fold": scores, "config": config.__dict__}
