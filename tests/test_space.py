"""Weight spaces on a tiny zoo of analytic shapes: invariance, training, persistence, latent operations."""

import json
from dataclasses import replace

import pytest
import torch
from space_zoo import QUICK, SMALL, SPEC, permute_hidden

from shapezoo.core.zoo import load_zoo
from shapezoo.errors import InputError, ShapezooError
from shapezoo.fields.network import field_forward
from shapezoo.fields.space import (
    Evidence,
    GaussianPrior,
    ModelConfig,
    OptimizeConfig,
    PrepGrid,
    binary_kl,
    build_model,
    evaluate_split,
    interpolate,
    load_space,
    optimize_latent,
    probe_points,
    train_space,
)
from shapezoo.fields.space.inference import refine_latents
from shapezoo.fields.space.operations import sequence


def test_neuron_encoder_is_invariant_to_hidden_permutations(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    params = zoo.params[:3]
    permuted = torch.stack([permute_hidden(SPEC, p, i) for i, p in enumerate(params)])
    assert not torch.equal(permuted, params)
    x = torch.rand(3, 200, 3) - 0.5
    torch.testing.assert_close(field_forward(SPEC, permuted, x), field_forward(SPEC, params, x), atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    neuron = build_model(SPEC, SMALL, zoo.params)
    torch.testing.assert_close(neuron.encode(permuted), neuron.encode(params), atol=1e-5, rtol=1e-4)
    prep = build_model(SPEC, ModelConfig(design="prep", latent=16, hidden=16), zoo.params)
    assert (prep.encode(permuted) - prep.encode(params)).abs().max() > 1e-4  # the baseline is not invariant


def test_prep_grid_round_trip_and_layout():
    grid = PrepGrid(SPEC)
    assert (grid.rows, grid.cols) == (16 * 3 + 1, 17)
    flat = torch.randn(2, SPEC.layout().size)
    g = grid.to_grid(flat)
    assert g.shape == (2, 1, 49, 17)
    assert torch.equal(grid.from_grid(g), flat)
    w = SPEC.layout().unflatten(flat)
    assert torch.equal(g[0, 0, 0, :3], w["layers.0.weight"][0, 0]) and g[0, 0, 0, 3] == w["layers.0.bias"][0, 0]
    assert torch.count_nonzero(g) == SPEC.layout().size * 2  # padding stays zero


def test_untrained_decoder_outputs_the_zoo_mean(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    for design, trunk in (("neuron", 0), ("neuron", 16), ("prep", 0)):
        model = build_model(SPEC, ModelConfig(design=design, latent=8, hidden=16, trunk=trunk), zoo.params)
        with torch.no_grad():
            out = model.decode(torch.randn(4, 8))
        assert (out - zoo.params.mean(0)).abs().max() < 0.5 * zoo.params.std(0).max()


def test_binary_kl_is_zero_only_for_equal_logits():
    t = torch.randn(100) * 5
    assert binary_kl(t, t) < 1e-6
    assert binary_kl(t + 1, t) > 1e-3 and binary_kl(-t, t) > binary_kl(t + 1, t)


def test_probe_points_lie_near_the_level_set(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    x, t = probe_points(SPEC, zoo.params, 1000, 1000, seed=0)
    assert x.shape == (12, 2000, 3) and t.shape == (12, 2000)
    assert x.abs().max() <= 0.5
    inside_uniform, inside_near = (t[:, :1000] > 0).float().mean(1), (t[:, 1000:] > 0).float().mean(1)
    # a field fitted to (almost) nothing has no level set to sample near (one of the 12 with SHAPEZOO_TEST_SEED=2).
    # Measured over seeds 0-4: uniform points inside up to 0.192 (the largest solid fills ~18% of the domain),
    # near points inside 0.443-0.525 of the time
    surface = inside_uniform > 0.005
    assert surface.sum() >= 10 and (inside_uniform < 0.3).all()
    assert ((inside_near[surface] > 0.25) & (inside_near[surface] < 0.75)).all(), inside_near


def test_training_lowers_the_functional_loss_and_saves(trained, tiny_zoo):
    out, summary = trained
    assert {p.name for p in out.iterdir()} >= {"space.json", "model.safetensors", "train_latents.safetensors"}
    assert summary["fields"] == {"test": 2, "val": 1, "train": 9}
    torch.testing.assert_close(load_space(out).init, load_zoo(tiny_zoo).init, rtol=0, atol=0)  # fit_mesh starts there
    history = json.loads((out / "space.json").read_text())["history"]
    first, last = history[0]["train"]["functional"], history[-1]["train"]["functional"]
    # last / first: 0.365-0.828 over SHAPEZOO_TEST_SEED 0-4 x default, avx2, avx512 (0.7 failed on seed 4)
    assert last < 0.95 * first, history
    space = load_space(out)
    zoo = load_zoo(tiny_zoo)
    z = space.encode(zoo.params)
    assert z.shape == (12, 16) and torch.isfinite(z).all()
    again = load_space(out)
    torch.testing.assert_close(again.decode(z), space.decode(z), rtol=0, atol=0)


def test_prep_design_trains_too(tiny_zoo, tmp_path):
    s = train_space(load_zoo(tiny_zoo), tmp_path / "prep", ModelConfig(design="prep", latent=16, hidden=16), QUICK)
    h = json.loads((tmp_path / "prep" / "space.json").read_text())["history"]
    assert h[-1]["train"]["functional"] < h[0]["train"]["functional"]
    assert s["design"] == "prep" and set(s["results"]) == {"train", "val", "test", "train_codes"}


def test_autoencoder_training_without_codes(tiny_zoo, tmp_path):
    """codes=False: plain decode(encode(w)) training with a nonlinear decoder trunk; latents saved are the encoder's."""
    config = replace(QUICK, codes=False)
    s = train_space(load_zoo(tiny_zoo), tmp_path / "ae", ModelConfig(latent=16, hidden=16, trunk=32), config)
    h = json.loads((tmp_path / "ae" / "space.json").read_text())["history"]
    assert h[-1]["train"]["functional"] < h[0]["train"]["functional"] and "encoder" not in h[-1]["train"]
    space, zoo = load_space(tmp_path / "ae"), load_zoo(tiny_zoo)
    z, names = space.train_latents(tmp_path / "ae")
    torch.testing.assert_close(z, space.encode(torch.stack([zoo.weights(n) for n in names])))
    assert set(s["results"]) == {"train", "val", "test"}


def test_codes_are_the_saved_training_latents_and_decode_well(trained, tiny_zoo):
    """With codes, train_latents holds the learned codes, refinement improves on the encoder's latents, and the
    default decoder is affine in z."""
    out, summary = trained
    space = load_space(out)
    z, names = space.train_latents(out)
    assert names == json.loads((out / "space.json").read_text())["split"]["train"]
    zoo = load_zoo(tiny_zoo)
    params = torch.stack([zoo.weights(n) for n in names])
    x, t = probe_points(SPEC, params, 256, 256, seed=3)
    assert (z - space.encode(params)).abs().max() > 1e-3  # the codes, not the encoder's latents
    encoder = evaluate_split(space.model, SPEC, params, x, t, 256)
    refined = evaluate_split(space.model, SPEC, params, x, t, 256, refine=30)
    assert refined["functional"] < encoder["functional"]
    assert summary["results"]["train_codes"]["refine_steps"] == 0 and summary["results"]["test"]["refine_steps"] == 50
    a, b = z[0], z[1]
    mid = space.decode(((a + b) / 2)[None])[0]
    torch.testing.assert_close(mid, (space.decode(a[None])[0] + space.decode(b[None])[0]) / 2, rtol=1e-4, atol=1e-5)


def test_interrupted_training_resumes_to_the_same_model(tiny_zoo, tmp_path):
    zoo = load_zoo(tiny_zoo)
    train_space(zoo, tmp_path / "full", SMALL, QUICK)

    def stop(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_space(zoo, tmp_path / "cut", SMALL, QUICK, on_eval=stop)
    assert json.loads((tmp_path / "cut" / "train_state.json").read_text())["epoch"] == 2
    train_space(zoo, tmp_path / "cut", SMALL, QUICK)
    a, b = load_space(tmp_path / "full"), load_space(tmp_path / "cut")
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=k)
    za, zb = a.train_latents(tmp_path / "full")[0], b.train_latents(tmp_path / "cut")[0]
    torch.testing.assert_close(za, zb, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="other options"):
        train_space(zoo, tmp_path / "cut", ModelConfig(latent=8, hidden=16, trunk=32), QUICK)


def test_interpolation_endpoints_reproduce_the_endpoint_decodes(trained, tiny_zoo):
    space, zoo = load_space(trained[0]), load_zoo(tiny_zoo)
    a, b = zoo.params[0], zoo.params[5]
    ends = space.decode(space.encode(torch.stack([a, b])))
    for mode in ("lerp", "slerp"):
        seq = sequence(space, a, b, 5, mode)
        assert seq.shape == (5, SPEC.layout().size)
        torch.testing.assert_close(seq[[0, -1]], ends, rtol=1e-5, atol=1e-6)
    raw = sequence(space, a, b, 3, weights=True)
    assert torch.equal(raw[0], a) and torch.equal(raw[-1], b)
    torch.testing.assert_close(raw[1], (a + b) / 2)


def test_slerp_keeps_endpoints_and_interpolates_norms():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    path = interpolate(a, b, 5, "slerp")
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), torch.linspace(3, 1, 5))
    with pytest.raises(ShapezooError, match="steps"):
        interpolate(a, b, 1)


def test_gaussian_prior_round_trip_and_samples():
    z = torch.randn(50, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 1
    prior = GaussianPrior.fit(z)
    torch.testing.assert_close(prior.to_latent(prior.to_whitened(z)), z, atol=1e-4, rtol=1e-4)
    s = prior.sample(4000, seed=1)
    torch.testing.assert_close(s.std(0), z.std(0), rtol=0.15, atol=0.1)


def test_latent_optimisation_and_refinement_fit_the_evidence(trained, tiny_zoo):
    space, zoo = load_space(trained[0]), load_zoo(tiny_zoo)
    target = zoo.params[3:4]
    x, t = probe_points(SPEC, target, 600, 600, seed=3)
    evidence = Evidence(x[0], torch.sigmoid(t[0]))
    prior = GaussianPrior.fit(space.train_latents(trained[0])[0])
    z, history = optimize_latent(space, evidence, prior, OptimizeConfig(steps=60, lr=0.1, points=1200))
    assert history[-1]["evidence"] < history[0]["evidence"]
    assert all(p.requires_grad for p in space.model.parameters())
    z0 = space.encode(target)
    refined = refine_latents(space, target, z0, steps=40, lr=0.05)

    def kl(latent):
        with torch.no_grad():
            return float(binary_kl(field_forward(SPEC, space.decode(latent), x)[..., 0], t))

    assert kl(refined) < kl(z0)
    assert z.shape == (16,)


def test_refinement_drawing_fresh_points_from_a_pool_generalises_better_than_a_fixed_set(trained, tiny_zoo):
    """Judged on 4000 unseen points: a latent refined on one fixed set of 16 points overfits them."""
    space, zoo = load_space(trained[0]), load_zoo(tiny_zoo)
    x, t = probe_points(SPEC, zoo.params, 2000, 2000, seed=7)

    def kl(latent):
        with torch.no_grad():
            return float(binary_kl(field_forward(SPEC, space.decode(latent), x)[..., 0], t))

    z0 = space.encode(zoo.params)
    fixed = refine_latents(space, zoo.params, z0, 80, lr=0.1, points=16, pool=16)
    pooled = refine_latents(space, zoo.params, z0, 80, lr=0.1, points=16, pool=2048)
    # over SHAPEZOO_TEST_SEED 0-4 x default, avx2, avx512: pooled / fixed 0.397-0.762, pooled / start 0.378-0.578; the
    # fixed set overfits so far that on seeds 2 and 4 it ends worse than the start (1.19, 1.32), so that is not asked
    assert kl(pooled) < 0.9 * kl(fixed) and kl(pooled) < 0.75 * kl(z0)


def test_evidence_from_surface_points_with_normals():
    p, n = torch.tensor([[0.1, 0.0, 0.0]]), torch.tensor([[2.0, 0.0, 0.0]])
    e = Evidence.from_surface(p, n, offset=0.01)
    torch.testing.assert_close(e.points, torch.tensor([[0.1, 0, 0], [0.09, 0, 0], [0.11, 0, 0]]))
    assert e.targets.tolist() == [0.5, 1.0, 0.0]
    assert len(Evidence.from_surface(p).points) == 1
    with pytest.raises(ShapezooError):
        Evidence.from_surface(torch.zeros(0, 3))
