"""Same command, same input, same bytes: every file a seeded command writes is identical when the command runs
again in another process, so anything that records a file's SHA-256 can be reproduced (Ray runs against local ones:
tests/test_scale.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from space_zoo import write_meshes

from shapezoo.io import atomic_save_tensors, canonical_safetensors, load_tensors

TINY_FIT = ["--width", "8", "--depth", "1", "--steps", "5", "--points-per-step", "64", "--device", "cpu"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _twice(args: list, out: Path, second: list | None = None) -> None:
    """Run ``shapezoo ARGS --out OUT`` in a fresh process, move the result aside, run it again (with ``second``'s
    extra options) to the same OUT, and assert the two folders hold the same files byte for byte."""
    runs = []
    for extra in ([], second or []):
        cmd = [sys.executable, "-m", "shapezoo_cli.main", *map(str, args), "--out", str(out), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(_files(out))
        shutil.move(out, out.with_name(out.name + f"_{len(runs)}"))
    first, again = runs
    assert sorted(first) == sorted(again)
    differ = [name for name in first if first[name] != again[name]]
    assert not differ, f"{args[:2]}: {differ} differ between two runs"
    shutil.move(out.with_name(out.name + "_1"), out)


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    return Path(write_meshes(tmp_path_factory.mktemp("repro") / "meshes", 4))


def test_safetensors_header_is_canonical(tmp_path):
    """The header is sorted and compact whatever order the metadata came in; tensors and metadata read back."""
    t = {"b": torch.arange(3.0), "a": torch.ones(2, 2)}
    atomic_save_tensors(tmp_path / "x.safetensors", t, {"z": "1", "a": "2", "m": "3"})
    atomic_save_tensors(tmp_path / "y.safetensors", dict(reversed(t.items())), {"m": "3", "z": "1", "a": "2"})
    x, y = ((tmp_path / n).read_bytes() for n in ("x.safetensors", "y.safetensors"))
    assert x == y and canonical_safetensors(x) == x
    back, meta = load_tensors(tmp_path / "x.safetensors", framework="pt")
    assert torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"]) and meta == {"z": "1", "a": "2", "m": "3"}
    assert int.from_bytes(x[:8], "little") % 8 == 0


def test_data_sample_fit_prior_and_space_train_write_the_same_bytes_twice(meshes, tmp_path):
    _twice(["data", "sample", meshes, "--points", "600"], tmp_path / "s")
    _twice(["fit", tmp_path / "s", *TINY_FIT], tmp_path / "zoo")
    space = ["space", "train", tmp_path / "zoo", "--latent", "8", "--epochs", "4", "--batch", "2", "--points", "128"]
    _twice([*space, "--val", "0", "--test", "0", "--device", "cpu"], tmp_path / "space")
    prior = ["prior", "train", tmp_path / "space", "--steps", "20", "--hidden", "16", "--val", "0.25"]
    _twice([*prior, "--device", "cpu"], tmp_path / "prior")


def test_init_base_writes_the_same_bytes_twice(meshes, tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "shapezoo_cli.main",
            "data",
            "sample",
            str(meshes),
            "--out",
            str(tmp_path / "s"),
            "--points",
            "600",
        ],
        check=True,
        capture_output=True,
    )
    args = ["init", "base", tmp_path / "s", "--width", "8", "--depth", "1", "--steps", "6", "--batch", "2"]
    _twice([*args, "--val", "0", "--test", "0", "--device", "cpu"], tmp_path / "base")
