"""Issue 21: the learned prior (training, seeding, resume, conditioning, refusals) and the generation metrics
(checked against naive loops on tiny sets and on known cases), through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from space_zoo import SEED, write_meshes
from typer.testing import CliRunner

from shapezoo.core.latents import LATENTS_FILE, save_latents
from shapezoo.core.prior import PriorConfig, draw_latents, load_prior, space_latents, train_prior
from shapezoo.errors import InputError, ShapezooError
from shapezoo.fields.generation import chamfer_matrix, generation_metrics, mmd_cov, one_nna
from shapezoo_cli.main import app

TINY = PriorConfig(steps=300, batch=64, hidden=64, blocks=2, dropout=0.0, eval_every=50, sample_steps=20, seed=SEED)


def _latent_space(folder: Path, seed: int = SEED, per_class: int = 30) -> Path:
    """A stand-in space folder: two well-separated labelled clusters of 8-d latents (what a prior reads)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(2, 8)
    centres[0, 0], centres[1, 0] = -3.0, 3.0
    z = torch.cat([c + 0.3 * torch.randn(per_class, 8, generator=g) for c in centres])
    names = [f"{k}_{i:02d}" for k in ("a", "b") for i in range(per_class)]
    folder.mkdir(parents=True)
    (folder / "space.json").write_text(json.dumps({"format": "stand-in"}))
    save_latents(folder / LATENTS_FILE, z, names, {"labels": {n: n[0] for n in names}})
    return folder


def _naive_chamfer(x: np.ndarray, y: np.ndarray) -> float:
    d = ((x[:, None] - y[None]) ** 2).sum(-1)
    return (d.min(1).mean() + d.min(0).mean()) / 2


def test_chamfer_matrix_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 60, 3)), rng.random((5, 50, 3))
    got = chamfer_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    want = np.array([[_naive_chamfer(x, y) for y in b] for x in a])
    assert np.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_metrics_match_hand_computation_and_known_cases():
    rng = np.random.default_rng(1)
    gen, ref = rng.random((5, 40, 3)), rng.random((4, 40, 3)) + 0.05
    d = {
        k: chamfer_matrix(torch.from_numpy(x), torch.from_numpy(y))
        for k, (x, y) in {"gg": (gen, gen), "rr": (ref, ref), "gr": (gen, ref)}.items()
    }
    # by hand: MMD = mean over references of the nearest sample; COV = references hit as someone's nearest
    mmd = np.mean([min(_naive_chamfer(g, r) for g in gen) for r in ref])
    hit = {int(np.argmin([_naive_chamfer(g, r) for r in ref])) for g in gen}
    union = list(gen) + list(ref)
    correct = 0
    for i, x in enumerate(union):
        dist = [np.inf if j == i else _naive_chamfer(x, y) for j, y in enumerate(union)]
        correct += (int(np.argmin(dist)) < len(gen)) == (i < len(gen))
    got = generation_metrics(d["gg"], d["rr"], d["gr"])
    assert got["mmd"] == pytest.approx(mmd, rel=1e-9)
    assert got["cov"] == pytest.approx(len(hit) / len(ref))
    assert got["1-nna"] == pytest.approx(correct / len(union))

    same = torch.from_numpy(ref)
    d_same = chamfer_matrix(same, same)
    assert mmd_cov(d_same) == {"mmd": 0.0, "cov": 1.0}
    far = torch.from_numpy(gen + 10.0)
    assert one_nna(chamfer_matrix(far, far), d_same, chamfer_matrix(far, same)) == 1.0


