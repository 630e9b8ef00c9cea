"""Shift bases and the shift space: fields that share every weight but their biases, read exactly by the encoder."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from space_zoo import QUICK, permute_hidden, write_meshes
from typer.testing import CliRunner

from shapezoo.core.latents import LATENTS_FILE, load_latents, read_latents, split_names
from shapezoo.core.zoo import load_zoo
from shapezoo.errors import ShapezooError
from shapezoo.fields.fit_job import fit_zoo
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.learned_init import load_init
from shapezoo.fields.network import FieldSpec, field_forward, init_params, layers_forward
from shapezoo.fields.samples import SampleConfig, load_samples, sample_meshes
from shapezoo.fields.shift_base import BASE_STATE, BaseConfig, learn_base
from shapezoo.fields.space import (
    Evidence,
    GaussianPrior,
    ModelConfig,
    OptimizeConfig,
    load_space,
    optimize_latent,
    train_space,
)
from shapezoo.fields.space.inference import PRIOR_WEIGHTS, refine_latents
from shapezoo_cli.main import app

SPEC = FieldSpec(width=16, depth=2)
TINY = BaseConfig(
    steps=24, batch=4, points_per_step=256, lr=1e-3, bias_lr=1e-2, checkpoint_every=8, val=0.0, test=0.0, columns=0
)
FIT = FitConfig(steps=60, points_per_step=256, lr=1e-2, check_every=20)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    sample_meshes(write_meshes(root / "meshes", 10), root / "samples", SampleConfig(points=2000))
    return root / "samples"


@pytest.fixture(scope="module")
def base(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base"
    learn_base([samples], out, SPEC, TINY)
    return out


@pytest.fixture(scope="module")
def shift_zoo(samples, base, tmp_path_factory):
    out = tmp_path_factory.mktemp("shiftzoo") / "zoo"
    fit_zoo(samples, out, SPEC, FIT, batch=4, init=load_init(base))
    return out


def _data(samples):
    data = [load_samples(p) for p in sorted(samples.glob("*.safetensors"))]
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data])
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data])
    return pts, occ, int(data[0]["n_uniform"]), [f"s{i}" for i in range(len(data))]


def test_fitting_biases_only_moves_only_the_biases_and_still_fits(samples):
    pts, occ, nu, names = _data(samples)
    init = init_params(SPEC, 0)
    result = fit_fields(SPEC, init, pts[:3], occ[:3], nu, names[:3], replace(FIT, trainable="biases"))
    shared = ~SPEC.bias_mask()
    assert torch.equal(result.params[:, shared], init[shared].expand(3, -1))
    assert not torch.equal(result.params[:, ~shared], init[~shared].expand(3, -1))
    start = fit_fields(SPEC, init, pts[:3], occ[:3], nu, names[:3], replace(FIT, steps=1, trainable="biases"))
    assert all(r["loss"] < s["loss"] for r, s in zip(result.metrics, start.metrics))
    with pytest.raises(ShapezooError, match="trainable"):
        FitConfig(trainable="weights")  # type: ignore[arg-type]


def test_a_base_lowers_the_loss_and_resumes_after_a_kill_with_the_same_weights(samples, base, tmp_path):
    record = json.loads((base / "init.json").read_text())
    assert record["modulation"] == "shift" and record["complete"] and record["steps_done"] == TINY.steps
    assert "columns" not in record["config"]  # a biases-only base records what bases did before columns: it resumes
    curve = record["curve"]
    assert curve[-1]["loss"] < curve[0]["loss"]

    def kill_after_ten(entry):
        if entry["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn_base([samples], tmp_path / "killed", SPEC, TINY, on_step=kill_after_ten)
    assert json.loads((tmp_path / "killed" / "init.json").read_text())["steps_done"] == 8  # last checkpoint
    with pytest.raises(ShapezooError, match="stopped at step 8 of 24"):
        load_init(tmp_path / "killed")
    resumed = learn_base([samples], tmp_path / "killed", SPEC, TINY)
    assert resumed["curve"] == curve  # the same losses, and no wall-clock times in the record
    torch.testing.assert_close(load_init(tmp_path / "killed").params, load_init(base).params, atol=1e-6, rtol=0)
    assert (base / BASE_STATE).exists()
    with pytest.raises(ShapezooError, match="different 'config'"):
        learn_base([samples], base, SPEC, replace(TINY, steps=30))


def test_a_base_learns_on_the_training_split_only(samples, tmp_path):
    config = replace(TINY, steps=2, val=0.2, test=0.2)
    record = learn_base([samples], tmp_path, SPEC, config)
    names = [json.loads((samples / "samples.json").read_text())["shapes"][i]["name"] for i in range(10)]
    assert [s["name"] for s in record["shapes"]] == split_names(names, 0.2, 0.2, 0)["train"]
    assert len(record["shapes"]) == 6


def test_a_zoo_fitted_from_a_base_keeps_its_shared_weights(shift_zoo, base):
    zoo, init = load_zoo(shift_zoo), load_init(base)
    assert zoo.meta["fit"]["trainable"] == "biases" and zoo.meta["init"]["modulation"] == "shift"
    shared = ~SPEC.bias_mask()
    assert torch.equal(zoo.params[:, shared], init.params[shared].expand(len(zoo.names), -1))
    assert all(e["status"] == "ok" for e in zoo.entries)


def test_the_shift_space_reads_fields_exactly_and_ignores_hidden_permutations(shift_zoo, tiny_zoo, tmp_path):
    zoo = load_zoo(shift_zoo)
    summary = train_space(zoo, tmp_path / "space", ModelConfig(), QUICK)  # auto -> shift
    assert summary["design"] == "shift" and summary["latent"] == int(SPEC.bias_mask().sum())
    assert summary["results"]["test"]["field_iou_median"] == 1.0
    space = load_space(tmp_path / "space")
    z = space.encode(zoo.params)
    torch.testing.assert_close(space.decode(z), zoo.params, atol=1e-5, rtol=1e-5)
    z_train, names = load_latents(tmp_path / "space" / LATENTS_FILE)
    assert len(names) == len(z_train) == summary["fields"]["train"]

    permuted = torch.stack([permute_hidden(SPEC, p, i) for i, p in enumerate(zoo.params)])
    assert not torch.equal(permuted, zoo.params)
    x = torch.rand(len(permuted), 64, 3) - 0.5
    torch.testing.assert_close(field_forward(SPEC, permuted, x), field_forward(SPEC, zoo.params, x), atol=1e-5, rtol=0)
    torch.testing.assert_close(space.encode(permuted), z, atol=1e-5, rtol=1e-5)
    assert space.exact(permuted).all()

    # a field off the base is not exact: refinement works on it, the exact ones keep their latents
    off = zoo.params[:1] + 0.01 * torch.randn(1, zoo.params.shape[1])
    both = torch.cat([zoo.params[:1], off])
    assert space.exact(both).tolist() == [True, False]
    z0 = space.encode(both)
    refined = refine_latents(space, both, z0, steps=3, points=128, pool=256)
    assert torch.equal(refined[0], z0[0]) and not torch.equal(refined[1], z0[1])

    with pytest.raises(ShapezooError, match="shift base"):
        train_space(load_zoo(tiny_zoo), tmp_path / "refused", ModelConfig(design="shift"), QUICK)


def test_completion_in_a_shift_space_is_held_by_its_own_prior_weight(shift_zoo, tmp_path):
    zoo = load_zoo(shift_zoo)
    train_space(zoo, tmp_path / "space", ModelConfig(), QUICK)
    space = load_space(tmp_path / "space")
    prior = GaussianPrior.fit(space.train_latents(tmp_path / "space")[0])
    x = torch.rand(800, 3) - 0.5
    x = x[x[:, 0] > 0]  # evidence on one half only: the prior decides the rest
    target = field_forward(SPEC, zoo.params[-1:], x[None])[0, :, 0].sigmoid().round()
    evidence, steps = Evidence(x, target), OptimizeConfig(steps=40, lr=0.1, points=400)

    def run(config):
        z, history = optimize_latent(space, evidence, prior, config)
        return prior.to_whitened(z[None]).square().mean(), history[-1]["evidence"]

    default, strong = run(steps), run(replace(steps, prior=PRIOR_WEIGHTS["shift"]))
    weak = run(replace(steps, prior=1e-3))
    assert PRIOR_WEIGHTS["shift"] > PRIOR_WEIGHTS["neuron"]
    assert default == strong  # None: the design's measured weight
    assert default[0] < weak[0] and default[1] > weak[1]  # nearer the training latents, fitting the evidence less


@pytest.mark.parametrize("columns", [0, 2])
def test_cli_base_fit_space_and_exact_encode(samples, tmp_path, columns):
    runner = CliRunner()
    args = ["--steps", "6", "--batch", "4", "--val", "0", "--test", "0", "--width", "16", "--depth", "2"]
    args += ["--columns", str(columns)]
    r = runner.invoke(app, ["init", "base", str(samples), "--out", str(tmp_path / "base"), *args, "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["complete"] is True
    fit = ["fit", str(samples), "--out", str(tmp_path / "zoo"), "--init", str(tmp_path / "base"), "--steps", "20"]
    r = runner.invoke(app, [*fit, "--width", "16", "--depth", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    space = ["space", "train", str(tmp_path / "zoo"), "--out", str(tmp_path / "space")]
    r = runner.invoke(app, [*space, "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "shift" in r.output
    z = str(tmp_path / "z.safetensors")
    enc = ["encode", str(tmp_path / "zoo"), "--space", str(tmp_path / "space"), "--out", z]
    assert runner.invoke(app, [*enc, "--refine", "0"]).exit_code == 0
    dec = ["decode", z, "--space", str(tmp_path / "space"), "--out", str(tmp_path / "dec")]
    r = runner.invoke(app, dec)
    assert r.exit_code == 0, r.output
    torch.testing.assert_close(load_zoo(tmp_path / "dec").params, load_zoo(tmp_path / "zoo").params, atol=1e-5, rtol=0)
    # meshes: fitted from the base with the zoo's whole recipe (the encoder reads them exactly, nothing to refine)
    meshes = write_meshes(tmp_path / "meshes", 1, seed=3)
    r = runner.invoke(app, ["encode", str(meshes), "--space", str(tmp_path / "space"), "--out", z, "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert [f["fit_steps"] for f in read_latents(z).meta["fits"].values()] == [20]
    assert read_latents(z).z.shape[1] == int(SPEC.modulation_mask(columns).sum())


def test_a_train_limit_keeps_validation_and_test_and_nests():
    names = [f"shape_{i:03d}" for i in range(50)]
    full = split_names(names, 0.1, 0.2, 0)
    small, larger = split_names(names, 0.1, 0.2, 0, train_limit=8), split_names(names, 0.1, 0.2, 0, train_limit=20)
    assert small["test"] == full["test"] and small["val"] == full["val"] and larger["test"] == full["test"]
    assert len(small["train"]) == 8 and set(small["train"]) <= set(larger["train"]) <= set(full["train"])


def test_a_base_with_modulated_columns_fits_and_is_read_exactly(samples, tmp_path):
    """Columns: besides its biases each field moves the first input columns of its hidden -> hidden weights (a
    low-rank weight delta); the zoo keeps every other weight, and the space reads the whole code exactly."""
    config = replace(TINY, columns=2)
    learn_base([samples], tmp_path / "base", SPEC, config)
    init = load_init(tmp_path / "base")
    assert init.columns == 2 and init.provenance()["columns"] == 2
    fit_zoo(samples, tmp_path / "zoo", SPEC, FIT, batch=4, init=init)
    zoo = load_zoo(tmp_path / "zoo")
    assert zoo.meta["fit"]["columns"] == 2 and all(e["status"] == "ok" for e in zoo.entries)
    moved = SPEC.modulation_mask(2)
    assert int(moved.sum()) == int(SPEC.bias_mask().sum()) + 2 * SPEC.width
    assert torch.equal(zoo.params[:, ~moved], init.params[~moved].expand(len(zoo.names), -1))
    columns = moved & ~SPEC.bias_mask()
    assert (zoo.params[:, columns] != init.params[columns]).all(0).all()  # every column entry moved, in every field

    summary = train_space(zoo, tmp_path / "space", ModelConfig(), QUICK)  # auto -> shift, with the columns
    assert summary["design"] == "shift" and summary["latent"] == int(moved.sum())
    space = load_space(tmp_path / "space")
    z = space.encode(zoo.params)
    torch.testing.assert_close(space.decode(z), zoo.params, atol=1e-5, rtol=1e-5)
    permuted = torch.stack([permute_hidden(SPEC, p, i) for i, p in enumerate(zoo.params)])
    torch.testing.assert_close(space.encode(permuted), z, atol=1e-5, rtol=1e-5)
    assert space.exact(permuted).all()
    with pytest.raises(ShapezooError, match="modulated columns"):
        SPEC.modulation_mask(SPEC.width + 1)
    assert torch.equal(FieldSpec(width=16, depth=1).modulation_mask(6), FieldSpec(width=16, depth=1).bias_mask())
    with pytest.raises(ShapezooError, match="modulated columns"):
        FitConfig(columns=2)  # the columns belong to a shift base's fits


@pytest.mark.parametrize("activation", ["sine", "relu_pe"])
def test_the_columns_forward_matches_plain_autograd_on_the_entries_it_moves(activation):
    """A modulated-columns fit computes its hidden weights' gradients for those columns only: outputs, input-side
    and column gradients as plain autograd's (to float rounding), nothing elsewhere in those weights."""
    spec = FieldSpec(width=24, depth=3, activation=activation)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(3)
    params = init_params(spec, 0).expand(2, -1) + 0.01 * torch.randn(2, spec.layout().size, generator=g)
    x = torch.rand(2, 40, 3, generator=g) - 0.5
    runs = []
    for columns in (3, 0):
        layers = {k: v.clone().requires_grad_(True) for k, v in spec.layout().unflatten(params).items()}
        out = layers_forward(spec, layers, x, columns)
        grads = torch.autograd.grad(out.square().sum(), list(layers.values()))
        runs.append((out, spec.layout().flatten(dict(zip(layers, grads)))))
    (out, grad), (ref_out, ref_grad) = runs
    assert torch.equal(out, ref_out)
    moved = spec.modulation_mask(3) | torch.tensor([n.startswith(("layers.0.", "layers.3.")) for n in _names(spec)])
    torch.testing.assert_close(grad[:, moved], ref_grad[:, moved], rtol=1e-5, atol=1e-6)
    assert (grad[:, ~moved] == 0).all() and (ref_grad[:, ~moved] != 0).any()


def _names(spec: FieldSpec) -> list[str]:
    """The layout name of every flat entry."""
    return [name for name, shape in spec.layout().entries for _ in range(int(torch.Size(shape).numel()))]
