"""Headless mesh renders: shaded PNGs from fixed camera presets, grids of many meshes, interpolation strips.

A small z-buffer rasteriser over torch tensors (no display, GPU or system GL library: pyrender needs OSMesa or EGL,
open3d's offscreen renderer needs EGL): orthographic camera, flat Lambert shading with one key light, 2x2
supersampling. Every triangle tests the pixels of its bounding box at once, triangles grouped by box size, so a
marching-cubes mesh of 80k faces renders in tens of milliseconds (matplotlib's painter's algorithm took 0.1-0.4 s and
could draw a far face over a near one). Labels are drawn by matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ShapezooError
from ..io import atomic_write_bytes

VIEWS = {"iso": (22.0, -58.0), "front": (0.0, -90.0), "side": (0.0, 0.0), "top": (89.0, -90.0)}
"""Camera presets: (elevation, azimuth) in degrees, looking at the frame's centre."""
COLOR = np.array([0.36, 0.55, 0.80])
"""Base surface colour (the same for every mesh, so renders compare)."""
LIGHT = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])
SUPERSAMPLE = 2
"""Samples per pixel side, averaged (smooth edges)."""
EDGE = 1e-4
"""Barycentric slack of the inside test: a pixel centre on an edge shared by two triangles belongs to both (float
rounding could give it to neither and leave a hole; the z-buffer picks one)."""
_CANDIDATES = 1 << 22
"""Pixel tests per rasterising pass (bounds memory: a few bytes each)."""


