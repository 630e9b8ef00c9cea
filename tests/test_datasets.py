import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from shapezoo.errors import ShapezooError
from shapezoo.fields.meshes import load_mesh
from shapezoo.fields.samples import SampleConfig, sample_shape
from shapezoo_datasets import FAMILIES, build, generate, sample_params


def test_same_seed_gives_byte_identical_files_across_processes(tmp_path):
    generate("chair", 3, tmp_path / "a", seed=5)
    code = f"from shapezoo_datasets import generate; generate('chair', 3, r'{tmp_path / 'b'}', seed=5)"
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ["chair_0005", "chair_0006", "chair_0007"]:
        for suffix in (".obj", ".json"):
            assert (tmp_path / "a" / (name + suffix)).read_bytes() == (tmp_path / "b" / (name + suffix)).read_bytes()
    other = generate("chair", 1, tmp_path / "c", seed=6)[0]
    assert other["params"] == json.loads((tmp_path / "a" / "chair_0006.json").read_text())["params"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_a_single_watertight_solid_within_its_ranges(family):
    for seed in range(4):
        params = sample_params(family, seed)
        for k, (lo, hi) in FAMILIES[family].ranges.items():
            assert lo <= params[k] <= hi
        mesh = build(family, params)
        assert mesh.is_volume and mesh.body_count == 1
    assert sample_params(family, 0) != sample_params(family, 1)


@pytest.mark.parametrize(
    "family,axis,formula",
    [
        ("chair", 2, lambda p: p["leg_length"] + p["seat_thickness"] + p["back_height"]),
        ("chair", 0, lambda p: p["seat_width"]),
        ("table", 2, lambda p: p["leg_length"] + p["top_thickness"]),
        ("table", 0, lambda p: p["top_width"]),
        ("airplane", 1, lambda p: p["wing_span"]),
        ("vase", 2, lambda p: p["height"]),
        ("mug", 2, lambda p: p["height"]),
    ],
)
def test_parameters_control_geometry_continuously(family, axis, formula):
    a, b = sample_params(family, 0), sample_params(family, 1)
    mid = {k: (a[k] + b[k]) / 2 for k in a}
    for p in (a, b, mid):
        assert build(family, p).extents[axis] == pytest.approx(formula(p), rel=1e-5)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ShapezooError, match="unknown shape family 'sofa'.*chair"):
        sample_params("sofa", 0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sampled_labels_agree_with_trimesh_contains(tmp_path, family):
    record = generate(family, 1, tmp_path, seed=3)[0]
    shape = load_mesh(tmp_path / f"{record['name']}.obj")
    assert shape.watertight
    s = sample_shape(shape, SampleConfig(points=20_000))
    reference = trimesh.Trimesh(shape.vertices, shape.faces).contains(s["points"].astype(np.float64))
    agreement = (reference == s["occupancy"].astype(bool)).mean()
    assert agreement >= 0.995, f"{family}: {agreement:.4f}"
