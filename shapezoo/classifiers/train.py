"""Training a classifier space: the paper's distillation loss (KL between original and decoded logits at
temperature T, times T^2) on training images, a small normalised weight term, the architecture head, and, when
the ordering has architectures without instances, the interpolation loss that teaches the decoder to build them.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from ..core.latents import LATENTS_FILE, save_latents, split_names
from ..core.training import BatchTerms, Loop, Schedule, load_checkpoint, open_state, parallel, ranks, train_loop
from ..core.zoo import Zoo
from ..errors import ShapezooError
from ..io import atomic_write_json, ensure_output_dir, lasting
from .archs import ClassifierSpec, accuracy, classifier_forward, init_params
from .data import ImageData
from .space import (
    ClassifierSpace,
    SpaceConfig,
    build_space_model,
    load_classifier_space,
    save_classifier_space,
)

VAL_IMAGES = 2000
"""Checkpoint selection looks at the first this-many validation images."""


@dataclass(frozen=True)
class SpaceTrainConfig(Schedule):
    """How a classifier space is trained (best checkpoint: lowest validation distillation loss)."""

    epochs: int = 300
    """Passes over the training models."""
    batch: int = 16
    """Models per step (one architecture per step)."""
    images: int = 128
    """Training images per step, shared by the step's models."""
    mix: float = 0.5
    """Share of each step's images replaced by mixtures of two training images (random weights): matching the
    originals between the training images too keeps the decodes faithful on images neither saw."""
    temperature: float = 4.0
    """Distillation temperature (the paper's T = 4; the KL is multiplied by T^2)."""
    weight_loss: float = 0.05
    """Weight of the normalised weight-MSE term."""
    arch_loss: float = 0.1
    """Weight of the architecture-classification term."""
    interp_loss: float = 1.0
    """Weight of the interpolation loss (used when the ordering has interior architectures without instances)."""


def distill_kl(logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p || softmax(logits / T)) * T^2 with p = softmax(target / T), averaged over models and images."""
    return soft_kl(logits, F.softmax(target / temperature, -1), temperature)


def soft_kl(logits: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p || softmax(logits / T)) * T^2 for target probabilities ``p`` (..., classes)."""
    logq = F.log_softmax(logits / temperature, -1)
    return (p * (p.clamp_min(1e-12).log() - logq)).sum(-1).mean() * temperature**2


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman rank correlation (None for fewer than 3 values or a constant list)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return float(spearmanr(a, b).statistic)


def compare_accuracies(original: list[float], decoded: list[float]) -> dict:
    """Summary of paired accuracies: count, mean |gap| in points, Spearman of the rankings, both means."""
    n = len(original)
    return {
        "models": n,
        "mean_abs_gap_points": 100 * sum(abs(x - y) for x, y in zip(original, decoded)) / n if n else None,
        "spearman": spearman(original, decoded),
        "accuracy_original_mean": sum(original) / n if n else None,
        "accuracy_decoded_mean": sum(decoded) / n if n else None,
    }


@torch.no_grad()
def evaluate_models(
    space: ClassifierSpace,
    spec: ClassifierSpec,
    params: torch.Tensor,
    data: ImageData,
    split: str = "test",
    z: torch.Tensor | None = None,
) -> dict:
    """Original vs decoded accuracy on one image split, per model and summarised; ``z`` (N, latent) replaces
    the encoder's latents (e.g. refined ones)."""
    a = space.arch_index(spec, spec.name)
    z = space.encode(spec, params) if z is None else z
    decoded = space.model.decode(a, z) if len(z) else params.to(space.device)
    images, labels = data.split(split)
    acc_o = accuracy(spec, params.to(space.device), images, labels).tolist()
    acc_d = accuracy(spec, decoded, images, labels).tolist()
    arch_ok = (space.model.arch_logits(z).argmax(-1) == a).float().mean().item() if len(z) else None
    return {
        "accuracy_original": acc_o,
        "accuracy_decoded": acc_d,
        **compare_accuracies(acc_o, acc_d),
        "arch_accuracy": arch_ok,
    }


