"""Moving through a classifier space: accuracy along interpolations (latent and raw weights), instances of
unseen architectures, latent optimisation for accuracy, and original-vs-decoded evaluation of a zoo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..core.latents import frozen, interpolate
from ..core.zoo import Zoo
from ..errors import ShapezooError
from .archs import ClassifierSpec, accuracy, classifier_forward
from .data import ImageData
from .space import ClassifierSpace
from .train import compare_accuracies, distill_kl, evaluate_models, mixed_images, spearman


def _monotonicity(acc: list[float]) -> dict:
    """How monotone a path is: Spearman of accuracy vs step and the largest drop between neighbouring steps."""
    drops = [max(0.0, a - b) for a, b in zip(acc[:-1], acc[1:])]
    return {"spearman_vs_t": spearman(list(range(len(acc))), acc), "largest_drop_points": 100 * max(drops, default=0.0)}


@torch.no_grad()
def interpolation_path(
    space: ClassifierSpace,
    a: tuple[ClassifierSpec, torch.Tensor],
    b: tuple[ClassifierSpec, torch.Tensor],
    data: ImageData,
    steps: int = 9,
    mode: Literal["lerp", "slerp"] = "lerp",
    split: str = "test",
) -> dict:
    """Accuracy of the decodes along the latent path from model ``a`` to model ``b`` ((spec, (P,)) each), and of
    the raw-weight path when both share an architecture (the naive baseline).

    Each latent step decodes to the architecture the decoder predicts there. ``latents`` holds the path
    (steps, latent) on the CPU; everything else is JSON-ready.
    """
    za, zb = space.encode(a[0], a[1][None])[0], space.encode(b[0], b[1][None])[0]
    path = interpolate(za, zb, steps, mode)
    images, labels = data.split(split)
    arch = space.model.arch_logits(path).argmax(-1).tolist()
    acc_latent: list[float] = []
    names: list[str] = []
    for z, k in zip(path, arch):
        spec = space.archs[k]
        acc_latent.append(float(accuracy(spec, space.model.decode(k, z[None]), images, labels)[0]))
        names.append(spec.name)
    out: dict[str, Any] = {
        "t": torch.linspace(0, 1, steps).tolist(),
        "mode": mode,
        "latents": path.cpu(),
        "arch_latent": names,
        "accuracy_latent": acc_latent,
        "latent": _monotonicity(acc_latent),
        "accuracy_endpoints": [float(accuracy(s, p[None].to(space.device), images, labels)[0]) for s, p in (a, b)],
    }
    if a[0] == b[0]:
        t = torch.tensor(out["t"], device=space.device)[:, None]
        raw = (1 - t) * a[1].to(space.device) + t * b[1].to(space.device)
        out["accuracy_raw"] = accuracy(a[0], raw, images, labels).tolist()
        out["raw"] = _monotonicity(out["accuracy_raw"])
    return out


@torch.no_grad()
def generate_between(
    space: ClassifierSpace, first: torch.Tensor, last: torch.Tensor, data: ImageData, split: str = "test"
) -> dict:
    """Instances of every interior architecture of the ordering, made by mixing the latents of pairs of models of
    the first and last architectures (``first``/``last``: (n, P) each, paired row by row) at that architecture's
    position t = k / (K - 1). Returns per architecture the accuracies and how often the decoder names it."""
    K = len(space.archs)
    if K < 3:
        raise ShapezooError("generating between architectures needs an ordering of at least 3")
    n = min(len(first), len(last))
    za, zb = space.encode(space.archs[0], first[:n]), space.encode(space.archs[-1], last[:n])
    images, labels = data.split(split)
    out = {}
    for k in range(1, K - 1):
        t = k / (K - 1)
        z = (1 - t) * za + t * zb
        params = space.model.decode(k, z)
        acc = accuracy(space.archs[k], params, images, labels)
        predicted = space.model.arch_logits(z).argmax(-1)
        out[space.archs[k].name] = {
            "t": t,
            "accuracy": acc.tolist(),
            "accuracy_mean": float(acc.mean()),
            "arch_predicted_share": float((predicted == k).float().mean()),
            "params": params.cpu(),
        }
    return out


@dataclass(frozen=True)
class LatentOptConfig:
    """Latent optimisation for accuracy on the training images."""

    steps: int = 300
    lr: float = 0.01
    images: int = 256
    """Training images per step."""
    temperature: float = 4.0
    """Distillation temperature when a teacher is given."""
    eval_every: int = 20
    """Validation accuracy is measured this often; the best latent by validation accuracy is kept."""
    seed: int = 0


def optimize_latent(
    space: ClassifierSpace,
    arch: ClassifierSpec,
    z0: torch.Tensor,
    data: ImageData,
    config: LatentOptConfig = LatentOptConfig(),
    teacher: tuple[ClassifierSpec, torch.Tensor] | None = None,
    on_eval: Callable[[dict], None] | None = None,
) -> dict:
    """Optimise a latent (d,) so its decode, as architecture ``arch``, classifies the training images well:
    cross-entropy on labels, or distillation from ``teacher`` (spec, (P,)) when given. The decoder stays fixed.

    Returns the best latent (by validation accuracy, the start included), its weights, and test accuracy before
    and after.
    """
    k = space.arch_index(arch, arch.name)
    space.check_latents(z0[None], "start latent")
    dev = space.device
    model = space.model
    z = z0.detach().clone().to(dev)[None].requires_grad_(True)
    opt = torch.optim.Adam([z], lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    x_train, y_train = data.train

    def val_acc(zz):
        with torch.no_grad():
            return float(accuracy(arch, model.decode(k, zz), *data.val)[0])

    with frozen(model):
        best = {"step": 0, "val": val_acc(z), "z": z.detach().clone()}
        history = [{"step": 0, "accuracy_val": best["val"]}]
        for step in range(1, config.steps + 1):
            idx = torch.randint(0, len(y_train), (config.images,), generator=g).to(dev)
            logits = classifier_forward(arch, model.decode(k, z), x_train[idx])[0]
            if teacher is None:
                loss = F.cross_entropy(logits, y_train[idx])
            else:
                with torch.no_grad():
                    target = classifier_forward(teacher[0], teacher[1][None].to(dev), x_train[idx])[0]
                loss = distill_kl(logits, target, config.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % config.eval_every == 0 or step == config.steps:
                acc = val_acc(z.detach())
                history.append({"step": step, "loss": float(loss.detach()), "accuracy_val": acc})
                if acc > best["val"]:
                    best = {"step": step, "val": acc, "z": z.detach().clone()}
                if on_eval is not None:
                    on_eval(history[-1])
    with torch.no_grad():
        start_w, best_w = model.decode(k, z0[None].to(dev)), model.decode(k, best["z"])
        test = [float(accuracy(arch, w, *data.test)[0]) for w in (start_w, best_w)]
    return {
        "z": best["z"][0].cpu(),
        "params": best_w[0].cpu(),
        "best_step": best["step"],
        "accuracy_test_start": test[0],
        "accuracy_test_end": test[1],
        "accuracy_val_start": history[0]["accuracy_val"],
        "accuracy_val_end": best["val"],
        "objective": "labels" if teacher is None else "distillation",
        "history": history,
    }


def encode_models(
    space: ClassifierSpace,
    spec: ClassifierSpec,
    params: torch.Tensor,
    data: ImageData,
    refine: int = 0,
    lr: float = 0.05,
    images: int = 256,
    temperature: float = 4.0,
    mix: float = 0.5,
    seed: int = 0,
) -> torch.Tensor:
    """(N, P) -> (N, latent): the encoder, then optionally ``refine`` Adam steps on all N latents at once that
    lower each decode's distillation loss against its own original on training images, a share ``mix`` of them
    two-image mixtures as in space training (on training images alone the decodes copy how the originals
    memorised them, not how they generalise); the decoder stays fixed and the test images are never used."""
    z = space.encode(spec, params)
    if refine <= 0 or not len(z):
        return z
    k, dev = space.arch_index(spec, spec.name), space.device
    params = params.to(dev)
    g = torch.Generator().manual_seed(seed)
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with frozen(space.model):
        for _ in range(refine):
            x = mixed_images(data.train[0], images, mix, g)
            with torch.no_grad():
                target = classifier_forward(spec, params, x)
            loss = distill_kl(classifier_forward(spec, space.model.decode(k, z), x), target, temperature) * len(z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return z.detach()


@torch.no_grad()
def evaluate_decoded(
    space: ClassifierSpace,
    zoo: Zoo[ClassifierSpec],
    data: ImageData,
    split: str = "test",
    refine: int = 0,
    only: set[str] | None = None,
) -> dict:
    """Original vs decoded accuracy of every usable model of ``zoo`` on an image split, with each model's role in
    the space's training (train / val / test, or ``unseen`` for models the space never saw). ``refine``: latent
    refinement steps after the encoder (see ``encode_models``); ``only``: evaluate just these roles."""
    roles = {n: k for k, names in space.meta.get("split", {}).items() for n in names}
    usable = [n for n in zoo.names if zoo.unusable(n) is None and (only is None or roles.get(n, "unseen") in only)]
    params = zoo.params[[zoo.index(n) for n in usable]].to(space.device)
    with torch.enable_grad():
        z = encode_models(space, zoo.spec, params, data, refine)
    result = evaluate_models(space, zoo.spec, params, data, split, z)
    pairs = zip(usable, result["accuracy_original"], result["accuracy_decoded"])
    rows = [
        {
            "name": n,
            "arch": zoo.spec.name,
            "role": roles.get(n, "unseen"),
            "accuracy_original": o,
            "accuracy_decoded": d,
        }
        for n, o, d in pairs
    ]
    summary = {}
    for role in ("train", "val", "test", "unseen"):
        sel = [r for r in rows if r["role"] == role]
        if sel:
            original, decoded = [r["accuracy_original"] for r in sel], [r["accuracy_decoded"] for r in sel]
            summary[role] = compare_accuracies(original, decoded)
    return {"split": split, "refine": refine, "models": rows, "summary": summary}
