import numpy as np
import pytest
import trimesh

from shapezoo.errors import InputError
from shapezoo.fields.meshes import FRAME_EXTENT, find_meshes, load_mesh


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply", ".stl", ".glb"])
def test_each_format_loads_and_normalises(tmp_path, box_mesh, suffix):
    path = tmp_path / f"box{suffix}"
    box_mesh.export(path)
    shape = load_mesh(path)
    lo, hi = shape.vertices.min(0), shape.vertices.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
    np.testing.assert_allclose(hi - lo, [0.9, 0.45, 0.225], atol=1e-6)
    np.testing.assert_allclose(shape.normalisation.center, [1, 2, 3], atol=1e-6)
    assert shape.normalisation.scale == pytest.approx(FRAME_EXTENT / 2.0)
    assert shape.watertight
    assert len(shape.sha256) == 64 and shape.source == str(path)


def test_normalisation_round_trip_maps_back_to_source_frame(tmp_path, rng):
    mesh = trimesh.creation.icosphere(2, radius=3.7)
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    mesh.apply_translation([10.0, -4.0, 0.5])
    path = tmp_path / "s.ply"
    mesh.export(path)
    shape = load_mesh(path)
    assert np.ptp(shape.vertices, axis=0).max() == pytest.approx(0.9)
    assert np.abs(shape.vertices).max() <= 0.45 + 1e-9
    back = shape.normalisation.to_original(shape.vertices)
    dist, _ = trimesh.proximity.ProximityQuery(mesh).vertex(back)
    assert dist.max() < 1e-5  # the .ply file stores float32 coordinates


def test_scene_with_two_nodes_is_merged(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a")
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)),
        node_name="b",
        transform=trimesh.transformations.translation_matrix((3, 0, 0)),
    )
    path = tmp_path / "scene.glb"
    scene.export(path)
    shape = load_mesh(path)
    assert len(shape.faces) == 24
    np.testing.assert_allclose(np.ptp(shape.vertices, axis=0), [0.9, 0.225, 0.225], atol=1e-6)


def test_find_meshes_names_a_tree_uniquely(tmp_path, box_mesh):
    for rel in ["03001627/a/models/model.obj", "03001627/b/models/model.obj", "x.off", "notes.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".txt":
            p.write_text("not a mesh")
        else:
            box_mesh.export(p)
    names = [n for n, _ in find_meshes(tmp_path)]
    assert names == ["03001627__a__models__model", "03001627__b__models__model", "x"]


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case,problem",
    [
        ("missing", "file not found"),
        ("extension", "unsupported extension"),
        ("empty", "empty mesh"),
        ("nan", "NaN or infinite"),
        ("zero_area", "zero-area"),
        ("garbage", "cannot be read"),
    ],
)
def test_bad_meshes_raise_one_line_naming_the_file(tmp_path, case, problem):
    files = {
        "missing": lambda: tmp_path / "nope.obj",
        "extension": lambda: _write(tmp_path / "a.xyz", "1 2 3\n"),
        "empty": lambda: _write(tmp_path / "e.obj", "v 0 0 0\nv 1 0 0\n"),
        "nan": lambda: _write(tmp_path / "n.obj", "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n"),
        "zero_area": lambda: _write(tmp_path / "z.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n"),
        "garbage": lambda: _write(tmp_path / "g.glb", "this is not a glb file"),
    }
    path = files[case]()
    with pytest.raises(InputError) as err:
        load_mesh(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and problem in msg and "\n" not in msg


def test_folder_without_meshes(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(InputError, match="no mesh files"):
        find_meshes(tmp_path)