def test_prior_learns_the_latents_conditions_on_labels_and_is_seeded(tmp_path):
    space = _latent_space(tmp_path / "space")
    summary = train_prior(space, tmp_path / "prior", PriorConfig(**{**TINY.__dict__, "conditional": True}))
    assert summary["labels"] == ["a", "b"] and summary["split"]["val"] == 6
    prior = load_prior(tmp_path / "prior")
    for label, sign in (("a", -1), ("b", 1)):
        z = prior.sample(40, seed=3 + SEED, label=label)
        # measured over SHAPEZOO_TEST_SEED 0-4 x default, avx2, avx512: share 1.0 every time, std 0.239-0.272
        assert (torch.sign(z[:, 0]) == sign).double().mean() >= 0.95  # the family asked for
        assert float(z[:, 1:].std()) < 1.5  # near the clusters' spread (0.3), not the noise's
    assert torch.equal(prior.sample(5, seed=7), prior.sample(5, seed=7))
    assert not torch.equal(prior.sample(5, seed=7), prior.sample(5, seed=8))
    z, what = draw_latents(space, 4, 0, tmp_path / "prior", "b")
    assert z.shape == (4, 8) and "learned prior" in what
    with pytest.raises(ShapezooError, match="no family 'c'"):
        prior.sample(2, label="c")
    with pytest.raises(ShapezooError, match="--count must be >= 1"):
        draw_latents(space, 0, 0, tmp_path / "prior")
    with pytest.raises(InputError, match="not the space this prior was trained on"):
        load_prior(tmp_path / "prior").check_source(
            space_latents(_latent_space(tmp_path / "other", seed=SEED + 1)), "other"
        )


def test_prior_on_principal_directions_samples_their_span(tmp_path):
    space = _latent_space(tmp_path / "space")
    train_prior(space, tmp_path / "prior", PriorConfig(**{**TINY.__dict__, "components": 2}))
    prior = load_prior(tmp_path / "prior")
    assert prior.basis.shape == (2, 8) and prior.meta["components"] == 2
    z = prior.sample(50, seed=SEED)
    centred = z - prior.mean
    assert torch.linalg.matrix_rank(centred, atol=1e-4) == 2  # in the span of the two directions
    # both clusters: 0.44-0.64 over SHAPEZOO_TEST_SEED 0-4 x default, avx2, avx512 (0.25-0.75 allowed)
    assert (torch.sign(z[:, 0]) < 0).double().mean().item() == pytest.approx(0.5, abs=0.25)
    with pytest.raises(ShapezooError, match="principal directions"):
        train_prior(space, tmp_path / "too_many", PriorConfig(**{**TINY.__dict__, "components": 60}))


def test_prior_training_resumes_to_the_same_model(tmp_path):
    space = _latent_space(tmp_path / "space")
    train_prior(space, tmp_path / "whole", TINY)

    class Stop(Exception):
        pass

    def stop_at_150(step, row):
        if step == 150:
            raise Stop

    with pytest.raises(Stop):
        train_prior(space, tmp_path / "cut", TINY, on_eval=stop_at_150)
    train_prior(space, tmp_path / "cut", TINY)
    whole, cut = load_prior(tmp_path / "whole"), load_prior(tmp_path / "cut")
    assert whole.meta["best"]["step"] == cut.meta["best"]["step"] == 300
    assert cut.meta["best"]["val"] == pytest.approx(whole.meta["best"]["val"], rel=1e-5)  # float rounding only
    assert torch.allclose(whole.sample(6, seed=1), cut.sample(6, seed=1), atol=1e-4)


