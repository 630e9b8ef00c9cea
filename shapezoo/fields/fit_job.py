"""The resumable zoo job: every shape of a samples folder fitted, a batch at a time, into a FieldZoo.

Start point (seeded, template or learned init), a size check before anything is written, one shard per batch
(atomic, never rewritten), the batch's curve appended to ``fit_curves.json``, and retries of unreadable inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..core.measure import metric_summary
from ..core.ray_tasks import StorageError, TaskSpec, check_shared, connect, run_tasks
from ..core.zoo import ZOO_JSON, ZooWriter, load_zoo, shard_name, write_shard
from ..errors import ShapezooError
from ..io import atomic_write_json, locks, read_json
from ..runtime import available_memory
from ..schema import Num, Opt
from .fitting import FitConfig, Start, fit_fields, fit_memory
from .learned_init import LearnedInit, choose_init, load_init
from .network import FieldSpec, init_params
from .pretrained import fit_start
from .samples import INDEX_NAME, load_sample_batch, read_index


def config_json(config: FitConfig) -> dict:
    """The recipe as JSON (stored in the zoo); no ``template`` key when there is none, as in zoos made before it."""
    return {k: v for k, v in asdict(config).items() if k != "template" or v is not None}


STORED = {"fit?": {"steps?": Num(lo=0, integer=True), "hard_fraction?": Opt(Num(lo=0, hi=1))}}
"""What a resumed zoo's own recipe must look like where fit_zoo reads it (zoo.json's ``fit``)."""


def _check_size(spec: FieldSpec, batch: int, points: int, config: FitConfig, device: torch.device) -> None:
    """Refuse, before anything is allocated or written, an architecture whose fit of ``batch`` fields of ``points``
    samples (weights, optimiser state, one pass's activations: ``fit_memory``) does not fit in the device's free
    memory."""
    need = fit_memory(spec, batch, points, config, device)
    free = available_memory(device)
    if need > free:
        raise ShapezooError(
            f"fields of {spec.layout().size:,} weights (width {spec.width}, depth {spec.depth}) need about "
            f"{need / 2**30:.1f} GiB for a batch of {batch} on {device}, {free / 2**30:.1f} GiB is free; choose a "
            "smaller --width/--depth, --batch or --points-per-step"
        )


def _devices(ray: str | None, device: str | torch.device) -> tuple[torch.device, str, float]:
    """The driver's device, and each task's device and GPUs: with Ray, a GPU per task where the cluster has GPUs
    (``device`` auto or cuda) and the driver's own work (a template fit) on the CPU."""
    if ray is None:
        return torch.device(device), "cpu", 0.0
    resources = connect(ray)
    if str(device) in ("auto", "cuda") and resources.get("GPU", 0) > 0:
        return torch.device("cpu"), "cuda", 1.0
    if str(device) not in ("auto", "cpu"):
        raise ShapezooError(f"--device {device} with --ray: use auto (a GPU per task where there are GPUs) or cpu")
    return torch.device("cpu"), "cpu", 0.0


def _start_weights(samples_dir, out, shapes, spec, config, init, device, on_check) -> torch.Tensor:
    """Where every field starts: the learned init's weights, or the seeded init (a template's fit from it; kept in
    the zoo when resuming)."""
    if init is not None:
        if config.template is not None:
            raise ShapezooError("--template and --init both choose where fields start; give one of them")
        init.check_spec(spec)
        return init.params
    if config.template is not None and (Path(out) / ZOO_JSON).exists():
        return load_zoo(out).init  # resuming: the template was fitted when the zoo was created
    return _shared_init(samples_dir, shapes, spec, config, device, on_check)


def _shared_init(samples_dir: Path, shapes: list[dict], spec: FieldSpec, config: FitConfig, device, on_check):
    """The seeded initial weights, or (with ``config.template``) the template shape's field fitted from them."""
    init = init_params(spec, config.init_seed)
    if config.template is None:
        return init
    chosen = [s for s in shapes if s["name"] == config.template]
    if not chosen:
        raise ShapezooError(f"{samples_dir / INDEX_NAME}: template shape '{config.template}' is not in the samples")
    loaded, failed, n_uniform = load_sample_batch(samples_dir, chosen)
    if failed:
        raise ShapezooError(f"template {failed[0]['error']}")
    s = loaded[0]
    result = fit_fields(
        spec,
        init,
        s["points"][None].to(device),
        s["occupancy"][None].to(device),
        n_uniform,
        [s["name"]],
        config,
        on_check,
    )
    if result.status[0] != "ok":
        raise ShapezooError(f"template {config.template}: fitting diverged; choose another --template")
    return result.params[0]


def fit_batch(
    samples_dir: Path,
    shapes: list[dict],
    spec: FieldSpec,
    start: torch.Tensor,
    config: FitConfig,
    device: str | torch.device,
    shard: Path,
    on_check: Callable[[dict], None] | None = None,
) -> tuple[list[dict], dict | None]:
    """One job of a zoo: fit a batch of shapes from ``start`` on ``device`` and write its shard file (atomic). Shapes
    whose samples cannot be used get failed entries and ``start`` rows. Returns the entries and the batch's curve
    (None when no shape could be fitted)."""
    loaded, entries, n_uniform = load_sample_batch(samples_dir, shapes)
    rows = [start.expand(len(entries), -1)] if entries else []
    curve = None
    if loaded:
        result = fit_fields(
            spec,
            start.to(device),
            torch.stack([s["points"] for s in loaded]).to(device),
            torch.stack([s["occupancy"] for s in loaded]).to(device),
            n_uniform,
            [s["name"] for s in loaded],
            config,
            on_check,
        )
        rows.append(result.params.cpu())
        for s, st, m in zip(loaded, result.status, result.metrics):
            provenance = {k: s[k] for k in ("name", "source", "sha256", "normalisation", "label")}
            entries.append({**provenance, "status": st, "metrics": m})
            if st == "failed":
                entries[-1]["error"] = (
                    f"{s['name']}: diverged (NaN/inf or exploding loss) after {m['restarts']} restarts"
                )
        curve = {"fields": [s["name"] for s in loaded], "history": result.history}
    try:
        write_shard(shard, torch.cat(rows), entries)
    except OSError as exc:
        raise StorageError(
            f"{shard}: cannot be written ({exc.strerror or exc}); is the zoo on shared storage?"
        ) from None
    return entries, curve


@locks("out")
def fit_zoo(
    samples_dir,
    out,
    spec: FieldSpec,
    config: FitConfig = FitConfig(),
    batch: int = 32,
    device: str | torch.device = "cpu",
    on_batch: Callable[[list[dict]], None] | None = None,
    on_check: Callable[[dict], None] | None = None,
    init: LearnedInit | None = None,
    on_start: Callable[[int, int], None] | None = None,
    ray: str | None = None,
    threads: int = 0,
    on_lost: Callable[[str], None] | None = None,
    retries: int = 2,
) -> dict:
    """Fit every shape of a samples folder into the FieldZoo ``out``, ``batch`` fields per job.

    Every field starts from ``init`` (a learned init; from a shift base only the biases move) when given, else from
    the seeded init or the template; the recipe's values left None are resolved for that start
    (``FitConfig.resolve``; a resumed zoo keeps its own). Resumes: fields already in ``out`` are skipped and never
    rewritten. Shapes with unusable samples are stored with status 'failed' and their error. ``on_start(stored,
    total)`` is called once the work is known. Returns a summary (counts and metric statistics), also written to
    ``fit_summary.json``.

    With ``ray`` (``auto`` or a cluster address) every batch is a Ray task that writes its own shard: ``threads``
    CPUs and torch threads (0: this process's count), one GPU each when ``device`` is ``auto``/``cuda`` and the
    cluster has GPUs, rerun up to ``retries`` times when its worker is lost. Shards are listed in ``zoo.json`` in
    batch order, so the zoo is the one this function writes without Ray. A batch lost past its retries is stored as
    failed (the next run refits it) and named to ``on_lost``; the other batches are kept.
    """
    samples_dir = Path(samples_dir)
    threads = threads or torch.get_num_threads()
    device, task_device, gpus = _devices(ray, device)
    manifest = Path(out) / ZOO_JSON
    stored = read_json(manifest, STORED).get("fit", {}) if manifest.exists() else None
    config = config.resolve(start_kind(init), stored)
    if init is not None and init.columns:
        config = replace(config, columns=init.columns)  # the base's modulation: its fields move these too
    if batch < 1:
        raise ShapezooError(f"--batch must be >= 1, got {batch}")
    index = read_index(samples_dir)
    shapes = index["shapes"]
    if not shapes:
        raise ShapezooError(f"{samples_dir / INDEX_NAME}: lists no sampled shapes")
    meta = {
        "init_seed": config.init_seed,
        "init": None if init is None else init.provenance(),
        "fit": config_json(config),
        "samples": {"config": index.get("config")},
    }
    if ray is None:
        _check_size(spec, min(batch, len(shapes)), shapes[0].get("points", 2), config, device)
    start = _start_weights(samples_dir, out, shapes, spec, config, init, device, on_check)
    writer = ZooWriter(out, spec, start, meta)
    done = writer.done()
    todo = [s for s in shapes if s["name"] not in done]
    if on_start is not None:
        on_start(len(shapes) - len(todo), len(shapes))
    batches = [todo[k : k + batch] for k in range(0, len(todo), batch)]
    base = writer.next_shard()

    def landed(j: int, result: tuple[list[dict], dict | None]) -> None:
        entries, curve = result
        writer.register(base + j, entries)
        if curve is not None:
            _append_curve(Path(out), curve)
        if on_batch is not None:
            on_batch(entries)

    if ray is None:
        for j, shapes_j in enumerate(batches):
            shard = writer.path / shard_name(base + j)
            landed(j, fit_batch(samples_dir, shapes_j, spec, start, config, device, shard, on_check))
    else:
        job = (samples_dir, spec, start, config, task_device)
        _run_on_ray(writer, base, batches, job, TaskSpec(threads=threads, gpus=gpus, retries=retries), landed, on_lost)
    device_used = task_device if ray is not None else str(device)
    return _summary(Path(out), writer.header["fields"], len(todo), config, device_used, ray)


def _summary(out: Path, fields: list[dict], fitted: int, config: FitConfig, device: str, ray: str | None) -> dict:
    """The job's summary (counts, metric statistics, the resolved budget), also written to fit_summary.json."""
    summary = {
        "zoo": str(out),
        "fields": len(fields),
        "fitted_now": fitted,
        "ok": sum(e["status"] == "ok" for e in fields),
        "failed": [{"name": e["name"], "error": e["error"]} for e in fields if e["status"] == "failed"],
        "iou": metric_summary(fields, "iou"),
        "iou_near": metric_summary(fields, "iou_near"),
        "point_evals_per_field": (config.steps or 0) * config.points_per_step,
        "recipe": {k: getattr(config, k) for k in ("steps", "lr", "hard_fraction", "trainable")},
        "device": device,
        "ray": ray,
    }
    atomic_write_json(out / "fit_summary.json", summary)
    return summary


def _run_on_ray(writer: ZooWriter, base: int, batches: list, job: tuple, task: TaskSpec, landed, on_lost) -> None:
    """Every batch as a Ray task writing its own shard; a batch lost past its retries is stored as failed before
    fitting (the next run refits it) and named to ``on_lost``."""
    samples_dir, spec, start, config, task_device = job

    def lost(j: int, error: str) -> None:
        entries = [
            {**{k: s.get(k) for k in ("name", "source", "sha256", "normalisation", "label")}, "status": "failed"}
            | {"error": f"{s['name']}: task lost ({error})", "metrics": {}}
            for s in batches[j]
        ]
        write_shard(writer.path / shard_name(base + j), start.expand(len(entries), -1), entries)
        if on_lost is not None:
            on_lost(f"batch {j + 1} of {len(batches)} ({len(entries)} fields): {error}")
        landed(j, (entries, None))

    check_shared(writer.path)
    args = [
        (samples_dir, b, spec, start, config, task_device, writer.path / shard_name(base + j))
        for j, b in enumerate(batches)
    ]
    run_tasks(fit_batch, args, task, landed, lost)


def start_kind(init: LearnedInit | None) -> Start:
    """The kind of start a zoo's fields have (it chooses the recipe, ``FitConfig.resolve``)."""
    if init is None:
        return "seeded"
    return "shift" if init.modulation == "shift" else "learned"


def choose_start(
    init: str,
    out: str | Path,
    arch: str | None = None,
    width: int | None = None,
    depth: int | None = None,
    template: bool = False,
) -> tuple[FieldSpec, LearnedInit | None]:
    """The architecture and start point of ``fit``'s ``--init``: ``default`` with no architecture asked (and no
    template) starts from the shipped base, so the fields are bias-only fields of the default space; an init folder
    with no architecture asked gives its own; otherwise the architecture asked (siren 128 x 3 by default) and
    ``learned_init.choose_init``'s start for it."""
    sized = arch is not None or width is not None or depth is not None
    if init == "default" and not sized and not template:
        init = fit_start(out)
    if not sized and init not in ("default", "learned", "seeded"):
        start = load_init(init)  # e.g. a wider shift base: its fields take its architecture
        return start.spec, start
    sizes = {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}
    spec = FieldSpec.from_arch(arch or "siren", **sizes)
    return spec, choose_init(init, spec, out, template=template)


CURVES_JSON = "fit_curves.json"
"""The zoo's training curves: per fitted batch, its fields and the loss/IoU checks (``history``)."""


def _append_curve(zoo: Path, curve: dict) -> None:
    """Add one batch's curve to ZOO/fit_curves.json (atomic), after its shard is stored: a resumed run keeps every
    earlier batch's curve."""
    path = zoo / CURVES_JSON
    previous = read_json(path, {"batches?": list}).get("batches", []) if path.exists() else []
    atomic_write_json(path, {"batches": previous + [curve]})
