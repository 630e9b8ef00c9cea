"""Probing a field zoo's members: their latents against their raw weights, the PCA of those and a point-cloud
baseline (D2 shape distributions of their meshes), on the same folds (``core.probe`` does the learning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.kfold import ProbeConfig, class_ids, classify, retrieve
from ..core.latents import read_latents
from ..core.zoo import load_zoo
from ..errors import InputError
from ..io import atomic_write_json, ensure_output_dir
from .mesh_metrics import surface_points
from .meshes import load_mesh
from .samples import shape_rng

FEATURES = ("latents", "weights", "pca", "d2")
D2_BINS = 64
"""Histogram bins of the D2 descriptor over [0, 0.9 * sqrt(3)] (the longest distance in the normalised frame)."""


def d2_descriptor(source: str | None, name: str, points: int = 2048, pairs: int = 20_000) -> np.ndarray:
    """Osada et al.'s D2 shape distribution of a mesh (normalised into the frame): the histogram of distances
    between random pairs of area-uniform surface points, seeded by the name. The classical global descriptor."""
    if not source or not Path(source).is_file():
        raise InputError(source or name, f"the mesh of '{name}' is not available for the d2 baseline")
    shape = load_mesh(Path(source), name=name)
    pts, _ = surface_points(shape.vertices, shape.faces, count=points, name=name)
    rng = shape_rng(0, "d2:" + name)
    i, j = rng.integers(0, len(pts), pairs), rng.integers(0, len(pts), pairs)
    hist, _ = np.histogram(np.linalg.norm(pts[i] - pts[j], axis=1), bins=D2_BINS, range=(0.0, 0.9 * 3**0.5))
    return hist / pairs


def _members(path: Path, zoo: Path | None, kind: str, need_zoo: bool, labels: dict | None, loaded: dict):
    """(latents, names, labels, the zoo or None) of one latents file; labels from ``labels``, else the file,
    else the zoo's entries."""
    found = read_latents(path)
    labels = labels or found.meta.get("labels") or {}
    members = None
    if need_zoo or not labels:
        zoo_path = zoo or (Path(found.meta["zoo"]) if isinstance(found.meta.get("zoo"), str) else None)
        if zoo_path is None:
            raise InputError(path, "records no zoo; give --zoo for weights, pca or labels")
        if zoo_path not in loaded:  # a --train file usually shares the zoo: read it once
            loaded[zoo_path] = load_zoo(zoo_path, kind)
        members = loaded[zoo_path]
        missing = [n for n in found.names if n not in members.names]
        if missing:
            raise InputError(zoo_path, f"lacks {len(missing)} member(s) of {path.name} (e.g. '{missing[0]}')")
        labels = labels or {n: members.entries[members.index(n)].get("label") for n in found.names}
    return found.z.numpy().astype(np.float64), found.names, labels, members


def probe_latents(
    latents: Path,
    tasks: tuple[str, ...] = ("classify", "retrieve"),
    features: tuple[str, ...] = ("latents",),
    zoo: Path | None = None,
    config: ProbeConfig = ProbeConfig(),
    kind: str = "field",
    out: Path | None = None,
    train: Path | None = None,
    labels: dict | None = None,
    train_zoo: Path | None = None,
) -> dict:
    """Probe the members of a latents file with each kind of features: their latents, their raw weights
    (``weights``) or the PCA of those (``pca``; read from ``zoo``, default the zoo the latents were encoded from), or
    the point-cloud baseline ``d2`` (shape distributions of the meshes the zoo's fields were fitted to).
    Labels: ``labels``, else the latents file's, else the zoo's entries. Stratified k folds over the file, or with
    ``train`` (another latents file, e.g. a space's training members) one split: fitted on ``train``, scored on
    ``latents`` (members the probe and, when they are a space's held-out split, the space never saw); ``train_zoo``:
    the zoo of the ``train`` members' weights when it is not ``zoo`` (held-out fields usually live in a zoo of their
    own). Returns (and writes to ``out``) one result per features and task."""
    unknown = sorted(set(features) - set(FEATURES)) + sorted(set(tasks) - {"classify", "retrieve"})
    if unknown:
        raise InputError(latents, f"unknown --features/--task {unknown} ({', '.join(FEATURES)}; classify, retrieve)")
    if train_zoo is not None and train is None:
        raise InputError(train_zoo, "is the zoo of --train members; give --train LATENTS2 with it")
    need_zoo = any(f != "latents" for f in features)
    zoos: dict = {}
    sources = ([(train, train_zoo or zoo)] if train else []) + [(latents, zoo)]
    parts = [_members(p, z, kind, need_zoo, labels, zoos) for p, z in sources]
    names = [n for part in parts for n in part[1]]
    all_labels = {n: part[2].get(n) for part in parts for n in part[1]}
    folds = None
    if train is not None:
        if parts[0][0].shape[1] != parts[1][0].shape[1]:
            raise InputError(
                train, f"holds latents of {parts[0][0].shape[1]} numbers; {latents.name} holds {parts[1][0].shape[1]}"
            )
        if both := sorted(set(parts[0][1]) & set(parts[1][1])):
            raise InputError(
                train,
                f"shares {len(both)} member(s) with {latents.name} (e.g. '{both[0]}'); a probe "
                "is scored on members it was not fitted on",
            )
        n_train = len(parts[0][1])
        folds = [(np.arange(n_train), np.arange(n_train, len(names)))]
        y, classes = class_ids(names, all_labels, 2, latents)
        if set(y[n_train:]) - set(y[:n_train]):
            raise InputError(latents, "holds classes the training members do not; the probe cannot predict them")
    else:
        y, classes = class_ids(names, all_labels, config.folds, latents)
    matrices = {"latents": np.concatenate([part[0] for part in parts])}
    if need_zoo:
        weights = [part[3].stack(part[1]).numpy().astype(np.float64) for part in parts]
        matrices["weights"] = matrices["pca"] = np.concatenate(weights)
    if "d2" in features:
        entries = [part[3].entries[part[3].index(n)] for part in parts for n in part[1]]
        matrices["d2"] = np.stack([d2_descriptor(e.get("source"), e["name"]) for e in entries])
    result: dict = {
        "latents": str(latents),
        "train": None if train is None else str(train),
        "members": len(names),
        "scored": len(parts[-1][1]),
        "classes": classes,
        "folds": config.folds if train is None else "train -> latents",
    }
    for f in features:
        result[f] = {}
        for task in tasks:
            probe = classify if task == "classify" else retrieve
            result[f][task] = probe(matrices[f], y, f, config, folds)
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    return result
