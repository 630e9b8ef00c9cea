"""Learned initialisations: one starting point for a field architecture, meta-learned over training shapes.

A *Reptile init* (``learn_init``) is where full fits start; a *shift base* (``shift_base.learn_base``) is read
from the same folder format, with ``modulation: shift`` in its record (fields fitted from it move only their biases).

First-order meta-learning, two methods with the same inner loop: each outer step fits a batch of shapes for
``inner_steps`` with the batched fitter (``fit_fields``, the same recipe a short fit uses) from the current start
``phi``. *Reptile* (Nichol et al. 2018, "On First-Order Meta-Learning Algorithms", Alg. 2, the default) moves ``phi``
towards the mean of the fitted weights, ``phi += eps_t * (mean(theta) - phi)`` with ``eps_t`` decaying linearly to
zero. *First-order MAML* (Finn et al. 2017, section 5.2) takes an Adam step on ``phi`` along the mean loss gradient at
the fitted weights, on a fresh draw of each shape's points. The folder it writes (``init.safetensors`` +
``init.json``) is both the result and the checkpoint, so a killed run resumes exactly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..core.ray_tasks import TaskSpec, connect, run_tasks
from ..core.training import adam_step_
from ..errors import InputError, ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, locks, read_json
from ..schema import Choice, check, check_tensor
from .fitting import FitConfig, FitResult, fit_fields
from .network import FieldSpec, field_forward, init_params
from .samples import INDEX_NAME, load_sample_batch, read_index

INIT_FORMAT = "shapezoo.init/1"
INIT_WEIGHTS = "init.safetensors"
INIT_JSON = "init.json"
ASSETS = Path(__file__).parents[1] / "assets"


@dataclass(frozen=True)
class InitConfig:
    """The meta-learning recipe (saved in the init's JSON)."""

    outer_steps: int = 300
    """Outer (meta-learning) updates of the start point."""
    inner_steps: int = 100
    """Fitting steps per shape inside one outer step (the fitter's cosine schedule over these steps)."""
    batch: int = 8
    """Shapes fitted together per outer step, drawn without replacement from the training shapes."""
    method: Literal["reptile", "fomaml"] = "reptile"
    """``reptile`` or ``fomaml`` (first-order MAML); BENCHMARKS.md, "Learned initialisation", compares them."""
    outer_lr: float | None = None
    """Step size at the first outer step, decaying linearly to 0 at the last: Reptile's interpolation factor (None:
    1.0) or FOMAML's Adam learning rate (None: 1e-4)."""
    query_points: int = 4096
    """FOMAML: points per shape of the outer gradient (a fresh seeded draw of the shape's samples)."""
    inner_lr: float = 5e-4
    """Peak Adam learning rate of the inner fits (the default fitting recipe's)."""
    points_per_step: int = 1024
    """Training points per shape per inner step."""
    seed: int = 0
    """Seed of the starting weights (the seeded init) and of the shape draws."""
    checkpoint_every: int = 10
    """Outer steps between checkpoints (the folder is rewritten atomically)."""

    def __post_init__(self):
        if self.method not in ("reptile", "fomaml"):
            raise ShapezooError(f"unknown meta-learning method '{self.method}' (reptile or fomaml)")
        for name in ("outer_steps", "inner_steps", "batch", "points_per_step", "checkpoint_every", "query_points"):
            if getattr(self, name) < 1:
                raise ShapezooError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("outer_lr", "inner_lr"):
            value = getattr(self, name)
            if name == "outer_lr" and value is None:
                continue
            if not (np.isfinite(value) and value > 0):
                raise ShapezooError(f"{name.replace('_', '-')} must be a positive number, got {value}")

    def step_size(self) -> float:
        """The outer step size at the first step (the method's default when ``outer_lr`` is None)."""
        if self.outer_lr is not None:
            return self.outer_lr
        return 1.0 if self.method == "reptile" else 1e-4

    def inner(self) -> FitConfig:
        """The fitting recipe of the inner loop."""
        return FitConfig(
            steps=self.inner_steps,
            points_per_step=self.points_per_step,
            lr=self.inner_lr,
            init_seed=self.seed,
            check_every=self.inner_steps,
        )


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

    @property
    def columns(self) -> int:
        """The modulated columns a shift base's fields move besides their biases (``BaseConfig.columns``; 0 else)."""
        return int(self.record.get("config", {}).get("columns", 0)) if self.modulation == "shift" else 0

    def provenance(self) -> dict:
        """What a zoo stores about where its fields started (a shift base says so, and its modulated columns)."""
        record = {"kind": "learned", "sha256": self.sha256, "shapes": len(self.record.get("shapes", []))}
        if self.modulation != "shift":
            return record
        return {**record, "modulation": "shift", **({"columns": self.columns} if self.columns else {})}

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
    header = read_json(folder / INIT_JSON, dict)
    if header.get("format") != INIT_FORMAT:
        raise InputError(folder / INIT_JSON, f"not a shapezoo learned init (format {header.get('format')!r})")
    check(header, HEADER, folder / INIT_JSON)
    try:
        spec = FieldSpec.from_json(header["spec"])
    except (TypeError, ShapezooError) as exc:
        raise InputError(folder / INIT_JSON, f"invalid architecture spec ({exc})") from None
    if not header.get("complete"):
        done = header.get("outer_steps_done", header.get("steps_done", 0))
        total = header.get("config", {}).get("outer_steps", header.get("config", {}).get("steps"))
        raise InputError(folder, f"learning stopped at step {done} of {total}; rerun 'init learn' to finish it")
    P = spec.layout().size
    params = check_tensor(load_tensors(folder / INIT_WEIGHTS, framework="pt")[0], "params", folder / INIT_WEIGHTS, (P,))
    return LearnedInit(spec, params.float(), header, str(folder / INIT_WEIGHTS))


HEADER = {
    "spec": dict,
    "complete?": bool,
    "modulation?": Choice(("none", "shift")),
    "shapes?": [dict],
    "config?": dict,
    "outer_steps_done?": int,
    "steps_done?": int,
}
"""What ``load_init`` checks of init.json (learned inits and shift bases) before it reads it."""


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
    ``learned`` (or ``default``, which the CLI resolves to the shipped base first when no architecture is asked)
    -> the bundled learned init for ``spec`` (None when there is none, with a template, or when the
    zoo ``out`` being resumed was fitted from the seeded init), anything else -> a learned init folder, which must
    have been learned for ``spec``."""
    if choice == "seeded":
        return None
    if choice not in ("default", "learned"):
        init = load_init(choice)
        init.check_spec(spec)
        return init
    if template:
        return None
    manifest = Path(out) / "zoo.json" if out is not None else None
    if manifest is not None and manifest.exists() and read_json(manifest, dict).get("init") is None:
        return None
    return bundled_init(spec)


def read_resumable(manifest: Path, header: dict, keys: tuple[str, ...]) -> dict:
    """The record of an earlier run in an init folder, refused (naming the file) unless it has ``header``'s
    ``keys``: a rerun resumes only the same learning."""
    old = read_json(manifest, dict)
    for key in keys:
        if old.get(key) != header[key]:
            raise InputError(manifest, f"an init learned with a different '{key}'; use another --out")
    return old


def load_training_shapes(samples: list[Path]) -> tuple[list[dict], int]:
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


_METHODS = {"reptile": "reptile (first-order)", "fomaml": "first-order MAML"}


def _query_gradient(spec, theta, points, occupancy, count: int, seed: list[int]) -> torch.Tensor:
    """FOMAML's outer gradient: the mean over fields of the loss gradient at the fitted weights ``theta`` (k, P),
    on ``count`` points drawn afresh (seeded) from each field's samples."""
    pick = torch.as_tensor(
        np.random.default_rng(seed).integers(0, points.shape[1], size=(len(theta), count)), device=points.device
    )
    x = torch.gather(points, 1, pick[..., None].expand(-1, -1, 3))
    y = torch.gather(occupancy.float(), 1, pick)
    theta = theta.detach().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(field_forward(spec, theta, x).squeeze(-1), y)
    return torch.autograd.grad(loss, theta)[0].sum(0)  # the loss is already a mean over fields


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


def init_header(spec: FieldSpec, method: str) -> dict:
    """The start of an init folder's record: format, architecture and the method that made it."""
    layout = spec.layout()
    return {
        "format": INIT_FORMAT,
        "spec": spec.to_json(),
        "layout": layout.to_json(),
        "param_count": layout.size,
        "method": method,
    }


def provenance(folders: list[Path], shapes: list[dict]) -> dict:
    """What an init was learned from: the samples folders and every shape's name, SHA-256 and source."""
    return {
        "samples": [str(f) for f in folders],
        "shapes": [{"name": s["name"], "sha256": s["sha256"], "source": s["source"]} for s in shapes],
    }


def _step_metrics(result: FitResult, ok: list[int], step: int, fields: int) -> dict:
    """An outer step's curve entry: mean held-out loss and median IoU of its fitted fields, how many failed."""
    return {
        "step": step,
        "loss": float(np.mean([result.metrics[i]["loss"] for i in ok])) if ok else float("nan"),
        "iou": float(np.median([result.metrics[i]["iou"] for i in ok])) if ok else float("nan"),
        "failed": fields - len(ok),
    }


def _outer_step(spec, config: InitConfig, phi, moments, result: FitResult, ok: list[int], fitted, data, done: int):
    """Move the start point ``phi`` towards the fields fitted from it (those in ``ok``): Reptile's step to their
    mean, or FOMAML's Adam step on their query-point gradient (``moments`` updated in place). Returns the new phi."""
    eps = config.step_size() * (1.0 - done / config.outer_steps)
    if ok and config.method == "reptile":
        return phi + eps * (result.params[ok].to(phi.device).mean(0) - phi)
    if ok:
        points, occupancy = data
        grad = _query_gradient(
            spec,
            result.params[ok].to(phi.device),
            points[fitted].to(phi.device),
            occupancy[fitted].to(phi.device),
            config.query_points,
            [config.seed, done, 1],
        )
        adam_step_(phi[None], grad[None], moments[:1], moments[1:], float(done + 1), eps)
    return phi


@locks("out")
def learn_init(
    samples: Sequence[str | Path],
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
    shapes, n_uniform = load_training_shapes(folders)
    names = [s["name"] for s in shapes]
    header = {
        **init_header(spec, f"{_METHODS[config.method]}, batched fitter as the inner loop"),
        "config": asdict(config),
        **provenance(folders, shapes),
    }
    manifest = out / INIT_JSON
    phi, curve, done = init_params(spec, config.seed), [], 0
    moments = torch.zeros(2, phi.numel())  # FOMAML's Adam state (first and second moments), checkpointed with phi
    if manifest.exists():
        old = read_resumable(manifest, header, ("format", "spec", "config", "shapes"))
        saved = load_tensors(out / INIT_WEIGHTS, framework="pt")[0]
        phi, moments = saved["params"].float(), saved.get("outer_moments", moments).float()
        curve, done = old.get("curve", []), int(old.get("outer_steps_done", 0))
    inner = config.inner()
    points = torch.stack([s["points"] for s in shapes])
    occupancy = torch.stack([s["occupancy"] for s in shapes])

    def save(complete: bool) -> dict:
        record = {**header, "outer_steps_done": done, "complete": complete, "curve": curve}
        tensors = {"params": phi.contiguous()}
        if config.method == "fomaml":
            tensors["outer_moments"] = moments.contiguous()
        atomic_save_tensors(out / INIT_WEIGHTS, tensors)
        atomic_write_json(manifest, record)
        return record

    if not manifest.exists():
        save(False)
    if done >= config.outer_steps:
        return read_json(manifest)
    record, phi, moments = {}, phi.to(device), moments.to(device)
    while done < config.outer_steps:
        tic = time.perf_counter()
        pick = _draw(config, done, len(shapes)).tolist()
        result = inner_fit(spec, phi, points[pick], occupancy[pick], n_uniform, [names[i] for i in pick], inner, device)
        ok = [i for i, st in enumerate(result.status) if st == "ok"]
        phi = _outer_step(spec, config, phi, moments, result, ok, [pick[i] for i in ok], (points, occupancy), done)
        done += 1
        entry = {**_step_metrics(result, ok, done, len(pick)), "seconds": time.perf_counter() - tic}
        curve.append({k: v for k, v in entry.items() if k != "seconds"})  # the record holds no wall-clock times
        if on_step is not None:
            on_step(entry)
        if done % config.checkpoint_every == 0 or done == config.outer_steps:
            phi, moments = phi.detach().cpu(), moments.cpu()
            record = save(done == config.outer_steps)
            phi, moments = phi.to(device), moments.to(device)
    return record
