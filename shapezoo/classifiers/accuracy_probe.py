"""Predicting a classifier's accuracy from what the space makes of it: k-fold regression from latents beside the
StatNN baseline (per-layer weight statistics -> gradient-boosted trees, Unterthiner et al. 2020) on the same folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.latents import read_latents
from ..core.zoo import Zoo, load_zoo
from ..errors import InputError, ShapezooError
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


SCALES = ("auto", "logit", "raw")
LOGIT_EPS = 1e-3
"""Targets are clipped to [eps, 1 - eps] before the logit (an accuracy of exactly 0 or 1 stays finite)."""


def target_scale(scale: str, target: str, values: np.ndarray, what: str | Path) -> str:
    """The scale the regressors fit ``target`` on: ``logit`` for accuracies (they bunch near 1, where a rank metric
    needs their differences spread out), ``raw`` otherwise; ``auto`` picks by the name (``accuracy_*``)."""
    if scale not in SCALES:
        raise InputError(what, f"unknown scale '{scale}' (auto, logit or raw)")
    if scale == "auto":
        scale = "logit" if target.startswith("accuracy") else "raw"
    if scale == "logit" and not np.all((values >= 0) & (values <= 1)):
        raise InputError(what, f"--scale logit needs a target in [0, 1]; it spans {values.min():g}..{values.max():g}")
    return scale


def predict(
    X: np.ndarray, target: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], seed: int, scale: str = "raw"
) -> dict:
    """Held-out predictions of ``target`` over ``splits`` ((train, test) index pairs: k folds, or one split) by ridge
    regression (standardised) and gradient-boosted trees, fitted on the target's ``scale`` (raw or logit) and mapped
    back; Kendall tau and R^2 of the pooled held-out predictions."""
    from scipy.special import expit, logit
    from scipy.stats import kendalltau
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def on_scale(regressor):
        if scale == "raw":
            return regressor
        return TransformedTargetRegressor(
            regressor,
            func=lambda a: logit(np.clip(a, LOGIT_EPS, 1 - LOGIT_EPS)),
            inverse_func=expit,
            check_inverse=False,
        )

    models = {
        "ridge": lambda: on_scale(make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))),
        "gbt": lambda: on_scale(GradientBoostingRegressor(random_state=seed)),
    }
    scored = np.concatenate([test for _, test in splits])
    out = {}
    for key, make in models.items():
        predicted = np.zeros_like(target)
        for train, test in splits:
            predicted[test] = make().fit(X[train], target[train]).predict(X[test])
        out[key] = {
            "kendall_tau": float(kendalltau(target[scored], predicted[scored]).statistic),
            "r2": float(r2_score(target[scored], predicted[scored])),
        }
    return out


SECOND_MEASURE = {"accuracy_test": "accuracy_val", "accuracy_val": "accuracy_test"}
"""The same models measured on another, equally sized split of images: how well one measurement ranks the other is a
reference for how much of the target's ranking is measurement noise."""


def recorded(members: Zoo, names: list[str], metric: str) -> list[float | None]:
    """The zoo's recorded ``metric`` of each of ``names`` (None where an entry has none)."""
    return [members.entries[members.index(n)].get("metrics", {}).get(metric) for n in names]


def remeasured(members: Zoo, names: list[str], target: str, values: np.ndarray) -> dict | None:
    """Kendall tau and R^2 of the zoo's second measurement of ``names`` (``SECOND_MEASURE``) as a predictor of
    ``target``; None when the zoo records none."""
    from scipy.stats import kendalltau
    from sklearn.metrics import r2_score

    other = SECOND_MEASURE.get(target)
    found = recorded(members, names, other) if other else []
    if not found or any(v is None for v in found):
        return None
    again = np.array(found, dtype=np.float64)
    return {
        "measure": other,
        "kendall_tau": float(kendalltau(values, again).statistic),
        "r2": float(r2_score(values, again)),
    }


def _models(latents: Path, zoo: Path | None, target: str) -> tuple:
    """(latents, zoo path, zoo, target values) of a latents file whose models the zoo holds with ``target``."""
    found = read_latents(latents)
    zoo_path = zoo or (Path(found.meta["zoo"]) if isinstance(found.meta.get("zoo"), str) else None)
    if zoo_path is None:
        raise InputError(latents, "records no zoo; give --zoo")
    members: Zoo[ClassifierSpec] = load_zoo(zoo_path, kind="classifier")
    missing = [n for n in found.names if n not in members.names]
    if missing:
        raise InputError(zoo_path, f"lacks {len(missing)} model(s) of {latents.name} (e.g. '{missing[0]}')")
    values = recorded(members, found.names, target)
    if any(v is None for v in values):
        raise InputError(zoo_path, f"records no '{target}' for some models (e.g. accuracy_test, accuracy_val)")
    return found, zoo_path, members, np.array(values, dtype=np.float64)


def probe_accuracy(
    latents: Path,
    zoo: Path | None = None,
    target: str = "accuracy_test",
    folds: int = 5,
    seed: int = 0,
    out: Path | None = None,
    train: Path | None = None,
    scale: str = "auto",
) -> dict:
    """Predict each model's ``target`` metric (recorded in the zoo) from its latent and, on the same folds, from
    StatNN's weight statistics; returns (and writes to ``out``) Kendall tau and R^2 of both. With ``train`` (the
    latents of other models, e.g. a space's training members) one split instead: fitted on those, scored on
    ``latents``. ``scale``: the target's scale for the regressors (``target_scale``). The report also says how well
    the zoo's second measurement of the scored models ranks them (``remeasured``), a reference for its noise."""
    from sklearn.model_selection import KFold

    if folds < 2:
        raise ShapezooError(f"--folds must be >= 2, got {folds}")
    parts = [_models(p, zoo, target) for p in ([train] if train else []) + [latents]]
    if train is None and len(parts[0][0].names) < 2 * folds:
        raise InputError(latents, f"{len(parts[0][0].names)} models are too few for {folds} folds (need {2 * folds})")
    if train is not None:
        overlap = set(parts[0][0].names) & set(parts[1][0].names)
        if overlap:
            raise InputError(train, f"shares {len(overlap)} model(s) with {latents.name} (e.g. '{min(overlap)}')")
        widths = [part[0].z.shape[1] for part in parts]
        if widths[0] != widths[1]:
            raise InputError(train, f"holds latents of {widths[0]} numbers; {latents.name} holds {widths[1]}")
    y = np.concatenate([part[3] for part in parts])
    scale = target_scale(scale, target, y, latents)
    z = np.concatenate([part[0].z.numpy().astype(np.float64) for part in parts])
    stats = np.concatenate([statnn_features(m.spec, m.stack(f.names)) for f, _, m, _ in parts])
    if train is None:
        splits = list(KFold(folds, shuffle=True, random_state=seed).split(z))
    else:
        n_train = len(parts[0][3])
        splits = [(np.arange(n_train), np.arange(n_train, len(y)))]
    result = {
        "latents": str(latents),
        "train": None if train is None else str(train),
        "zoo": str(parts[-1][1]),
        "target": target,
        "models": len(parts[-1][3]),
        "folds": folds if train is None else "train -> latents",
        "scale": scale,
        "latent": predict(z, y, splits, seed, scale),
        "statnn": predict(stats, y, splits, seed, scale),
        "remeasured": remeasured(parts[-1][2], parts[-1][0].names, target, parts[-1][3]),
    }
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    return result
