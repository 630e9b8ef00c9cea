"""A hostile-and-clumsy-user battery: every case is one `error:` line naming the file and the problem, exit 1, no
traceback, nothing written outside --out, and the good files of the same batch still processed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh
from typer.testing import CliRunner

from shapezoo.core.zoo import load_zoo
from shapezoo.io import LOCK_FILE, folder_lock
from shapezoo_cli.main import app

runner = CliRunner()
TINY = ["--width", "8", "--depth", "1", "--steps", "5", "--points-per-step", "64", "--device", "cpu"]


def _refused(result, *needles: str) -> str:
    """The single error line of a refused command (exit 1, no traceback), checked to contain ``needles``."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors, result.output
    for needle in needles:
        assert needle in errors[0], errors
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three meshes, their samples and a tiny zoo fitted from them."""
    root = tmp_path_factory.mktemp("hard")
    meshes = root / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(meshes / "box.obj")
    trimesh.creation.icosphere(2).export(meshes / "ball.obj")
    trimesh.creation.capsule(height=1.0, radius=0.3).export(meshes / "pill.obj")
    assert (
        runner.invoke(app, ["data", "sample", str(meshes), "--out", str(root / "s"), "--points", "1000"]).exit_code == 0
    )
    r = runner.invoke(app, ["fit", str(root / "s"), "--out", str(root / "zoo"), *TINY])
    assert r.exit_code == 0, r.output
    return root


def _copy_zoo(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_shard_reference_outside_the_zoo_is_refused_before_reading(data, tmp_path):
    zoo = _copy_zoo(data / "zoo", tmp_path / "zoo")
    _edit(zoo / "zoo.json", lambda d: d["shards"][0].update(file="../../../../etc/hostname"))
    _refused(runner.invoke(app, ["zoo", "info", str(zoo)]), "zoo.json", "points outside")


def test_a_field_name_with_a_path_never_writes_outside_out(data, tmp_path):
    zoo = _copy_zoo(data / "zoo", tmp_path / "zoo")
    _edit(zoo / "zoo.json", lambda d: d["fields"][0].update(name="../escaped_mesh"))
    out = tmp_path / "deep" / "meshes"
    _refused(runner.invoke(app, ["mesh", str(zoo), "--out", str(out), "--resolution", "16"]), "invalid name")
    assert not list(tmp_path.rglob("escaped_mesh*"))


def test_zoo_manifest_damage_is_one_line(data, tmp_path):
    zoo = _copy_zoo(data / "zoo", tmp_path / "zoo")
    _edit(zoo / "zoo.json", lambda d: d.pop("shards"))
    _refused(runner.invoke(app, ["zoo", "info", str(zoo)]), "zoo.json", "'shards'")
    zoo2 = _copy_zoo(data / "zoo", tmp_path / "zoo2")
    # names that no longer match the shard's own record (labels would be wrong)
    _edit(zoo2 / "zoo.json", lambda d: d["fields"].reverse())
    _refused(runner.invoke(app, ["zoo", "info", str(zoo2)]), "zoo.json", "differ from the shard's own")


def test_samples_index_of_the_wrong_type_is_one_line(data, tmp_path):
    samples = tmp_path / "s"
    samples.mkdir()
    (samples / "samples.json").write_text(json.dumps({"shapes": "box"}))
    _refused(runner.invoke(app, ["fit", str(samples), "--out", str(tmp_path / "z"), *TINY]), "samples.json")
    (samples / "samples.json").write_text(json.dumps({"shapes": [{"name": "a", "file": "../../x.safetensors"}]}))
    _refused(runner.invoke(app, ["fit", str(samples), "--out", str(tmp_path / "z"), *TINY]), "points outside")
    assert not (tmp_path / "z" / "zoo.json").exists()


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(data, tmp_path):
    out = tmp_path / "zoo"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        line = _refused(runner.invoke(app, ["fit", str(data / "s"), "--out", str(out), *TINY]), "another shapezoo")
        assert str(sleeper.pid) in line
        assert not (out / "zoo.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone: the lock is stale and the next writer takes it over
    r = runner.invoke(app, ["fit", str(data / "s"), "--out", str(out), *TINY])
    assert r.exit_code == 0, r.output
    assert not (out / LOCK_FILE).exists()
    # re-entrant inside one process, and released afterwards
    with folder_lock(out), folder_lock(out):
        assert (out / LOCK_FILE).exists()
    assert not (out / LOCK_FILE).exists()


def test_resumed_fit_keeps_every_batch_curve(data, tmp_path):
    from shapezoo.fields.fit_job import fit_zoo
    from shapezoo.fields.fitting import FitConfig
    from shapezoo.fields.network import FieldSpec

    spec, config = FieldSpec(width=8, depth=1), FitConfig(steps=5, points_per_step=64, check_every=5)

    def kill(entries):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_zoo(data / "s", tmp_path / "zoo", spec, config, batch=1, on_batch=kill)
    fit_zoo(data / "s", tmp_path / "zoo", spec, config, batch=1)
    curves = json.loads((tmp_path / "zoo" / "fit_curves.json").read_text())["batches"]
    assert [c["fields"] for c in curves] == [[n] for n in load_zoo(tmp_path / "zoo").names]
    assert not (tmp_path / "zoo" / LOCK_FILE).exists()  # released after the interrupt too


def test_name_collisions_and_dangling_links(tmp_path):
    meshes = tmp_path / "m"
    (meshes / "sub").mkdir(parents=True)
    trimesh.creation.box().export(meshes / "a.obj")
    trimesh.creation.box().export(meshes / "a.ply")
    line = _refused(runner.invoke(app, ["data", "sample", str(meshes), "--out", str(tmp_path / "s")]), "'a'")
    assert "a.obj" in line and "a.ply" in line
    (meshes / "a.ply").unlink()
    trimesh.creation.box().export(meshes / "sub" / "b.obj")
    trimesh.creation.box().export(meshes / "sub__b.obj")
    _refused(runner.invoke(app, ["data", "sample", str(meshes), "--out", str(tmp_path / "s")]), "'sub__b'")
    (meshes / "sub__b.obj").unlink()
    os.symlink(tmp_path / "nowhere.obj", meshes / "gone.obj")
    r = runner.invoke(app, ["data", "sample", str(meshes), "--out", str(tmp_path / "s"), "--points", "500"])
    _refused(r, "gone.obj", "file not found")
    index = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert sorted(s["name"] for s in index["shapes"]) == ["a", "sub__b"]  # the good files are done


def test_nan_fields_are_reported_not_dropped_or_exported(data, trained, tmp_path):
    from shapezoo.io import atomic_save_tensors, load_tensors

    zoo = _copy_zoo(data / "zoo", tmp_path / "zoo")
    shard = zoo / "weights-00000.safetensors"
    tensors, meta = load_tensors(shard, framework="pt")
    tensors["params"][1, 0] = float("nan")
    atomic_save_tensors(shard, tensors, meta)
    bad = load_zoo(zoo).names[1]
    line = _refused(runner.invoke(app, ["zoo", "export", str(zoo), bad, "--out", str(tmp_path / "f.safetensors")]))
    assert bad in line and "NaN" in line and not (tmp_path / "f.safetensors").exists()
    _refused(runner.invoke(app, ["zoo", "export", str(zoo), load_zoo(zoo).names[0], "--out", str(tmp_path)]), "folder")


def test_encode_says_which_fields_it_skipped(trained, tiny_zoo, tmp_path):
    from shapezoo.io import atomic_save_tensors, load_tensors

    zoo = _copy_zoo(tiny_zoo, tmp_path / "zoo")
    shard = next(zoo.glob("weights-*.safetensors"))
    tensors, meta = load_tensors(shard, framework="pt")
    tensors["params"][0, :] = float("nan")
    atomic_save_tensors(shard, tensors, meta)
    r = runner.invoke(app, ["encode", str(zoo), "--space", str(trained[0]), "--out", str(tmp_path / "z.safetensors")])
    assert r.exit_code == 0, r.output
    assert "warning: skipped shape_00: field weights contain NaN or inf" in r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["latents"] == 11 and len(summary["skipped"]) == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["fit", "{s}", "--out", "{o}", "--lr", "nan"], "learning rate"),
        (["fit", "{s}", "--out", "{o}", "--lr", "-1"], "learning rate"),
        (["fit", "{s}", "--out", "{o}", "--target-iou", "5"], "target IoU"),
        (["fit", "{s}", "--out", "{o}", "--width", "8192", "--depth", "8", "--steps", "5"], "GiB"),
        (["mesh", "{zoo}", "--out", "{o}", "--resolution", "100000"], "--resolution"),
        (["init", "learn", "{s}", "--out", "{o}", "--outer-steps", "0"], "outer-steps must be >= 1"),
        (["init", "learn", "{s}", "--out", "{o}", "--outer-lr", "nan"], "outer-lr must be a positive number"),
        (["fit", "{s}", "--out", "{o}", "--init", "{o}"], "no learned init here"),
    ],
)
def test_nonsense_options_are_refused_up_front(data, tmp_path, args, needle):
    filled = [a.format(s=data / "s", o=tmp_path / "out", zoo=data / "zoo") for a in args]
    _refused(runner.invoke(app, filled), needle)
    assert not (tmp_path / "out" / "init.safetensors").exists() and not (tmp_path / "out" / "zoo.json").exists()


def test_space_commands_refuse_nonsense(trained, tiny_zoo, tmp_path):
    space = str(trained[0])
    out = str(tmp_path / "z.safetensors")
    _refused(runner.invoke(app, ["encode", str(tiny_zoo), "--space", space, "--out", out, "--refine", "-3"]), "-3")
    for count in ("0", "-2"):
        r = runner.invoke(app, ["sample", "--space", space, "--count", count, "--out", str(tmp_path / "new")])
        _refused(r, "--count")
    empty = tmp_path / "empty.ply"
    empty.write_text(
        "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    )
    r = runner.invoke(app, ["optimize", "--space", space, "--points", str(empty), "--out", str(tmp_path / "o")])
    _refused(r, "empty.ply", "no points")


def test_cifar_binary_batches_are_read_and_pickles_refused(tmp_path):
    import numpy as np

    from shapezoo.classifiers.data import CIFAR_TEST, CIFAR_TRAIN, load_images
    from shapezoo.errors import InputError

    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in (*CIFAR_TRAIN, CIFAR_TEST):
        records = rng.integers(0, 256, size=(20, 3073), dtype=np.uint8)
        records[:, 0] = np.arange(20) % 10
        records.tofile(folder / name)
    data = load_images("cifar10", tmp_path)
    assert tuple(data.train[0].shape[1:]) == (3, 32, 32) and data.classes == 10
    assert len(data.train[0]) + len(data.val[0]) == 100 and len(data.test[0]) == 20
    assert data.test[1].tolist() == [i % 10 for i in range(20)]
    pickled = tmp_path / "py" / "cifar-10-batches-py"
    pickled.mkdir(parents=True)
    (pickled / "data_batch_1").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InputError, match="pickled and never loaded"):
        load_images("cifar10", tmp_path / "py")


def test_latents_with_path_names_are_refused(tmp_path):
    import torch

    from shapezoo.errors import InputError
    from shapezoo.fields.space import load_latents, save_latents

    save_latents(tmp_path / "z.safetensors", torch.zeros(2, 4), ["ok", "../../up"])
    with pytest.raises(InputError, match="invalid name"):
        load_latents(tmp_path / "z.safetensors")


def test_a_rerun_retries_fields_whose_samples_were_missing(data, tmp_path):
    samples = _copy_zoo(data / "s", tmp_path / "s")
    (samples / "ball.safetensors").rename(tmp_path / "ball.safetensors")
    zoo = tmp_path / "zoo"
    _refused(runner.invoke(app, ["fit", str(samples), "--out", str(zoo), *TINY]), "ball.safetensors", "not found")
    assert load_zoo(zoo).entries[load_zoo(zoo).index("ball")]["status"] == "failed"
    (tmp_path / "ball.safetensors").rename(samples / "ball.safetensors")  # the file is back
    r = runner.invoke(app, ["fit", str(samples), "--out", str(zoo), *TINY])
    assert r.exit_code == 0, r.output
    z = load_zoo(zoo)
    assert sorted(z.names) == ["ball", "box", "pill"] and all(e["status"] == "ok" for e in z.entries)
    assert len(z.params) == 3
    assert json.loads(r.stdout.strip().splitlines()[-1])["fitted_now"] == 1


def test_mesh_and_decode_reruns_skip_finished_work(data, trained, tiny_zoo, tmp_path):
    args = ["mesh", str(data / "zoo"), "--out", str(tmp_path / "m"), "--resolution", "24"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").glob("*.obj")}
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["meshed_now"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").glob("*.obj")} == files
    other = runner.invoke(app, [*args[:-1], "32"])  # other settings: everything is meshed again
    assert json.loads(other.stdout.strip().splitlines()[-1])["meshed_now"] == 3

    z = tmp_path / "z.safetensors"
    space = str(trained[0])
    assert (
        runner.invoke(app, ["encode", str(tiny_zoo), "--space", space, "--out", str(z), "--refine", "0"]).exit_code == 0
    )
    decode = ["decode", str(z), "--space", space, "--out", str(tmp_path / "dec")]
    assert runner.invoke(app, decode).exit_code == 0
    before = (tmp_path / "dec" / "zoo.json").read_bytes()
    r = runner.invoke(app, decode)
    assert r.exit_code == 0 and "nothing to do" in json.loads(r.stdout.strip().splitlines()[-1])["skipped"]
    assert (tmp_path / "dec" / "zoo.json").read_bytes() == before
    assert (
        runner.invoke(app, ["encode", str(tiny_zoo), "--space", space, "--out", str(z), "--refine", "1"]).exit_code == 0
    )
    _refused(runner.invoke(app, decode), "already holds a zoo")  # other latents into the same folder
