"""Training a weight space: functional distillation of each zoo field into its decode, resumable, best-by-validation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ...core.latents import LATENTS_FILE, save_latents, split_names
from ...core.training import (
    BatchTerms,
    Loop,
    Schedule,
    load_checkpoint,
    open_state,
    parallel,
    ranks,
    train_loop,
)
from ...core.zoo import Zoo
from ...errors import ShapezooError
from ...io import atomic_write_json, ensure_output_dir, lasting
from ..network import FieldSpec, field_forward
from .designs import EXACT_TOL, Design, ModelConfig
from .model import WeightSpace, build_model, load_space, save_space
from .objective import functional_of, refine_model_latents, take


@dataclass(frozen=True)
class TrainConfig(Schedule):
    """How a weight space of fields is trained (best checkpoint: highest mean validation score, field IoU for
    occupancy fields)."""

    epochs: int = 400
    """Passes over the training fields."""
    batch: int = 32
    """Fields per step."""
    weight_loss: float = 0.05
    """Weight of the normalised weight-MSE term beside the functional loss."""
    points: int = 2048
    """Query points per field and step, half from each pool."""
    probe_uniform: int = 8192
    """Pool of uniform points per field (drawn once; targets are the original field's outputs)."""
    probe_near: int = 8192
    """Pool of second points per field: an occupancy field's level set, jittered by 0.01 / 0.003 (another kind's
    ``Functional`` says where); none for the ``shift`` design, which reads fields exactly and is only scored (on the
    uniform pool). Both pools are capped at the kind's ``Functional.pool`` (1024 for image fields)."""
    codes: bool = True
    """Auto-decoding: each training field gets a free latent code learned with the decoder (DeepSDF-style), and
    the encoder learns to predict the codes. False: plain autoencoder, decode(encode(w)). Codes make a latent
    space that latent optimisation can fit held-out fields in (BENCHMARKS.md, weight space)."""
    code_lr: float = 1e-2
    """Peak learning rate of the codes (same schedule as the model's)."""
    code_reg: float = 1e-4
    """Weight of the codes' squared norm (keeps the code cloud compact for priors and refinement)."""
    val_refine: int = 50
    """Refinement steps from the encoder's latent before validating (with codes; encoding = encoder + refine)."""


def losses(
    space_model, spec: FieldSpec, params, x, targets, weight_loss: float, codes=None, code_reg: float = 0.0
) -> dict[str, torch.Tensor]:
    """Named loss terms for a batch: functional (the kind's distillation loss, binary KL on occupancy logits),
    weight (normalised MSE) and total.

    With ``codes`` (B, d) the decoder reads the codes, and two terms join: encoder (MSE of the encoder's latents
    to the detached codes, which trains only the encoder) and code (squared norm, weighted by ``code_reg``).
    """
    z = space_model.encode(params)
    terms, extra = {}, 0.0
    if codes is not None:
        terms = {"encoder": ((z - codes.detach()) ** 2).sum(1).mean(), "code": (codes**2).sum(1).mean()}
        z, extra = codes, terms["encoder"] + code_reg * terms["code"]
    decoded = space_model.decode(z)
    functional = functional_of(spec).loss(field_forward(spec, decoded, x), targets)
    weight = (((decoded - params) / space_model.stats.std) ** 2).mean()
    return {"functional": functional, "weight": weight, **terms, "total": functional + weight_loss * weight + extra}


def evaluate_split(
    space_model,
    spec,
    params,
    x,
    targets,
    n_uniform: int,
    refine: int = 0,
    z=None,
    seed: int = 0,
    batch: int = 64,
    zoo_meta: dict | None = None,
) -> dict:
    """Functional loss and score over fields (field IoU: decode vs original occupancy on the uniform pool).

    Latents: ``z`` when given, else the encoder's, refined by ``refine`` steps against each field's function.
    """
    space_model.eval()
    functional = functional_of(spec)
    steps = refine if z is None else 0
    if z is None:
        with torch.no_grad():
            z = torch.cat([space_model.encode(p) for p in params.split(batch)])
        z = refine_model_latents(space_model, spec, params, z, refine, seed=seed, zoo_meta=zoo_meta)
    losses, scores = [], []
    for zb, xb, tb in zip(z.split(batch), x.split(batch), targets.split(batch)):
        with torch.no_grad():
            out = field_forward(spec, space_model.decode(zb), xb)
        losses.append(functional.loss(out, tb) * len(zb))
        scores.append(functional.score(out, tb, n_uniform))
    score = torch.cat(scores).cpu()
    return {
        "functional": float(sum(losses) / len(params)),
        "refine_steps": steps,
        f"{functional.score_name}_mean": float(score.mean()),
        f"{functional.score_name}_median": float(score.median()),
    }


class _Objective(torch.nn.Module):
    """The space model and the training fields' codes as one module, so DistributedDataParallel averages the
    gradients of both; forward gives the loss terms of a batch."""

    def __init__(self, model: torch.nn.Module, codes: torch.nn.Parameter | None, spec: FieldSpec, config: TrainConfig):
        super().__init__()
        self.model, self.codes, self.spec, self.config = model, codes, spec, config

    def forward(self, params, x, targets, rows) -> dict[str, torch.Tensor]:
        codes = self.codes[rows] if self.codes is not None else None
        c = self.config
        return losses(self.model, self.spec, params, x, targets, c.weight_loss, codes, c.code_reg)


FIXED = ("shift", "pca")
"""Designs with nothing to train: built from the training fields, then scored."""


def default_design(zoo: Zoo) -> Design:
    """``shift`` for a zoo fitted from a shift base (its fields are read exactly), ``pca`` for image fields of a
    shared start (they stay near it, so their weights are nearly linear in the image), else ``neuron``."""
    if (zoo.meta.get("init") or {}).get("modulation") == "shift":
        return "shift"
    shared_images = type(zoo.spec).zoo_kind == "image" and (zoo.meta.get("fit") or {}).get("protocol") == "shared"
    return "pca" if shared_images else "neuron"


def design_reason(zoo: Zoo, design: str) -> str:
    """One line: the design ``space train`` uses for ``zoo`` and why (what ``--design auto`` saw)."""
    if design != "auto":
        return f"design {design}: asked for with --design"
    if default_design(zoo) == "shift":
        return (
            "design shift (auto): the zoo's fields were fitted from a shift base, so the encoder reads each one "
            "exactly (nothing to train)"
        )
    if default_design(zoo) == "pca":
        return (
            "design pca (auto): image fields of a shared start stay near it, so the training fields' principal "
            "directions span them (nothing to train)"
        )
    return (
        "design neuron (auto): the zoo's fields move every weight, so the encoder is learned (held-out fields decode "
        "less closely; 'fit' with its default --init gives fields a shift space reads exactly)"
    )


def train_space(
    zoo: Zoo,
    out: str | Path,
    model_config: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: str | torch.device = "cpu",
    on_eval: Callable[[dict], None] | None = None,
) -> dict | None:
    """Train a weight autoencoder on the usable fields of ``zoo`` (occupancy fields, or another kind with a
    registered ``Functional``, e.g. image fields) and save the best one (by validation) to ``out``.

    Resumes from ``out/checkpoint.safetensors`` when the same configs are given again. Returns the summary
    also stored in ``space.json`` under ``results`` and in ``train_summary.json``.

    Under torchrun (torch.distributed initialised, e.g. by ``core.training.init_distributed``) every rank takes its
    share of each global batch and DistributedDataParallel averages the gradients, so the run follows the
    single-process one; rank 0 holds the folder's lock, evaluates and writes, the other ranks return None.
    """
    if model_config.design == "auto":
        model_config = replace(model_config, design=default_design(zoo))
    if model_config.design == "shift":  # the entries the zoo's fields move: the base's modulation
        model_config = replace(model_config, columns=int((zoo.meta.get("fit") or {}).get("columns", 0)))
    cap = functional_of(zoo.spec).pool
    config = replace(config, probe_uniform=min(config.probe_uniform, cap), probe_near=min(config.probe_near, cap))
    group = ranks()
    with group.lock(Path(out)):
        return _train(zoo, ensure_output_dir(out), model_config, config, torch.device(device), on_eval, group)


def _train(zoo, out, model_config, config, device, on_eval, group) -> dict | None:
    usable = [n for n in zoo.names if zoo.unusable(n) is None]
    if len(usable) < 2:
        raise ShapezooError(f"a weight space needs at least 2 usable fields; the zoo has {len(usable)}")
    split = split_names(usable, config.val, config.test, config.seed, config.train_limit)
    configs = {"model": asdict(model_config), "train": asdict(config)}
    state = open_state(out, configs, split, "another zoo")

    idx = {k: torch.tensor([zoo.index(n) for n in v], dtype=torch.long) for k, v in split.items()}
    params = {k: zoo.params[v].to(device) for k, v in idx.items()}
    functional = functional_of(zoo.spec)
    probes = _probes(zoo, params, config, 0 if model_config.design in FIXED else config.probe_near)
    torch.manual_seed(config.seed)
    model = build_model(zoo.spec, model_config, params["train"].cpu()).to(device)
    if model_config.design in FIXED:
        return _fixed_space(zoo, out, model, params, probes, config, configs, split, state, device)
    groups = [{"params": list(model.parameters()), "scale": 1.0}]
    codes = None
    if config.codes:
        codes = torch.nn.Parameter(0.1 * torch.randn(len(split["train"]), model_config.latent).to(device))
        groups.append({"params": [codes], "scale": config.code_lr / config.lr})
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=0.0)
    if state["epoch"] > 0:
        load_checkpoint(out, model, opt, codes)
    n_train = len(split["train"])
    total = config.epochs * math.ceil(n_train / config.batch)
    loop = Loop(out, model, opt, state, group, config.epochs, total, n_train, codes)
    # The neuron encoder's first forward and last backward message layers are never used (no neighbour there).
    objective = parallel(_Objective(model, codes, zoo.spec, config), group, device)
    half = config.points // 2
    x_all, t_all = probes["train"]

    def step_terms(b: torch.Tensor, g: torch.Generator) -> BatchTerms:
        pick = torch.cat(
            [
                torch.randint(0, config.probe_uniform, (len(b), half), generator=g),
                torch.randint(0, config.probe_near, (len(b), config.points - half), generator=g) + config.probe_uniform,
            ],
            1,
        ).to(device)
        rows, share = group.share(b)  # every rank draws the whole batch's points, then keeps its rows
        bd, pick = b[rows].to(device), pick[rows]
        x, t = take(x_all[bd], pick), take(t_all[bd], pick)
        return BatchTerms(objective(params["train"][bd], x, t, bd), len(bd), share, len(b))

    refine_steps = config.val_refine if config.codes else 0

    def record(entry: dict) -> None:
        sel = "val" if len(params["val"]) else "train"
        entry[sel if sel == "val" else "train_eval"] = evaluate_split(
            model,
            zoo.spec,
            params[sel],
            *probes[sel],
            config.probe_uniform,
            refine_steps,
            seed=config.seed,
            zoo_meta=zoo.meta,
        )
        # Select by the validation score (field IoU): the KL term keeps rising from overconfident logits (overfitting
        # of calibration) while the decoded shapes still improve (BENCHMARKS.md, weight space).
        val: dict = entry["val"] if "val" in entry else entry["train_eval"]
        state["history"].append(entry)
        key = f"{functional.score_name}_mean"
        if state["best"] is None or val[key] >= state["best"][key]:
            state["best"] = {"epoch": entry["epoch"], **val}
            save_space(out, WeightSpace(zoo.spec, model, _meta(zoo, configs, split, state), zoo.init))
            if codes is not None:
                save_latents(out / LATENTS_FILE, codes, split["train"], _labels(zoo, split["train"]))

    def batches(epoch: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        return torch.randperm(n_train, generator=g).split(config.batch)

    step, trained, seconds = train_loop(loop, config, batches, step_terms, record, on_eval)
    if not group.lead:
        return None
    return _finish(zoo, out, model_config, config, params, probes, split, state, (step, trained, seconds), device)


def _finish(zoo, out, model_config, config, params, probes, split, state, run, device) -> dict:
    """Score the best space on every split, save the training latents and the summary into the space."""
    step, trained, seconds = run
    refine_steps = config.val_refine if config.codes else 0
    best = load_space(out, device)
    results = {
        k: evaluate_split(
            best.model,
            zoo.spec,
            params[k],
            probes[k][0],
            probes[k][1],
            config.probe_uniform,
            refine_steps,
            seed=config.seed,
            zoo_meta=zoo.meta,
        )
        for k in ("train", "val", "test")
        if len(params[k])
    }
    if not config.codes:
        save_latents(out / LATENTS_FILE, best.encode(params["train"]), split["train"], _labels(zoo, split["train"]))
    else:
        z, _ = best.train_latents(out)
        x, t = probes["train"]
        results["train_codes"] = evaluate_split(
            best.model, zoo.spec, params["train"], x, t, config.probe_uniform, z=z.to(device)
        )
    summary = {
        "space": str(out),
        "design": model_config.design,
        "latent": model_config.latent,
        "fields": {k: len(v) for k, v in split.items()},
        "epochs": config.epochs,
        "steps": step,
        "best_epoch": state["best"]["epoch"],
        "results": results,
        "parameters": sum(p.numel() for p in best.model.parameters()),
        "device": str(device),
        "timing": {
            "train_seconds_this_run": round(seconds, 2),
            "fields_per_second": round(trained / seconds, 2) if trained else None,
        },
    }
    best.meta.update(results=lasting(summary), history=state["history"], best=state["best"])
    save_space(out, best)
    atomic_write_json(out / "train_summary.json", lasting(summary))
    return summary


def _fixed_space(zoo, out, model, params, probes, config, configs, split, state, device) -> dict:
    """The ``shift`` and ``pca`` designs have nothing to learn: their statistics (and principal directions) come
    from the training fields; a shift space's base (the zoo's start point) must be what every field shares. Saves
    the space, its training latents and results."""
    if model.config.design == "shift":
        _fix_shift_base(zoo, model, params, device)
    started = time.perf_counter()
    state["best"] = {"epoch": 0}
    space = WeightSpace(zoo.spec, model, _meta(zoo, configs, split, state), zoo.init)
    results = {
        k: evaluate_split(model, zoo.spec, params[k], probes[k][0], probes[k][1], config.probe_uniform)
        for k in ("train", "val", "test")
        if len(params[k])
    }
    save_latents(out / LATENTS_FILE, space.encode(params["train"]), split["train"], _labels(zoo, split["train"]))
    summary = {
        "space": str(out),
        "design": model.config.design,
        "latent": model.config.latent,
        "fields": {k: len(v) for k, v in split.items()},
        "epochs": 0,
        "steps": 0,
        "best_epoch": 0,
        "results": results,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "timing": {"train_seconds_this_run": round(time.perf_counter() - started, 2), "fields_per_second": None},
    }
    space.meta.update(results=lasting(summary))
    save_space(out, space)
    atomic_write_json(out / "train_summary.json", lasting(summary))
    return summary


def _probes(zoo: Zoo, params: dict, config: TrainConfig, near: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each split's query points and targets: ``config.probe_uniform`` + ``near`` per field (the kind's
    ``Functional``)."""
    queries = functional_of(zoo.spec).queries
    return {
        k: queries(zoo.spec, p, config.probe_uniform, near, config.seed + i, zoo.meta)
        for i, (k, p) in enumerate(params.items())
        if len(p)
    }


def _fix_shift_base(zoo, model, params, device) -> None:
    """A shift space's decoder starts at its base (the zoo's start point), which every field must share."""
    shared = ~zoo.spec.modulation_mask(model.config.columns).to(device)
    base = zoo.init.to(device)
    with torch.no_grad():
        model.stats.mean[shared] = base[shared]  # exactly the base, not a mean of copies of it
        model.decoder.affine.shift.copy_(model.stats.mean)
        model.decoder.affine.scale.copy_(model.stats.std)
        for k, p in params.items():
            worst = float(model.encoder.residual(p, model.stats).max()) if len(p) else 0.0
            if worst > EXACT_TOL:
                raise ShapezooError(
                    f"the zoo's {k} fields do not share the weights of its start point (relative "
                    f"distance up to {worst:.3g}); the shift design needs a zoo fitted from a shift base "
                    "('shapezoo init base', then 'shapezoo fit --init BASE') - use --design neuron for this zoo"
                )


def _labels(zoo: Zoo, names: list[str]) -> dict | None:
    """The latents file's labels (the zoo entries' classes), when the zoo records any."""
    labels = {n: zoo.entries[zoo.index(n)].get("label") for n in names}
    return {"labels": labels} if any(v is not None for v in labels.values()) else None


def _meta(zoo: Zoo, configs: dict, split: dict, state: dict) -> dict:
    return {
        "train": configs["train"],
        "split": split,
        "zoo": {"fields": len(zoo.names), "meta": zoo.meta},
        "history": state["history"],
        "best": state["best"],
    }
