import json

import pytest
from typer.testing import CliRunner

from shapezoo_cli.main import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _fails(args, *needles):
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, result.output
    for n in needles:
        assert any(n in e for e in errors), errors
    return result


def test_generate_then_sample(tmp_path):
    gen = _ok(["data", "generate", "chair", "--count", "8", "--out", str(tmp_path / "chairs")])
    assert gen["count"] == 8 and len(list((tmp_path / "chairs").glob("chair_*.obj"))) == 8
    summary = _ok(["data", "sample", str(tmp_path / "chairs"), "--out", str(tmp_path / "s"), "--points", "3000"])
    assert summary["shapes"] == 8 and summary["failed"] == [] and summary["robust_inside_test"] == 0
    index = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert all(len(e["sha256"]) == 64 and e["normalisation"]["scale"] > 0 for e in index["shapes"])
    again = _ok(["data", "sample", str(tmp_path / "chairs"), "--out", str(tmp_path / "s"), "--points", "3000"])
    assert again["skipped"] == 8


def test_generate_writes_to_the_family_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _ok(["data", "generate", "chair", "--count", "8"])["count"] == 8
    assert len(list((tmp_path / "chair").glob("chair_*.obj"))) == 8


def test_one_bad_file_is_reported_and_the_rest_processed(tmp_path):
    _ok(["data", "generate", "mug", "--count", "2", "--out", str(tmp_path / "m")])
    (tmp_path / "m" / "broken.obj").write_text("v 0 0 0\nv 1 1 nan\nv 0 1 0\nf 1 2 3\n")
    result = _fails(
        ["data", "sample", str(tmp_path / "m"), "--out", str(tmp_path / "s"), "--points", "1000"],
        "1 input(s) failed",
        "broken.obj: mesh has NaN",
    )
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "s").glob("*.safetensors")) == [
        "mug_0000.safetensors",
        "mug_0001.safetensors",
    ]


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda t: t / "missing.obj", "missing.obj: file or folder not found"),
        (lambda t: (t / "e").mkdir() or t / "e", "folder holds no mesh files"),
        (lambda t: (t / "x.xyz").write_text("1 2 3") and t / "x.xyz", "unsupported extension"),
        (
            lambda t: (t / "z.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n") and t / "z.obj",
            "zero-area",
        ),
    ],
)
def test_sample_bad_input_gives_one_line(tmp_path, make, needle):
    _fails(["data", "sample", str(make(tmp_path)), "--out", str(tmp_path / "o")], needle)


def test_unwritable_output_and_unknown_family(tmp_path):
    (tmp_path / "file").write_text("")
    _fails(
        ["data", "generate", "chair", "--count", "1", "--out", str(tmp_path / "file" / "sub")],
        "cannot create output directory",
    )
    _fails(["data", "generate", "sofa", "--out", str(tmp_path / "o")], "unknown shape family")


def test_help_is_instant_because_heavy_imports_are_lazy():
    import subprocess
    import sys

    heavy = "('torch', 'trimesh', 'open3d', 'skimage')"
    code = f"import sys, shapezoo_cli.main; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_cli_defaults_match_the_library_recipe():
    import inspect

    from shapezoo.fields.fitting import FitConfig
    from shapezoo.fields.network import FieldSpec
    from shapezoo_cli.fit import fit

    params = inspect.signature(fit).parameters
    # steps, lr and hard points unset: the recipe's for the start point, resolved in one place (FitConfig.resolve)
    assert params["steps"].default is None and params["lr"].default is None and params["hard_fraction"].default is None
    seeded, learned, shift = (FitConfig().resolve(s) for s in ("seeded", "learned", "shift"))
    assert seeded.steps == 4800 and learned.steps == shift.steps == 500 and learned.hard_fraction == 0.5
    assert seeded.lr == learned.lr == 5e-4 < shift.lr == 2e-3 and shift.trainable == "biases"
    # a resumed zoo keeps its own steps and hard points
    resumed = FitConfig().resolve("learned", {"steps": 300, "hard_fraction": 0.25})
    assert (resumed.steps, resumed.hard_fraction) == (300, 0.25)
    assert params["points_per_step"].default == FitConfig.points_per_step
    # --width/--depth unset: the init folder's architecture, else FieldSpec.from_arch's defaults, FieldSpec's own
    assert params["width"].default is None and params["depth"].default is None
    sizes = inspect.signature(FieldSpec.from_arch).parameters
    assert sizes["width"].default == FieldSpec.width and sizes["depth"].default == FieldSpec.depth
    # init base: the shift base's own width and the library's steps
    from shapezoo.fields.shift_base import BASE_WIDTH, BaseConfig
    from shapezoo_cli.init import base

    params = inspect.signature(base).parameters
    assert params["width"].default == BASE_WIDTH and params["steps"].default == BaseConfig.steps
    assert params["depth"].default == FieldSpec.depth and params["batch"].default == BaseConfig.batch
