"""The classifier CLI through Typer's CliRunner: every command on a tiny digits zoo and space, and bad inputs
(unknown architecture, dataset folder missing files, a zoo of another architecture) as one line and exit 1."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shapezoo.core.zoo import load_zoo
from shapezoo_cli.main import app


def test_cli_classifier_commands(tmp_path, mlp_zoo, mlp_space):
    runner = CliRunner()
    zoo, space = str(mlp_zoo[0]), str(mlp_space[0])
    r = runner.invoke(app, ["classifiers", "space", "info", space])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["archs"] == ["mlp-16"] and info["model"] == {"latent": 16, "hidden": 128, "basis": 256}
    r = runner.invoke(
        app,
        [
            "classifiers",
            "zoo",
            "--arch",
            "lenet-2",
            "--count",
            "3",
            "--batch",
            "3",
            "--steps-min",
            "2",
            "--steps-max",
            "10",
            "--out",
            str(tmp_path / "z"),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["models"] == 3
    r = runner.invoke(app, ["classifiers", "eval", zoo, "--space", space, "--out", str(tmp_path / "eval.json")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "eval.json").read_text())["models"]
    assert len(rows) == 40 and {"name", "arch", "accuracy_original", "accuracy_decoded"} <= set(rows[0])
    r = runner.invoke(
        app,
        [
            "classifiers",
            "encode",
            zoo,
            "--space",
            space,
            "--out",
            str(tmp_path / "z.safetensors"),
            "--names",
            "mlp-16-0000,mlp-16-0001",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["classifiers", "decode", str(tmp_path / "z.safetensors"), "--space", space, "--out", str(tmp_path / "dec")],
    )
    assert r.exit_code == 0, r.output
    decoded = load_zoo(tmp_path / "dec", kind="classifier")
    assert decoded.names == ["mlp-16-0000", "mlp-16-0001"]
    r = runner.invoke(
        app,
        [
            "classifiers",
            "interpolate",
            "mlp-16-0000",
            "mlp-16-0001",
            "--space",
            space,
            "--zoo",
            zoo,
            "--steps",
            "4",
            "--out",
            str(tmp_path / "interp"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "interp" / "interpolation.json").read_text())["accuracy_latent"]) == 4
    r = runner.invoke(
        app, ["classifiers", "optimize", "--space", space, "--steps", "20", "--out", str(tmp_path / "opt")]
    )
    assert r.exit_code == 0, r.output
    assert load_zoo(tmp_path / "opt" / "zoo", kind="classifier").names == ["optimized-mean"]
    r = runner.invoke(
        app,
        [
            "classifiers",
            "space",
            "train",
            zoo,
            "--out",
            str(tmp_path / "s2"),
            "--epochs",
            "1",
            "--latent",
            "8",
            "--hidden",
            "32",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output


def test_cli_bad_inputs_are_one_line(tmp_path, mlp_space):
    runner = CliRunner()
    r = runner.invoke(app, ["classifiers", "zoo", "--arch", "vgg", "--out", str(tmp_path / "z")])
    assert r.exit_code == 1 and "unknown architecture 'vgg'" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(
        app, ["classifiers", "zoo", "--data", "fashion-mnist", "--root", str(tmp_path), "--out", str(tmp_path / "z")]
    )
    assert r.exit_code == 1 and "missing fashion-mnist files" in r.stderr
    r = runner.invoke(
        app,
        [
            "classifiers",
            "zoo",
            "--arch",
            "cnn-2",
            "--count",
            "2",
            "--steps-min",
            "2",
            "--steps-max",
            "2",
            "--out",
            str(tmp_path / "cnn"),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["classifiers", "eval", str(tmp_path / "cnn"), "--space", str(mlp_space[0]), "--out", str(tmp_path / "e.json")],
    )
    assert r.exit_code == 1 and "models of architecture cnn-2" in r.stderr and "do not belong" in r.stderr
    assert not (tmp_path / "e.json").exists()
