"""The second hostile-input battery: wrong-typed or incomplete JSON, non-finite or ill-shaped tensors, numbers out of
range, a bad file inside a good batch, duplicate names, an address where nothing listens. Each case is exit 1, one
`error:` line naming the file (or the option) and the problem, no traceback, and nothing written; a batch's good files
are still processed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from space_zoo import write_meshes
from test_hardening import _refused
from typer.testing import CliRunner

from shapezoo.core.latents import LATENTS_FILE, read_latents, save_latents
from shapezoo.core.prior import PriorConfig, train_prior
from shapezoo_cli.main import app

runner = CliRunner()
GENERATION = ["eval-generation", "{m}", "--reference", "{m}", "--train", "{m}", "--out", "{out}"]
PRIOR = PriorConfig(steps=20, batch=16, hidden=16, blocks=1, dropout=0.0, eval_every=10, sample_steps=4)


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".shapezoo.lock"))
    return dst


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


def _nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.fixture(scope="module")
def prior(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "prior"
    train_prior(trained[0], out, PRIOR)
    return out


def test_folders_whose_json_is_of_the_wrong_type(trained, tiny_zoo, tmp_path):
    zoo = _copy(tiny_zoo, tmp_path / "zoo")
    (zoo / "zoo.json").write_text("[]")
    _refused(_run("zoo", "info", zoo), "zoo.json", "must be an object, got a list")
    space = _copy(trained[0], tmp_path / "space")
    (space / "space.json").write_text("[]")
    _refused(_run("space", "info", space), "space.json", "must be an object")
    space2 = _copy(trained[0], tmp_path / "space2")
    _rewrite(space2 / "space.json", lambda d: {**d, "model": {**d["model"], "latent": "sixteen"}})
    _refused(_run("space", "info", space2), "space.json", "'model.latent' must be an integer")
    _rewrite(space2 / "space.json", lambda d: {**d, "model": [1, 2]})
    _refused(_run("space", "info", space2), "space.json", "'model' must be an object")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: [d], "must be an object, got a list"),
        (lambda d: {**d, "config": {**d["config"], "temperature": "hot"}}, "'config.temperature' must be"),
        (lambda d: {**d, "config": {k: v for k, v in d["config"].items() if k != "sample_steps"}}, "sample_steps"),
        (lambda d: {**d, "config": {**d["config"], "sample_steps": -5}}, "sample-steps must be >= 1"),
        (lambda d: {**d, "labels": "box"}, "'labels' must be a list"),
    ],
)
def test_a_damaged_prior_json_is_one_line(trained, prior, tmp_path, change, message):
    bad = _copy(prior, tmp_path / "prior")
    _rewrite(bad / "prior.json", change)
    out = tmp_path / "gen"
    res = _run("sample", "--space", trained[0], "--prior", bad, "--count", "2", "--out", out, "--device", "cpu")
    _refused(res, "prior.json", message)
    assert _nothing_in(out)


def test_a_prior_whose_tensors_do_not_match_its_json(trained, prior, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(prior, tmp_path / "prior")
    tensors = load_file(bad / "prior.safetensors")
    tensors["basis"] = tensors["basis"][:-2].contiguous()  # a basis cut short
    save_file(tensors, bad / "prior.safetensors")
    res = _run(
        "sample", "--space", trained[0], "--prior", bad, "--count", "2", "--out", tmp_path / "g", "--device", "cpu"
    )
    _refused(res, "prior.safetensors", "basis")


def test_labels_that_are_not_a_mapping(trained, tiny_zoo, tmp_path):
    z, names = read_latents(Path(trained[0]) / LATENTS_FILE).z, read_latents(Path(trained[0]) / LATENTS_FILE).names
    path = tmp_path / "z.safetensors"
    save_latents(path, z, names, {"labels": ["box"] * len(names)})
    _refused(_run("probe", path, "--zoo", tiny_zoo, "--folds", "2"), "z.safetensors", "'labels' must be an object")
    space = _copy(trained[0], tmp_path / "space")
    save_latents(space / LATENTS_FILE, z, names, {"labels": ["box"] * len(names)})
    res = _run(
        "prior", "train", space, "--out", tmp_path / "p", "--family-conditional", "--steps", "5", "--device", "cpu"
    )
    _refused(res, LATENTS_FILE, "'labels' must be an object")
    assert _nothing_in(tmp_path / "p")


def test_samples_index_with_wrong_types_never_reaches_the_zoo(tiny_zoo, tmp_path):
    from test_hardening import TINY

    write_meshes(tmp_path / "m", 2)
    assert _run("data", "sample", tmp_path / "m", "--out", tmp_path / "s", "--points", "500").exit_code == 0
    for key, value in (("points", "many"), ("normalisation", None), ("normalisation", {"center": [0, 0], "scale": 1})):
        s = _copy(tmp_path / "s", tmp_path / f"s_{key}_{value is None}")
        _rewrite(s / "samples.json", lambda d, k=key, v=value: {**d, "shapes": [{**e, k: v} for e in d["shapes"]]})
        out = tmp_path / "zoo"
        _refused(_run("fit", s, "--out", out, *TINY), "samples.json", f"shapes[0].{key}")
        assert not (out / "zoo.json").exists()


def test_non_finite_latents_are_refused_where_they_are_read(trained, tiny_zoo, mlp_zoo, mlp_space, tmp_path):
    latents = read_latents(Path(trained[0]) / LATENTS_FILE)
    z = latents.z.clone()
    z[1, 3] = float("nan")
    space = _copy(trained[0], tmp_path / "space")
    save_latents(space / LATENTS_FILE, z, latents.names, latents.meta)
    _refused(_run("prior", "train", space, "--out", tmp_path / "p", "--steps", "5", "--device", "cpu"), "NaN or inf")
    assert _nothing_in(tmp_path / "p")
    path = tmp_path / "z.safetensors"
    save_latents(path, z, latents.names, {"labels": {n: "ab"[i % 2] for i, n in enumerate(latents.names)}})
    _refused(_run("probe", path, "--zoo", tiny_zoo, "--folds", "2"), "z.safetensors", "NaN or inf")
    zc = tmp_path / "zc.safetensors"
    names = [f"mlp-16-{i:04d}" for i in range(40)]
    save_latents(zc, torch.full((40, 16), float("inf")), names, {"zoo": str(mlp_zoo[0])})
    _refused(_run("classifiers", "probe", zc, "--folds", "4"), "zc.safetensors", "NaN or inf")


def test_latents_that_do_not_fit_the_space_or_each_other(trained, tiny_zoo, tmp_path):
    latents = read_latents(Path(trained[0]) / LATENTS_FILE)
    labels = {"labels": {n: "ab"[i % 2] for i, n in enumerate(latents.names)}}
    train = tmp_path / "train.safetensors"
    save_latents(train, latents.z[:, :8], latents.names, labels)
    scored = tmp_path / "z.safetensors"
    save_latents(scored, latents.z, latents.names, labels)
    res = _run("probe", scored, "--train", train, "--zoo", tiny_zoo)
    _refused(res, "train.safetensors", "8 numbers", "16")
    twice = tmp_path / "twice.safetensors"
    twice.write_bytes(scored.read_bytes())
    from safetensors.torch import save_file

    save_file({"z": latents.z[:2].contiguous()}, twice, {"names": json.dumps(["a", "a"])})
    _refused(_run("decode", twice, "--space", trained[0], "--out", tmp_path / "d", "--device", "cpu"), "'a'")
    assert _nothing_in(tmp_path / "d")
    save_file({"z": torch.zeros(3, 0)}, tmp_path / "zero.safetensors", {"names": json.dumps(["a", "b", "c"])})
    res = _run("decode", tmp_path / "zero.safetensors", "--space", trained[0], "--out", tmp_path / "d0")
    _refused(res, "zero.safetensors", "no numbers")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "{s}", "--out", "{out}", "--width", "10000000", "--device", "cpu"], "GiB"),
        (["fit", "{s}", "--out", "{out}", "--width", "10000000", "--depth", "1", "--device", "cpu"], "GiB"),
        (["data", "sample", "{m}", "--out", "{out}", "--points", "1000000000000"], "--points"),
        (["classifiers", "probe", "{zc}", "--folds", "0"], "--folds"),
        (["classifiers", "probe", "{zc}", "--folds", "-2"], "--folds"),
        (
            ["eval-generation", "{m}", "--reference", "{m}", "--train", "{m}", "--out", "{out}", "--points", "-5"],
            "--points",
        ),
        (
            ["eval-generation", "{m}", "--reference", "{m}", "--train", "{m}", "--out", "{out}", "--points", "0"],
            "--points",
        ),
        (["prior", "train", "{space}", "--out", "{out}", "--hidden", "0"], "hidden"),
    ],
)
def test_numbers_out_of_range_are_refused_up_front(trained, mlp_zoo, mlp_space, tmp_path, args, needle):
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo

    write_meshes(tmp_path / "m", 2)
    zoo = load_zoo(mlp_zoo[0], kind="classifier")
    zc = tmp_path / "zc.safetensors"
    save_latents(
        zc, load_classifier_space(mlp_space[0]).encode(zoo.spec, zoo.params), zoo.names, {"zoo": str(mlp_zoo[0])}
    )
    if args[0] == "fit":
        assert _run("data", "sample", tmp_path / "m", "--out", tmp_path / "s", "--points", "500").exit_code == 0
    out = tmp_path / "out"
    values = {"s": tmp_path / "s", "m": tmp_path / "m", "zc": zc, "space": trained[0], "out": out}
    _refused(_run(*[a.format(**values) for a in args]), needle)
    assert _nothing_in(out)


def test_a_random_bytes_mesh_in_a_folder_leaves_the_good_ones_encoded(trained, tmp_path):
    meshes = write_meshes(tmp_path / "m", 2)
    (Path(meshes) / "noise.obj").write_bytes(np.random.default_rng(0).bytes(5000))
    out = tmp_path / "z.safetensors"
    res = _run(
        "encode", meshes, "--space", trained[0], "--out", out, "--refine", "0", "--steps", "5", "--device", "cpu"
    )
    line = _refused(res, "noise.obj")
    assert "Traceback" not in res.output and line.count("error:") == 1
    assert len(read_latents(out).names) == 2 and not any("noise" in n for n in read_latents(out).names)


def test_an_out_that_is_a_folder(trained, tiny_zoo, tmp_path):
    (tmp_path / "dir").mkdir()
    res = _run("encode", tiny_zoo, "--space", trained[0], "--out", tmp_path / "dir", "--refine", "0", "--device", "cpu")
    _refused(res, "dir", "is a folder")
    assert _nothing_in(tmp_path / "dir")


def test_duplicate_names_in_a_labels_csv_or_training_latents(trained, tiny_zoo, tmp_path):
    from shapezoo.fields.meshes import find_meshes

    a, b = (name for name, _ in find_meshes(write_meshes(tmp_path / "m", 2)))
    csv = tmp_path / "labels.csv"
    csv.write_text(f"name,label\n{a},x\n{b},y\n{a},y\n")
    res = _run("data", "sample", tmp_path / "m", "--out", tmp_path / "s", "--labels", csv, "--points", "500")
    _refused(res, "labels.csv", f"line 4: '{a}' is labelled twice")
    assert _nothing_in(tmp_path / "s")
    latents = read_latents(Path(trained[0]) / LATENTS_FILE)
    from safetensors.torch import save_file

    names = latents.names[:-1] + latents.names[:1]
    save_file({"z": latents.z.contiguous()}, tmp_path / "t.safetensors", {"names": json.dumps(names)})
    res = _run("probe", Path(trained[0]) / LATENTS_FILE, "--train", tmp_path / "t.safetensors", "--zoo", tiny_zoo)
    _refused(res, "t.safetensors", latents.names[0])


def test_a_ray_address_where_nothing_listens_is_one_line_and_quick(tmp_path):
    from test_hardening import TINY

    write_meshes(tmp_path / "m", 2)
    assert _run("data", "sample", tmp_path / "m", "--out", tmp_path / "s", "--points", "500").exit_code == 0
    start = time.monotonic()
    res = _run("fit", tmp_path / "s", "--out", tmp_path / "z", *TINY, "--ray", "127.0.0.1:1")
    _refused(res, "127.0.0.1:1")
    assert time.monotonic() - start < 60
    assert not (tmp_path / "z" / "zoo.json").exists()
