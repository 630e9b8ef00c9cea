"""Image datasets with fixed train/val/test splits: scikit-learn's bundled digits, (Fashion-)MNIST IDX files,
CIFAR-10 from its binary batches (never the pickled python version). Nothing is downloaded; images come
standardised by the training split's statistics.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ShapezooError

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10")
DEFAULT_ROOTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_SEED = 0


@dataclass
class ImageData:
    """Standardised images (N, C, H, W) float32 and labels (N,) int64 per split."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: int

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train[0].shape[1:]
        return int(c), int(h), int(w)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in ("train", "val", "test"):
            raise ShapezooError(f"unknown split '{name}' (train, val or test)")
        return getattr(self, name)

    def to(self, device) -> ImageData:
        move = lambda s: (s[0].to(device), s[1].to(device))  # noqa: E731
        return ImageData(self.name, move(self.train), move(self.val), move(self.test), self.classes)


def _standardise(name, train, val, test, classes) -> ImageData:
    """uint8/float arrays (N, C, H, W) -> ImageData, standardised with the training split's mean and std."""

    def tensors(split):  # copies: IDX arrays are read-only views of the file's bytes
        return torch.from_numpy(np.array(split[0], dtype=np.float32)), torch.from_numpy(
            np.array(split[1], dtype=np.int64)
        )

    x = tensors(train)[0]
    mean, std = x.mean(), x.std().clamp_min(1e-6)
    norm = lambda s: ((tensors(s)[0] - mean) / std, tensors(s)[1])  # noqa: E731
    return ImageData(name, norm(train), norm(val), norm(test), classes)