def test_conditional_prior_needs_labels(tmp_path):
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "space.json").write_text("{}")
    save_latents(folder / LATENTS_FILE, torch.randn(10, 4), [f"m{i}" for i in range(10)])
    with pytest.raises(InputError, match="carry no label"):
        train_prior(folder, tmp_path / "prior", PriorConfig(**{**TINY.__dict__, "conditional": True}))


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_prior_sample_and_eval_generation(trained, tmp_path):
    space = trained[0]
    res = _run(
        ["prior", "train", space, "--out", tmp_path / "prior", "--steps", "60", "--hidden", "32", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    res = _run(
        [
            "sample",
            "--space",
            space,
            "--prior",
            tmp_path / "prior",
            "--count",
            "3",
            "--out",
            tmp_path / "gen",
            "--resolution",
            "32",
            "--seed",
            "4",
            "--device",
            "cpu",
        ]
    )
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "gen" / "sample.json").read_text())
    assert "learned prior" in record["prior"] and len(record["samples"]) == 3

    write_meshes(tmp_path / "ref", 4, seed=1)
    write_meshes(tmp_path / "train", 5, seed=2)
    res = _run(
        [
            "eval-generation",
            tmp_path / "ref",
            "--reference",
            tmp_path / "ref",
            "--train",
            tmp_path / "train",
            "--out",
            tmp_path / "eval",
            "--points",
            "256",
            "--device",
            "cpu",
        ]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "eval" / "generation.json").read_text())
    # the reference set scored against itself: every reference covered, nothing between them
    assert report["metrics"]["cov"] == 1.0 and report["metrics"]["mmd"] == 0.0
    assert report["novelty"]["ratio"] == pytest.approx(1.0)
    assert (tmp_path / "eval" / "nearest.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--count", "0"], "--count must be >= 1"),
        (["sample", "--family", "chair"], "no training member of family 'chair'"),
        (["sample", "--prior", "OTHER"], "not the space this prior was trained on"),
    ],
)
def test_cli_sample_refusals(trained, tmp_path, args, message):
    other = _latent_space(tmp_path / "other")
    train_prior(other, tmp_path / "other_prior", TINY)
    args = [tmp_path / "other_prior" if a == "OTHER" else a for a in args]
    res = _run([*args, "--space", trained[0], "--out", tmp_path / "gen", "--device", "cpu"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.output
    assert not (tmp_path / "gen").exists()  # refused before anything is written


def test_cli_classifier_sample_is_seeded_and_reports_novelty(mlp_space, mlp_zoo, tmp_path):
    space, zoo = mlp_space[0], mlp_zoo[0]
    res = _run(
        ["prior", "train", space, "--out", tmp_path / "prior", "--steps", "60", "--hidden", "32", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    for out in ("a", "b"):
        res = _run(
            [
                "classifiers",
                "sample",
                "--space",
                space,
                "--prior",
                tmp_path / "prior",
                "--count",
                "5",
                "--zoo",
                zoo,
                "--out",
                tmp_path / out,
                "--seed",
                "3",
                "--device",
                "cpu",
            ]
        )
        assert res.exit_code == 0, res.output
    from shapezoo.classifiers.archs import accuracy
    from shapezoo.classifiers.data import load_digits
    from shapezoo.core.zoo import load_zoo

    a, b = load_zoo(tmp_path / "a", kind="classifier"), load_zoo(tmp_path / "b", kind="classifier")
    assert torch.equal(a.params, b.params) and len(a.names) == 5  # same seed, same models
    data = load_digits()
    recomputed = accuracy(a.spec, a.params, *data.test).tolist()
    for entry, acc in zip(a.entries, recomputed):
        m = entry["metrics"]
        assert m["accuracy_test"] == pytest.approx(acc)
        assert 0.0 <= m["disagreement_to_nearest_training"] <= 1.0 and m["nearest_training"]
    res = _run(["classifiers", "sample", "--space", space, "--count", "0", "--out", tmp_path / "c", "--device", "cpu"])
    assert res.exit_code == 1 and "--count must be >= 1" in res.output and not (tmp_path / "c").exists()


def test_bad_prior_files_and_generation_inputs_are_one_line(trained, tmp_path):
    space = trained[0]
    train_prior(space, tmp_path / "prior", TINY)
    (tmp_path / "prior" / "prior.safetensors").write_bytes(b"not a safetensors file")
    res = _run(
        ["sample", "--space", space, "--prior", tmp_path / "prior", "--out", tmp_path / "gen", "--device", "cpu"]
    )
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert any(ln.startswith("error:") and "prior.safetensors" in ln for ln in res.output.splitlines()), res.output
    write_meshes(tmp_path / "meshes", 3)
    res = _run(
        [
            "eval-generation",
            tmp_path / "meshes",
            "--reference",
            tmp_path / "meshes",
            "--train",
            tmp_path / "meshes",
            "--space",
            space,
            "--out",
            tmp_path / "eval",
            "--device",
            "cpu",
        ]
    )
    assert (
        res.exit_code == 1 and "has no mesh for" in res.output and not (tmp_path / "eval" / "generation.json").exists()
    )


def test_prior_train_refuses_a_folder_another_process_writes(tmp_path):
    import socket
    import subprocess
    import sys

    from shapezoo.io import LOCK_FILE

    space = _latent_space(tmp_path / "space")
    out = tmp_path / "prior"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        res = _run(["prior", "train", space, "--out", out, "--steps", "5", "--device", "cpu"])
        assert res.exit_code == 1 and "another shapezoo" in res.output and str(sleeper.pid) in res.output
        assert not (out / "prior.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
