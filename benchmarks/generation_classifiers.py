"""Generated classifiers against the 2025 study's baselines: do sampled models classify, and are they new? (issue 21)

On one classifier space and the zoo it was trained on, side by side with the same count and seed: the learned
prior, the Gaussian, a training latent plus noise at the scale whose models reach the learned prior's mean test
accuracy (bisection), the decoded average of two training latents, the same two models averaged in raw weights,
and the training models' own decodes (``copies``). Per method: mean test accuracy, and novelty = each model's
share of test images on which it disagrees with its nearest training model (the training zoo's models, originals),
median; ``held-out`` is the same for the space's held-out models themselves (how new a real unseen model is). The
training models' mean accuracy is the target.

Usage: python -m benchmarks.generation_classifiers --space SPACE --zoo ZOO --prior PRIOR [--count 80]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.classifiers.archs import disagreement, predictions
from shapezoo.classifiers.data import images_for
from shapezoo.classifiers.space import load_classifier_space
from shapezoo.core.prior import GaussianPrior, PriorConfig, load_prior, space_latents, train_prior
from shapezoo.core.zoo import load_zoo
from shapezoo.io import read_json

METHODS = ("learned", "gaussian", "noise", "avg-latent", "avg-weights", "copies")


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "generation_classifiers.json")
    ap.add_argument("--space", type=Path, required=True)
    ap.add_argument("--zoo", type=Path, required=True, help="the zoo the space was trained on")
    ap.add_argument("--prior", type=Path, required=True, help="learned prior of the space (trained if missing)")
    ap.add_argument("--prior-steps", type=int, default=1500, help="steps of a prior trained here")
    ap.add_argument("--build", type=int, default=0, help="make a digits mlp-8 zoo of N models and its space first")
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--root", default=None, help="image folder (default: the one the space records)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    dev = _common.device(a)
    t0 = time.perf_counter()
    if a.build:
        _common.quick_classifier_space(a.zoo, a.space, a.build)
    if not (a.prior / "prior.json").exists():
        train_prior(a.space, a.prior, PriorConfig(steps=a.prior_steps, eval_every=min(50, a.prior_steps)), dev)
    space = load_classifier_space(a.space, dev)
    zoo = load_zoo(a.zoo, kind="classifier")
    data = images_for(space.meta, a.root, dev)
    x, y = data.test
    latents = space_latents(a.space)
    train_z, names = latents.z, latents.names
    originals = zoo.stack(names).to(dev)
    train_pred = predictions(zoo.spec, originals, x)
    train_acc = (train_pred == y).float().mean(-1)

    def score(params: torch.Tensor) -> dict:
        pred = predictions(zoo.spec, params, x)
        acc = (pred == y).float().mean(-1)
        nearest = disagreement(pred, train_pred).min(1).values
        return {
            "accuracy_mean": float(acc.mean()),
            "accuracy_median": float(acc.median()),
            "disagreement_median": float(nearest.median()),
            "disagreement_mean": float(nearest.mean()),
        }

    def decode(z: torch.Tensor) -> torch.Tensor:
        return space.decode(z, zoo.spec)[1]

    count, g = a.count, torch.Generator().manual_seed(a.seed)
    pairs = torch.stack([torch.randperm(len(train_z), generator=g)[:2] for _ in range(count)])
    prior = load_prior(a.prior)
    prior.check_source(latents, a.space)
    z_learned = prior.sample(count, a.seed)
    held_out = read_json(a.space / "space.json")["split"]["test"]
    results = {"held-out": score(zoo.stack(held_out).to(dev)), "learned": score(decode(z_learned))}
    pick = torch.randint(len(train_z), (count,), generator=torch.Generator().manual_seed(a.seed + 1))
    eps = torch.randn(count, train_z.shape[1], generator=torch.Generator().manual_seed(a.seed + 2))
    lo, hi = 0.0, 4.0 * float(train_z.std(0).mean())
    for _ in range(16):  # noise scale at which the noisy copies are as accurate as the learned prior's models
        mid = (lo + hi) / 2
        if score(decode(train_z[pick] + mid * eps))["accuracy_mean"] > results["learned"]["accuracy_mean"]:
            lo = mid
        else:
            hi = mid
    sigma = (lo + hi) / 2
    results["gaussian"] = score(decode(GaussianPrior.fit(train_z).sample(count, a.seed)))
    results["noise"] = score(decode(train_z[pick] + sigma * eps))
    results["avg-latent"] = score(decode((train_z[pairs[:, 0]] + train_z[pairs[:, 1]]) / 2))
    results["avg-weights"] = score((originals[pairs[:, 0]] + originals[pairs[:, 1]]) / 2)
    results["copies"] = score(decode(train_z[torch.randperm(len(train_z), generator=g)[:count]]))
    for method, row in results.items():
        print(
            f"{method:12s} accuracy {100 * row['accuracy_mean']:.2f}%  disagreement to nearest training "
            f"{100 * row['disagreement_median']:.2f}% (median)"
        )
    print(f"training models: accuracy {100 * float(train_acc.mean()):.2f}% (mean of {len(names)})")
    result = {
        "space": str(a.space),
        "zoo": str(a.zoo),
        "arch": zoo.spec.name,
        "data": data.name,
        "prior": str(a.prior),
        "count": count,
        "train_accuracy_mean": float(train_acc.mean()),
        "noise_scale": sigma,
        "methods": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return _common.finish(a.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
