"""Classifier zoos on digits (CPU, seconds): batched forward vs a per-model reference, zoo training and resume,
the distillation space, interpolation, unseen widths, latent optimisation and data loading (CLI: its own file)."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shapezoo.classifiers.archs import (
    KINDS,
    ClassifierModule,
    ClassifierSpec,
    accuracy,
    classifier_forward,
    init_params,
    parse_arch,
    superset_index,
)
from shapezoo.classifiers.data import load_digits, load_idx_folder
from shapezoo.classifiers.operations import (
    LatentOptConfig,
    encode_models,
    evaluate_decoded,
    generate_between,
    interpolation_path,
    optimize_latent,
)
from shapezoo.classifiers.space import SpaceConfig, build_space_model, load_classifier_space
from shapezoo.classifiers.train import SpaceTrainConfig, distill_kl, train_classifier_space
from shapezoo.classifiers.zoo import ZooConfig, train_zoo
from shapezoo.core.zoo import load_zoo
from shapezoo.errors import InputError, ShapezooError


def reference_forward(spec: ClassifierSpec, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One model, written plainly with torch.nn.functional per layer: the reference for the batched forward."""
    w = spec.layout().unflatten(flat)

    def conv(name, h, stride=1):
        k = w[f"{name}.weight"]
        return F.conv2d(h, k, w[f"{name}.bias"], stride=stride, padding=k.shape[-1] // 2)

    def lin(name, h):
        return F.linear(h, w[f"{name}.weight"], w[f"{name}.bias"])

    if spec.kind == "mlp":
        h = F.relu(lin("fc2", F.relu(lin("fc1", x.flatten(1)))))
    elif spec.kind == "lenet":
        h = F.max_pool2d(F.relu(conv("conv2", F.max_pool2d(F.relu(conv("conv1", x)), 2))), 2)
        h = F.relu(lin("fc1", h.flatten(1)))
    elif spec.kind == "cnn":
        h = F.relu(conv("conv4", F.relu(conv("conv3", F.relu(conv("conv2", F.relu(conv("conv1", x)), 2)))), 2))
        h = h.mean((2, 3))
    else:
        h = F.relu(conv("stem", x))
        h = F.relu(h + conv("block1.conv2", F.relu(conv("block1.conv1", h))))
        h = F.relu(conv("down", h, 2))
        h = F.relu(h + conv("block2.conv2", F.relu(conv("block2.conv1", h))))
        h = h.mean((2, 3))
    return lin("out", h)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("in_shape", [(1, 8, 8), (3, 12, 12)])
def test_batched_forward_equals_per_model_reference(kind, in_shape):
    spec = ClassifierSpec(kind, 4, in_shape, 10)
    g = torch.Generator().manual_seed(0)
    params = torch.stack([init_params(spec, s) + 0.05 * torch.randn(spec.layout().size, generator=g) for s in range(3)])
    shared = torch.randn(5, *in_shape, generator=g)
    own = torch.randn(3, 5, *in_shape, generator=g)
    batched_shared = classifier_forward(spec, params, shared)
    batched_own = classifier_forward(spec, params, own)
    assert batched_shared.shape == (3, 5, 10)
    for b in range(3):
        torch.testing.assert_close(batched_shared[b], reference_forward(spec, params[b], shared), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched_own[b], reference_forward(spec, params[b], own[b]), rtol=1e-5, atol=1e-5)
    module = ClassifierModule(spec, params[1])
    torch.testing.assert_close(module(shared), batched_shared[1])


@pytest.mark.parametrize("kind", KINDS)
def test_narrow_model_is_a_slice_of_a_wide_one(kind):
    """A narrow model placed into a wider one (zeros elsewhere) computes exactly the same logits."""
    small, big = ClassifierSpec(kind, 3, (1, 8, 8), 10), ClassifierSpec(kind, 5, (1, 8, 8), 10)
    p = init_params(small, 1) + 0.1
    wide = torch.zeros(big.layout().size)
    idx = superset_index(small, big)
    assert len(set(idx.tolist())) == small.layout().size
    wide[idx] = p
    x = torch.randn(7, 1, 8, 8)
    torch.testing.assert_close(classifier_forward(big, wide[None], x), classifier_forward(small, p[None], x))


def test_arch_names_and_bad_architecture():
    assert parse_arch("lenet", (1, 8, 8), 10).name == "lenet-8"
    assert parse_arch("cnn-12", (1, 28, 28), 10).width == 12
    with pytest.raises(ShapezooError, match="unknown architecture 'vgg'"):
        parse_arch("vgg", (1, 8, 8), 10)


def _write_idx(path, array: np.ndarray, gz: bool = True):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_idx_folder_loading_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (60, 6, 6)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (12, 6, 6)), gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(12) % 10)
    data = load_idx_folder("fashion-mnist", tmp_path)
    assert data.in_shape == (1, 6, 6) and data.classes == 10
    assert [len(s[1]) for s in (data.train, data.val, data.test)] == [50, 10, 12]
    assert abs(float(data.train[0].mean())) < 1e-5
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"broken")
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte.gz: not a readable IDX file"):
        load_idx_folder("fashion-mnist", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="missing fashion-mnist files: t10k-labels-idx1-ubyte"):
        load_idx_folder("fashion-mnist", tmp_path)


