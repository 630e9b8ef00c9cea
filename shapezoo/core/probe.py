"""Learning from a zoo's members: k-fold classification and retrieval on any features of them (latents, raw weights,
their PCA), with every fitted transform (scaler, PCA) fitted on the training folds only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

FEATURES = ("latents", "weights", "pca")


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


def classify(X: np.ndarray, y: np.ndarray, features: str, config: ProbeConfig = ProbeConfig()) -> dict:
    """Held-out accuracy (mean and per fold) of a linear classifier (logistic regression) and a small MLP on
    standardised features, and the linear one's confusion matrix summed over the test folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    n_classes = int(y.max()) + 1
    out: dict = {"linear": [], "mlp": [], "confusion": np.zeros((n_classes, n_classes), dtype=int)}
    for train, test in splits(y, config):
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


def retrieve(X: np.ndarray, y: np.ndarray, features: str, config: ProbeConfig = ProbeConfig()) -> dict:
    """Each test-fold member queries the training folds' members (same class = relevant), ranked by cosine and by
    Euclidean distance of the features as they are (a space's own geometry; scaling every dimension to unit variance
    would let uninformative ones weigh as much): mean average precision and precision at ``config.k``."""

    scores: dict[str, dict[str, list[float]]] = {
        m: {"map": [], **{f"p@{k}": [] for k in config.k}} for m in ("cosine", "euclidean")
    }
    for train, test in splits(y, config):
        a, b, _ = fold_features(features, X, train, test, config)
        unit_a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        unit_b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        distances = {
            "cosine": -unit_b @ unit_a.T,
            "euclidean": ((b[:, None, :] - a[None, :, :]) ** 2).sum(-1),
        }
        for metric, d in distances.items():
            for row, query in zip(d, test):
                relevant = y[train][np.argsort(row, kind="stable")] == y[query]
                scores[metric]["map"].append(_average_precision(relevant))
                for k in config.k:
                    scores[metric][f"p@{k}"].append(float(relevant[:k].mean()))
    return {m: {key: float(np.mean(v)) for key, v in s.items()} for m, s in scores.items()}


def probe_latents(
    latents: Path,
    tasks: tuple[str, ...] = ("classify", "retrieve"),
    features: tuple[str, ...] = ("latents",),
    zoo: Path | None = None,
    config: ProbeConfig = ProbeConfig(),
    kind: str = "field",
    out: Path | None = None,
) -> dict:
    """Probe the members of a latents file on the same folds with each kind of features: their latents, their raw
    weights (``weights``) or the PCA of those (``pca``; read from ``zoo``, default the zoo the latents were encoded
    from). Labels come from the latents file, else from the zoo's entries. Returns (and writes to ``out``) one
    result per features and task."""
    from ..io import atomic_write_json, ensure_output_dir
    from .latents import read_latents
    from .zoo import load_zoo

    unknown = sorted(set(features) - set(FEATURES)) + sorted(set(tasks) - {"classify", "retrieve"})
    if unknown:
        raise InputError(latents, f"unknown --features/--task {unknown} ({', '.join(FEATURES)}; classify, retrieve)")
    found = read_latents(latents)
    labels = found.meta.get("labels") or {}
    members = None
    if any(f != "latents" for f in features) or not labels:
        zoo_path = zoo or (Path(found.meta["zoo"]) if isinstance(found.meta.get("zoo"), str) else None)
        if zoo_path is None:
            raise InputError(latents, "records no zoo; give --zoo for weights, pca or labels")
        members = load_zoo(zoo_path, kind)
        missing = [n for n in found.names if n not in members.names]
        if missing:
            raise InputError(zoo_path, f"lacks {len(missing)} member(s) of the latents file (e.g. '{missing[0]}')")
        labels = labels or {n: members.entries[members.index(n)].get("label") for n in found.names}
    y, classes = class_ids(found.names, labels, config.folds, latents)
    matrices = {"latents": found.z.numpy().astype(np.float64)}
    if members is not None:
        matrices["weights"] = matrices["pca"] = members.stack(found.names).numpy().astype(np.float64)
    result: dict = {"latents": str(latents), "members": len(found.names), "classes": classes, "folds": config.folds}
    for f in features:
        result[f] = {}
        for task in tasks:
            probe = classify if task == "classify" else retrieve
            result[f][task] = probe(matrices[f], y, f, config)
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    return result
