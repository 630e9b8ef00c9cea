"""Shared fixtures: small meshes written to tmp_path in every supported format."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh


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