def test_digits_splits_are_fixed_and_disjoint(digits):
    again = load_digits()
    assert [len(s[1]) for s in (digits.train, digits.val, digits.test)] == [1077, 360, 360]
    assert torch.equal(digits.test[0], again.test[0])
    flat = {tuple(x.flatten().tolist()) for x in digits.test[0]}
    assert not flat & {tuple(x.flatten().tolist()) for x in digits.train[0][:200]}


def test_zoo_training_spreads_accuracy_and_records_it(mlp_zoo, digits):
    out, summary = mlp_zoo
    zoo = load_zoo(out, kind="classifier")
    assert summary["models"] == 40 and len(zoo.names) == 40
    acc = [e["metrics"]["accuracy_test"] for e in zoo.entries]
    assert max(acc) > 0.9 and max(acc) - min(acc) > 0.2
    steps = [e["steps"] for e in zoo.entries]
    assert np.corrcoef(steps, acc)[0, 1] > 0.3  # longer training, better models
    recomputed = accuracy(zoo.spec, zoo.params, *digits.test)
    torch.testing.assert_close(recomputed, torch.tensor(acc))
    with pytest.raises(InputError, match="holds a classifier zoo; this needs a field zoo"):
        load_zoo(out)


def test_zoo_resume_matches_uninterrupted(tmp_path, digits):
    spec = ClassifierSpec("cnn", 3, (1, 8, 8), 10)
    config = ZooConfig(count=4, batch=2, steps=(3, 12))
    train_zoo(spec, digits, tmp_path / "full", config)

    def stop_after_first(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_zoo(spec, digits, tmp_path / "cut", config, on_shard=stop_after_first)
    first = (tmp_path / "cut" / "weights-00000.safetensors").read_bytes()
    assert len(load_zoo(tmp_path / "cut", kind="classifier").names) == 2
    summary = train_zoo(spec, digits, tmp_path / "cut", config)
    assert summary["trained_this_run"] == 2
    assert (tmp_path / "cut" / "weights-00000.safetensors").read_bytes() == first
    full, cut = load_zoo(tmp_path / "full", kind="classifier"), load_zoo(tmp_path / "cut", kind="classifier")
    for n in full.names:
        torch.testing.assert_close(cut.weights(n), full.weights(n), rtol=1e-5, atol=1e-6)


def test_distillation_kl_is_zero_at_the_target_and_positive_elsewhere():
    t = torch.randn(2, 5, 10)
    assert float(distill_kl(t, t, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_kl(t + torch.randn(2, 5, 10), t, 4.0)) > 0.01


def test_space_training_lowers_distillation_and_keeps_accuracy(mlp_space, mlp_zoo, digits):
    out, summary = mlp_space
    space = load_classifier_space(out)
    history = space.meta["history"]
    assert history[-1]["train"]["distill"] < 0.5 * history[0]["train"]["distill"]
    zoo = load_zoo(mlp_zoo[0], kind="classifier")
    result = evaluate_decoded(space, zoo, digits)
    train = result["summary"]["train"]
    assert train["mean_abs_gap_points"] < 3.0 and train["spearman"] > 0.9
    assert result["summary"]["test"]["spearman"] > 0.7
    row = result["models"][0]
    assert set(row) >= {"name", "arch", "accuracy_original", "accuracy_decoded"}
    # save/load round trip: the reloaded space encodes identically
    p = zoo.params[:3]
    torch.testing.assert_close(load_classifier_space(out).encode(zoo.spec, p), space.encode(zoo.spec, p))


def test_interpolation_path_reports_latent_and_raw_accuracies(mlp_space, mlp_zoo, digits):
    space, zoo = load_classifier_space(mlp_space[0]), load_zoo(mlp_zoo[0], kind="classifier")
    acc = [e["metrics"]["accuracy_test"] for e in zoo.entries]
    weak, strong = zoo.names[int(np.argmin(acc))], zoo.names[int(np.argmax(acc))]
    path = interpolation_path(space, (zoo.spec, zoo.weights(weak)), (zoo.spec, zoo.weights(strong)), digits, steps=5)
    assert len(path["accuracy_latent"]) == len(path["accuracy_raw"]) == 5
    assert path["accuracy_raw"][0] == pytest.approx(min(acc)) and path["accuracy_raw"][-1] == pytest.approx(max(acc))
    assert path["accuracy_latent"][-1] > path["accuracy_latent"][0] + 0.1
    assert path["latent"]["spearman_vs_t"] > 0.5


def test_latent_optimisation_improves_on_its_start(mlp_space, mlp_zoo, digits):
    space, zoo = load_classifier_space(mlp_space[0]), load_zoo(mlp_zoo[0], kind="classifier")
    acc = [e["metrics"]["accuracy_test"] for e in zoo.entries]
    weak = zoo.names[int(np.argmin(acc))]
    z0 = space.encode(zoo.spec, zoo.weights(weak)[None])[0]
    result = optimize_latent(space, zoo.spec, z0, digits, LatentOptConfig(steps=60, lr=0.05, eval_every=10))
    assert result["accuracy_val_end"] > result["accuracy_val_start"]
    assert result["accuracy_test_end"] > result["accuracy_test_start"] + 0.05


def test_refinement_lowers_each_decodes_distillation_loss(mlp_space, mlp_zoo, digits):
    space, zoo = load_classifier_space(mlp_space[0]), load_zoo(mlp_zoo[0], kind="classifier")
    held = zoo.params[[zoo.index(n) for n in space.meta["split"]["test"]]]
    x = digits.val[0]

    def kl(z):
        with torch.no_grad():
            dec = space.model.decode(0, z)
            return [
                float(
                    distill_kl(classifier_forward(zoo.spec, d[None], x), classifier_forward(zoo.spec, p[None], x), 4.0)
                )
                for d, p in zip(dec, held)
            ]

    before, after = kl(space.encode(zoo.spec, held)), kl(encode_models(space, zoo.spec, held, digits, refine=40))
    assert sum(after) < 0.9 * sum(before)
    assert sum(a < b for a, b in zip(after, before)) >= len(held) - 1


def test_principal_basis_space_starts_as_whitened_pca(tmp_path, mlp_zoo, digits):
    zoo = load_zoo(mlp_zoo[0], kind="classifier")
    model = build_space_model([zoo.spec], SpaceConfig(latent=16, hidden=32, basis=24))
    some = zoo.params[:12]
    model.set_statistics({0: some}, {0: zoo.init})
    basis = model.basis_mlp
    torch.testing.assert_close(basis[:11] @ basis[:11].T, torch.eye(11), atol=1e-5, rtol=0)
    assert float(basis[12:].abs().max()) == 0.0  # 12 instances span at most 12 directions
    with torch.no_grad():
        model.heads["mlp"].weight.zero_()  # silence the MLP head: the linear path alone is whitened PCA
        # 12 centred instances span 11 directions, all inside a 16-d latent: encode -> decode is exact for them
        torch.testing.assert_close(model.decode(0, model.encode(0, some)), some, atol=1e-4, rtol=1e-4)
        z = model.encode(0, some)
        assert torch.allclose(z[:, 11:], torch.zeros(12, 5), atol=1e-6)  # whitened coordinates, no more
        assert z[:, :11].std(0).sub(1).abs().max() < 1e-3
        other = zoo.params[12:14]
        assert not torch.allclose(model.decode(0, model.encode(0, other)), other, atol=1e-3)


def test_full_weight_space_trains_and_keeps_accuracy(tmp_path, mlp_zoo, digits):
    """basis=0: each kind's input layer and head read and write every weight."""
    zoo, out = load_zoo(mlp_zoo[0], kind="classifier"), tmp_path / "space"
    config = SpaceTrainConfig(epochs=60, batch=8, warmup=20, val=0.1, test=0.2)
    train_classifier_space([zoo], digits, out, model_config=SpaceConfig(latent=16, hidden=128, basis=0), config=config)
    space = load_classifier_space(out)
    assert space.model.config.basis == 0 and space.model.enc_in["mlp"].in_features == zoo.spec.layout().size
    result = evaluate_decoded(space, zoo, digits)
    assert result["summary"]["train"]["mean_abs_gap_points"] < 3.0 and result["summary"]["train"]["spearman"] > 0.9
    header = json.loads((out / "space.json").read_text())
    del header["model"]["basis"]  # spaces written before the basis option existed load as full-weight spaces
    (out / "space.json").write_text(json.dumps(header))
    torch.testing.assert_close(
        load_classifier_space(out).encode(zoo.spec, zoo.params[:3]), space.encode(zoo.spec, zoo.params[:3])
    )


def test_unseen_middle_widths_are_generated_by_interpolation(tmp_path, digits):
    """Train on mlp-4 and mlp-12 only; mlp-8 instances come from mixing latents and must classify."""
    zoos = []
    for w in (4, 12):
        spec = ClassifierSpec("mlp", w, (1, 8, 8), 10)
        train_zoo(spec, digits, tmp_path / f"mlp{w}", ZooConfig(count=12, batch=12, steps=(150, 300), lr=(3e-3, 3e-3)))
        zoos.append(load_zoo(tmp_path / f"mlp{w}", kind="classifier"))
    order = [ClassifierSpec("mlp", w, (1, 8, 8), 10) for w in (4, 8, 12)]
    summary = train_classifier_space(
        zoos,
        digits,
        tmp_path / "space",
        order,
        SpaceConfig(latent=16, hidden=128),
        SpaceTrainConfig(epochs=40, batch=6, warmup=10, val=0.0, test=0.0),
    )
    assert summary["unseen"] == ["mlp-8"]
    space = load_classifier_space(tmp_path / "space")
    made = generate_between(space, zoos[0].params, zoos[1].params, digits)["mlp-8"]
    # chance is 0.1; trained mlp-8 models of this recipe reach ~0.9. Measured over seeds 0-5 (zoo and space) under
    # ATEN_CPU_CAPABILITY=default, avx2 and avx512: 0.657-0.764 (seed 0: 0.6988 default, 0.7016 avx512), so the bound
    # sits well below the spread: generated models classify at 5x chance
    assert made["accuracy_mean"] > 0.5
    assert made["arch_predicted_share"] > 0.8


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
def test_fashion_mnist_from_the_debian_package():
    from shapezoo.classifiers.data import load_images

    data = load_images("fashion-mnist")
    assert data.in_shape == (1, 28, 28) and data.classes == 10
    assert [len(s[1]) for s in (data.train, data.val, data.test)] == [50000, 10000, 10000]
    assert torch.bincount(data.test[1]).tolist() == [1000] * 10
