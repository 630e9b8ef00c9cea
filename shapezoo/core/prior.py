"""Priors over a space's training latents (either modality), to draw new members from: a Gaussian (shrunk
covariance), and a learned one — a small flow-matching model, optionally conditioned on the members' labels,
resumable, saved as prior.safetensors + prior.json.

The flow (``core.flow``) models the latents' coordinates (standardised, or on principal directions); samples start
from noise scaled by a temperature. The loss on a
validation share of the training latents is recorded as training goes: it rises once the flow starts to learn the
training latents by heart, which is the memorisation the generation benchmark then measures on shapes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..errors import InputError, ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, locks, read_json, read_record
from ..schema import Num, check, check_tensor, config_from_json
from .flow import Velocity, flow_loss, heun
from .latents import LATENTS_FILE, Latents, read_latents, split_names
from .space_files import SPACE_JSON
from .training import STATE_JSON, load_checkpoint, open_state, save_checkpoint

PRIOR_FORMAT = "shapezoo.prior/1"
PRIOR_FILE = "prior.safetensors"
PRIOR_JSON = "prior.json"


@dataclass(frozen=True)
class PriorConfig:
    """How a latent prior is trained and sampled."""

    steps: int = 1500
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-2
    hidden: int = 512
    blocks: int = 3
    dropout: float = 0.3
    conditional: bool = False
    """Condition on the members' labels (family, class); a share ``label_dropout`` of each batch is trained
    without its label, so the same network also samples unconditionally."""
    label_dropout: float = 0.1
    val: float = 0.1
    """Share of the training latents held out to choose the checkpoint (by validation loss)."""
    components: int = 0
    """Model the top ``components`` principal directions of the training latents (0: every dimension); the rest
    is left at the mean. Few latents in many dimensions leave little to learn outside the leading directions."""
    keep: str = "auto"
    """Checkpoint kept: ``last`` (after all steps), ``best`` (lowest validation loss), or ``auto``: the measured
    recipe of the space's modality (``RECIPES``)."""
    eval_every: int = 50
    sample_steps: int = 50
    """Heun steps from noise to a latent."""
    temperature: float = 0.0
    """Scale of the starting noise when sampling (the ``sample`` default; < 1: more typical, less varied); 0 takes
    the measured recipe of the space's modality (``RECIPES``)."""
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch", "hidden", "blocks", "eval_every", "sample_steps"):
            if getattr(self, name) < 1:
                raise ShapezooError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.weight_decay >= 0 or self.components < 0 or self.temperature < 0:
            raise ShapezooError("lr must be > 0, and weight-decay, components and temperature >= 0")
        if not (0 <= self.dropout < 1 and 0 <= self.label_dropout < 1 and 0 < self.val < 1):
            raise ShapezooError(f"dropout and label-dropout must be in [0, 1) and val in (0, 1), got {self.val}")
        if self.keep not in ("auto", "best", "last"):
            raise ShapezooError(f"--keep must be auto, best or last, got {self.keep!r}")