def _split(zoos: list[Zoo[ClassifierSpec]], config: SpaceTrainConfig) -> dict[str, list[str]]:
    names = [n for zoo in zoos for n in zoo.names if zoo.unusable(n) is None]
    if len(set(names)) != len(names):
        raise ShapezooError("model names repeat across the zoos (train each architecture's zoo once)")
    return split_names(names, config.val, config.test, config.seed, config.train_limit)


def train_classifier_space(
    zoos: list[Zoo[ClassifierSpec]],
    data: ImageData,
    out: str | Path,
    archs: list[ClassifierSpec] | None = None,
    model_config: SpaceConfig = SpaceConfig(),
    config: SpaceTrainConfig = SpaceTrainConfig(),
    on_eval: Callable[[dict], None] | None = None,
) -> dict | None:
    """Train one space over the models of ``zoos`` (on the device of ``data``); ``archs`` orders the
    architectures and may list ones without a zoo (unseen: built by the interpolation loss). Resumes from
    ``out``'s checkpoint when the same options are given again; saves the best space by validation.

    Under torchrun (torch.distributed initialised) each rank takes its share of every global batch and
    DistributedDataParallel averages the gradients; rank 0 holds the lock, validates and writes, the others return
    None."""
    group = ranks()
    with group.lock(Path(out)):
        return _train(zoos, data, ensure_output_dir(out), archs, model_config, config, on_eval, group)


def _train(zoos, data, out, archs, model_config, config, on_eval, group) -> dict | None:
    device = data.train[0].device
    archs = _check_zoos(zoos, data, archs)
    split = _split(zoos, config)
    configs = {"model": asdict(model_config), "train": asdict(config), "archs": [a.name for a in archs]}
    state = open_state(out, configs, split, "other zoos")
    params, names = _members(zoos, archs, split, device)
    torch.manual_seed(config.seed)
    model = build_space_model(archs, model_config)
    inits = {archs.index(zoo.spec): zoo.init for zoo in zoos}
    model.set_statistics(
        {a: p.cpu() for a, p in params["train"].items()},
        {a: inits[a] if a in inits else init_params(s, 0) for a, s in enumerate(archs)},
    )
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    if state["epoch"] > 0:
        load_checkpoint(out, model, opt)
    objective = parallel(_Objective(model, archs, params["train"], config), group, device)
    seen = [a for a, p in params["train"].items() if len(p)]
    unseen = [a for a in range(1, len(archs) - 1) if a not in seen]
    interp = bool(unseen) and 0 in seen and len(archs) - 1 in seen and config.interp_loss > 0
    total = config.epochs * sum(math.ceil(len(params["train"][a]) / config.batch) for a in seen)
    n_train = sum(len(p) for p in params["train"].values())
    loop = Loop(out, model, opt, state, group, config.epochs, total, n_train)

    def batches(epoch: int, g: torch.Generator) -> list[tuple[int, torch.Tensor]]:
        jobs = [(a, b) for a in seen for b in torch.randperm(len(params["train"][a]), generator=g).split(config.batch)]
        random.Random(config.seed * 7919 + epoch).shuffle(jobs)
        return jobs

    def step_terms(job: tuple[int, torch.Tensor], g: torch.Generator) -> BatchTerms:
        a, b = job
        rows, share = group.share(b)  # the whole batch's draws on every rank, then this rank's rows
        spec, orig = archs[a], params["train"][a][b[rows].to(device)]
        x = mixed_images(data.train[0], config.images, config.mix, g)
        pairs = _draw_pairs(params["train"], len(archs), unseen, len(b), g, device) if interp else None
        if pairs is not None:
            pairs = (pairs[0][rows], pairs[1][rows], pairs[2])
        with torch.no_grad():
            target = classifier_forward(spec, orig, x)
        return BatchTerms(objective(a, orig, x, target, pairs), len(orig), share, len(b))

    def record(entry: dict) -> None:
        sel = "val" if any(len(p) for p in params["val"].values()) else "train"
        entry["select"] = _validation(model, archs, params[sel], data, config.temperature)
        entry["select"]["split"] = sel
        state["history"].append(entry)
        if state["best"] is None or entry["select"]["distill"] <= state["best"]["distill"]:
            state["best"] = {"epoch": entry["epoch"], **entry["select"]}
            save_classifier_space(out, ClassifierSpace(model, _meta(zoos, data, configs, split, state)))

    run = train_loop(loop, config, batches, step_terms, record, on_eval)
    if not group.lead:
        return None
    return _finish(out, archs, unseen, data, model_config, config, params, names, split, state, run, device)


