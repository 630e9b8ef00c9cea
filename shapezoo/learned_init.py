"""Learned initialisations: one starting point for a field architecture, meta-learned over training shapes.

Two kinds. A *Reptile init* (``learn_init``) is where full fits start. A *shift base* (``learn_base``) is a set of
shared weights that fields keep, each shape fitting only its biases (a shift modulation, as in Functa): a weight
space reads such fields exactly (BENCHMARKS.md, "An encoder that generalises").

First-order meta-learning (Reptile, Nichol et al. 2018, "On First-Order Meta-Learning Algorithms", Alg. 2): each
outer step fits a batch of shapes for ``inner_steps`` with the batched fitter (``fit_fields``, the same recipe a
short fit uses) from the current start ``phi`` and moves ``phi`` towards the mean of the fitted weights,
``phi += eps_t * (mean(theta) - phi)`` with ``eps_t`` decaying linearly to zero. The folder it writes
(``init.safetensors`` + ``init.json``) is both the result and the checkpoint, so a killed run resumes exactly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .core.cluster import TaskSpec, connect, run_tasks
from .core.latents import split_names
from .core.training import adam_step_
from .core.zoo import member_seed
from .errors import InputError, ShapezooError
from .fields import FieldSpec, field_forward, init_params
from .fit import FitConfig, FitResult, fit_fields, split_holdout
from .io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, locks, read_json
from .jitter import jitter_radii
from .sampling import INDEX_NAME, load_sample_batch, read_index

INIT_FORMAT = "shapezoo.init/1"
INIT_WEIGHTS = "init.safetensors"
INIT_JSON = "init.json"
ASSETS = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class InitConfig:
    """The meta-learning recipe (saved in the init's JSON)."""

    outer_steps: int = 300
    """Reptile updates of the start point."""
    inner_steps: int = 100
    """Fitting steps per shape inside one outer step (the fitter's cosine schedule over these steps)."""
    batch: int = 8
    """Shapes fitted together per outer step, drawn without replacement from the training shapes."""
    outer_lr: float = 1.0
    """Reptile step size at the first outer step; decays linearly to 0 at the last."""
    inner_lr: float = 5e-4
    """Peak Adam learning rate of the inner fits (the default fitting recipe's)."""
    points_per_step: int = 1024
    """Training points per shape per inner step."""
    seed: int = 0
    """Seed of the starting weights (the seeded init) and of the shape draws."""
    checkpoint_every: int = 10
    """Outer steps between checkpoints (the folder is rewritten atomically)."""

    def __post_init__(self):
        for name in ("outer_steps", "inner_steps", "batch", "points_per_step", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ShapezooError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("outer_lr", "inner_lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ShapezooError(f"{name.replace('_', '-')} must be a positive number, got {value}")

    def inner(self) -> FitConfig:
        """The fitting recipe of the inner loop."""
        return FitConfig(
            steps=self.inner_steps,
            points_per_step=self.points_per_step,
            lr=self.inner_lr,
            init_seed=self.seed,
            check_every=self.inner_steps,
        )


@dataclass(frozen=True)
class BaseConfig:
    """The recipe of a shift base (saved in its JSON): shared weights and one bias vector per training shape,
    trained together on the shapes' occupancy (auto-decoding, DeepSDF-style)."""

    steps: int = 3000
    """Adam steps; each draws ``batch`` shapes."""
    batch: int = 32
    """Shapes per step (their biases and the shared weights move)."""
    points_per_step: int = 1024
    """Training points per shape per step, jittered as the fitter does."""
    lr: float = 1e-4
    """Peak Adam learning rate of the shared weights (cosine decay to lr * lr_final)."""
    bias_lr: float = 1e-3
    """Peak Adam learning rate of the per-shape biases."""
    lr_final: float = 0.05
    jitter_margin: float = 0.01
    """The fitter's label-preserving jitter (``FitConfig.jitter_margin``)."""
    seed: int = 0
    """Seed of the shape draws, of the starting weights when there is no bundled init, and of the split."""
    val: float = 0.1
    test: float = 0.2
    """The base learns only on the training split of the shapes, the split ``space train`` makes with the same
    shares and seed (``core.latents.split_names``): its validation and held-out fields stay unseen. 0 and 0: all."""
    train_shapes: int = 0
    """Learn on only this many of the training shapes (a random subset, as ``space train --train-limit``; 0: all)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (the folder is rewritten atomically)."""

    def __post_init__(self):
        for name in ("steps", "batch", "points_per_step", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ShapezooError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "bias_lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ShapezooError(f"{name.replace('_', '-')} must be a positive number, got {value}")


@dataclass
class LearnedInit:
    """A start point for fields of ``spec``: ``params`` (P,) and its record (recipe, shapes, curve)."""

    spec: FieldSpec
    params: torch.Tensor
    record: dict = field(default_factory=dict)
    source: str = ""

    @property
    def sha256(self) -> str:
        """Content hash of the weights (what a zoo fitted from it records)."""
        return hashlib.sha256(self.params.float().contiguous().numpy().tobytes()).hexdigest()

    @property
    def modulation(self) -> str:
        """``shift`` for a shift base (fields fitted from it move only their biases), else ``none``."""
        return self.record.get("modulation", "none")

    def provenance(self) -> dict:
        """What a zoo stores about where its fields started (a shift base says so)."""
        record = {"kind": "learned", "sha256": self.sha256, "shapes": len(self.record.get("shapes", []))}
        return {**record, "modulation": "shift"} if self.modulation == "shift" else record  # as zoos made before

    def check_spec(self, spec: FieldSpec) -> None:
        """Raise InputError (naming the init's file) unless it was learned for ``spec``."""
        if spec != self.spec:
            raise InputError(
                self.source,
                f"learned for {describe(self.spec)}; this fit uses {describe(spec)} "
                "(match --arch/--width/--depth to the init, or choose another --init)",
            )


def describe(spec: FieldSpec) -> str:
    """'siren 3->128x3->1 (first ω 18)' and the like."""
    arch = "siren" if spec.activation == "sine" else spec.activation
    extra = f", first ω {spec.first_omega0:g}" if spec.activation == "sine" else f", {spec.pe_freqs} octaves"
    return f"{arch} {spec.in_dim}->{spec.width}x{spec.depth}->{spec.out_dim}{extra}"


def load_init(path: str | Path) -> LearnedInit:
    """Read a learned init: its folder, its ``init.safetensors`` or its ``init.json``; an unfinished run is refused."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / INIT_JSON).exists() and not path.exists():
        raise InputError(path, "no learned init here (file not found)")
    header = read_json(folder / INIT_JSON)
    if header.get("format") != INIT_FORMAT:
        raise InputError(folder / INIT_JSON, f"not a shapezoo learned init (format {header.get('format')!r})")
    try:
        spec = FieldSpec.from_json(header["spec"])
    except (KeyError, TypeError, ShapezooError) as exc:
        raise InputError(folder / INIT_JSON, f"invalid architecture spec ({exc})") from None
    if not header.get("complete"):
        done = header.get("outer_steps_done", header.get("steps_done", 0))
        total = header.get("config", {}).get("outer_steps", header.get("config", {}).get("steps"))
        raise InputError(folder, f"learning stopped at step {done} of {total}; rerun 'init learn' to finish it")
    params = load_tensors(folder / INIT_WEIGHTS, framework="pt")[0].get("params")
    P = spec.layout().size
    if params is None or params.shape != (P,):
        raise InputError(folder / INIT_WEIGHTS, f"needs 'params' of shape ({P},) for {describe(spec)}")
    if not torch.isfinite(params).all():
        raise InputError(folder / INIT_WEIGHTS, "initial weights contain NaN or inf")
    return LearnedInit(spec, params.float(), header, str(folder / INIT_WEIGHTS))


def bundled_init(spec: FieldSpec) -> LearnedInit | None:
    """The learned init shipped with shapezoo for ``spec``, or None when there is none for that architecture."""
    for folder in sorted(ASSETS.glob("init-*")):
        if (folder / INIT_JSON).exists():
            init = load_init(folder)
            if init.spec == spec:
                return init
    return None


def choose_init(choice: str, spec: FieldSpec, out: str | Path | None = None, template: bool = False):
    """Where the fields of a fit start, from the CLI's ``--init``: ``seeded`` -> None (the seeded init),
    ``default`` -> the bundled learned init for ``spec`` (None when there is none, with a template, or when the
    zoo ``out`` being resumed was fitted from the seeded init), anything else -> a learned init folder, which must
    have been learned for ``spec``."""
    if choice == "seeded":
        return None
    if choice != "default":
        init = load_init(choice)
        init.check_spec(spec)
        return init
    if template:
        return None
    manifest = Path(out) / "zoo.json" if out is not None else None
    if manifest is not None and manifest.exists() and read_json(manifest).get("init") is None:
        return None
    return bundled_init(spec)


def _load_training_shapes(samples: list[Path]) -> tuple[list[dict], int]:
    """Every sampled shape of the folders (points, occupancy, provenance) and their shared n_uniform; a shape whose
    samples cannot be used stops the run (an init must know exactly what it was learned on)."""
    shapes: list[dict] = []
    seen: dict[str, Path] = {}
    n_uniform = 0
    for folder in samples:
        listed = read_index(folder)["shapes"]
        if not listed:
            raise InputError(folder / INDEX_NAME, "lists no sampled shapes")
        loaded, failed, n_u = load_sample_batch(folder, listed)
        if failed:
            raise InputError(folder, f"unusable samples: {failed[0]['error']}")
        for s in loaded:
            if s["name"] in seen:
                raise InputError(folder / INDEX_NAME, f"shape name '{s['name']}' also in {seen[s['name']]}")
            seen[s["name"]] = folder
            if shapes and (s["points"].shape != shapes[0]["points"].shape or n_u != n_uniform):
                raise InputError(folder, "sample counts differ between folders; sample all with the same --points")
            n_uniform = n_u
            shapes.append({**s, "folder": str(folder)})
    return shapes, n_uniform


def _draw(config: InitConfig, step: int, n: int) -> np.ndarray:
    """The shapes of one outer step: a function of (seed, step) alone, so a resumed run draws the same."""
    return np.sort(np.random.default_rng([config.seed, step]).choice(n, size=min(config.batch, n), replace=False))


def _inner_fit(spec, phi, points, occupancy, n_uniform, names, inner, device) -> FitResult:
    """The inner loop of one outer step: the batch of shapes fitted from ``phi``."""
    return fit_fields(spec, phi.to(device), points.to(device), occupancy.to(device), n_uniform, names, inner)


def _ray_inner_fit(address: str, threads: int) -> Callable[..., FitResult]:
    """``_inner_fit`` with the batch spread over Ray tasks (CPU), the results joined in order."""
    slots = max(1, int(connect(address).get("CPU", 1)) // threads)

    def fit(spec, phi, points, occupancy, n_uniform, names, inner, device) -> FitResult:
        chunks = [c.tolist() for c in torch.arange(len(names)).tensor_split(min(slots, len(names)))]
        args = [
            (spec, phi.cpu(), points[c], occupancy[c], n_uniform, [names[i] for i in c], inner, "cpu") for c in chunks
        ]
        parts: list[FitResult] = []

        def lost(i: int, error: str) -> None:
            raise ShapezooError(f"an inner-fit task was lost ({error}); rerun the same command to resume")

        run_tasks(_inner_fit, args, TaskSpec(threads=threads), lambda i, r: parts.append(r), lost)
        return FitResult(
            torch.cat([p.params for p in parts]).to(device),
            [s for p in parts for s in p.status],
            [m for p in parts for m in p.metrics],
        )

    return fit


@locks("out")
def learn_init(
    samples: list[str | Path],
    out: str | Path,
    spec: FieldSpec,
    config: InitConfig = InitConfig(),
    device: str | torch.device = "cpu",
    on_step: Callable[[dict], None] | None = None,
    ray: str | None = None,
    threads: int = 0,
) -> dict:
    """Meta-learn a start point for fields of ``spec`` from the shapes of the samples folders into ``out``.

    Resumes: a folder holding an unfinished run with the same spec, recipe and shapes continues from its last
    checkpoint (and gives the same weights as an uninterrupted run); a finished one is returned as it is.
    Returns the record written to ``init.json``.

    With ``ray`` (``auto`` or a cluster address) each outer step's inner fits are spread over Ray tasks of
    ``threads`` CPUs (0: this process's count), as many as the cluster runs at once; a field's fit does not depend
    on the others fitted beside it, so the init is the one this function learns without Ray at the same thread
    count. A step whose task is lost past Ray's retries stops the run; rerunning resumes from the last checkpoint.
    """
    device = torch.device(device)
    inner_fit = _inner_fit
    if ray is not None:
        inner_fit = _ray_inner_fit(ray, threads or torch.get_num_threads())
    out = ensure_output_dir(out)
    folders = [Path(s) for s in samples]
    shapes, n_uniform = _load_training_shapes(folders)
    names = [s["name"] for s in shapes]
    header = {
        "format": INIT_FORMAT,
        "spec": spec.to_json(),
        "layout": spec.layout().to_json(),
        "param_count": spec.layout().size,
        "method": "reptile (first-order), batched fitter as the inner loop",
        "config": asdict(config),
        "samples": [str(f) for f in folders],
        "shapes": [{"name": s["name"], "sha256": s["sha256"], "source": s["source"]} for s in shapes],
    }
    manifest = out / INIT_JSON
    phi, curve, done = init_params(spec, config.seed), [], 0
    if manifest.exists():
        old = read_json(manifest)
        for key in ("format", "spec", "config", "shapes"):
            if old.get(key) != header[key]:
                raise InputError(manifest, f"an init learned with a different '{key}'; use another --out")
        phi = load_tensors(out / INIT_WEIGHTS, framework="pt")[0]["params"].float()
        curve, done = old.get("curve", []), int(old.get("outer_steps_done", 0))
    inner = config.inner()
    points = torch.stack([s["points"] for s in shapes])
    occupancy = torch.stack([s["occupancy"] for s in shapes])

    def save(complete: bool) -> dict:
        record = {**header, "outer_steps_done": done, "complete": complete, "curve": curve}
        atomic_save_tensors(out / INIT_WEIGHTS, {"params": phi.contiguous()})
        atomic_write_json(manifest, record)
        return record

    if not manifest.exists():
        save(False)
    if done >= config.outer_steps:
        return read_json(manifest)
    record, phi = {}, phi.to(device)
    while done < config.outer_steps:
        tic = time.perf_counter()
        pick = _draw(config, done, len(shapes)).tolist()
        result = inner_fit(spec, phi, points[pick], occupancy[pick], n_uniform, [names[i] for i in pick], inner, device)
        ok = [i for i, st in enumerate(result.status) if st == "ok"]
        eps = config.outer_lr * (1.0 - done / config.outer_steps)
        if ok:
            phi = phi + eps * (result.params[ok].to(device).mean(0) - phi)
        done += 1
        entry = {
            "step": done,
            "loss": float(np.mean([result.metrics[i]["loss"] for i in ok])) if ok else float("nan"),
            "iou": float(np.median([result.metrics[i]["iou"] for i in ok])) if ok else float("nan"),
            "failed": len(pick) - len(ok),
            "seconds": time.perf_counter() - tic,
        }
        curve.append(entry)
        if on_step is not None:
            on_step(entry)
        if done % config.checkpoint_every == 0 or done == config.outer_steps:
            phi = phi.detach().cpu()
            record = save(done == config.outer_steps)
            phi = phi.to(device)
    return record


BASE_STATE = "base_state.safetensors"
"""A shift base's training state beside its init (weights, per-shape biases, Adam moments, step): the checkpoint."""


@locks("out")
def learn_base(
    samples: list[str | Path],
    out: str | Path,
    spec: FieldSpec,
    config: BaseConfig = BaseConfig(),
    device: str | torch.device = "cpu",
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Learn a shift base for fields of ``spec`` from the shapes of the samples folders into ``out``: shared weights
    and one bias vector per shape, trained together (BCE on jittered training points, Adam, cosine schedule). The
    init it writes holds the shared weights with the mean of the shapes' biases; fields fitted from it move only
    their biases (``FitConfig.trainable='biases'``). Starts from the bundled init for ``spec`` when there is one.

    Learns on the training split of the shapes only (``config.val``/``config.test``, as ``space train`` splits).
    Resumes from ``out/base_state.safetensors`` (same spec, recipe and shapes; a finished base is returned as it
    is). Returns the record written to ``init.json``.
    """
    device = torch.device(device)
    out = ensure_output_dir(out)
    folders = [Path(s) for s in samples]
    shapes, n_uniform = _load_training_shapes(folders)
    split = split_names([s["name"] for s in shapes], config.val, config.test, config.seed, config.train_shapes)
    training = set(split["train"])
    shapes = [s for s in shapes if s["name"] in training]
    names = [s["name"] for s in shapes]
    start = bundled_init(spec)
    header = {
        "format": INIT_FORMAT,
        "spec": spec.to_json(),
        "layout": spec.layout().to_json(),
        "param_count": spec.layout().size,
        "method": "shift base: shared weights and per-shape biases trained together (auto-decoding)",
        "modulation": "shift",
        "config": asdict(config),
        "start": start.provenance() if start is not None else {"kind": "seeded", "seed": config.seed},
        "samples": [str(f) for f in folders],
        "shapes": [{"name": s["name"], "sha256": s["sha256"], "source": s["source"]} for s in shapes],
    }
    manifest = out / INIT_JSON
    mask = spec.bias_mask().to(device)
    n = len(shapes)
    weights = (start.params if start is not None else init_params(spec, config.seed)).to(device)
    state = {
        "weights": weights,
        "biases": weights[mask].expand(n, -1).clone(),
        "m_w": torch.zeros_like(weights),
        "v_w": torch.zeros_like(weights),
        "step": torch.zeros((), dtype=torch.long),
    }
    state.update(m_b=torch.zeros_like(state["biases"]), v_b=torch.zeros_like(state["biases"]))
    state["t_b"] = torch.zeros(n, device=device)
    curve: list[dict] = []
    if manifest.exists():
        old = read_json(manifest)
        for key in ("format", "spec", "modulation", "config", "shapes"):
            if old.get(key) != header[key]:
                raise InputError(manifest, f"an init learned with a different '{key}'; use another --out")
        if old.get("complete"):
            return old
        saved = load_tensors(out / BASE_STATE, framework="pt")[0]
        state = {k: saved[k].to(device) if k != "step" else saved[k] for k in state}
        curve = [e for e in old.get("curve", []) if e["step"] <= int(state["step"])]

    def save(complete: bool) -> dict:
        params = state["weights"].clone()
        params[mask] = state["biases"].mean(0)
        atomic_save_tensors(out / BASE_STATE, {k: v.detach().cpu().contiguous() for k, v in state.items()})
        atomic_save_tensors(out / INIT_WEIGHTS, {"params": params.cpu().contiguous()})
        record = {**header, "steps_done": int(state["step"]), "complete": complete, "curve": curve}
        atomic_write_json(manifest, record)
        return record

    # Data: the fitter's hold-out split (those points stay unseen), jitter radii of the training points.
    holdout = FitConfig().holdout
    N = shapes[0]["points"].shape[0]
    train_idx = torch.as_tensor(
        np.stack([split_holdout(N, n_uniform, holdout, member_seed(FitConfig().init_seed, nm))[0] for nm in names])
    )
    points = torch.stack([s["points"] for s in shapes]).float()
    occupancy = torch.stack([s["occupancy"] for s in shapes]).float()
    radii = torch.stack(
        [
            torch.as_tensor(jitter_radii(points[i, idx].numpy(), occupancy[i, idx].numpy(), config.jitter_margin))
            for i, idx in enumerate(train_idx)
        ]
    )
    M = min(config.points_per_step, train_idx.shape[1])
    per_pass = max(1, (8192 if device.type == "cpu" else 1 << 22) // M)
    if not manifest.exists():
        save(False)
    done, record = int(state["step"]), None
    while done < config.steps:
        tic = time.perf_counter()
        rng = np.random.default_rng([config.seed, done])
        pick = torch.as_tensor(np.sort(rng.choice(n, size=min(config.batch, n), replace=False)))
        cols = torch.as_tensor(rng.integers(0, train_idx.shape[1], size=(len(pick), M)))
        idx = torch.gather(train_idx[pick], 1, cols)
        x = torch.gather(points[pick], 1, idx[..., None].expand(-1, -1, 3))
        y = torch.gather(occupancy[pick], 1, idx).to(device)
        u = torch.as_tensor(rng.normal(size=(len(pick), M, 3)), dtype=torch.float32)
        u *= (torch.as_tensor(rng.random((len(pick), M)), dtype=torch.float32) ** (1 / 3) / u.norm(dim=-1))[..., None]
        x = (x + u * torch.gather(radii[pick], 1, cols)[..., None]).clamp_(-0.5, 0.5).to(device)
        w = state["weights"].clone().requires_grad_(True)
        b = state["biases"][pick.to(device)].clone().requires_grad_(True)
        total = 0.0
        for lo in range(0, len(pick), per_pass):
            bb = b[lo : lo + per_pass]
            p = w.masked_fill(mask, 0.0) + torch.zeros(len(bb), len(w), device=device).masked_scatter(
                mask.expand(len(bb), -1), bb
            )
            logits = field_forward(spec, p, x[lo : lo + per_pass])[..., 0]
            loss = F.binary_cross_entropy_with_logits(logits, y[lo : lo + per_pass], reduction="none").mean(-1).sum()
            loss.backward()
            total += float(loss.detach())
        if not np.isfinite(total):
            raise ShapezooError(f"shift base training diverged at step {done + 1} (loss {total}); try a lower --lr")
        with torch.no_grad():
            cosine = 0.5 * (1 + np.cos(np.pi * done / config.steps))
            decay = config.lr_final + (1 - config.lr_final) * cosine
            t = float(done + 1)
            assert w.grad is not None and b.grad is not None
            grad_w = (w.grad * ~mask)[None]
            adam_step_(state["weights"][None], grad_w, state["m_w"][None], state["v_w"][None], t, config.lr * decay)
            rows = pick.to(device)
            state["t_b"][rows] += 1
            bias, m_b, v_b = state["biases"][rows], state["m_b"][rows], state["v_b"][rows]
            adam_step_(bias, b.grad, m_b, v_b, state["t_b"][rows][:, None], config.bias_lr * decay)
            state["biases"][rows], state["m_b"][rows], state["v_b"][rows] = bias, m_b, v_b
        done += 1
        state["step"] = torch.tensor(done)
        entry = {"step": done, "loss": total / len(pick), "seconds": time.perf_counter() - tic}
        if done % 10 == 0 or done == config.steps:
            curve.append(entry)
        if on_step is not None:
            on_step(entry)
        if done % config.checkpoint_every == 0 or done == config.steps:
            record = save(done == config.steps)
    return record if record is not None else save(True)
