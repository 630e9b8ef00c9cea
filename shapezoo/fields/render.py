"""Headless mesh renders: shaded PNGs from fixed camera presets, grids of many meshes, interpolation strips.

matplotlib's Agg backend rasterises on the CPU with no display, GPU or system GL library (pyrender needs OSMesa
or EGL, open3d's offscreen renderer needs EGL); it sorts triangles by depth (painter's algorithm), which is
exact enough for the closed, mostly convex-ish surfaces marching cubes gives. Lambert shading, one key light.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapezooError
from ..io import atomic_write_bytes

VIEWS = {"iso": (22.0, -58.0), "front": (0.0, -90.0), "side": (0.0, 0.0), "top": (89.0, -90.0)}
"""Camera presets: (elevation, azimuth) in degrees, looking at the frame's centre."""
COLOR = np.array([0.36, 0.55, 0.80])
"""Base surface colour (the same for every mesh, so renders compare)."""
LIGHT = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])


def _shade(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(n @ LIGHT)  # two-sided: open or inverted surfaces still read
    rgb = COLOR[None] * (0.25 + 0.75 * lambert[:, None])
    return np.concatenate([np.clip(rgb, 0, 1), np.ones((len(faces), 1))], 1)


def render_mesh(
    vertices: np.ndarray, faces: np.ndarray, view: str = "iso", size: int = 384, label: str | None = None
) -> np.ndarray:
    """(size, size, 3) uint8 image of a mesh in the frame [-0.5, 0.5]^3 (an empty mesh gives a labelled blank)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if view not in VIEWS:
        raise ShapezooError(f"unknown view '{view}' ({', '.join(VIEWS)})")
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax: Any = fig.add_axes((0, 0, 1, 1), projection="3d")  # an Axes3D (matplotlib types it as 2-D Axes)
    ax.set_axis_off()
    ax.set_box_aspect((1, 1, 1))
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-0.42, 0.42)
    ax.view_init(*VIEWS[view])
    if len(faces):
        v = np.asarray(vertices)  # z up, as the procedural families are built
        ax.add_collection3d(Poly3DCollection(v[faces], facecolors=_shade(v, faces), linewidths=0))
    else:
        fig.text(0.5, 0.5, "empty", ha="center", va="center", color="0.5")
    if label:  # 9 pt, shrunk to the tile's width when longer (a cut label names the wrong shape)
        text = fig.text(0.5, 0.02, label, ha="center", va="bottom", fontsize=9, color="0.2")
        width = text.get_window_extent(renderer=canvas.get_renderer()).width
        if width > 0.96 * size:
            text.set_fontsize(9 * 0.96 * size / width)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def grid(images: Sequence[np.ndarray], cols: int) -> np.ndarray:
    """Tile equally sized images row by row (white padding)."""
    if not images:
        raise ShapezooError("nothing to tile")
    h, w, _ = images[0].shape
    rows = -(-len(images) // cols)
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return out


def render_grid(
    meshes: Sequence[tuple[np.ndarray, np.ndarray]],
    labels: Sequence[str] | None = None,
    cols: int = 5,
    view: str = "iso",
    size: int = 256,
) -> np.ndarray:
    """A zoo overview: one tile per mesh, ``cols`` per row."""
    tags: list[str | None] = list(labels) if labels is not None else [None] * len(meshes)
    return grid([render_mesh(v, f, view, size, lab) for (v, f), lab in zip(meshes, tags)], cols)


def render_strip(
    meshes: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[str] | None = None, view: str = "iso", size=256
) -> np.ndarray:
    """An interpolation strip A -> ... -> B in one row."""
    return render_grid(meshes, labels, cols=len(meshes), view=view, size=size)


def png_bytes(image: np.ndarray) -> bytes:
    """An (h, w, 3) uint8 image encoded as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, image, format="png")
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write an (h, w, 3) uint8 image as PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image))
