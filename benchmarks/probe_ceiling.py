"""How much of a classifier zoo's test accuracy can be predicted at all: references beside the latent and StatNN probes.

The space's training models are encoded (encoder alone) and learned from; its held-out test models are scored.
Kendall tau of their test accuracy predicted (ridge and trees on the logit scale, as `classifiers probe`) from: the
latents; StatNN's weight statistics; each model's own training recipe (log steps, log learning rate: all that sets a
model apart but its seed); and, with no regression, the zoo's second measurement of the same models on another image
split (accuracy_val). Also how well latents and StatNN recover the training length itself. Predictors that reach the
recipe and the re-measurement leave only seeds and test-image noise to rank by.

Usage: python -m benchmarks.probe_ceiling ZOO SPACE [--out JSON] [--build N]   (CPU only.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import _common
from shapezoo.classifiers.accuracy_probe import predict, remeasured, statnn_features
from shapezoo.classifiers.space import load_classifier_space
from shapezoo.core.space_files import SPACE_JSON
from shapezoo.core.zoo import load_zoo
from shapezoo.io import read_json


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "probe_ceiling.json", device=False)
    ap.add_argument("zoo", type=Path, help="a classifier zoo")
    ap.add_argument("space", type=Path, help="a space trained on it (its train / test split is used)")
    ap.add_argument("--build", type=int, default=0, help="make a digits mlp-8 zoo of N models and its space first")
    a = ap.parse_args(argv)
    if a.build:
        _common.quick_classifier_space(a.zoo, a.space, a.build)
    zoo = load_zoo(a.zoo, kind="classifier")
    space = load_classifier_space(a.space)
    split = read_json(a.space / SPACE_JSON)["split"]
    names = split["train"] + split["test"]
    entries = [zoo.entries[zoo.index(n)] for n in names]
    y = np.array([e["metrics"]["accuracy_test"] for e in entries])
    params = zoo.stack(names)
    features = {
        "latent": space.encode(zoo.spec, params).cpu().double().numpy(),
        "statnn": statnn_features(zoo.spec, params),
        "recipe": np.log([[e["steps"], e["lr"]] for e in entries]),
    }
    n_train = len(split["train"])
    folds = [(np.arange(n_train), np.arange(n_train, len(y)))]
    accuracy = {key: predict(X, y, folds, 0, "logit") for key, X in features.items()}
    steps = features["recipe"][:, 0]
    length = {key: predict(features[key], steps, folds, 0, "raw") for key in ("latent", "statnn")}
    again = remeasured(zoo, split["test"], "accuracy_test", y[n_train:])

    print(f"{len(y) - n_train} held-out models, fitted on {n_train}; Kendall tau (ridge / trees)")
    for key, r in accuracy.items():
        print(f"  test accuracy from {key:7s} {r['ridge']['kendall_tau']:.3f} / {r['gbt']['kendall_tau']:.3f}")
    if again is not None:
        print(f"  test accuracy from {again['measure']} (re-measured): {again['kendall_tau']:.3f}")
    for key, r in length.items():
        print(f"  log steps from {key:7s}     {r['ridge']['kendall_tau']:.3f} / {r['gbt']['kendall_tau']:.3f}")
    result = {"zoo": str(a.zoo), "space": str(a.space), "train": n_train, "models": len(y) - n_train}
    result |= {"accuracy_test": accuracy, "remeasured": again, "log_steps": length}
    return _common.finish(a.out, result)


if __name__ == "__main__":
    _common.run(main)
