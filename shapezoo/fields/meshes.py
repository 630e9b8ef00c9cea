"""Load mesh files, validate them and normalise them into shapezoo's frame (bbox centre 0, longest side 0.9)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError
from ..io import sha256_file
from ..schema import Num, Vec

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")
FRAME_EXTENT = 0.9
"""Longest bounding-box side of a normalised mesh; the field domain is the cube [-0.5, 0.5]^3 (DESIGN.md)."""


@dataclass(frozen=True)
class Normalisation:
    """The similarity that maps original coordinates into the frame: ``frame = (orig - center) * scale``."""

    center: tuple[float, float, float]
    scale: float

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) original coordinates -> (n, 3) frame coordinates."""
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.center)) * self.scale

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) frame coordinates -> (n, 3) original coordinates."""
        return np.asarray(points, dtype=np.float64) / self.scale + np.asarray(self.center)

    def to_dict(self) -> dict:
        return {"center": list(self.center), "scale": self.scale}

    SHAPE: ClassVar[dict] = {"center": Vec(3), "scale": Num(lo=1e-12)}
    """How a normalisation is stored in JSON (``schema.check``)."""

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        x, y, z = (float(c) for c in d["center"])
        return cls(center=(x, y, z), scale=float(d["scale"]))


@dataclass(frozen=True)
class Shape:
    """A validated triangle mesh in the frame, with where it came from.

    Attributes:
        name: identifier unique within a collection (relative path without suffix, '/' -> '__').
        source: path of the file it was loaded from.
        sha256: content hash of that file.
        vertices: (v, 3) float64 vertices in the frame.
        faces: (f, 3) int64 triangle indices.
        normalisation: maps frame coordinates back to the source file's coordinates.
    """

    name: str
    source: str
    sha256: str
    vertices: np.ndarray
    faces: np.ndarray
    normalisation: Normalisation

    @functools.cached_property
    def watertight(self) -> bool:
        """Every edge shared by exactly two consistently wound faces, enclosing positive volume (computed when first
        asked: it costs more than loading, and only sampling needs it)."""
        return bool(self.to_trimesh().is_volume)

    def to_trimesh(self):
        """The mesh as a ``trimesh.Trimesh`` in the frame."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    def record(self) -> dict:
        """JSON-ready provenance: name, source, hash, normalisation, watertightness."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "normalisation": self.normalisation.to_dict(),
            "watertight": self.watertight,
        }


def normalisation_for(vertices: np.ndarray) -> Normalisation:
    """Centre of the bounding box, scale so the longest side becomes FRAME_EXTENT."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((hi - lo).max())
    x, y, z = (float(c) for c in (lo + hi) / 2)
    return Normalisation(center=(x, y, z), scale=FRAME_EXTENT / extent)


