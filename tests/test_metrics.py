import numpy as np
import pytest
import torch
import trimesh

from shapezoo.fields.mesh_metrics import (
    mesh_metrics,
    nearest_kdtree,
    nearest_torch,
    point_metrics,
    surface_points,
    volume_iou,
)


def _naive(query, ref):
    d = np.sqrt(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.argmin(1)


def _sphere_points(n, radius, seed):
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_kdtree_and_torch_match_naive_reference(rng):
    q, r = rng.random((700, 3)) - 0.5, rng.random((500, 3)) - 0.5
    d_ref, i_ref = _naive(q, r)
    d_kd, i_kd = nearest_kdtree(q, r)
    d_t, i_t = nearest_torch(torch.from_numpy(q), torch.from_numpy(r), chunk=128)
    np.testing.assert_allclose(d_kd, d_ref, rtol=1e-12)
    np.testing.assert_allclose(d_t.numpy(), d_ref, rtol=1e-6)
    assert (i_kd == i_ref).all() and (i_t.numpy() == i_ref).all()


def test_kdtree_and_torch_paths_agree_on_metrics(rng):
    a, b = rng.random((3000, 3)) - 0.5, rng.random((2500, 3)) - 0.5
    cpu = point_metrics(a, b, device="cpu")
    dist_t = nearest_torch(torch.from_numpy(a), torch.from_numpy(b))[0].numpy()
    np.testing.assert_allclose(dist_t, nearest_kdtree(a, b)[0], rtol=1e-6)
    d_kd, d_gp = nearest_kdtree(a, b)[0], nearest_torch(torch.from_numpy(b), torch.from_numpy(a))[0].numpy()
    assert cpu["chamfer_l2"] == pytest.approx(((d_kd**2).mean() + (d_gp**2).mean()) / 2, rel=1e-6)
    assert cpu["chamfer_l1"] > 0 and 0 <= cpu["fscore"] <= 1


def test_concentric_spheres_have_analytic_chamfer():
    inner, outer = _sphere_points(30000, 0.30, 0), _sphere_points(30000, 0.35, 1)
    m = point_metrics(inner, outer, tau=0.01)
    assert m["chamfer_l1"] == pytest.approx(0.05, rel=0.02)
    assert m["chamfer_l2"] == pytest.approx(0.05**2, rel=0.04)
    assert m["fscore"] == 0.0
    close = point_metrics(inner, _sphere_points(30000, 0.305, 2), tau=0.01)
    assert close["fscore"] > 0.99


def test_identical_meshes_score_perfectly_and_normals_agree():
    mesh = trimesh.creation.icosphere(3, radius=0.4)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    m = mesh_metrics((v, f), (v, f), count=20000)
    assert m["chamfer_l1"] < 8e-3 and m["fscore"] > 0.9 and m["normal_consistency"] > 0.98  # sampling noise only
    shifted = mesh_metrics((v + [0.05, 0, 0], f), (v, f), count=20000)
    assert shifted["chamfer_l2"] > 10 * m["chamfer_l2"]
    empty = mesh_metrics((np.zeros((0, 3)), np.zeros((0, 3), dtype=int)), (v, f))
    assert empty["chamfer_l1"] == float("inf") and empty["fscore"] == 0.0


def test_surface_sampling_is_seeded():
    mesh = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    a, _ = surface_points(v, f, 1000, seed=3)
    b, _ = surface_points(v, f, 1000, seed=3)
    c, _ = surface_points(v, f, 1000, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_volume_iou():
    a = np.array([1, 1, 0, 0], bool)
    assert volume_iou(a, np.array([1, 0, 1, 0], bool)) == pytest.approx(1 / 3)
    assert volume_iou(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