def load_digits() -> ImageData:
    """scikit-learn's bundled 8x8 digits (1797 images): a fixed seeded split of 1077 / 360 / 360."""
    x, y, order = _digits_arrays()
    test, val, train = order[:360], order[360:720], order[720:]
    return _standardise("digits", (x[train], y[train]), (x[val], y[val]), (x[test], y[test]), 10)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundled digits in [0, 1] (N, 1, 8, 8), their labels and the seeded order whose first 360 are the test
    split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.float32)[:, None] / 16.0
    return x, d.target.astype(np.int64), np.random.default_rng(SPLIT_SEED).permutation(len(x))


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array (optionally gzipped); a bad file raises InputError."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(dims)):
            raise ValueError(f"holds {data.size} values, the header says {dims}")
        return data.reshape(dims)
    except (OSError, ValueError, struct.error, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(path, f"not a readable IDX file ({exc})") from None


def load_idx_folder(name: str, root: str | Path) -> ImageData:
    """(Fashion-)MNIST from the four standard IDX files (``.gz`` or not): train 50k / val 10k (the last 10k of
    the training file) / test 10k."""
    xtr, ytr, xte, yte = _idx_arrays(name, root)
    n_val = min(10000, len(xtr) // 6)
    classes = int(max(ytr.max(), yte.max())) + 1
    return _standardise(name, (xtr[:-n_val], ytr[:-n_val]), (xtr[-n_val:], ytr[-n_val:]), (xte, yte), classes)


def _idx_arrays(name: str, root: str | Path) -> tuple[np.ndarray, ...]:
    """(train images (N, 1, H, W) uint8, train labels, test images, test labels) of a folder of IDX files."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, f"{name} folder not found (it needs the four files {', '.join(IDX_FILES)}[.gz])")
    found = []
    for stem in IDX_FILES:
        options = [root / f"{stem}.gz", root / stem]
        path = next((p for p in options if p.exists()), None)
        if path is None:
            missing = [s for s in IDX_FILES if not (root / s).exists() and not (root / f"{s}.gz").exists()]
            raise InputError(root, f"missing {name} files: {', '.join(f'{m}[.gz]' for m in missing)}")
        found.append(_read_idx(path))
    (xtr, ytr, xte, yte), paths = found, [root / s for s in IDX_FILES]
    for x, y, p in ((xtr, ytr, paths[0]), (xte, yte, paths[2])):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise InputError(p, f"images {x.shape} and labels {y.shape} do not match")
    return xtr[:, None], ytr, xte[:, None], yte


CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32
"""One record of CIFAR-10's binary version: a label byte, then 32 x 32 red, green and blue bytes (row-major)."""


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise InputError(path, f"not a CIFAR-10 binary batch ({raw.size} bytes, not a multiple of {_CIFAR_RECORD})")
    records = raw.reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise InputError(path, f"label {labels.max()} out of range 0-9; not a CIFAR-10 batch")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(root: str | Path) -> ImageData:
    """CIFAR-10 from the binary version's files (``cifar-10-batches-bin``, in ``root`` or below it): train 45k /
    val 5k / test 10k. The python version's batches are pickles, which shapezoo never loads."""
    xtr, ytr, xte, yte = _cifar_arrays(root)
    n_val = min(5000, len(xtr) // 10)
    return _standardise("cifar10", (xtr[:-n_val], ytr[:-n_val]), (xtr[-n_val:], ytr[-n_val:]), (xte, yte), 10)


def _cifar_arrays(root: str | Path) -> tuple[np.ndarray, ...]:
    """(train images (N, 3, 32, 32) uint8, train labels, test images, test labels) of CIFAR-10's binary batches."""
    root = Path(root)
    folder = root / "cifar-10-batches-bin" if (root / "cifar-10-batches-bin").is_dir() else root
    files = [folder / f for f in (*CIFAR_TRAIN, CIFAR_TEST)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        pickled = (root / "cifar-10-batches-py").is_dir() or (root / "data_batch_1").exists()
        hint = (
            "; the python version (cifar-10-batches-py) is pickled and never loaded: use the binary version"
            if pickled
            else ""
        )
        raise InputError(folder, f"missing CIFAR-10 binary files {', '.join(missing)}{hint}; shapezoo never downloads")
    train = [_read_cifar_bin(f) for f in files[:-1]]
    xtr, ytr = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    xte, yte = _read_cifar_bin(files[-1])
    return xtr, ytr, xte, yte


def _root(name: str, root: str | Path | None) -> str | Path:
    """The folder of a file-based dataset: ``root``, else its default, else a one-line error."""
    root = root or DEFAULT_ROOTS.get(name)
    if root is None:
        what = "its four IDX files" if name != "cifar10" else "CIFAR-10's binary batches (cifar-10-batches-bin)"
        raise ShapezooError(f"{name} needs --root, a folder with {what}")
    return root


def load_images(name: str, root: str | Path | None = None) -> ImageData:
    """A dataset by name: ``digits`` (bundled), ``fashion-mnist``/``mnist`` (IDX folder), ``cifar10`` (binary)."""
    if name == "digits":
        return load_digits()
    if name in ("fashion-mnist", "mnist"):
        return load_idx_folder(name, _root(name, root))
    if name == "cifar10":
        return load_cifar10(_root(name, root))
    raise ShapezooError(f"unknown dataset '{name}' ({', '.join(DATASETS)})")


def image_split(name: str, split: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, C, H, W) float32 in [0, 1], labels (N,)) of a dataset's official ``train`` or ``test`` split
    (the whole training file: what the weight-space benchmarks fit; digits: the 1437 outside the seeded test 360)."""
    if split not in ("train", "test"):
        raise ShapezooError(f"unknown split '{split}' (train or test)")
    if name == "digits":
        x, y, order = _digits_arrays()
        pick = order[:360] if split == "test" else order[360:]
        return x[pick], y[pick]
    if name in ("fashion-mnist", "mnist", "cifar10"):
        found = _idx_arrays(name, _root(name, root)) if name != "cifar10" else _cifar_arrays(_root(name, root))
        x, y = found[:2] if split == "train" else found[2:]
        return x.astype(np.float32) / 255.0, y
    raise ShapezooError(f"unknown dataset '{name}' ({', '.join(DATASETS)})")


def images_for(meta: dict, root: str | Path | None = None, device: str | torch.device = "cpu") -> ImageData:
    """The images a zoo or space was made with (its ``meta['data']`` records the name and folder), on ``device``;
    ``root`` overrides the recorded folder."""
    info = meta.get("data") or {"name": "digits"}
    return load_images(info["name"], root or info.get("root")).to(device)
