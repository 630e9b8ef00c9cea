"""Image folders: a split of an image dataset as one safetensors file of pixels and labels plus its record, the
input ``shapezoo fit`` turns into a zoo of image fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..classifiers.data import image_split
from ..errors import InputError, ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, read_record
from ..schema import Num, check, check_tensor

IMAGES_JSON = "images.json"
IMAGES_FILE = "images.safetensors"
IMAGES_FORMAT = "shapezoo.images/1"
CLASS_NAMES = {
    "fashion-mnist": (
        "t-shirt/top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    ),  # fmt: skip
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
MIRRORED = frozenset({"fashion-mnist", "cifar10"})
"""Datasets whose classes a left-right mirror keeps (a mirrored shoe is a shoe, a mirrored 2 is no digit): the query
reader trains on mirrored views of their fields (``ReaderConfig.mirror``)."""
RECORD = {
    "format": str,
    "data": str,
    "split": str,
    "count": Num(lo=1, integer=True),
    "shape": [Num(lo=1, integer=True)],
    "classes": [str],
}


@dataclass
class Images:
    """A split of an image dataset: pixels (N, H * W, C) in [0, 1], class indices (N,), names and class names."""

    pixels: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    classes: list[str]
    record: dict
    folder: Path

    @property
    def side(self) -> int:
        return int(self.record["shape"][1])

    def label(self, i: int) -> str:
        return self.classes[int(self.labels[i])]


def write_images(data: str, split: str, out: str | Path, count: int | None = None, root: str | None = None) -> dict:
    """Write the first ``count`` images (all with None) of a dataset's official ``split`` to ``out``: 8-bit pixels
    and labels in one safetensors file, the record (dataset, split, shape, class names) in images.json."""
    x, y = image_split(data, split, root)
    if count is not None:
        if count < 1:
            raise ShapezooError(f"--count must be >= 1, got {count}")
        x, y = x[:count], y[:count]
    out = ensure_output_dir(out)
    levels = np.rint(x * 255).astype(np.uint8)  # digits (sixteenths) round to within 1/510 of their value
    classes = list(CLASS_NAMES.get(data, [str(c) for c in range(int(y.max()) + 1)]))
    atomic_save_tensors(
        out / IMAGES_FILE, {"pixels": levels, "labels": y.astype(np.int64), "index": np.arange(len(y), dtype=np.int64)}
    )
    record = {
        "format": IMAGES_FORMAT,
        "data": data,
        "split": split,
        "root": None if root is None else str(root),
        "count": len(y),
        "shape": list(levels.shape[1:]),
        "classes": classes,
        "class_counts": np.bincount(y, minlength=len(classes)).tolist(),
    }
    atomic_write_json(out / IMAGES_JSON, record)
    return {"out": str(out), **record}


def is_images(folder: str | Path) -> bool:
    """Whether ``folder`` is an image folder (``write_images``) rather than occupancy samples."""
    return (Path(folder) / IMAGES_JSON).is_file()


def read_images(folder: str | Path) -> Images:
    """An image folder, checked: a missing or corrupt file, or pixels and labels that disagree with the record,
    raise InputError naming the file."""
    folder = Path(folder)
    record = read_record(folder, IMAGES_JSON, IMAGES_FORMAT, "image folder")
    check(record, RECORD, folder / IMAGES_JSON)
    file = folder / IMAGES_FILE
    tensors, _ = load_tensors(file, framework="pt")
    channels, height, width = (record["shape"] + [0, 0, 0])[:3]
    pixels = check_tensor(tensors, "pixels", file, (record["count"], channels, height, width), floating=False)
    labels = check_tensor(tensors, "labels", file, (record["count"],), floating=False)
    index = check_tensor(tensors, "index", file, (record["count"],), floating=False)
    if pixels.dtype != torch.uint8 or height != width:
        raise InputError(file, f"pixels must be square 8-bit images, got {pixels.dtype} {height}x{width}")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < len(record["classes"])):
        raise InputError(file, f"labels outside the {len(record['classes'])} classes the record names")
    names = [f"{record['split']}-{int(i):05d}" for i in index]
    flat = pixels.float().div_(255).permute(0, 2, 3, 1).reshape(len(pixels), height * width, channels)
    return Images(flat, labels.long(), names, list(record["classes"]), record, folder)