def _shade(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(f, 3) RGB in [0, 1] of each face: two-sided Lambert (open or inverted surfaces still read)."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(n @ LIGHT)
    return np.clip(COLOR[None] * (0.25 + 0.75 * lambert[:, None]), 0, 1)


def camera(view: str) -> tuple[np.ndarray, float]:
    """(3, 3) rows: screen right, screen up, towards the viewer, for the frame seen from ``view``; and the half-width
    of the screen in frame units (the frame's cube projected, 10% trimmed: shapes rarely fill its corners)."""
    if view not in VIEWS:
        raise ShapezooError(f"unknown view '{view}' ({', '.join(VIEWS)})")
    elev, azim = np.radians(VIEWS[view])
    eye = np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    right = np.cross([0.0, 0.0, 1.0], eye)  # z up, as the procedural families are built
    right /= np.linalg.norm(right)
    rot = np.stack([right, np.cross(eye, right), eye])
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    return rot, max(0.56, 0.9 * float(np.abs(corners @ rot[:2].T).max()))


def _split_large(tri: torch.Tensor, depth: torch.Tensor, face: torch.Tensor, span: int):
    """Triangles bisected at their longest edge until every bounding box is within ``span`` pixels (planar, with
    depth linear in screen space: the same surface, in pieces whose boxes are mostly covered)."""
    done: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    while len(tri):
        big = (tri.max(1).values - tri.min(1).values).max(1).values > span
        done.append((tri[~big], depth[~big], face[~big]))
        tri, depth, face = tri[big], depth[big], face[big]
        edge = (tri - tri.roll(-1, 1)).norm(dim=2)  # edge i joins vertex i and i + 1
        order = (edge.argmax(1, keepdim=True) + torch.arange(3)) % 3  # the longest edge first
        tri = torch.gather(tri, 1, order[..., None].expand(-1, -1, 2))
        depth = torch.gather(depth, 1, order)
        mid, mid_d = (tri[:, 0] + tri[:, 1]) / 2, (depth[:, 0] + depth[:, 1]) / 2
        tri = torch.cat([torch.stack([tri[:, 0], mid, tri[:, 2]], 1), torch.stack([mid, tri[:, 1], tri[:, 2]], 1)])
        depth = torch.cat(
            [torch.stack([depth[:, 0], mid_d, depth[:, 2]], 1), torch.stack([mid_d, depth[:, 1], depth[:, 2]], 1)]
        )
        face = torch.cat([face, face])
    return tuple(torch.cat(parts) for parts in zip(*done))


def rasterize(vertices: np.ndarray, faces: np.ndarray, view: str, pixels: int) -> np.ndarray:
    """(pixels, pixels) int64 index of the nearest face at each pixel centre, -1 where no face is."""
    rot, half = camera(view)
    p = torch.as_tensor(np.asarray(vertices, np.float64) @ rot.T, dtype=torch.float32)
    xy = torch.stack([(p[:, 0] / half + 1) * pixels / 2, (1 - p[:, 1] / half) * pixels / 2], 1)
    f = torch.as_tensor(faces)
    tri, depth, face = _split_large(xy[f], p[:, 2][f], torch.arange(len(f)), 8)
    lo = tri.min(1).values.floor().long()
    box = (tri.max(1).values.ceil().long() - lo).max(1).values  # candidate pixels per side
    (ax, ay), (bx, by), (cx, cy) = tri[:, 0].T, tri[:, 1].T, tri[:, 2].T
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    keep = (area.abs() > 1e-9) & (tri.max(1).values >= 0).all(1) & (tri.min(1).values < pixels).all(1)
    best = torch.full((pixels * pixels,), -torch.inf)
    hits: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for low, high in ((0, 2), (2, 4), (4, 10)):  # a box of side <= high tests high^2 pixels
        dy, dx = (g.reshape(1, -1) for g in torch.meshgrid(torch.arange(high), torch.arange(high), indexing="ij"))
        chosen = torch.nonzero(keep & (box > low) & (box <= high)).squeeze(1)
        for part in chosen.split(_CANDIDATES // high**2):
            px, py = lo[part, 0, None] + dx, lo[part, 1, None] + dy  # (n, high^2) candidate pixels
            sx, sy = px + 0.5, py + 0.5
            w0 = (bx[part, None] - sx) * (cy[part, None] - sy) - (by[part, None] - sy) * (cx[part, None] - sx)
            w1 = (cx[part, None] - sx) * (ay[part, None] - sy) - (cy[part, None] - sy) * (ax[part, None] - sx)
            w0, w1 = w0 / area[part, None], w1 / area[part, None]
            w2 = 1 - w0 - w1
            inside = (
                (w0 >= -EDGE) & (w1 >= -EDGE) & (w2 >= -EDGE) & (px >= 0) & (py >= 0) & (px < pixels) & (py < pixels)
            )
            d = (w0 * depth[part, 0, None] + w1 * depth[part, 1, None] + w2 * depth[part, 2, None])[inside]
            index = (py * pixels + px)[inside]
            best.scatter_reduce_(0, index, d, "amax")
            hits.append((index, d, face[part, None].expand_as(px)[inside]))
    out = torch.full((pixels * pixels,), -1, dtype=torch.long)
    for index, d, won_face in hits:  # the nearest face at each pixel wins
        won = d >= best[index]
        out[index[won]] = won_face[won]
    return out.reshape(pixels, pixels).numpy()


def render_mesh(
    vertices: np.ndarray, faces: np.ndarray, view: str = "iso", size: int = 384, label: str | None = None
) -> np.ndarray:
    """(size, size, 3) uint8 image of a mesh in the frame [-0.5, 0.5]^3 (an empty mesh gives a labelled blank)."""
    camera(view)  # an unknown view fails the same way with or without a surface
    image = np.ones((size, size, 3))
    if len(faces):
        faces = np.asarray(faces, np.int64)
        ids = rasterize(vertices, faces, view, size * SUPERSAMPLE)
        colors = np.concatenate([_shade(np.asarray(vertices, np.float64), faces), np.ones((1, 3))])  # -1: white
        image = colors[ids].reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))
    text = [] if len(faces) else [(0.5, "empty", "0.5")]
    if label:
        text.append((0.02, label, "0.2"))
    pixels = np.round(image * 255).astype(np.uint8)
    return _with_text(pixels, text) if text else pixels


def _with_text(image: np.ndarray, text: list[tuple[float, str, str]]) -> np.ndarray:
    """``image`` with centred 9-point lines of (height from the bottom in [0, 1], text, grey) drawn by matplotlib;
    a line wider than the tile shrinks to fit (a cut label names the wrong shape)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = image.shape[0]
    fig = Figure(figsize=(image.shape[1] / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.figimage(image, resize=False)
    for y, line, grey in text:
        artist = fig.text(0.5, y, line, ha="center", va="bottom" if y < 0.5 else "center", fontsize=9, color=grey)
        width = artist.get_window_extent(renderer=canvas.get_renderer()).width
        if width > 0.96 * image.shape[1]:
            artist.set_fontsize(9 * 0.96 * image.shape[1] / width)
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
