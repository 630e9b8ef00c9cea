"""The weight-space CLI through Typer's CliRunner on the tiny zoo: train, encode/decode, interpolate, sample,
optimize, info, and bad inputs as one clear line with a non-zero exit."""

import json

import numpy as np
import torch
import trimesh
from typer.testing import CliRunner

from shapezoo.core.zoo import load_zoo, save_zoo
from shapezoo.fields.network import FieldSpec, init_params
from shapezoo.fields.space import load_space
from shapezoo.fields.space.inference import PRIOR_WEIGHTS, refine_latents
from shapezoo_cli.main import app

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _last_json(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_cli_space_round_trip(trained, tiny_zoo, tmp_path):
    space = trained[0]
    latents = tmp_path / "latents.safetensors"
    res = _invoke("encode", tiny_zoo, "--space", space, "--out", latents, "--refine", 20, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert _last_json(res)["latents"] == 12 and _last_json(res)["refine_steps"] == 20
    res = _invoke("decode", latents, "--space", space, "--out", tmp_path / "decoded", "--device", "cpu")
    assert res.exit_code == 0, res.output
    decoded = load_zoo(tmp_path / "decoded")
    s, params = load_space(space), load_zoo(tiny_zoo).params
    expected = s.decode(refine_latents(s, params, s.encode(params), 20))
    torch.testing.assert_close(decoded.params, expected, rtol=1e-5, atol=1e-6)
    res = _invoke("mesh", tmp_path / "decoded", "--out", tmp_path / "meshes", "--resolution", "32", "--device", "cpu")
    assert res.exit_code == 0, res.output
    info = _invoke("space", "info", space)
    assert info.exit_code == 0 and json.loads(info.stdout)["model"]["latent"] == 16


def test_cli_encodes_a_folder_of_meshes(trained, tiny_zoo, tmp_path):
    """Meshes are sampled and fitted from the zoo's start; a space that refines fits them for a third of the zoo's steps
    (``--steps`` overrides); the latents file records each mesh's fit, and decoding gives fields that fit the mesh."""
    from space_zoo import write_meshes

    from shapezoo.core.latents import read_latents

    meshes = write_meshes(tmp_path / "meshes", 2, seed=5)
    out = tmp_path / "z.safetensors"
    res = _invoke("encode", meshes, "--space", trained[0], "--out", out, "--refine", 5, "--device", "cpu")
    assert res.exit_code == 0, res.output
    found = read_latents(out)
    zoo_steps = load_zoo(tiny_zoo).meta["fit"]["steps"]
    assert found.names == ["shape_5_00", "shape_5_01"] and found.z.shape == (2, 16)
    fits = found.meta["fits"]
    assert [f["fit_steps"] for f in fits.values()] == [zoo_steps // 3] * 2
    assert all(f["fit_iou"] > 0.5 for f in fits.values()) and _last_json(res)["fit_iou_median"] > 0.5
    res = _invoke("encode", meshes, "--space", trained[0], "--out", out, "--refine", 0, "--steps", 7, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert [f["fit_steps"] for f in read_latents(out).meta["fits"].values()] == [7, 7]


def test_cli_train_interpolate_sample_optimize(tiny_zoo, tmp_path):
    space = tmp_path / "space"
    res = _invoke(
        "space",
        "train",
        tiny_zoo,
        "--out",
        space,
        "--latent",
        "16",
        "--epochs",
        "4",
        "--batch",
        "4",
        "--points",
        "256",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert _last_json(res)["design"] == "neuron" and "train_codes" in _last_json(res)["results"]
    ae = tmp_path / "ae"
    args = ["--latent", 8, "--epochs", 2, "--batch", 4, "--points", 256, "--device", "cpu", "--no-codes", "--trunk", 8]
    res = _invoke("space", "train", tiny_zoo, "--out", ae, *args)
    assert res.exit_code == 0, res.output
    header = json.loads((ae / "space.json").read_text())
    assert header["model"]["trunk"] == 8 and header["train"]["codes"] is False
    out = tmp_path / "interp"
    res = _invoke(
        "interpolate",
        "shape_00",
        "shape_01",
        "--space",
        space,
        "--zoo",
        tiny_zoo,
        "--steps",
        "4",
        "--out",
        out,
        "--resolution",
        "32",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    steps = json.loads((out / "interpolation.json").read_text())["steps"]
    assert len(steps) == 4 and sorted(p.name for p in out.glob("step_*.obj")) == [f"step_0{i}.obj" for i in range(4)]
    res = _invoke(
        "interpolate",
        "shape_00",
        "shape_01",
        "--space",
        space,
        "--zoo",
        tiny_zoo,
        "--steps",
        "3",
        "--weights",
        "--out",
        tmp_path / "raw",
        "--resolution",
        "32",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert _last_json(res)["mode"] == "weights"
    ball = tmp_path / "ball.obj"
    trimesh.creation.icosphere(2, radius=0.3).export(ball)
    args = ["--space", space, "--zoo", tiny_zoo, "--steps", "3", "--resolution", "32", "--device", "cpu"]
    res = _invoke("interpolate", ball, "shape_01", "--out", tmp_path / "m", *args)
    assert res.exit_code == 0, res.output
    start = _last_json(res)["a"]
    assert start["mesh"] == str(ball) and start["fit_iou"] > 0.5  # fitted on the fly with the zoo's recipe
    res = _invoke(
        "sample",
        "--space",
        space,
        "--count",
        "2",
        "--out",
        tmp_path / "samples",
        "--resolution",
        "32",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert len(_last_json(res)["samples"]) == 2
    pts = trimesh.creation.icosphere(2, radius=0.3).sample(500)
    cloud = tmp_path / "half.xyz"
    np.savetxt(cloud, pts[pts[:, 0] > 0])
    res = _invoke(
        "optimize",
        "--space",
        space,
        "--points",
        cloud,
        "--out",
        tmp_path / "opt",
        "--steps",
        "20",
        "--resolution",
        "32",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "opt" / "completed.obj").exists() and _last_json(res)["points"] == len(pts[pts[:, 0] > 0])
    assert _last_json(res)["prior_weight"] == PRIOR_WEIGHTS["neuron"]  # the design's own, unless --prior is given


def test_cli_bad_inputs_fail_with_one_line(trained, tiny_zoo, tmp_path):
    space = trained[0]
    other = tmp_path / "other_zoo"
    spec = FieldSpec(width=8, depth=2)
    save_zoo(other, spec, torch.zeros(1, spec.layout().size), [{"name": "x", "status": "ok"}], init_params(spec), {})
    res = _invoke("encode", other, "--space", space, "--out", tmp_path / "l.safetensors", "--device", "cpu")
    assert res.exit_code == 1 and "cannot be used with a space trained on" in res.output
    assert len(res.output.strip().splitlines()) == 1
    from shapezoo.fields.space import save_latents

    wrong = tmp_path / "wrong.safetensors"
    save_latents(wrong, torch.zeros(2, 7), ["a", "b"])
    res = _invoke("decode", wrong, "--space", space, "--out", tmp_path / "d1", "--device", "cpu")
    assert res.exit_code == 1 and "(N, 16)" in res.output and not (tmp_path / "d1").exists()
    nan = tmp_path / "nan.safetensors"
    save_latents(nan, torch.full((1, 16), float("nan")), ["a"])
    res = _invoke("decode", nan, "--space", space, "--out", tmp_path / "d2", "--device", "cpu")
    assert res.exit_code == 1 and "NaN" in res.output
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    res = _invoke(
        "interpolate",
        empty,
        "shape_00",
        "--space",
        space,
        "--zoo",
        tiny_zoo,
        "--out",
        tmp_path / "i",
        "--device",
        "cpu",
    )
    assert res.exit_code == 1 and "empty.obj" in res.output
    far = tmp_path / "far.xyz"
    np.savetxt(far, np.full((5, 3), 3.0))
    res = _invoke("optimize", "--space", space, "--points", far, "--out", tmp_path / "o", "--device", "cpu")
    assert res.exit_code == 1 and "--normalise" in res.output
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "space.json").write_text("{not json")
    res = _invoke("space", "info", tmp_path / "broken")
    assert res.exit_code == 1 and "space.json" in res.output