def _check_zoos(zoos, data, archs) -> list[ClassifierSpec]:
    """The architecture ordering (given, else the zoos' in order), once the zoos are checked to fit it and the
    images."""
    if len({json.dumps(zoo.meta.get("data"), sort_keys=True) for zoo in zoos}) != 1:
        raise ShapezooError("the zoos were trained on different datasets")
    archs = list(archs) if archs else list(dict.fromkeys(zoo.spec for zoo in zoos))
    for zoo in zoos:
        if zoo.spec not in archs:
            raise ShapezooError(
                f"the zoo of {zoo.spec.name} is not in the architecture ordering {[a.name for a in archs]}"
            )
        if zoo.spec.in_shape != data.in_shape or zoo.spec.classes != data.classes:
            raise ShapezooError(f"the zoo of {zoo.spec.name} was trained on other images than {data.name}")
    return archs


def _members(zoos, archs, split, device) -> tuple[dict, dict]:
    """Per split and architecture index: the members' weights on ``device`` and their names, in zoo order."""
    members = {k: set(v) for k, v in split.items()}
    params: dict[str, dict[int, torch.Tensor]] = {k: {} for k in split}
    names: dict[str, dict[int, list[str]]] = {k: {} for k in split}
    for zoo in zoos:
        a = archs.index(zoo.spec)
        for k in split:
            chosen = [n for n in zoo.names if n in members[k]]
            names[k][a] = chosen
            params[k][a] = zoo.params[[zoo.index(n) for n in chosen]].to(device)
    return params, names


def _finish(out, archs, unseen, data, model_config, config, params, names, split, state, run, device) -> dict:
    """Score the best space on every split, save the training latents and the summary into the space."""
    step, trained, seconds = run
    best = load_classifier_space(out, device)
    results: dict = {}
    for k in ("train", "val", "test"):
        for a, p in params[k].items():
            if len(p):
                r = evaluate_models(best, archs[a], p, data, "test")
                results.setdefault(k, {})[archs[a].name] = {"names": names[k][a], **r}
    z = torch.cat([best.encode(archs[a], p) for a, p in params["train"].items() if len(p)])
    train_names = [n for a, p in params["train"].items() if len(p) for n in names["train"][a]]
    save_latents(out / LATENTS_FILE, z, train_names)
    summary = {
        "space": str(out),
        "archs": [a.name for a in archs],
        "unseen": [archs[a].name for a in unseen],
        "data": data.name,
        "latent": model_config.latent,
        "models": {k: sum(len(v) for v in split_k.values()) for k, split_k in names.items()},
        "epochs": config.epochs,
        "steps": step,
        "best_epoch": state["best"]["epoch"],
        "timing": {
            "train_seconds_this_run": round(seconds, 2),
            "models_per_second": round(trained / seconds, 2) if trained else None,
        },
        "parameters": sum(p.numel() for p in best.model.parameters()),
        "device": str(device),
        "results": {
            k: {
                arch: {m: v for m, v in r.items() if m not in ("names", "accuracy_original", "accuracy_decoded")}
                for arch, r in per.items()
            }
            for k, per in results.items()
        },
    }
    best.meta.update(results=lasting(summary), evaluation=results, history=state["history"], best=state["best"])
    save_classifier_space(out, best)
    atomic_write_json(out / "train_summary.json", lasting(summary))
    return summary


def mixed_images(x: torch.Tensor, n: int, mix: float, g: torch.Generator) -> torch.Tensor:
    """n training images, the last ``round(mix * n)`` of them convex mixtures of two random training images."""
    idx = torch.randint(0, len(x), (2, n), generator=g).to(x.device)
    lam = torch.rand(n, generator=g).to(x.device)
    lam[: n - round(mix * n)] = 1.0
    lam = lam.view(n, *([1] * (x.dim() - 1)))
    return lam * x[idx[0]] + (1 - lam) * x[idx[1]]


