"""Learning from a zoo's members: k-fold classification and retrieval on any features of them (latents, raw weights,
their PCA), with every fitted transform (scaler, PCA) fitted on the training folds only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

from ..errors import InputError, ShapezooError


@dataclass(frozen=True)
class ProbeConfig:
    """How members are probed."""

    folds: int = 5
    """Stratified folds; every member is scored once, by models that never saw it."""
    seed: int = 0
    """Seed of the folds and of the MLP."""
    pca: int = 64
    """Components of the ``pca`` features (at most the training rows of a fold)."""
    k: tuple[int, ...] = (1, 5, 10)
    """Precision at these ranks (retrieval)."""

    def __post_init__(self):
        if self.folds < 2 or self.pca < 1 or not self.k or min(self.k) < 1:
            raise ShapezooError(f"--folds must be >= 2, pca and k >= 1; got {self.folds}, {self.pca}, {self.k}")


def class_ids(names: list[str], labels: dict, folds: int, what: str | Path) -> tuple[np.ndarray, list[str]]:
    """(class index per member, class names); members without a label, a single class, or a class with fewer
    members than folds raise one InputError naming ``what``."""
    missing = [n for n in names if labels.get(n) is None]
    if missing:
        raise InputError(what, f"{len(missing)} member(s) have no label (e.g. '{missing[0]}'); sample with --labels")
    classes = sorted({str(labels[n]) for n in names})
    if len(classes) < 2:
        raise InputError(what, f"all {len(names)} members have the label '{classes[0]}'; a probe needs two classes")
    y = np.array([classes.index(str(labels[n])) for n in names])
    smallest = int(np.bincount(y).min())
    if folds < 2 or smallest < folds:
        raise InputError(
            what, f"{folds} folds need at least {max(folds, 2)} members per class; the smallest has {smallest}"
        )
    return y, classes


def splits(y: np.ndarray, config: ProbeConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded (train, test) index pairs."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    return list(folds.split(np.zeros(len(y)), y))


def fold_features(features: str, X: np.ndarray, train: np.ndarray, test: np.ndarray, config: ProbeConfig):
    """(train rows, test rows, the fitted PCA or None): ``pca`` is fitted on the training rows only."""
    if features != "pca":
        return X[train], X[test], None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(config.pca, len(train) - 1, X.shape[1]), random_state=config.seed).fit(X[train])
    return pca.transform(X[train]), pca.transform(X[test]), pca


Folds = list[tuple[np.ndarray, np.ndarray]]


def classify(
    X: np.ndarray, y: np.ndarray, features: str, config: ProbeConfig = ProbeConfig(), folds: Folds | None = None
) -> dict:
    """Held-out accuracy (mean and per fold) of a linear classifier (logistic regression) and a small MLP on
    standardised features, and the linear one's confusion matrix summed over the test folds. ``folds``: explicit
    (train, test) index pairs instead of the stratified k folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    n_classes = int(y.max()) + 1
    out: dict = {"linear": [], "mlp": [], "confusion": np.zeros((n_classes, n_classes), dtype=int)}
    for train, test in folds or splits(y, config):
        a, b, _ = fold_features(features, X, train, test, config)
        scaler = StandardScaler().fit(a)
        a, b = scaler.transform(a), scaler.transform(b)
        linear = LogisticRegression(max_iter=5000).fit(a, y[train])
        predicted = linear.predict(b)
        out["linear"].append(float((predicted == y[test]).mean()))
        np.add.at(out["confusion"], (y[test], predicted), 1)
        mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=2000, random_state=config.seed).fit(a, y[train])
        out["mlp"].append(float((mlp.predict(b) == y[test]).mean()))
    return {
        "linear_accuracy": float(np.mean(out["linear"])),
        "mlp_accuracy": float(np.mean(out["mlp"])),
        "linear_per_fold": out["linear"],
        "mlp_per_fold": out["mlp"],
        "confusion": out["confusion"].tolist(),
    }


def _average_precision(relevant: np.ndarray) -> float:
    """AP of one ranked list of relevance flags."""
    hits = np.cumsum(relevant)
    return float((hits[relevant] / (np.flatnonzero(relevant) + 1)).mean()) if relevant.any() else 0.0


def retrieve(
    X: np.ndarray, y: np.ndarray, features: str, config: ProbeConfig = ProbeConfig(), folds: Folds | None = None
) -> dict:
    """Each test-fold member queries the training folds' members (same class = relevant), ranked by cosine and by
    Euclidean distance of the features as they are (a space's own geometry; scaling every dimension to unit variance
    would let uninformative ones weigh as much): mean average precision and precision at ``config.k``."""

    scores: dict[str, dict[str, list[float]]] = {
        m: {"map": [], **{f"p@{k}": [] for k in config.k}} for m in ("cosine", "euclidean")
    }
    for train, test in folds or splits(y, config):
        a, b, _ = fold_features(features, X, train, test, config)
        unit_a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        unit_b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        distances = {
            "cosine": -unit_b @ unit_a.T,
            "euclidean": cdist(b, a, "sqeuclidean"),  # pairwise, never (queries, members, features) at once
        }
        for metric, d in distances.items():
            for row, query in zip(d, test):
                relevant = y[train][np.argsort(row, kind="stable")] == y[query]
                scores[metric]["map"].append(_average_precision(relevant))
                for k in config.k:
                    scores[metric][f"p@{k}"].append(float(relevant[:k].mean()))
    return {m: {key: float(np.mean(v)) for key, v in s.items()} for m, s in scores.items()}
