"""Shared fixtures: small meshes written to tmp_path in every supported format; the digits data, a tiny mlp
classifier zoo and its space (trained once per session, used by the classifier library and CLI tests); a tiny field
zoo and its weight space (once per session, used by the weight-space library and CLI tests)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from space_zoo import QUICK, SEED, SMALL, fit_tiny_zoo

from shapezoo.classifiers.archs import ClassifierSpec
from shapezoo.classifiers.data import load_digits
from shapezoo.classifiers.space import SpaceConfig
from shapezoo.classifiers.train import SpaceTrainConfig, train_classifier_space
from shapezoo.classifiers.zoo import ZooConfig, train_zoo
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.space import train_space
from shapezoo.runtime import reuse_freed_memory

reuse_freed_memory()  # as the CLI does for its process: CPU fitting 2-3x faster


@pytest.fixture
def box_mesh() -> trimesh.Trimesh:
    """An axis-aligned 2 x 1 x 0.5 box centred at (1, 2, 3): its normalisation is known exactly."""
    return trimesh.creation.box(
        extents=(2.0, 1.0, 0.5), transform=trimesh.transformations.translation_matrix((1, 2, 3))
    )


@pytest.fixture
def sphere_mesh() -> trimesh.Trimesh:
    """A unit icosphere (subdivision 4): inside is |p| < 1 up to the tessellation error."""
    return trimesh.creation.icosphere(subdivisions=4, radius=1.0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def mlp_zoo(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("zoo") / "mlp"
    summary = train_zoo(
        ClassifierSpec("mlp", 16, (1, 8, 8), 10),
        digits,
        out,
        ZooConfig(count=40, batch=20, steps=(5, 300), lr=(2e-3, 4e-3), seed=SEED, init_seed=SEED),
    )
    return out, summary


@pytest.fixture(scope="session")
def mlp_space(tmp_path_factory, mlp_zoo, digits):
    out = tmp_path_factory.mktemp("space") / "mlp"
    zoo = load_zoo(mlp_zoo[0], kind="classifier")
    summary = train_classifier_space(
        [zoo],
        digits,
        out,
        model_config=SpaceConfig(latent=16, hidden=128),
        config=SpaceTrainConfig(epochs=60, batch=8, warmup=20, val=0.1, test=0.2, seed=SEED),
    )
    return out, summary


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    return fit_tiny_zoo(tmp_path_factory.mktemp("zoo") / "zoo")


@pytest.fixture(scope="session")
def trained(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("space") / "space"
    summary = train_space(load_zoo(tiny_zoo), out, SMALL, QUICK)
    return out, summary
