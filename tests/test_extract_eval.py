import json

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from shapezoo.fields.extract import ExtractConfig, export_mesh, extract_meshes
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.meshes import shape_from_arrays
from shapezoo.fields.network import FieldSpec, init_params
from shapezoo.fields.samples import SampleConfig, sample_shape
from shapezoo_cli.main import app

runner = CliRunner()
SLAB = FieldSpec(width=2, depth=1, activation="relu_pe", pe_freqs=1)


def slab_field(centre: float, half: float) -> torch.Tensor:
    """An exact ReLU field: logit = half - |x - centre|, a slab of thickness 2 * half across the domain."""
    w = {k: torch.zeros(s) for k, s in SLAB.layout().entries}
    w["layers.0.weight"][0, 0], w["layers.0.bias"][0] = 1.0, -centre  # relu(x - c)
    w["layers.0.weight"][1, 0], w["layers.0.bias"][1] = -1.0, centre  # relu(c - x)
    w["layers.1.weight"][0] = torch.tensor([-1.0, -1.0])
    w["layers.1.bias"][0] = half
    return SLAB.layout().flatten(w)


def _fitted_field():
    spec = FieldSpec(width=32, depth=2)
    mesh = trimesh.creation.capsule(height=1.0, radius=0.3)
    s = sample_shape(shape_from_arrays("c", mesh.vertices, mesh.faces), SampleConfig(points=8000))
    r = fit_fields(
        spec,
        init_params(spec),
        torch.from_numpy(s["points"])[None],
        torch.from_numpy(s["occupancy"])[None],
        s["n_uniform"],
        ["c"],
        FitConfig(steps=150, points_per_step=2048, lr=2e-3),
    )
    return spec, r.params


def test_coarse_to_fine_equals_dense_on_a_fitted_field():
    spec, params = _fitted_field()
    (dense,), n_dense = extract_meshes(spec, params, ExtractConfig(resolution=128, coarse=None))
    (fine,), n_fine = extract_meshes(spec, params, ExtractConfig(resolution=128, coarse=32))
    assert n_dense == 129**3 and n_fine < 0.2 * n_dense
    assert cKDTree(dense[0]).query(fine[0])[0].max() < 1e-6  # every fine vertex is a dense vertex
    missed = cKDTree(fine[0]).query(dense[0])[0] > 1e-6
    # Whatever coarse-to-fine misses are small blobs inside one coarse cell (the documented condition).
    for part in trimesh.Trimesh(*dense, process=False).split(only_watertight=False):
        lost = missed[cKDTree(dense[0]).query(part.vertices)[1]]
        assert not lost.any() or part.extents.max() < 2 / 32
    assert missed.mean() < 0.01 and len(fine[0]) > 1000
    main = max(trimesh.Trimesh(*fine, process=False).split(only_watertight=False), key=lambda p: len(p.faces))
    assert main.volume > 0  # faces wound outward


def test_coarse_to_fine_condition_thin_surfaces():
    thick = slab_field(0.013, 0.1)  # 0.2 thick: more than a coarse cell (1/16)
    thin = slab_field(0.013, 0.01)  # 0.02 thick, between coarse grid planes: below the documented condition
    cfg_d, cfg_c = ExtractConfig(resolution=64, coarse=None), ExtractConfig(resolution=64, coarse=16)
    (d,), _ = extract_meshes(SLAB, thick[None], cfg_d)
    (c,), _ = extract_meshes(SLAB, thick[None], cfg_c)
    assert len(d[1]) == len(c[1]) > 0 and cKDTree(d[0]).query(c[0])[0].max() < 1e-6
    np.testing.assert_allclose(sorted(set(np.round(d[0][:, 0], 6))), [0.013 - 0.1, 0.013 + 0.1], atol=1e-6)
    (d,), _ = extract_meshes(SLAB, thin[None], cfg_d)
    with pytest.warns(UserWarning, match="no surface"):
        (c,), _ = extract_meshes(SLAB, thin[None], cfg_c)
    assert len(d[1]) > 0 and len(c[1]) == 0


FIN = FieldSpec(width=4, depth=2, activation="relu_pe", pe_freqs=1)


