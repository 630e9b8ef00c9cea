"""The resumable image-field zoo job ``shapezoo fit IMAGES`` runs: the shared start (learned, or another zoo's),
then batches of fields written as zoo shards, then the summary."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from ..core.measure import metric_summary
from ..core.zoo import INIT_FILE, ZOO_JSON, ZooWriter, load_zoo, member_seed
from ..errors import InputError
from ..fields.network import init_params
from ..io import atomic_write_json, lasting, load_tensors, locks
from .data import Images, read_images
from .fitting import ImageFitConfig, StartConfig, fit_images, learn_start
from .network import ImageSpec

SUMMARY_JSON = "fit_summary.json"


def _start(images: Images, spec: ImageSpec, config: ImageFitConfig, out: Path, start, start_config, device):
    """(the shared start (P,), its record): ``start`` (an image zoo whose start to share), the zoo's own when it is
    being resumed, else learned on these images (training splits only: a test split's fields must not shape it)."""
    if config.protocol == "independent":
        return init_params(spec, config.seed), {"independent": True, "seed": config.seed}
    if start is not None:
        other = load_zoo(start, "image")
        if other.spec != spec or other.meta.get("fit", {}).get("protocol") != "shared":
            raise InputError(start, f"is not a shared-start zoo of {spec.width} x {spec.depth} image fields")
        phi, record = other.init, {"from": str(start), "learned": other.meta["start"]}
    elif (out / ZOO_JSON).is_file():
        return load_tensors(out / INIT_FILE, "pt")[0]["params"], None  # checked against the zoo's record by the writer
    elif images.record["split"] != "train":
        raise InputError(
            images.folder,
            f"holds {images.record['split']} images, and a shared start is learned on training images only; give "
            f"--init with the zoo of the {images.record['data']} train split",
        )
    else:
        phi = learn_start(spec, images.pixels.to(device), start_config)
        record = {"reptile": asdict(start_config), "images": images.record["count"], "data": images.record["data"]}
    digest = hashlib.sha256(phi.float().contiguous().numpy().tobytes()).hexdigest()
    return phi, {**record, "sha256": digest}


@locks("out")
def fit_image_zoo(
    images_dir: str | Path,
    out: str | Path,
    config: ImageFitConfig = ImageFitConfig(),
    width: int = 32,
    depth: int = 3,
    batch: int = 512,
    start: str | Path | None = None,
    start_config: StartConfig = StartConfig(),
    device: str | torch.device = "cpu",
    on_batch: Callable[[list[dict]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict:
    """Fit one field per image of ``images_dir`` into the zoo ``out``, ``batch`` fields at a time; a rerun resumes
    after the last finished batch. Returns (and writes to fit_summary.json) the PSNR summary and fields per hour."""
    images, out = read_images(images_dir), Path(out)
    spec = ImageSpec(width=width, depth=depth, out_dim=images.pixels.shape[2])
    phi, start_record = _start(images, spec, config, out, start, start_config, device)
    data = {k: images.record[k] for k in ("data", "split", "root", "count", "shape", "classes")}
    meta = {"data": data, "fit": asdict(config)} | ({"start": start_record} if start_record else {})
    writer = ZooWriter(out, spec, phi, meta)
    done = writer.done()
    todo = [i for i, n in enumerate(images.names) if n not in done]
    if on_start is not None:
        on_start(len(images.names) - len(todo), len(images.names))
    t0, fitted = time.perf_counter(), 0
    for lo in range(0, len(todo), batch):
        rows = todo[lo : lo + batch]
        starts = torch.stack(
            [init_params(spec, member_seed(config.seed, images.names[i])) for i in rows]
            if config.protocol == "independent"
            else [phi] * len(rows)
        )
        params, quality, ran = fit_images(spec, starts.to(device), images.pixels[rows].to(device), config)
        entries = [
            {
                "name": images.names[i],
                "status": "ok" if torch.isfinite(params[j]).all() and torch.isfinite(quality[j]) else "failed",
                "label": images.label(i),
                "split": images.record["split"],
                "index": i,
                "metrics": {"psnr": round(float(quality[j]), 3), "steps": int(ran[j])},
            }
            for j, i in enumerate(rows)
        ]
        writer.append(params, entries)
        fitted += len(rows)
        if on_batch is not None:
            on_batch(entries)
    seconds = time.perf_counter() - t0
    zoo = load_zoo(out, "image")
    summary = {
        "zoo": str(out),
        "fields": len(zoo.entries),
        "ok": sum(e["status"] == "ok" for e in zoo.entries),
        "protocol": config.protocol,
        "psnr": metric_summary(zoo.entries, "psnr"),
        "steps": metric_summary(zoo.entries, "steps"),
        "timing": {
            "fitted": fitted,
            "seconds": seconds,
            "fields_per_hour": 3600 * fitted / seconds if fitted else None,
        },
    }
    atomic_write_json(out / SUMMARY_JSON, lasting(summary))
    return summary
