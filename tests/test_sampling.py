import numpy as np
import pytest
import trimesh

from shapezoo.fields.meshes import shape_from_arrays
from shapezoo.fields.samples import (
    SampleConfig,
    load_samples,
    open3d_module,
    sample_meshes,
    sample_shape,
    sample_surface,
)

METHODS = ["winding"] + (["raycast"] if open3d_module() is not None else [])


def _sphere_shape(holes: int = 0):
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    if holes:
        top = np.argsort(-mesh.triangles_center[:, 2])[:holes]
        mesh.update_faces(np.setdiff1d(np.arange(len(mesh.faces)), top))
    return shape_from_arrays("sphere", mesh.vertices, mesh.faces)


def _agreement_with_ball(samples, radius=0.45, margin=2e-3):
    """Share of points whose label matches |p| < r, ignoring a thin shell where the tessellation differs."""
    r = np.linalg.norm(samples["points"], axis=1)
    keep = np.abs(r - radius) > margin
    truth = r[keep] < radius
    return float((samples["occupancy"][keep].astype(bool) == truth).mean()), float(keep.mean())


@pytest.mark.parametrize("method", METHODS)
def test_labels_match_analytic_sphere(method):
    s = sample_shape(_sphere_shape(), SampleConfig(points=20_000, inside=method))
    acc, kept = _agreement_with_ball(s)
    assert acc >= 0.999 and kept > 0.8
    assert s["method"] == method


def test_labels_match_analytic_box_exactly():
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.25))
    s = sample_shape(shape_from_arrays("box", box.vertices, box.faces), SampleConfig(points=20_000))
    p = s["points"]
    truth = (np.abs(p) < np.array([0.45, 0.225, 0.1125])).all(axis=1)
    assert (s["occupancy"].astype(bool) == truth).mean() >= 0.9995


def test_winding_number_survives_holes():
    shape = _sphere_shape(holes=40)
    assert not shape.watertight
    s = sample_shape(shape, SampleConfig(points=20_000))
    assert s["method"] == "winding"
    acc, _ = _agreement_with_ball(s, margin=0.02)
    assert acc >= 0.99


def test_sample_layout_and_determinism():
    cfg = SampleConfig(points=10_001, uniform_fraction=0.5, sigmas=(0.01, 0.003))
    a, b = sample_shape(_sphere_shape(), cfg), sample_shape(_sphere_shape(), cfg)
    np.testing.assert_array_equal(a["points"], b["points"])
    assert a["points"].shape == (10_001, 3) and a["points"].dtype == np.float32
    assert a["n_uniform"] == 5000
    uniform, near = a["points"][:5000], a["points"][5000:]
    assert np.abs(uniform).max() <= 0.5
    surf_dist = np.abs(np.linalg.norm(near, axis=1) - 0.45)
    assert np.median(surf_dist) < 0.01 < np.median(np.abs(np.linalg.norm(uniform, axis=1) - 0.45))
    c = sample_shape(_sphere_shape(), SampleConfig(points=10_001, seed=1))
    assert not np.array_equal(a["points"], c["points"])


def test_surface_samples_lie_on_triangles(rng):
    mesh = trimesh.creation.box(extents=(1, 2, 3))
    pts, face = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), 2000, rng)
    half = np.array([0.5, 1.0, 1.5])
    assert (np.abs(pts) <= half + 1e-12).all()
    assert np.isclose(np.abs(pts), half, atol=1e-12).any(axis=1).all()
    areas = np.bincount(face, minlength=len(mesh.faces)) / 2000
    np.testing.assert_allclose(areas, mesh.area_faces / mesh.area, atol=0.03)


def test_folder_sampling_resumes_and_skips_bad_files(tmp_path, sphere_mesh, box_mesh):
    src = tmp_path / "meshes"
    src.mkdir()
    sphere_mesh.export(src / "a.obj")
    box_mesh.export(src / "b.stl")
    (src / "c.obj").write_text("v 0 0 0\n")
    out = tmp_path / "samples"
    cfg = SampleConfig(points=2000)
    index = sample_meshes(src, out, cfg)
    assert [s["name"] for s in index["shapes"]] == ["a", "b"]
    assert len(index["failed"]) == 1 and "c.obj: empty mesh" in index["failed"][0]["error"]
    first = (out / "a.safetensors").read_bytes()
    loaded = load_samples(out / "a.safetensors")
    assert loaded["points"].shape == (2000, 3) and loaded["n_uniform"] == "1000"
    again = sample_meshes(src, out, cfg)
    assert all(s.get("skipped") for s in again["shapes"])
    assert (out / "a.safetensors").read_bytes() == first
    changed = sample_meshes(src, out, SampleConfig(points=1000))
    assert not any(s.get("skipped") for s in changed["shapes"])