def fin_on_slab_field(slab: float, fin: float) -> torch.Tensor:
    """An exact ReLU field: the union (max of logits) of a slab of half-thickness ``slab`` across x and a fin of
    half-thickness ``fin`` across y, both centred at 0.013: max(A, B) = B + relu(A - B), with B = relu(B + 2) - 2."""
    w = {k: torch.zeros(s) for k, s in FIN.layout().entries}
    for unit, (axis, sign) in enumerate([(0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)]):
        w["layers.0.weight"][unit, axis], w["layers.0.bias"][unit] = sign, -sign * 0.013  # relu(+-(x_axis - c))
    w["layers.1.weight"][0] = torch.tensor([-1.0, -1.0, 1.0, 1.0])  # relu(A - B)
    w["layers.1.bias"][0] = slab - fin
    w["layers.1.weight"][1] = torch.tensor([0.0, 0.0, -1.0, -1.0])  # relu(B + 2)
    w["layers.1.bias"][1] = fin + 2.0
    w["layers.2.weight"][0], w["layers.2.bias"][0] = torch.tensor([1.0, 1.0, 0.0, 0.0]), -2.0
    return FIN.layout().flatten(w)


def test_coarse_to_fine_traces_thin_parts_attached_to_a_body():
    # A 0.02 fin lies between the coarse grid planes (1/16 apart) and flips none of their points; it joins a 0.2
    # slab that the coarse grid sees, so tracing follows it across the whole domain, as the dense grid has it.
    field = fin_on_slab_field(0.1, 0.01)[None]
    (d,), n_dense = extract_meshes(FIN, field, ExtractConfig(resolution=64, coarse=None))
    (c,), n_traced = extract_meshes(FIN, field, ExtractConfig(resolution=64, coarse=16))
    assert len(c[1]) == len(d[1]) > 0 and cKDTree(d[0]).query(c[0])[0].max() < 1e-6 and n_traced < 0.5 * n_dense
    fin_faces = np.abs(c[0][c[1]].mean(1)[:, 0] - 0.013) > 0.11  # faces of the fin away from the slab
    assert c[0][c[1][fin_faces]][..., 0].min() < -0.45 and c[0][c[1][fin_faces]][..., 0].max() > 0.45
    with pytest.warns(UserWarning, match="no surface"):
        (alone,), _ = extract_meshes(FIN, fin_on_slab_field(-0.5, 0.01)[None], ExtractConfig(resolution=64, coarse=16))
    assert len(alone[1]) == 0  # the same fin alone flips no coarse point: missed, as documented


def test_skimage_mask_convention_is_the_far_corner():
    from shapezoo.fields.extract import marching_cubes

    v = np.zeros((4, 4, 4))
    v[1:3, 1:3, 1:3] = 1.0
    far = np.zeros_like(v, dtype=bool)
    far[1, 1, 1] = True  # far corner of cell (0, 0, 0) only
    assert len(marching_cubes(v, 0.5, far)[1]) == 1
    near = np.zeros_like(v, dtype=bool)
    near[0, 0, 0] = True
    with pytest.raises(RuntimeError):
        marching_cubes(v, 0.5, near)


def test_empty_field_gives_empty_mesh_with_warning():
    with pytest.warns(UserWarning, match="f0: the field has no surface"):
        (m,), _ = extract_meshes(SLAB, slab_field(0.0, -0.5)[None], ExtractConfig(resolution=32, coarse=8), ["f0"])
    assert m[0].shape == (0, 3) and m[1].shape == (0, 3)


@pytest.mark.parametrize("fmt", ["obj", "ply", "off", "stl", "glb"])
def test_export_formats_round_trip(tmp_path, fmt):
    box = trimesh.creation.box(extents=(0.5, 0.3, 0.2))
    path = tmp_path / f"box.{fmt}"
    export_mesh(np.asarray(box.vertices), np.asarray(box.faces), path)
    back = trimesh.load(path, force="mesh")
    assert len(back.faces) == 12 and np.allclose(back.extents, [0.5, 0.3, 0.2], atol=1e-6)


