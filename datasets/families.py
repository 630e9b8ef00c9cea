"""Chairs, tables, airplanes, vases and mugs built as real boolean unions (manifold3d) of primitives.

Every parameter is continuous and the geometry depends continuously on it, so the shape with the midpoint
parameters of two shapes is a meaningful target for latent interpolation. Lengths are in arbitrary units; the
sampler normalises each shape into the frame anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapezoo.errors import ShapezooError
from shapezoo.io import atomic_write_bytes, atomic_write_json, ensure_output_dir

SEGMENTS = 32
"""Circular segments of every round primitive (fixed, so meshes are reproducible)."""


def _m3():
    import manifold3d

    return manifold3d


def _box(size, center):
    return _m3().Manifold.cube(list(map(float, size)), True).translate(list(map(float, center)))


def _cylinder(height, r_bottom, r_top, base, axis="z"):
    """A (possibly tapered) cylinder starting at ``base`` along +axis."""
    c = _m3().Manifold.cylinder(float(height), float(r_bottom), float(r_top), SEGMENTS, False)
    if axis == "x":
        c = c.rotate([0.0, 90.0, 0.0])
    elif axis == "y":
        c = c.rotate([-90.0, 0.0, 0.0])
    return c.translate(list(map(float, base)))


def _union(parts):
    m3 = _m3()
    return m3.Manifold.batch_boolean(parts, m3.OpType.Add)


def _chair(p):
    w, d, t, leg, lt, back, bt = (
        p[k]
        for k in (
            "seat_width",
            "seat_depth",
            "seat_thickness",
            "leg_length",
            "leg_thickness",
            "back_height",
            "back_thickness",
        )
    )
    e = 0.01  # legs and back sit just inside the seat's outline: coincident faces make fragile booleans
    parts = [_box([w, d, t], [0, 0, leg + t / 2])]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _box(
                    [lt, lt, leg + t / 2],
                    [sx * ((w - lt) / 2 - e), sy * ((d - lt) / 2 - e), (leg + t / 2) / 2],
                )
            )
    parts.append(_box([w - 2 * e, bt, back + t / 2], [0, (d - bt) / 2 - e, leg + t / 2 + (back + t / 2) / 2]))
    return _union(parts)


def _table(p):
    w, d, t, leg, r, inset, apron = (
        p[k]
        for k in (
            "top_width",
            "top_depth",
            "top_thickness",
            "leg_length",
            "leg_radius",
            "leg_inset",
            "apron_height",
        )
    )
    parts = [_box([w, d, t], [0, 0, leg + t / 2])]
    lx, ly = w / 2 - inset - r, d / 2 - inset - r
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_cylinder(leg + t / 2, r, r, [sx * lx, sy * ly, 0]))
    parts.append(_box([2 * lx, 2 * ly, apron], [0, 0, leg - apron / 2 + 1e-3]))
    return _union(parts)


def _extrude(points, thickness):
    """Extrude a simple polygon (any orientation) in the x-y plane along +z."""
    m3 = _m3()
    pts = np.asarray(points, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    if np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y) < 0:
        pts = pts[::-1]
    return m3.CrossSection([[tuple(map(float, q)) for q in pts]]).extrude(float(thickness))


def _wing(span, chord, sweep, thickness, root_x):
    """A swept trapezoidal wing, both halves as one chevron in the x-y plane, centred on z = 0."""
    tip = 0.5 * chord
    outline = [
        (root_x - sweep, -span / 2),
        (root_x, 0.0),
        (root_x - sweep, span / 2),
        (root_x - sweep - tip, span / 2),
        (root_x - chord, 0.0),
        (root_x - sweep - tip, -span / 2),
    ]
    return _extrude(outline, thickness).translate([0.0, 0.0, float(-thickness / 2)])


def _airplane(p):
    L, r, span, chord, sweep, tail, fin = (
        p[k]
        for k in (
            "fuselage_length",
            "fuselage_radius",
            "wing_span",
            "wing_chord",
            "wing_sweep",
            "tail_span",
            "fin_height",
        )
    )
    body = _cylinder(L * 0.8, r * 0.6, r, [-L / 2, 0, 0], axis="x")
    nose = _cylinder(L * 0.2, r, r * 0.15, [-L / 2 + L * 0.8, 0, 0], axis="x")
    wing = _wing(span, chord, sweep, 0.3 * r, p["wing_position"] * L)
    tail_x = -L / 2 + 0.05 * L  # tail surfaces start just ahead of the fuselage end: no coplanar faces
    stab = _wing(tail, 0.5 * chord, 0.3 * sweep, 0.25 * r, tail_x + 0.5 * chord)
    fin_profile = [(tail_x, 0.0), (tail_x + 0.6 * chord, 0.0), (tail_x + 0.25 * chord, fin), (tail_x, fin)]
    vfin = _extrude(fin_profile, 0.2 * r).rotate([90.0, 0.0, 0.0]).translate([0.0, float(0.1 * r), float(0.5 * r)])
    return _union([body, nose, wing, stab, vfin])


def _profile_solid(radii, heights):
    m3 = _m3()
    outline = [(0.0, 0.0)] + [(float(r), float(h)) for r, h in zip(radii, heights)] + [(0.0, float(heights[-1]))]
    return m3.Manifold.revolve(m3.CrossSection([outline]), SEGMENTS * 2)


def _vase(p):
    h, base, belly, bh, neck, lip = (
        p[k] for k in ("height", "base_radius", "belly_radius", "belly_at", "neck_radius", "lip_radius")
    )
    radii = [base, belly, neck, lip]
    heights = [0.0, bh * h, 0.85 * h, h]
    body = _profile_solid(radii, heights)
    cup = _cylinder(
        p["opening_depth"] * h,
        0.6 * min(neck, lip),
        0.6 * min(neck, lip),
        [0, 0, h * (1 - p["opening_depth"]) + 1e-3],
    )
    return body - cup


def _mug(p):
    h, r, wall, hr, ht = (p[k] for k in ("height", "radius", "wall", "handle_radius", "handle_thickness"))
    m3 = _m3()
    outer = _cylinder(h, r, r * p["taper"], [0, 0, 0])
    inner = _cylinder(h, r - wall, r * p["taper"] - wall, [0, 0, wall])
    ring = m3.CrossSection.circle(float(ht), SEGMENTS).translate([float(hr), 0.0])
    handle = m3.Manifold.revolve(ring, SEGMENTS).rotate([90.0, 0.0, 0.0]).translate([float(r), 0.0, float(h / 2)])
    return (outer + handle) - inner


@dataclass(frozen=True)
class Family:
    """A shape family: parameter ranges (name -> (low, high)) and a builder from parameters to a solid."""

    name: str
    ranges: dict[str, tuple[float, float]]
    builder: Callable


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "chair",
            {
                "seat_width": (0.8, 1.4),
                "seat_depth": (0.8, 1.3),
                "seat_thickness": (0.08, 0.2),
                "leg_length": (0.6, 1.2),
                "leg_thickness": (0.08, 0.18),
                "back_height": (0.6, 1.3),
                "back_thickness": (0.08, 0.18),
            },
            _chair,
        ),
        Family(
            "table",
            {
                "top_width": (1.2, 2.2),
                "top_depth": (0.8, 1.4),
                "top_thickness": (0.06, 0.14),
                "leg_length": (0.6, 1.0),
                "leg_radius": (0.05, 0.12),
                "leg_inset": (0.0, 0.15),
                "apron_height": (0.06, 0.2),
            },
            _table,
        ),
        Family(
            "airplane",
            {
                "fuselage_length": (2.0, 3.0),
                "fuselage_radius": (0.12, 0.22),
                "wing_span": (1.8, 3.0),
                "wing_chord": (0.35, 0.7),
                "wing_sweep": (0.0, 0.6),
                "wing_position": (0.0, 0.2),
                "tail_span": (0.6, 1.0),
                "fin_height": (0.3, 0.6),
            },
            _airplane,
        ),
        Family(
            "vase",
            {
                "height": (1.0, 1.6),
                "base_radius": (0.2, 0.4),
                "belly_radius": (0.35, 0.65),
                "belly_at": (0.25, 0.6),
                "neck_radius": (0.12, 0.3),
                "lip_radius": (0.15, 0.4),
                "opening_depth": (0.1, 0.5),
            },
            _vase,
        ),
        Family(
            "mug",
            {
                "height": (0.8, 1.3),
                "radius": (0.35, 0.55),
                "taper": (0.85, 1.15),
                "wall": (0.06, 0.12),
                "handle_radius": (0.2, 0.35),
                "handle_thickness": (0.05, 0.09),
            },
            _mug,
        ),
    ]
}


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name raises ShapezooError listing the known ones."""
    if name not in FAMILIES:
        raise ShapezooError(f"unknown shape family '{name}' (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def sample_params(family: str, seed: int) -> dict[str, float]:
    """The parameter vector of shape ``seed`` of a family: independent uniform draws within each range."""
    fam = get_family(family)
    key = int.from_bytes(hashlib.sha256(family.encode()).digest()[:8], "little")
    u = np.random.default_rng([seed, key]).random(len(fam.ranges))
    return {k: round(float(lo + x * (hi - lo)), 6) for (k, (lo, hi)), x in zip(fam.ranges.items(), u)}


def build(family: str, params: dict[str, float]):
    """The watertight ``trimesh.Trimesh`` of a family for explicit parameters (e.g. a midpoint of two shapes)."""
    import trimesh

    fam = get_family(family)
    missing = set(fam.ranges) - set(params)
    if missing:
        raise ShapezooError(f"{family}: missing parameters {sorted(missing)}")
    solid = fam.builder({k: float(params[k]) for k in fam.ranges})
    mesh = solid.to_mesh()
    return trimesh.Trimesh(
        np.asarray(mesh.vert_properties)[:, :3].astype(np.float64),
        np.asarray(mesh.tri_verts, dtype=np.int64),
        process=False,
    )


def obj_bytes(mesh) -> bytes:
    """The OBJ file of a built shape, as ``generate`` writes it (the same seed, the same bytes)."""
    from trimesh.exchange.obj import export_obj

    return export_obj(mesh, include_normals=False, include_color=False, include_texture=False, digits=7).encode()


def generate(family: str, count: int, out: str | Path, seed: int = 0) -> list[dict]:
    """Write ``count`` shapes ``FAMILY_SSSS.obj`` with ``FAMILY_SSSS.json`` (family, seed, params) into ``out``.

    Shape i has seed ``seed + i``; the same seed always gives a byte-identical file.
    """
    get_family(family)
    if count < 1:
        raise ShapezooError(f"count must be >= 1, got {count}")
    out = ensure_output_dir(out)
    records = []
    for shape_seed in range(seed, seed + count):
        name = f"{family}_{shape_seed:04d}"
        params = sample_params(family, shape_seed)
        mesh = build(family, params)
        atomic_write_bytes(out / f"{name}.obj", obj_bytes(mesh))
        record = {
            "name": name,
            "family": family,
            "seed": shape_seed,
            "params": params,
            "faces": int(len(mesh.faces)),
            "watertight": bool(mesh.is_volume),
        }
        atomic_write_json(out / f"{name}.json", record)
        records.append(record)
    return records


def generate_run(family: str, count: int, out: str | Path, seed: int = 0) -> tuple[list[dict], dict]:
    """``generate``, plus the run's summary written to ``out/generate.json``: (records, summary)."""
    records = generate(family, count, out, seed)
    names = [r["name"] for r in records]
    summary = {"family": family, "count": len(records), "seed": seed, "out": str(out), "shapes": names}
    atomic_write_json(Path(out) / "generate.json", summary)
    return records, summary
