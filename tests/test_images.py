"""Image fields (the weight-space benchmark's INRs) on scikit-learn's bundled digits: both protocols fit to their
PSNR, the zoo records which, a probe reads the class from a shared start's weights well above chance, jobs resume,
and bad inputs give one line."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shapezoo.core.zoo import load_zoo, member_seed
from shapezoo.errors import InputError, ShapezooError
from shapezoo.fields.network import field_forward, init_params
from shapezoo.fields.space import ModelConfig, TrainConfig, load_latents, load_space, train_space
from shapezoo.images.data import IMAGES_FILE, read_images, write_images
from shapezoo.images.fitting import ImageFitConfig, StartConfig
from shapezoo.images.jobs import fit_image_zoo
from shapezoo.images.network import ImageSpec, pixel_grid, psnr
from shapezoo.images.probing import probe_image_zoo, weight_statistics
from shapezoo.images.readers import QueryClassifier, ReaderConfig
from shapezoo_cli.main import app

START = StartConfig(outer_steps=30, batch=32)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(train folder, test folder, the train split's shared-start zoo, the test split's from that start)."""
    root = tmp_path_factory.mktemp("digits")
    write_images("digits", "train", root / "train", count=240)
    write_images("digits", "test", root / "test", count=120)
    fit_image_zoo(root / "train", root / "zoo_train", start_config=START, batch=128)
    fit_image_zoo(root / "test", root / "zoo_test", start=root / "zoo_train", batch=128)
    return root / "train", root / "test", root / "zoo_train", root / "zoo_test"


