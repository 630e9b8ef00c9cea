"""Predicting a classifier's accuracy from what the space makes of it: k-fold regression from latents beside the
StatNN baseline (per-layer weight statistics -> gradient-boosted trees, Unterthiner et al. 2020) on the same folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.latents import read_latents
from ..core.zoo import Zoo, load_zoo
from ..errors import InputError
from ..io import atomic_write_json, ensure_output_dir
from .archs import ClassifierSpec

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def statnn_features(spec: ClassifierSpec, params: torch.Tensor) -> np.ndarray:
    """(N, P) weights -> (N, 7 x tensors): per weight and bias tensor its mean, variance and five quantiles."""
    rows = []
    for tensor in spec.layout().unflatten(params.float()).values():
        flat = tensor.reshape(len(params), -1)
        q = torch.quantile(flat, torch.tensor(QUANTILES), dim=1).T
        rows.append(torch.cat([flat.mean(1, keepdim=True), flat.var(1, keepdim=True, correction=0), q], 1))
    return torch.cat(rows, 1).numpy().astype(np.float64)


def predict(X: np.ndarray, target: np.ndarray, folds: int, seed: int) -> dict:
    """Held-out predictions of ``target`` over k seeded folds by ridge regression (standardised) and gradient-boosted
    trees; Kendall tau and R^2 of the pooled held-out predictions."""
    from scipy.stats import kendalltau
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models = {
        "ridge": lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "gbt": lambda: GradientBoostingRegressor(random_state=seed),
    }
    out = {}
    for key, make in models.items():
        predicted = np.zeros_like(target)
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
            predicted[test] = make().fit(X[train], target[train]).predict(X[test])
        out[key] = {
            "kendall_tau": float(kendalltau(target, predicted).statistic),
            "r2": float(r2_score(target, predicted)),
        }
    return out


def probe_accuracy(
    latents: Path,
    zoo: Path | None = None,
    target: str = "accuracy_test",
    folds: int = 5,
    seed: int = 0,
    out: Path | None = None,
) -> dict:
    """Predict each model's ``target`` metric (recorded in the zoo) from its latent and, on the same folds, from
    StatNN's weight statistics; returns (and writes to ``out``) Kendall tau and R^2 of both."""
    found = read_latents(latents)
    zoo_path = zoo or (Path(found.meta["zoo"]) if isinstance(found.meta.get("zoo"), str) else None)
    if zoo_path is None:
        raise InputError(latents, "records no zoo; give --zoo")
    members: Zoo[ClassifierSpec] = load_zoo(zoo_path, kind="classifier")
    missing = [n for n in found.names if n not in members.names]
    if missing:
        raise InputError(zoo_path, f"lacks {len(missing)} model(s) of {latents.name} (e.g. '{missing[0]}')")
    values = [members.entries[members.index(n)].get("metrics", {}).get(target) for n in found.names]
    if any(v is None for v in values):
        raise InputError(zoo_path, f"records no '{target}' for some models (e.g. accuracy_test, accuracy_val)")
    if len(found.names) < 2 * folds:
        raise InputError(latents, f"{len(found.names)} models are too few for {folds} folds (need {2 * folds})")
    y = np.array(values, dtype=np.float64)
    result = {
        "latents": str(latents),
        "zoo": str(zoo_path),
        "target": target,
        "models": len(y),
        "folds": folds,
        "latent": predict(found.z.numpy().astype(np.float64), y, folds, seed),
        "statnn": predict(statnn_features(members.spec, members.stack(found.names)), y, folds, seed),
    }
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    return result