def _draw_pairs(train: dict, K: int, unseen: list[int], n: int, g: torch.Generator, device) -> tuple:
    """The interpolation loss's draws for one step: n models of the first architecture, n of the last (K - 1) and
    the unseen architecture they are mixed towards (drawn the same on every rank, each rank keeps its rows)."""
    ia = torch.randint(0, len(train[0]), (n,), generator=g).to(device)
    ib = torch.randint(0, len(train[K - 1]), (n,), generator=g).to(device)
    k = unseen[int(torch.randint(0, len(unseen), (1,), generator=g))]
    return ia, ib, k


def _interpolation_terms(model, archs, train, pairs, x, T) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation loss: latents of pairs (first-architecture model, last-architecture model), mixed at the
    position t_k = k / (K - 1) of an unseen architecture k, must decode into a working model of architecture k
    (distilled from the endpoints' softened predictions mixed with the same t) and be classified as k."""
    K = len(archs)
    ia, ib, k = pairs
    t = k / (K - 1)
    pa, pb = train[0][ia], train[K - 1][ib]
    with torch.no_grad():
        target = (1 - t) * F.softmax(classifier_forward(archs[0], pa, x) / T, -1) + t * F.softmax(
            classifier_forward(archs[-1], pb, x) / T, -1
        )
    z = (1 - t) * model.encode(0, pa) + t * model.encode(K - 1, pb)
    feats = model.trunk_features(z)
    logits = classifier_forward(archs[k], model.decode(k, z, feats), x)
    arch = F.cross_entropy(model.arch_logits(z, feats), torch.full((len(ia),), k, device=x.device))
    return soft_kl(logits, target, T), arch


class _Objective(torch.nn.Module):
    """The classifier autoencoder's loss terms for one step, as a module so DistributedDataParallel can wrap it."""

    def __init__(self, model, archs: list[ClassifierSpec], train: dict, config: SpaceTrainConfig):
        super().__init__()
        self.model, self.archs, self.train_params, self.config = model, archs, train, config

    def forward(self, a: int, orig, x, target, pairs) -> dict[str, torch.Tensor]:
        model, spec, c, T = self.model, self.archs[a], self.config, self.config.temperature
        z = model.encode(a, orig)
        feats = model.trunk_features(z)
        decoded = model.decode(a, z, feats)
        terms = {
            "distill": distill_kl(classifier_forward(spec, decoded, x), target, T),
            "weight": (((decoded - orig) / getattr(model, f"std_{spec.kind}")[model.index(a)]) ** 2).mean(),
            "arch": F.cross_entropy(model.arch_logits(z, feats), torch.full((len(orig),), a, device=x.device)),
        }
        total_loss = terms["distill"] + c.weight_loss * terms["weight"] + c.arch_loss * terms["arch"]
        if pairs is not None:
            terms["interp"], terms["interp_arch"] = _interpolation_terms(
                model, self.archs, self.train_params, pairs, x, T
            )
            total_loss = total_loss + c.interp_loss * (terms["interp"] + c.arch_loss * terms["interp_arch"])
        terms["total"] = total_loss
        return terms


@torch.no_grad()
def _validation(model, archs, params: dict[int, torch.Tensor], data: ImageData, T: float) -> dict:
    """Distillation loss and accuracy gap of encode -> decode on the validation images."""
    model.eval()
    x, y = data.val[0][:VAL_IMAGES], data.val[1][:VAL_IMAGES]
    kl, gaps, n = 0.0, [], 0
    for a, p in params.items():
        if not len(p):
            continue
        dec = model.decode(a, model.encode(a, p))
        for xb in x.split(1024):
            kl += (
                float(distill_kl(classifier_forward(archs[a], dec, xb), classifier_forward(archs[a], p, xb), T))
                * len(p)
                * len(xb)
            )
        n += len(p) * len(x)
        gaps += (accuracy(archs[a], p, x, y) - accuracy(archs[a], dec, x, y)).abs().tolist()
    return {"distill": kl / n, "mean_abs_gap_points": 100 * sum(gaps) / len(gaps)}


def _meta(zoos, data, configs, split, state) -> dict:
    return {
        "train": configs["train"],
        "data": zoos[0].meta.get("data", {"name": data.name}),
        "split": split,
        "zoos": {zoo.spec.name: {"models": len(zoo.names), "recipe": zoo.meta.get("recipe")} for zoo in zoos},
        "history": state["history"],
        "best": state["best"],
    }