def load_mesh(path: str | Path, name: str | None = None) -> Shape:
    """Read one mesh file (scenes are merged with their transforms), validate it, normalise it.

    Raises:
        InputError: missing file, unsupported extension, unreadable file, no faces, non-finite vertices,
            or zero surface area; the message names the file and the problem.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(path, f"unsupported extension '{path.suffix}' (supported: {', '.join(MESH_SUFFIXES)})")
    try:
        loaded = trimesh.load_scene(str(path), process=False)
        mesh = loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded
    except Exception as exc:  # trimesh raises many exception types for damaged files
        raise InputError(path, f"cannot be read as a mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(path, "empty mesh (no triangles)")
    return shape_from_arrays(name or path.stem, mesh.vertices, mesh.faces, str(path), sha256_file(path))


def shape_from_arrays(
    name: str, vertices: np.ndarray, faces: np.ndarray, source: str = "<memory>", sha256: str | None = None
) -> Shape:
    """Validate and normalise a mesh given as arrays; ``source`` names it in errors.

    Args:
        vertices: (v, 3) float vertices in any frame.
        faces: (f, 3) int triangle indices.
        sha256: content hash of the source file; hashed from the arrays when not given.
    """
    import trimesh

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise InputError(source, "empty mesh (no triangles)")
    if not np.isfinite(vertices).all():
        raise InputError(source, "mesh has NaN or infinite vertex coordinates")
    used = vertices[np.unique(faces)]
    area = float(trimesh.triangles.area(vertices[faces]).sum())
    if area <= 0.0 or float(np.ptp(used, axis=0).max()) <= 0.0:
        raise InputError(source, "zero-area mesh (all triangles are degenerate)")
    norm = normalisation_for(used)
    framed = trimesh.Trimesh(norm.to_frame(vertices), faces, process=True)
    framed.remove_unreferenced_vertices()
    if sha256 is None:
        sha256 = hashlib.sha256(vertices.tobytes() + faces.tobytes()).hexdigest()
    return Shape(
        name=name,
        source=source,
        sha256=sha256,
        vertices=np.asarray(framed.vertices, dtype=np.float64),
        faces=np.asarray(framed.faces, dtype=np.int64),
        normalisation=norm,
    )


def shape_label(name: str, path: Path) -> str | None:
    """A shape's class: the ``family`` of a procedural shape (its ``NAME.json`` beside the mesh), else the top
    folder of a tree (``class/.../name.ext`` as ModelNet and ShapeNet lay out, i.e. the first part of the name),
    else None."""
    import json

    meta = path.with_suffix(".json")
    if meta.is_file():
        try:
            family = json.loads(meta.read_text()).get("family")
        except (OSError, ValueError, AttributeError):
            family = None
        if isinstance(family, str) and family:
            return family
    return name.split("__", 1)[0] if "__" in name else None


def read_labels(path: Path) -> dict[str, str]:
    """``name,label`` rows of a CSV file (a header row ``name,label`` is allowed); problems raise one InputError."""
    import csv

    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot be read as CSV ({exc})") from None
    labels: dict[str, str] = {}
    for i, row in enumerate(rows, 1):
        if not row or (i == 1 and [c.strip().lower() for c in row] == ["name", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(path, f"line {i}: expected 'name,label', got {row}")
        if row[0].strip() in labels:
            raise InputError(path, f"line {i}: '{row[0].strip()}' is labelled twice")
        labels[row[0].strip()] = row[1].strip()
    if not labels:
        raise InputError(path, "lists no labels")
    return labels


def find_meshes(root: str | Path) -> list[tuple[str, Path]]:
    """All mesh files under ``root`` (or ``root`` itself), sorted, each with a unique name.

    Names are the path relative to ``root`` without suffix, with '/' replaced by '__', so ShapeNet-style trees
    (``synset/id/models/model.obj``) get distinct names.

    Raises:
        InputError: ``root`` does not exist, a folder holds no mesh file, or two files get the same name (``a.obj``
            and ``a.ply``, or ``sub/b.obj`` and ``sub__b.obj``).
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "file or folder not found")
    if root.is_file():
        return [(root.stem, root)]
    # a dangling link is listed too: loading it then reports "file not found" like any unreadable file
    files = sorted(
        p
        for p in root.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists())) and p.suffix.lower() in MESH_SUFFIXES
    )
    if not files:
        raise InputError(root, f"folder holds no mesh files ({', '.join(MESH_SUFFIXES)})")
    named: dict[str, Path] = {}
    for p in files:
        name = "__".join(p.relative_to(root).with_suffix("").parts)
        if name in named:
            raise InputError(
                p, f"has the same shape name '{name}' as {named[name]}; rename one of them (names must be unique)"
            )
        named[name] = p
    return list(named.items())


def read_points(path: Path, normalise: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n, 3) points and optional (n, 3) normals from a point cloud (.ply with optional normals, .xyz, .npy) or a
    mesh file (its vertices), in the frame: centred and scaled like meshes with ``normalise``, else they must
    already lie in [-0.5, 0.5]^3."""
    import trimesh

    if not path.is_file():
        raise InputError(path, "file not found")
    normals = None
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
            pts, normals = arr[:, :3], (arr[:, 3:6] if arr.shape[1] >= 6 else None)
        elif path.suffix.lower() == ".xyz":
            arr = np.loadtxt(path, ndmin=2)
            pts, normals = arr[:, :3], (arr[:, 3:6] if arr.shape[1] >= 6 else None)
        else:
            geom = trimesh.load(path, process=False)
            if not hasattr(geom, "vertices"):
                raise InputError(path, "holds no points (an empty point cloud or mesh)")
            pts = np.asarray(geom.vertices)
            raw = geom.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
            if raw is not None and {"nx", "ny", "nz"} <= set(raw.dtype.names or ()):
                normals = np.stack([raw["nx"], raw["ny"], raw["nz"]], 1)
    except (ValueError, OSError, IndexError, AttributeError) as exc:
        raise InputError(path, f"cannot read points ({exc})") from None
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
        raise InputError(path, "holds no finite (n, 3) points")
    if normalise:
        if float(np.ptp(pts, axis=0).max()) <= 0.0:
            raise InputError(path, "all points coincide; nothing to normalise")
        pts = normalisation_for(pts).to_frame(pts)
    elif np.abs(pts).max() > 0.5:
        raise InputError(path, "points lie outside the frame [-0.5, 0.5]^3; pass --normalise to fit them into it")
    return torch.as_tensor(pts, dtype=torch.float32), (
        None if normals is None else torch.as_tensor(np.asarray(normals, dtype=np.float64), dtype=torch.float32)
    )
