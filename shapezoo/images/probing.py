"""Classifying images from their fields (the weight-space benchmark): raw weights, their PCA, the
permutation-invariant weight statistics of StatNN (Unterthiner et al. 2020), and readers trained on whole fields
(``queries``: their outputs at learned coordinates, ``readers``), fitted on one zoo and scored on another (the
official train -> test split) or in stratified folds of one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..core.kfold import ProbeConfig, class_ids, classify, retrieve, splits
from ..core.zoo import load_zoo
from ..errors import InputError
from ..io import atomic_write_json
from .data import MIRRORED
from .network import ImageSpec
from .readers import ReaderConfig, reader_classify

FEATURES = ("weights", "pca", "stats", "queries")


def weight_statistics(spec: ImageSpec, params: torch.Tensor) -> torch.Tensor:
    """(B, 7 * tensors) per weight and bias tensor: mean, variance and the 0/25/50/75/100% quantiles of its entries,
    features no permutation of hidden units changes (StatNN, Unterthiner et al. 2020, section 3)."""
    parts = []
    for tensor in spec.layout().unflatten(params).values():
        flat = tensor.reshape(len(params), -1)
        q = torch.quantile(flat, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]), dim=1).T
        parts += [flat.mean(1, keepdim=True), flat.var(1, correction=0, keepdim=True), q]
    return torch.cat(parts, 1)


def _members(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str], ImageSpec, dict]:
    """(weights, StatNN features, names, labels, architecture, image record: ``data``, ``shape``) of an image zoo's
    usable members."""
    zoo = load_zoo(path, "image")
    names, _ = zoo.select(None)
    if not names:
        raise InputError(path, "holds no usable image fields")
    params = zoo.stack(names)
    labels = [zoo.entries[zoo.index(n)].get("label") for n in names]
    data = zoo.meta.get("data") or {}
    return params.double().numpy(), weight_statistics(zoo.spec, params).double().numpy(), names, labels, zoo.spec, data


def probe_image_zoo(
    zoo: Path,
    train: Path | None = None,
    features: tuple[str, ...] = FEATURES,
    config: ProbeConfig = ProbeConfig(),
    out: Path | None = None,
    reader: ReaderConfig | None = None,
    tasks: tuple[str, ...] = ("classify",),
) -> dict:
    """Test accuracy of a linear classifier and an MLP from each kind of features of an image zoo's fields (for
    ``queries`` the reader trained on the fields, ``reader`` its config, by default seeded as the probe; it reads
    mirrored views of datasets whose classes a mirror keeps, ``data.MIRRORED``, unless told): fitted on
    ``train`` (another image zoo of the same architecture, e.g. the train split's) and scored on ``zoo``, or with no
    ``train`` in stratified folds of ``zoo``. With ``retrieve`` in ``tasks`` also the retrieval of each scored
    field's class among the training fields (mAP, precision@k under ``result["retrieve"]``) by the weights, their
    PCA and statistics (the query reader is a classifier: it has no retrieval)."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise InputError(zoo, f"unknown --features {unknown} for image zoos ({', '.join(FEATURES)})")
    if wrong := sorted(set(tasks) - {"classify", "retrieve"}):
        raise InputError(zoo, f"unknown --task {wrong} (classify, retrieve)")
    parts = [_members(p) for p in ([train] if train is not None else []) + [zoo]]
    if len({p[4] for p in parts}) > 1:
        raise InputError(zoo, "holds fields of another architecture than --train's")
    if (size := parts[-1][5].get("shape")) != (trained := parts[0][5].get("shape")):
        raise InputError(zoo, f"fits images of size {size}, --train's of {trained}: probe fields of one image size")
    names = [n for p in parts for n in p[2]]
    labels = dict(zip(names, [lab for p in parts for lab in p[3]]))
    folds = None
    if train is not None:
        if shared := sorted(set(parts[0][2]) & set(parts[1][2])):
            raise InputError(zoo, f"shares {len(shared)} member(s) with --train (e.g. '{shared[0]}')")
        n = len(parts[0][2])
        folds = [(np.arange(n), np.arange(n, len(names)))]
    y, classes = class_ids(names, labels, 2 if folds else config.folds, zoo)
    matrices = {"weights": np.concatenate([p[0] for p in parts]), "stats": np.concatenate([p[1] for p in parts])}
    matrices["pca"] = matrices["weights"]
    result: dict = {"zoo": str(zoo), "train": None if train is None else str(train), "classes": classes}
    result["members"], result["scored"] = len(names), len(parts[-1][2])
    for f in features if "classify" in tasks else ():
        if f == "queries":
            how = reader or ReaderConfig(seed=config.seed)
            if how.mirror is None:
                how = replace(how, mirror=parts[0][5].get("data") in MIRRORED)
            result[f] = reader_classify(parts[0][4], matrices["weights"], y, folds or splits(y, config), how)
        else:
            result[f] = classify(matrices[f], y, f, config, folds)
    if "retrieve" in tasks:
        result["retrieve"] = {f: retrieve(matrices[f], y, f, config, folds) for f in features if f != "queries"}
    if out is not None:
        atomic_write_json(out, result)
    return result
