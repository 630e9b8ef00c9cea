import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import trimesh
from safetensors.torch import load_file
from typer.testing import CliRunner

from shapezoo.core.zoo import load_zoo
from shapezoo.errors import InputError
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldModule, FieldSpec, field_forward, init_params
from shapezoo.fields.samples import SampleConfig, load_samples, sample_meshes
from shapezoo_cli.main import app

runner = CliRunner()
TINY = ["--width", "16", "--depth", "2", "--points-per-step", "256", "--lr", "2e-3", "--device", "cpu"]


@pytest.fixture
def samples(tmp_path):
    src = tmp_path / "meshes"
    src.mkdir()
    shapes = {
        "ball": trimesh.creation.icosphere(2),
        "brick": trimesh.creation.box(extents=(1, 0.5, 0.3)),
        "pill": trimesh.creation.capsule(height=1.0, radius=0.3),
        "ring": trimesh.creation.annulus(r_min=0.3, r_max=0.6, height=0.3),
    }
    for name, mesh in shapes.items():
        mesh.export(src / f"{name}.obj")
    sample_meshes(src, tmp_path / "samples", SampleConfig(points=1500))
    return tmp_path / "samples"


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_fit_info_export_round_trip(tmp_path, samples):
    zoo = tmp_path / "zoo"
    res = _invoke("fit", samples, "--out", zoo, "--steps", "30", "--batch", "3", *TINY)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["fields"] == 4 and summary["ok"] == 4 and summary["iou"]["count"] == 4
    manifest = json.loads((zoo / "zoo.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == ["weights-00000.safetensors", "weights-00001.safetensors"]
    entry = manifest["fields"][0]
    assert {"name", "source", "sha256", "status", "metrics"} <= set(entry) and "iou" in entry["metrics"]
    z = load_zoo(zoo)
    assert z.params.shape == (4, FieldSpec(width=16, depth=2).layout().size)
    info = _invoke("zoo", "info", zoo)
    assert info.exit_code == 0 and json.loads(info.stdout.strip().splitlines()[-1])["fields"] == 4
    x = torch.rand(1, 64, 3) - 0.5
    expected = field_forward(z.spec, z.weights("pill")[None], x)[0]
    for suffix in (".safetensors", ".pt"):
        out = tmp_path / f"pill{suffix}"
        assert _invoke("zoo", "export", zoo, "pill", "--out", out).exit_code == 0
        state = load_file(out) if suffix == ".safetensors" else torch.load(out, weights_only=True)["state_dict"]
        module = FieldModule(z.spec)
        module.load_state_dict(state)
        torch.testing.assert_close(module(x[0]), expected, rtol=1e-5, atol=1e-5)


def test_killed_fit_resumes_and_keeps_finished_fields(tmp_path, samples):
    zoo = tmp_path / "zoo"
    cmd = [
        sys.executable,
        "-m",
        "shapezoo_cli.main",
        "fit",
        str(samples),
        "--out",
        str(zoo),
        "--steps",
        "400",
        "--batch",
        "1",
        *TINY,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (zoo / "zoo.json").exists() and len(json.loads((zoo / "zoo.json").read_text())["shards"]) >= 1:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = json.loads((zoo / "zoo.json").read_text())
    done = len(first["shards"])
    assert 1 <= done < 4, "the job should be killed mid-run"
    kept = {s["file"]: (zoo / s["file"]).read_bytes() for s in first["shards"]}
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    final = json.loads((zoo / "zoo.json").read_text())
    assert sorted(f["name"] for f in final["fields"]) == ["ball", "brick", "pill", "ring"]
    assert json.loads(res.stdout.strip().splitlines()[-1])["fitted_now"] == 4 - done
    for file, data in kept.items():
        assert (zoo / file).read_bytes() == data


def test_template_is_fitted_first_and_every_field_starts_from_it(tmp_path, samples):
    zoo = tmp_path / "zoo"
    args = ("fit", samples, "--out", zoo, "--steps", "40", "--batch", "4", "--template", "pill", *TINY)
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    z = load_zoo(zoo)
    spec, config = z.spec, FitConfig(steps=40, points_per_step=256, lr=2e-3)
    data = [load_samples(samples / f"{n}.safetensors") for n in z.names]
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data])
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data])
    nu, pill = int(data[0]["n_uniform"]), z.index("pill")
    alone = fit_fields(spec, init_params(spec, 0), pts[pill : pill + 1], occ[pill : pill + 1], nu, ["pill"], config)
    torch.testing.assert_close(z.init, alone.params[0], rtol=1e-5, atol=1e-6)  # the template, fitted first
    from_template = fit_fields(spec, z.init, pts, occ, nu, z.names, config)  # every field starts from it
    torch.testing.assert_close(z.params, from_template.params, rtol=1e-4, atol=1e-5)
    assert z.meta["fit"]["template"] == "pill" and all(e["status"] == "ok" for e in z.entries)
    before = (zoo / "init.safetensors").read_bytes()
    again = _invoke(*args)
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["fitted_now"] == 0
    assert (zoo / "init.safetensors").read_bytes() == before
    other = _invoke(*args[: -len(TINY) - 1], "ball", *TINY)
    assert other.exit_code == 1 and "different 'fit'" in other.stderr
    res = _invoke("fit", samples, "--out", tmp_path / "z2", "--template", "cube", *TINY)
    assert res.exit_code == 1 and "template shape 'cube' is not in the samples" in res.stderr


def test_bad_samples_fail_only_their_field(tmp_path, samples):
    from safetensors.numpy import load_file as load_np
    from safetensors.numpy import save_file

    data = load_np(samples / "ring.safetensors")
    data["occupancy"][:] = 0
    save_file(data, samples / "ring.safetensors", metadata={"n_uniform": "750"})
    res = _invoke("fit", samples, "--out", tmp_path / "zoo", "--steps", "10", *TINY)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "error: ring: every sample is outside" in res.stderr
    z = load_zoo(tmp_path / "zoo")
    assert {e["name"]: e["status"] for e in z.entries} == {"ball": "ok", "brick": "ok", "pill": "ok", "ring": "failed"}


def test_zoo_validation_errors(tmp_path, samples):
    zoo = tmp_path / "zoo"
    assert _invoke("fit", samples, "--out", zoo, "--steps", "5", *TINY).exit_code == 0
    manifest = json.loads((zoo / "zoo.json").read_text())
    manifest["spec"]["width"] = 32
    manifest["param_count"] = FieldSpec(width=32, depth=2).layout().size
    (zoo / "zoo.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="weights-00000.safetensors: tensor .params. has shape"):
        load_zoo(zoo)
    (zoo / "weights-00000.safetensors").write_bytes(b"garbage")
    res = _invoke("zoo", "info", zoo)
    assert res.exit_code == 1 and "corrupt safetensors" in res.stderr
    res = _invoke("fit", samples, "--out", zoo, "--steps", "5", *TINY)
    assert res.exit_code == 1 and "different spec" in res.stderr


def test_fit_bad_arguments(tmp_path, samples):
    (tmp_path / "file").write_text("")
    res = _invoke("fit", samples, "--out", tmp_path / "file" / "zoo", *TINY)
    assert res.exit_code == 1 and "cannot create output directory" in res.stderr
    res = _invoke("fit", samples, "--out", tmp_path / "z", "--arch", "tanh")
    assert res.exit_code == 1 and "unknown --arch" in res.stderr
    res = _invoke("fit", tmp_path / "nothing", "--out", tmp_path / "z")
    assert res.exit_code == 1 and "samples.json: file not found" in res.stderr