def test_a_shared_start_fits_every_image_and_its_weights_tell_the_class(digits):
    train, test, zoo_train, zoo_test = digits
    zoo = load_zoo(zoo_test, "image")
    assert zoo.meta["fit"]["protocol"] == "shared" and zoo.meta["start"]["from"] == str(zoo_train)
    assert torch.equal(zoo.init, load_zoo(zoo_train, "image").init)  # the test split shares the train split's start
    psnr = sorted(e["metrics"]["psnr"] for e in zoo.entries)
    assert psnr[len(psnr) // 2] >= 40.0 and all(e["status"] == "ok" for e in zoo.entries)
    images = read_images(test)
    name = zoo.names[5]
    assert zoo.entries[5]["label"] == images.label(images.names.index(name))
    # the exported field is a plain module that redraws its image
    redrawn = zoo.module(name)(pixel_grid(8, 8)).detach()
    assert ((redrawn - images.pixels[images.names.index(name)]).square().mean()) < 1e-3
    result = probe_image_zoo(zoo_test, zoo_train, ("weights", "stats"))
    assert result["weights"]["linear_accuracy"] >= 0.7  # chance is 0.1
    assert result["scored"] == 120 and result["members"] == 360


def test_independent_inits_differ_per_image_and_a_rerun_resumes(digits, tmp_path):
    train = digits[0]
    config = ImageFitConfig(protocol="independent", steps=300)
    first = fit_image_zoo(train, tmp_path / "z", config, batch=100)
    zoo = load_zoo(tmp_path / "z", "image")
    assert first["timing"]["fitted"] == 240 and zoo.meta["fit"]["protocol"] == "independent"
    assert first["psnr"]["median"] >= 40.0
    again = fit_image_zoo(train, tmp_path / "z", config, batch=100)
    assert again["timing"]["fitted"] == 0 and torch.equal(load_zoo(tmp_path / "z", "image").params, zoo.params)
    # each field started from its own seeded init: it lies nearer that init than its neighbour's
    starts = [init_params(zoo.spec, member_seed(0, n)) for n in zoo.names[:2]]
    assert not torch.equal(starts[0], starts[1])
    for i in range(2):
        assert (zoo.params[i] - starts[i]).norm() < 0.5 * (zoo.params[i] - starts[1 - i]).norm()
    with pytest.raises(InputError, match="existing zoo was made with a different 'fit'"):
        fit_image_zoo(train, tmp_path / "z", ImageFitConfig(protocol="independent", steps=200))


def test_weight_statistics_ignore_hidden_permutations():
    spec = ImageSpec(width=8, depth=2)
    g = torch.Generator().manual_seed(0)
    params = init_params(spec, 0) + 0.01 * torch.randn(2, spec.layout().size, generator=g)
    layers = spec.layout().unflatten(params)
    perm = torch.randperm(8, generator=g)
    layers["layers.0.weight"], layers["layers.0.bias"] = (
        layers["layers.0.weight"][:, perm],
        layers["layers.0.bias"][:, perm],
    )
    layers["layers.1.weight"] = layers["layers.1.weight"][:, :, perm]
    permuted = spec.layout().flatten(layers)
    assert not torch.equal(permuted, params)
    torch.testing.assert_close(weight_statistics(spec, permuted), weight_statistics(spec, params))
    x = pixel_grid(4, 4).expand(2, -1, -1)
    torch.testing.assert_close(spec.forward(permuted, x), spec.forward(params, x), rtol=1e-5, atol=1e-5)
    reader = QueryClassifier(spec, 10, ReaderConfig(queries=16, hidden=32)).eval()
    torch.testing.assert_close(reader(permuted), reader(params), rtol=1e-5, atol=1e-5)


def test_queries_read_the_class_where_independent_weights_cannot(digits, tmp_path):
    """Fields of independent random inits share no coordinates, so their raw weights tell a linear probe little;
    what they compute is the image, and the query classifier reads the class from it."""
    config = ImageFitConfig(protocol="independent", steps=300)
    fit_image_zoo(digits[0], tmp_path / "train", config, batch=240)
    fit_image_zoo(digits[1], tmp_path / "test", config, batch=120)
    result = probe_image_zoo(tmp_path / "test", tmp_path / "train", ("weights", "queries"))
    assert result["queries"]["linear_accuracy"] is None
    assert result["queries"]["config"]["mirror"] is False  # a mirrored digit is no digit: digits read one view
    assert result["queries"]["mlp_accuracy"] >= 0.75 > result["weights"]["linear_accuracy"] + 0.2


def test_bad_image_inputs_give_one_line(digits, tmp_path):
    train, test = digits[0], digits[1]
    with pytest.raises(InputError, match="shared start is learned on training images only"):
        fit_image_zoo(test, tmp_path / "z")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "images.json").write_text((train / "images.json").read_text())
    (tmp_path / "broken" / IMAGES_FILE).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="corrupt safetensors"):
        read_images(tmp_path / "broken")
    with pytest.raises(ShapezooError, match="unknown split"):
        write_images("digits", "val", tmp_path / "v")
    with pytest.raises(ShapezooError, match="sine network on 2-D"):
        ImageSpec(in_dim=3)
    runner = CliRunner()
    r = runner.invoke(app, ["fit", str(test), "--out", str(tmp_path / "z2")])
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 1 and len(errors) == 1 and str(test) in errors[0], r.output
    r = runner.invoke(app, ["data", "images", "--data", "nope", "--out", str(tmp_path / "n")])
    assert r.exit_code == 1 and "unknown dataset" in r.output
    r = runner.invoke(app, ["probe", str(digits[2]), "--task", "sort"])
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 1 and len(errors) == 1 and "unknown --task ['sort']" in errors[0], r.output
    resized = _resized_copy(digits[3], tmp_path / "resized")
    with pytest.raises(InputError, match=r"fits images of size \[1, 16, 16\], --train's of \[1, 8, 8\]"):
        probe_image_zoo(resized, digits[2], ("weights",))


def _resized_copy(zoo: Path, out: Path) -> Path:
    """A copy of an image zoo whose record says its images were 16 x 16 (its fields are the 8 x 8 digits')."""
    shutil.copytree(zoo, out)
    record = json.loads((out / "zoo.json").read_text())
    record["data"]["shape"] = [1, 16, 16]
    (out / "zoo.json").write_text(json.dumps(record))
    return out


