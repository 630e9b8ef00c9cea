"""Labels through sampling, zoo and latents; k-fold probes on latents, raw weights and PCA (no fold leaks); the
latent probe ignores hidden-unit permutations; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from typer.testing import CliRunner

from shapezoo.core.kfold import ProbeConfig, class_ids, classify, fold_features, retrieve, splits
from shapezoo.core.latents import save_latents
from shapezoo.core.zoo import load_zoo, save_zoo
from shapezoo.errors import InputError
from shapezoo.fields.meshes import find_meshes, read_labels, shape_label
from shapezoo.fields.samples import SampleConfig, sample_meshes
from shapezoo.fields.space import load_space
from shapezoo_cli.main import app
from shapezoo_datasets import generate

runner = CliRunner()


def test_labels_come_from_the_family_the_folder_tree_or_a_csv(tmp_path, box_mesh):
    generate("vase", 1, tmp_path / "proc", seed=0)
    (tmp_path / "tree" / "chairs" / "a").mkdir(parents=True)
    box_mesh.export(tmp_path / "tree" / "chairs" / "a" / "m.obj")
    box_mesh.export(tmp_path / "tree" / "loose.obj")
    labels = {n: shape_label(n, p) for n, p in find_meshes(tmp_path)}
    assert labels == {"proc__vase_0000": "vase", "tree__chairs__a__m": "tree", "tree__loose": "tree"}
    tree = {n: shape_label(n, p) for n, p in find_meshes(tmp_path / "tree")}
    assert tree == {"chairs__a__m": "chairs", "loose": None}
    csv = tmp_path / "labels.csv"
    csv.write_text("name,label\nchairs__a__m,seat\nloose,box\n")
    index = sample_meshes(tmp_path / "tree", tmp_path / "s", SampleConfig(points=2000), labels=read_labels(csv))
    assert {e["name"]: e["label"] for e in index["shapes"]} == {"chairs__a__m": "seat", "loose": "box"}
    csv.write_text("loose,box\n")
    with pytest.raises(Exception, match="no label for 1 shape"):
        sample_meshes(tmp_path / "tree", tmp_path / "s2", SampleConfig(points=2000), labels=read_labels(csv))
    (tmp_path / "bad.csv").write_text("a,b,c\n")
    with pytest.raises(InputError, match="line 1: expected 'name,label'"):
        read_labels(tmp_path / "bad.csv")


def test_probes_separate_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    clear = rng.normal(size=(30, 8)) * 0.1 + np.eye(3, 8)[y] * 5
    noise = rng.normal(size=(30, 8))
    good, bad = classify(clear, y, "latents"), classify(noise, y, "latents")
    assert good["linear_accuracy"] == 1.0 and good["mlp_accuracy"] >= 0.9
    assert bad["linear_accuracy"] < 0.7 and np.trace(np.array(good["confusion"])) == 30
    assert retrieve(clear, y, "latents")["cosine"]["map"] == pytest.approx(1.0)
    assert retrieve(noise, y, "latents")["cosine"]["map"] < 0.6


def test_pca_is_fitted_on_the_training_folds_only():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 12)), np.repeat([0, 1], 10)
    config = ProbeConfig(folds=4, pca=3)
    for train, test in splits(y, config):
        a, b, pca = fold_features("pca", X, train, test, config)
        assert set(train).isdisjoint(test) and np.allclose(pca.mean_, X[train].mean(0))
        assert not np.allclose(pca.mean_, X.mean(0)) and a.shape == (len(train), 3) and b.shape == (len(test), 3)


def _permute_hidden(spec, w: torch.Tensor, layer: int, perm: torch.Tensor) -> torch.Tensor:
    """The same function with the hidden units of layer ``layer`` reordered."""
    t = {k: v.clone() for k, v in spec.layout().unflatten(w).items()}
    t[f"layers.{layer}.weight"], t[f"layers.{layer}.bias"] = (
        t[f"layers.{layer}.weight"][perm],
        t[f"layers.{layer}.bias"][perm],
    )
    t[f"layers.{layer + 1}.weight"] = t[f"layers.{layer + 1}.weight"][:, perm]
    return spec.layout().flatten(t)


def test_the_latent_probe_does_not_see_hidden_unit_permutations(trained, tiny_zoo):
    space, zoo = load_space(trained[0]), load_zoo(tiny_zoo)
    y = np.arange(len(zoo.names)) % 2  # the tiny zoo alternates boxes and spheres
    permuted = zoo.params.clone()
    g = torch.Generator().manual_seed(0)
    for i in range(len(permuted)):
        for layer in range(zoo.spec.depth):
            permuted[i] = _permute_hidden(zoo.spec, permuted[i], layer, torch.randperm(zoo.spec.width, generator=g))
    a, b = space.encode(zoo.params).numpy(), space.encode(permuted).numpy()
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()
    config = ProbeConfig(folds=3)
    assert classify(a, y, "latents", config) == classify(b, y, "latents", config)


def test_probe_cli_reports_and_refuses_bad_labels_in_one_line(tmp_path, trained, tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    z = torch.randn(len(zoo.names), 4)
    labelled = tmp_path / "z.safetensors"
    save_latents(labelled, z, zoo.names, {"labels": {n: ["box", "ball"][i % 2] for i, n in enumerate(zoo.names)}})
    res = runner.invoke(
        app, ["probe", str(labelled), "--folds", "3", "--features", "latents,weights,pca", "--zoo", str(tiny_zoo)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["classes"] == ["ball", "box"]
    # the CLI reports what the library computes (how well 12 tiny fields separate boxes from balls depends on the
    # draw: 0.33 with SHAPEZOO_TEST_SEED=1, so no bound on it here; test_probes_separate_... checks the probe)
    from shapezoo.fields.probing import probe_latents

    direct = probe_latents(labelled, features=("latents", "weights", "pca"), zoo=tiny_zoo, config=ProbeConfig(folds=3))
    assert report["weights"]["classify"] == pytest.approx(direct["weights"]["classify"])
    cases = [
        ({}, "have no label"),
        ({"labels": {n: "box" for n in zoo.names}}, "a probe needs two classes"),
        ({"labels": {n: ["box", "ball"][i % 2] for i, n in enumerate(zoo.names)}}, "the smallest has 6"),
    ]
    for i, (meta, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.safetensors"
        save_latents(path, z, zoo.names, meta)
        folds = "8" if "smallest" in message else "3"
        res = runner.invoke(app, ["probe", str(path), "--folds", folds, "--zoo", str(tiny_zoo)])
        assert res.exit_code == 1 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    with pytest.raises(InputError, match="have no label"):
        class_ids(["a"], {}, 2, "x")


def test_held_out_members_in_a_zoo_of_their_own_are_probed_with_train_zoo(tmp_path, tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    labels = {n: ["box", "ball"][i % 2] for i, n in enumerate(zoo.names)}
    train, test = zoo.names[:8], zoo.names[8:]
    for part, names in (("a", train), ("b", test)):
        entries = [zoo.entries[zoo.index(n)] for n in names]
        save_zoo(tmp_path / part, zoo.spec, zoo.stack(names), entries, zoo.init, {})
        save_latents(tmp_path / f"{part}.safetensors", torch.randn(len(names), 4), names, {"labels": labels})
    args = [
        "probe",
        str(tmp_path / "b.safetensors"),
        "--train",
        str(tmp_path / "a.safetensors"),
        "--features",
        "weights",
        "--zoo",
        str(tmp_path / "b"),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "lacks 8 member(s) of a.safetensors" in res.output, res.output
    alone = [a for a in args if a not in ("--train", str(tmp_path / "a.safetensors"))]
    res = runner.invoke(app, [*alone, "--train-zoo", str(tmp_path / "a")])
    assert res.exit_code == 1 and "give --train LATENTS2 with it" in res.output, res.output
    res = runner.invoke(app, [*args, "--train-zoo", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    y = np.arange(len(zoo.names)) % 2  # box 0, ball 1: the report orders classes by name; accuracy ignores that
    expected = classify(zoo.stack(zoo.names).double().numpy(), y, "weights", folds=[(np.arange(8), np.arange(8, 12))])
    assert (report["members"], report["scored"]) == (12, 4) and report["folds"] == "train -> latents"
    assert report["weights"]["classify"]["linear_accuracy"] == expected["linear_accuracy"]


def test_d2_descriptor_is_a_seeded_distribution(tmp_path, box_mesh):
    from shapezoo.fields.probing import D2_BINS, d2_descriptor

    box_mesh.export(tmp_path / "b.obj")
    a, b = d2_descriptor(str(tmp_path / "b.obj"), "b"), d2_descriptor(str(tmp_path / "b.obj"), "b")
    assert a.shape == (D2_BINS,) and np.array_equal(a, b) and a.sum() == pytest.approx(1.0)
    with pytest.raises(InputError, match="not available for the d2 baseline"):
        d2_descriptor(str(tmp_path / "gone.obj"), "gone")


def test_classifier_accuracy_is_predicted_from_latents_and_statnn_on_the_same_folds(mlp_zoo, mlp_space, tmp_path):
    from shapezoo.classifiers.accuracy_probe import probe_accuracy, statnn_features
    from shapezoo.classifiers.space import load_classifier_space

    zoo = load_zoo(mlp_zoo[0], kind="classifier")
    feats = statnn_features(zoo.spec, zoo.params[:3])
    assert feats.shape == (3, 7 * len(zoo.spec.layout().entries))
    space = load_classifier_space(mlp_space[0])
    latents = tmp_path / "z.safetensors"
    save_latents(latents, space.encode(zoo.spec, zoo.params), zoo.names, {"zoo": str(mlp_zoo[0])})
    result = probe_accuracy(latents, folds=4, out=tmp_path / "r.json")
    for features in ("latent", "statnn"):
        for model in ("ridge", "gbt"):
            assert 0.5 < result[features][model]["kendall_tau"] <= 1.0  # accuracies spread widely in this zoo
    assert json.loads((tmp_path / "r.json").read_text())["models"] == len(zoo.names)
    # accuracies are fitted on a logit scale; the zoo's second measurement (accuracy_val) is the noise reference
    assert result["scale"] == "logit"
    test_acc, val_acc = ([e["metrics"][k] for e in zoo.entries] for k in ("accuracy_test", "accuracy_val"))
    assert result["remeasured"]["measure"] == "accuracy_val"
    assert result["remeasured"]["kendall_tau"] == pytest.approx(kendalltau(test_acc, val_acc).statistic)
    loss = probe_accuracy(latents, target="loss", folds=4)
    assert loss["scale"] == "raw" and loss["remeasured"] is None
    with pytest.raises(InputError, match="--scale logit needs a target in"):
        probe_accuracy(latents, target="loss", folds=4, scale="logit")
    cli = runner.invoke(app, ["classifiers", "probe", str(latents), "--folds", "4", "--scale", "raw"])
    assert cli.exit_code == 0, cli.output
    assert "on a raw scale" in cli.output and "accuracy_val" in cli.output and "(measured)" in cli.output
    with pytest.raises(InputError, match="too few for 30 folds"):
        probe_accuracy(latents, folds=30)
    with pytest.raises(InputError, match="records no 'nope'"):
        probe_accuracy(latents, target="nope")
    # one split: fitted on the first models' latents, scored on the others only
    z, names = space.encode(zoo.spec, zoo.params), zoo.names
    first, rest = tmp_path / "first.safetensors", tmp_path / "rest.safetensors"
    save_latents(first, z[::2], names[::2], {"zoo": str(mlp_zoo[0])})
    save_latents(rest, z[1::2], names[1::2], {"zoo": str(mlp_zoo[0])})
    split = probe_accuracy(rest, train=first)
    assert split["folds"] == "train -> latents" and split["models"] == len(names[1::2])
    for features in ("latent", "statnn"):
        assert 0.5 < split[features]["ridge"]["kendall_tau"] <= 1.0, split
    with pytest.raises(InputError, match="shares"):
        probe_accuracy(latents, train=first)


def test_accuracy_is_regressed_on_a_logit_scale():
    """A target that is a sigmoid of a linear score is linear on the logit scale: ridge recovers it exactly there,
    and only approximately on the raw scale, where it saturates."""
    from shapezoo.classifiers.accuracy_probe import predict

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = 1 / (1 + np.exp(-(2.0 + X @ np.array([1.5, -1.0, 0.5, 0.0]))))
    folds = [(np.arange(150), np.arange(150, 200))]
    on_logit, on_raw = (predict(X, y, folds, 0, scale)["ridge"] for scale in ("logit", "raw"))
    assert on_logit["r2"] > 0.999 and on_logit["kendall_tau"] > 0.99
    assert on_raw["r2"] < 0.95 and on_raw["kendall_tau"] < on_logit["kendall_tau"]
