"""Inline pieces of a self-contained HTML page: SVG line and scatter plots, tables, a heat table, PNG images.

Everything is a string of HTML/SVG with no external resource, so a page built from them opens offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PALETTE = ("#3b6fb6", "#d0743c", "#5b9e4d", "#b84a62", "#8a6bbf", "#c9a227", "#4aa3a2", "#777777")


def svg_lines(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    width: int = 440,
    height: int = 260,
) -> str:
    """A line plot as inline SVG (one polyline per series, shared axes, legend)."""
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if np.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        return f"<p>{html.escape(title)}: no data</p>"
    f = np.log10 if log_y else (lambda v: v)
    xs_all, ys_all = np.array([p[0] for p in pts], float), f(np.array([p[1] for p in pts], float))
    x0, x1 = xs_all.min(), xs_all.max() + (xs_all.max() == xs_all.min())
    y0, y1 = ys_all.min(), ys_all.max() + (ys_all.max() == ys_all.min())
    L, R, T, B = 52, 12, 24, 36
    sx = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)  # noqa: E731
    sy = lambda y: height - B - (y - y0) / (y1 - y0) * (height - T - B)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="plot">',
        f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{L}" y1="{height - B}" x2="{width - R}" y2="{height - B}" stroke="#999"/>',
        f'<line x1="{L}" y1="{T}" x2="{L}" y2="{height - B}" stroke="#999"/>',
    ]
    for v in (y0, y1):
        label = f"{10**v:.3g}" if log_y else f"{v:.3g}"
        out.append(f'<text x="{L - 4}" y="{sy(v) + 4:.1f}" text-anchor="end" font-size="10">{label}</text>')
    for v in (x0, x1):
        out.append(f'<text x="{sx(v):.1f}" y="{height - B + 14}" text-anchor="middle" font-size="10">{v:.4g}</text>')
    out.append(
        f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle" font-size="11">{html.escape(xlabel)}</text>'
    )
    out.append(
        f'<text x="12" y="{height / 2}" font-size="11" transform="rotate(-90 12 {height / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>'
    )
    for i, (name, (xs, ys)) in enumerate(series.items()):
        keep = [(x, f(y)) for x, y in zip(xs, ys) if np.isfinite(y) and (y > 0 or not log_y)]
        c = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in keep)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{path}"/>')
        out.append(
            f'<text x="{width - R - 4}" y="{T + 12 + 13 * i}" text-anchor="end" font-size="10" '
            f'fill="{c}">{html.escape(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def svg_scatter(xy: np.ndarray, groups: Sequence[str], title: str, width: int = 440, height: int = 320) -> str:
    """A 2-D scatter as inline SVG, coloured by group, with a legend."""
    names = sorted(set(groups))
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1)
    p = 24 + (xy - lo) / span * (np.array([width, height]) - 48 - np.array([90, 0]))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="plot">',
        f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
    ]
    for (x, y), g in zip(p, groups):
        c = PALETTE[names.index(g) % len(PALETTE)]
        out.append(f'<circle cx="{x:.1f}" cy="{height - y:.1f}" r="3.2" fill="{c}" fill-opacity="0.8"/>')
    for i, g in enumerate(names):
        c = PALETTE[i % len(PALETTE)]
        out.append(
            f'<text x="{width - 8}" y="{34 + 14 * i}" text-anchor="end" font-size="11" fill="{c}">'
            f"{html.escape(g)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def html_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Rows under a header row; floats to 4 significant digits, everything escaped."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def png_img(path: Path) -> str:
    """A PNG file inlined as an <img> data URL ('' when the file is missing)."""
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def heat_table(rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """A matrix of counts (e.g. a confusion matrix) as a table shaded by value, light text on dark cells."""
    peak = max((max(row) for row in counts), default=0) or 1
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ""
    for name, row in zip(rows, counts):
        cells = "".join(
            f'<td style="background:rgba(59,111,182,{v / peak:.2f});text-align:center;'
            f'color:{"#fff" if v / peak > 0.6 else "#222"}">{v}</td>'
            for v in row
        )
        body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table><tr><th></th>{head}</tr>{body}</table>"