@pytest.fixture(scope="module")
def zoo_pair(tmp_path_factory):
    """Reference meshes, their samples, a fitted zoo and a deliberately under-fitted one."""
    root = tmp_path_factory.mktemp("eval")
    refs = root / "refs"
    refs.mkdir()
    trimesh.creation.capsule(height=1.0, radius=0.3).export(refs / "pill.obj")
    trimesh.creation.icosphere(2, radius=0.5).export(refs / "ball.obj")
    args = ["--width", "32", "--depth", "2", "--device", "cpu", "--points-per-step", "2048", "--lr", "2e-3"]
    assert (
        runner.invoke(app, ["data", "sample", str(refs), "--out", str(root / "s"), "--points", "30000"]).exit_code == 0
    )
    for name, steps in (("good", "400"), ("bad", "3")):
        res = runner.invoke(app, ["fit", str(root / "s"), "--out", str(root / name), "--steps", steps, *args])
        assert res.exit_code == 0, res.output
    return root


def test_mesh_and_eval_cli(zoo_pair):
    root = zoo_pair
    res = runner.invoke(app, ["mesh", str(root / "good"), "--out", str(root / "m"), "--resolution", "64"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (root / "m").glob("*.obj")) == ["ball.obj", "pill.obj"]
    res = runner.invoke(
        app,
        [
            "mesh",
            str(root / "good"),
            "--out",
            str(root / "orig"),
            "--resolution",
            "64",
            "--original-frame",
            "--names",
            "pill",
            "--format",
            "ply",
        ],
    )
    assert res.exit_code == 0, res.output
    original = trimesh.load(root / "refs" / "pill.obj", force="mesh")
    back = trimesh.load(root / "orig" / "pill.ply", force="mesh")
    np.testing.assert_allclose(back.bounds, original.bounds, atol=0.03)  # in the source file's frame again
    reports = {}
    for name in ("good", "bad"):
        out = root / f"{name}.json"
        res = runner.invoke(
            app,
            [
                "eval",
                str(root / name),
                "--reference",
                str(root / "refs"),
                "--out",
                str(out),
                "--resolution",
                "64",
                "--device",
                "cpu",
            ],
        )
        assert res.exit_code == 0, res.output
        reports[name] = json.loads(out.read_text())
    good = {e["name"]: e for e in reports["good"]["entries"]}
    assert set(good["pill"]) >= {"name", "iou", "chamfer_l1", "chamfer_l2", "fscore"}
    assert good["pill"]["iou"] > 0.9 and good["pill"]["chamfer_l2"] < 1e-4
    bad = {e["name"]: e for e in reports["bad"]["entries"]}
    for n in ("pill", "ball"):
        assert bad[n]["chamfer_l2"] > 5 * good[n]["chamfer_l2"] and bad[n]["iou"] < good[n]["iou"]
    res = runner.invoke(app, ["eval", "--pred", str(root / "m"), "--reference", str(root / "refs")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["entries"] == 2


def test_eval_and_mesh_bad_inputs_keep_going(zoo_pair, tmp_path):
    import shutil

    root = zoo_pair
    refs = tmp_path / "refs"
    shutil.copytree(root / "refs", refs)
    (refs / "ball.obj").write_text("v 0 0 0\n")  # empty reference
    res = runner.invoke(app, ["eval", str(root / "good"), "--reference", str(refs), "--resolution", "32"])
    assert res.exit_code == 1 and "ball.obj: empty mesh" in res.stderr and "Traceback" not in res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["entries"] == 1  # pill still scored
    (refs / "ball.obj").unlink()
    res = runner.invoke(app, ["eval", str(root / "good"), "--reference", str(refs), "--resolution", "32"])
    assert res.exit_code == 1 and "ball: no reference mesh" in res.stderr

    zoo = tmp_path / "nan_zoo"
    shutil.copytree(root / "good", zoo)
    from safetensors.torch import load_file, save_file

    w = load_file(zoo / "weights-00000.safetensors")
    w["params"][0, 3] = float("nan")
    save_file(w, zoo / "weights-00000.safetensors")
    res = runner.invoke(app, ["mesh", str(zoo), "--out", str(tmp_path / "m"), "--resolution", "32"])
    assert res.exit_code == 1 and "field weights contain NaN" in res.stderr
    assert len(list((tmp_path / "m").glob("*.obj"))) == 1

    save_file({"params": torch.zeros(2, 7)}, zoo / "weights-00000.safetensors")
    res = runner.invoke(app, ["mesh", str(zoo), "--out", str(tmp_path / "m2")])
    assert res.exit_code == 1 and "weights-00000.safetensors: tensor 'params' has shape (2, 7), expected" in res.stderr