def test_cli_images_fit_and_probe(tmp_path, digits):
    runner = CliRunner()
    r = runner.invoke(
        app, ["data", "images", "--data", "digits", "--split", "test", "--count", "60", "--out", str(tmp_path / "te")]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["count"] == 60
    r = runner.invoke(app, ["fit", str(tmp_path / "te"), "--out", str(tmp_path / "z"), "--init", str(digits[2])])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["psnr"]["median"] >= 40.0
    r = runner.invoke(app, ["probe", str(tmp_path / "z"), "--train", str(digits[2]), "--features", "weights,pca"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])
    assert result["weights"]["linear_accuracy"] >= 0.6
    # each test field queries the training fields: mAP 0.66 (weights) and 0.69 (PCA) measured, ten classes
    assert min(result["retrieve"][f]["cosine"]["map"] for f in ("weights", "pca")) > 0.4
    r = runner.invoke(app, ["probe", str(tmp_path / "z"), "--train", str(digits[2]), "--task", "retrieve"])
    assert r.exit_code == 0, r.output
    only = json.loads(r.output.strip().splitlines()[-1])
    assert set(only["retrieve"]) == {"weights", "pca", "stats"} and "weights" not in only  # no reader, no classifier
    assert only["retrieve"]["weights"] == result["retrieve"]["weights"]
    args = ["--features", "queries", "--queries", "64", "--readers", "2", "--reader-epochs", "40", "--seed", "3"]
    r = runner.invoke(app, ["probe", str(tmp_path / "z"), "--train", str(digits[2]), *args])
    assert r.exit_code == 0, r.output
    read = json.loads(r.output.strip().splitlines()[-1])["queries"]
    assert read["config"] | {"mirror": None} == asdict(ReaderConfig(queries=64, readers=2, epochs=40, seed=3))
    assert read["config"]["mirror"] is False  # digits: one view
    assert read["mlp_accuracy"] >= 0.8  # 0.92-0.97 measured over 6 seeds, ATEN_CPU_CAPABILITY default and avx2


def test_a_space_of_image_fields_encodes_decodes_and_its_latents_tell_the_class(digits, tmp_path):
    """``space train`` on a shared-start image zoo: by default the training fields' principal directions (``pca``),
    scored by the PSNR of the pixel values its decodes compute; held-out decodes draw their images far closer than
    the zoo's mean field does, and the user's path works: encode the test split's zoo (refined against its pixel
    values), decode it into an image zoo, probe the latents' classes. A neuron space trains on the same objective."""
    zoo_train, zoo_test, runner = digits[2], digits[3], CliRunner()
    sp = tmp_path / "sp"
    r = runner.invoke(app, ["space", "train", str(zoo_train), "--out", str(sp), "--latent", "512"])
    assert r.exit_code == 0 and "design pca (auto)" in r.output, r.output
    space = load_space(sp)
    assert space.latent_size == len(load_latents(sp / "train_latents.safetensors")[1]) - 1  # the directions there are
    assert isinstance(space.spec, ImageSpec) and json.loads((sp / "space.json").read_text())["kind"] == "image"
    test = load_zoo(zoo_test, "image")
    grid = pixel_grid(8, 8).expand(len(test.params), -1, -1)
    images = field_forward(test.spec, test.params, grid)

    def psnr_of(params: torch.Tensor) -> float:
        return float(psnr((field_forward(test.spec, params, grid) - images).square().mean((1, 2))).median())

    mean_field = psnr_of(test.params.mean(0, keepdim=True).expand(len(test.params), -1))
    projected = psnr_of(space.decode(space.encode(test.params)))
    z = tmp_path / "z.safetensors"
    r = runner.invoke(app, ["encode", str(zoo_test), "--space", str(sp), "--out", str(z)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["encode", str(_resized_copy(zoo_test, tmp_path / "r")), "--space", str(sp), "--out", "x"])
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 1 and len(errors) == 1, r.output
    assert "images of size [1, 16, 16] cannot be used with a space of [1, 8, 8]" in errors[0]
    r = runner.invoke(app, ["decode", str(z), "--space", str(sp), "--out", str(tmp_path / "dec")])
    assert r.exit_code == 0, r.output
    decoded = load_zoo(tmp_path / "dec", "image")
    assert decoded.names == test.names
    refined = psnr_of(decoded.params)
    assert refined >= projected + 0.5 and projected >= mean_field + 4.0
    r = runner.invoke(app, ["probe", str(z), "--train", str(sp)])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])["latents"]["classify"]
    assert result["linear_accuracy"] >= 0.7  # chance is 0.1
    r = runner.invoke(app, ["sample", "--space", str(sp), "--out", str(tmp_path / "s")])
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 1 and errors == [
        "error: sample writes meshes of shapes; this space holds image fields (encode, decode, probe)"
    ], r.output
    config = TrainConfig(epochs=2, points=256, probe_uniform=256, probe_near=256, val_refine=2)
    summary = train_space(load_zoo(zoo_train, "image"), tmp_path / "nsp", ModelConfig(design="neuron"), config)
    assert summary["design"] == "neuron" and summary["results"]["test"]["psnr_median"] > 0