@dataclass
class GaussianPrior:
    """A Gaussian over latents: mean (d,) and a lower-triangular factor (d, d) of the shrunk covariance."""

    mean: torch.Tensor
    factor: torch.Tensor

    @classmethod
    def fit(cls, z: torch.Tensor, shrinkage: float = 0.1) -> GaussianPrior:
        """Fit to latents (N, d), shrinking the covariance towards its diagonal (N is often below d)."""
        if len(z) < 2:
            raise ShapezooError(f"a latent prior needs at least 2 latents, got {len(z)}")
        z = z.double()
        cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
        cov = (1 - shrinkage) * cov + shrinkage * torch.diag(torch.diag(cov)) + 1e-8 * torch.eye(len(cov))
        return cls(z.mean(0).float(), torch.linalg.cholesky(cov).float())

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """``n`` seeded latents; ``temperature`` scales the whitened draw (< 1: nearer the mean)."""
        g = torch.Generator().manual_seed(seed)
        return self.to_latent(temperature * torch.randn(n, len(self.mean), generator=g))

    def to_latent(self, u: torch.Tensor) -> torch.Tensor:
        """Whitened coordinates (n, d) -> latents."""
        return self.mean.to(u) + u @ self.factor.to(u).T

    def to_whitened(self, z: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(self.factor.to(z), (z - self.mean.to(z)).T, upper=False).T


RECIPES: dict[str, tuple[str, float]] = {"fields": ("last", 0.8), "classifiers": ("best", 1.0)}
"""What ``auto`` means per modality (checkpoint kept, sampling temperature), chosen by the generation benchmarks
(BENCHMARKS.md "Generation"). Field spaces: the validation loss is lowest early, long before decoded samples look
like shapes; the last of 1500 steps, sampled at 0.8, gives realistic samples still about as far from their nearest
training shape as held-out shapes are. Classifier spaces: the last checkpoint's models lose accuracy and novelty;
the best-on-validation one at 1.0 keeps both."""


def _recipe(space: Path, config: PriorConfig) -> PriorConfig:
    """``config`` with ``auto`` keep and temperature resolved for the kind of ``space``."""
    kind = "classifiers" if "classifier" in str(read_json(space / SPACE_JSON, dict).get("format", "")) else "fields"
    keep, temperature = RECIPES[kind]
    return replace(
        config, keep=keep if config.keep == "auto" else config.keep, temperature=config.temperature or temperature
    )


def latents_fingerprint(z: torch.Tensor) -> str:
    """SHA-256 of a latents tensor's values (not the file's bytes: safetensors' metadata order varies)."""
    return hashlib.sha256(z.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def space_latents(space: str | Path) -> Latents:
    """The training latents saved in a space folder of either modality; a folder without them raises InputError."""
    space = Path(space)
    if not (space / SPACE_JSON).exists():
        raise InputError(space, "not a space folder (no space.json)")
    if not (space / LATENTS_FILE).exists():
        raise InputError(space, f"holds no {LATENTS_FILE} (train the space to the end first)")
    return read_latents(space / LATENTS_FILE)


@dataclass
class LatentPrior:
    """A trained flow over coordinates x (k,) of latents z = ``mean`` + x @ ``basis`` (mean (d,), basis (k, d):
    the latents standardised, or their top-k principal directions, whitened), with the ``labels`` it knows (empty
    when unconditional); ``meta`` is prior.json."""

    model: Velocity
    mean: torch.Tensor
    basis: torch.Tensor
    labels: list[str]
    meta: dict

    @property
    def dim(self) -> int:
        return len(self.mean)

    def label_index(self, label: str | None) -> int:
        """Index of ``label`` (None: unconditional); an unknown label raises ShapezooError naming the known ones."""
        if label is None:
            return self.model.classes
        if label not in self.labels:
            known = ", ".join(self.labels) if self.labels else "none: the prior is unconditional"
            raise ShapezooError(f"the prior knows no family '{label}' (known: {known})")
        return self.labels.index(label)

    def check_source(self, latents: Latents, space: str | Path) -> None:
        """Raise InputError unless this prior was trained on ``latents`` (a space's training latents)."""
        if latents.z.shape[1] != self.dim or latents_fingerprint(latents.z) != self.meta.get("latents_sha256"):
            raise InputError(
                space,
                f"is not the space this prior was trained on (prior of {self.meta.get('space')!r}, latent size "
                f"{self.dim}); train a prior for this space with 'shapezoo prior train'",
            )

    @torch.no_grad()
    def sample(
        self,
        count: int,
        seed: int = 0,
        label: str | None = None,
        guidance: float = 1.0,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """``count`` latents (count, d), seeded; ``label`` conditions on a known label, ``guidance`` > 1 pushes
        conditional samples further from the unconditional ones (classifier-free guidance), ``temperature`` < 1
        starts from narrower noise (samples nearer the modes: more typical, less varied; None: the prior's own)."""
        if count < 1:
            raise ShapezooError(f"--count must be >= 1, got {count}")
        index = self.label_index(label)
        dev = self.mean.device
        self.model.eval()
        if temperature is None:
            temperature = self.temperature
        if not temperature > 0:
            raise ShapezooError(f"--temperature must be > 0, got {temperature}")
        k = len(self.basis)
        x = temperature * torch.randn(count, k, generator=torch.Generator().manual_seed(seed)).to(dev)
        lab = torch.full((count,), index, dtype=torch.long, device=dev)

        def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
            tt = torch.full((count,), t, device=dev)
            v = self.model(x, tt, lab)
            if guidance != 1.0 and index != self.model.classes:
                free = self.model(x, tt, torch.full_like(lab, self.model.classes))
                v = free + guidance * (v - free)
            return v

        x = heun(velocity, x, int(self.meta["config"]["sample_steps"]))
        return (self.mean + x @ self.basis).cpu()

    @property
    def temperature(self) -> float:
        """The sampling temperature of the prior's recipe (1.0 for priors saved before it was recorded)."""
        return float(self.meta["config"].get("temperature", 1.0))

    def to(self, device) -> LatentPrior:
        self.model.to(device)
        self.mean, self.basis = self.mean.to(device), self.basis.to(device)
        return self


def _coordinates(z: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and basis (k, d) with z = mean + x @ basis for unit-variance coordinates x: the latents
    standardised per dimension (``components`` 0), or their top principal directions of the standardised latents,
    each scaled by its standard deviation."""
    mean, std = z.mean(0), z.std(0).clamp_min(1e-6)
    if components <= 0:
        return mean, torch.diag(std)
    if components > min(z.shape) - 1:
        raise ShapezooError(
            f"--components {components}: {len(z)} training latents of size {z.shape[1]} have at most "
            f"{min(z.shape) - 1} principal directions"
        )
    _, s, vt = torch.linalg.svd((z - mean) / std, full_matrices=False)
    scale = s[:components] / (len(z) - 1) ** 0.5
    return mean, scale[:, None] * vt[:components] * std[None]


def _labels_of(latents: Latents, conditional: bool, what: str | Path) -> tuple[list[str], torch.Tensor | None]:
    if not conditional:
        return [], None
    found = latents.meta.get("labels") or {}
    labels = [str(found[n]) for n in latents.names if found.get(n) is not None]
    if len(labels) < len(latents.names):
        missing = len(latents.names) - len(labels)
        raise InputError(
            what, f"{missing} of {len(latents.names)} training latents carry no label; a conditional prior needs them"
        )
    known = sorted(set(labels))
    if len(known) < 2:
        raise InputError(what, f"the training latents have a single label ({known[0]}); nothing to condition on")
    return known, torch.tensor([known.index(v) for v in labels])


@locks("out")
def train_prior(
    space: str | Path,
    out: str | Path,
    config: PriorConfig = PriorConfig(),
    device: str | torch.device = "cpu",
    on_eval: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train a prior on a space's training latents into ``out``; resumes from ``out``'s checkpoint when the
    options match. Writes prior.safetensors + prior.json (the best checkpoint by validation loss) and returns the
    summary."""
    latents = space_latents(space)
    config = _recipe(Path(space), config)
    if len(latents.z) < 4:
        raise InputError(Path(space) / LATENTS_FILE, f"holds {len(latents.z)} latents; a prior needs at least 4")
    labels, label_idx = _labels_of(latents, config.conditional, Path(space) / LATENTS_FILE)
    split = split_names(latents.names, config.val, 0.0, config.seed)
    rows = {k: torch.tensor([latents.names.index(n) for n in v], dtype=torch.long) for k, v in split.items()}
    if not len(rows["val"]):
        raise ShapezooError(f"{len(latents.z)} latents leave none for validation at --val {config.val}")
    dev = torch.device(device)
    z_all = latents.z.to(dev)
    mean, basis = _coordinates(z_all[rows["train"]], config.components)
    # coordinates of every latent (N, k); on the CPU by SVD (gelsd): the default driver (gelsy) rounds differently
    # from call to call, so the same command would train another prior
    driver = "gelsd" if dev.type == "cpu" else None
    zs = torch.linalg.lstsq(basis.T, (z_all - mean).T, driver=driver).solution.T
    classes = len(labels)
    lab_all = (label_idx if label_idx is not None else torch.zeros(len(zs), dtype=torch.long)).to(dev)
    if label_idx is None:
        lab_all = torch.full_like(lab_all, classes)

    out = ensure_output_dir(out)
    source = {"space": str(space), "latents_sha256": latents_fingerprint(latents.z), "labels": labels}
    state = open_state(out, {"prior": asdict(config), **source}, split, "latents of another space")
    torch.manual_seed(config.seed)
    model = Velocity(zs.shape[1], config.hidden, config.blocks, classes, config.dropout).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if (out / STATE_JSON).exists() and state["step"] > 0:
        load_checkpoint(out, model, opt)
    best = _read_best(out, dev) if state["best"] else None
    val_z, val_lab = zs[rows["val"]], lab_all[rows["val"]]
    train_z, train_lab = zs[rows["train"]], lab_all[rows["train"]]
    while state["step"] < config.steps:
        loss = _step(model, opt, config, train_z, train_lab, classes, state["step"])
        state["step"] += 1
        if state["step"] % config.eval_every == 0 or state["step"] == config.steps:
            val = _validation_loss(model, val_z, val_lab, config.seed)
            row = {"step": state["step"], "train": float(loss.detach()), "val": val}
            state["history"].append(row)
            last = state["step"] == config.steps
            if state["best"] is None or (val < state["best"]["val"] if config.keep == "best" else last):
                state["best"] = row
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
                atomic_save_tensors(out / "best.safetensors", {k: v.cpu().contiguous() for k, v in best.items()})
            save_checkpoint(out, model, opt, state)
            if on_eval is not None:
                on_eval(state["step"], row)
    assert best is not None
    meta = {
        "format": PRIOR_FORMAT,
        **source,
        "dim": len(mean),
        "components": len(basis),
        "latents": len(latents.z),
        "split": {k: len(v) for k, v in split.items()},
        "config": asdict(config),
        "best": state["best"],
        "history": state["history"],
        "method": "flow matching (rectified flow), Heun sampler",
    }
    tensors = {f"model.{k}": v.cpu().contiguous() for k, v in best.items()}
    atomic_save_tensors(out / PRIOR_FILE, {**tensors, "mean": mean.cpu(), "basis": basis.cpu().contiguous()})
    atomic_write_json(out / PRIOR_JSON, meta)
    return {"out": str(out), **{k: meta[k] for k in ("space", "dim", "latents", "split", "best", "labels")}}


def _step(model: Velocity, opt, config: PriorConfig, train_z, train_lab, classes: int, step: int) -> torch.Tensor:
    """One AdamW step of the flow on a batch of training latents (labels dropped at ``label_dropout`` for
    classifier-free guidance); every draw is a function of the step, so a resumed run is the same run."""
    dev = train_z.device
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    model.train()
    pick = torch.randint(len(train_z), (config.batch,), generator=g).to(dev)
    lab = train_lab[pick]
    if classes:
        drop = (torch.rand(len(pick), generator=g) < config.label_dropout).to(dev)
        lab = torch.where(drop, torch.full_like(lab, classes), lab)
    for group in opt.param_groups:
        group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout masks: a function of the step, for resume
        loss = flow_loss(model, train_z[pick], lab, g)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def _read_best(out: Path, dev: torch.device) -> dict:
    tensors, _ = load_tensors(out / "best.safetensors", framework="pt")
    return {k: v.to(dev) for k, v in tensors.items()}


@torch.no_grad()
def _validation_loss(model: Velocity, z: torch.Tensor, labels: torch.Tensor, seed: int, repeats: int = 16) -> float:
    """Flow loss on the validation latents, averaged over ``repeats`` fixed draws of noise and time."""
    model.eval()
    g = torch.Generator().manual_seed(seed + 7)
    return float(sum(flow_loss(model, z, labels, g) for _ in range(repeats)) / repeats)


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> LatentPrior:
    """Read a prior folder; problems raise InputError naming the file."""
    path = Path(path)
    where = path / PRIOR_JSON
    meta = read_record(path, PRIOR_JSON, PRIOR_FORMAT, "prior")
    check(meta, {"dim": Num(lo=1, integer=True), "components": Num(lo=1, integer=True), "labels": [str]}, where)
    config = config_from_json(PriorConfig, meta.get("config"), where, complete=True)
    labels, dim, k = meta["labels"], meta["dim"], meta["components"]
    tensors, _ = load_tensors(path / PRIOR_FILE, framework="pt")
    mean = check_tensor(tensors, "mean", path / PRIOR_FILE, (dim,))
    basis = check_tensor(tensors, "basis", path / PRIOR_FILE, (k, dim))
    model = Velocity(k, config.hidden, config.blocks, len(labels))
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as exc:
        raise InputError(path / PRIOR_FILE, f"does not match prior.json ({str(exc).splitlines()[0]})") from None
    return LatentPrior(model, mean, basis, labels, meta).to(device)


def draw_latents(
    space: str | Path,
    count: int,
    seed: int = 0,
    prior: str | Path = "gaussian",
    label: str | None = None,
    guidance: float = 1.0,
    device: str | torch.device = "cpu",
    temperature: float | None = None,
) -> tuple[torch.Tensor, str]:
    """``count`` new latents (count, d) for a space folder and a description of where they came from: from a
    Gaussian fitted to its training latents (to those labelled ``label``, if given), or from a learned prior
    folder, which must have been trained on this space's latents; ``temperature`` scales the starting noise (None:
    the learned prior's own, 1 for the Gaussian)."""
    if count < 1:
        raise ShapezooError(f"--count must be >= 1, got {count}")
    if temperature is not None and not temperature > 0:
        raise ShapezooError(f"--temperature must be > 0, got {temperature}")
    latents = space_latents(space)
    if str(prior) != "gaussian":
        learned = load_prior(prior, device)
        learned.check_source(latents, space)
        t = learned.temperature if temperature is None else temperature
        what = f"learned prior {prior}, temperature {t:g}" + (f", family {label}" if label else "")
        return learned.sample(count, seed, label, guidance, t), what
    z = latents.z
    if label is not None:
        labels = latents.meta.get("labels") or {}
        rows = [i for i, n in enumerate(latents.names) if labels.get(n) == label]
        if not rows:
            known = sorted({v for v in labels.values() if v is not None})
            raise ShapezooError(
                f"the space has no training member of family '{label}' (known: {', '.join(known) or 'none'})"
            )
        z = z[rows]
    t = 1.0 if temperature is None else temperature
    what = f"gaussian (shrunk covariance) over the training latents, temperature {t:g}"
    return GaussianPrior.fit(z).sample(count, seed, t), what + (f", family {label}" if label else "")
