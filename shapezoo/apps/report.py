"""A self-contained HTML report of a run: 3-D viewers (three.js, inlined), interpolation slider, tables, plots.

The page needs no network: three.js r170 and its OrbitControls (MIT, shapezoo/assets) are inlined through an
import map of data URLs; meshes are inlined as base64 float32/uint32 arrays; plots are inline SVG. Opening
``report.html#view=interp&step=K`` (or ``#view=gallery&mesh=K``) shows one viewer full-window at that step,
which is how screenshots and the browser test address it. This module reads a run folder into sections;
``report_page`` is the page around them.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import atomic_write_bytes, read_json
from .charts import heat_table, html_table, png_img, svg_lines, svg_scatter
from .report_page import mesh_json, page, read_obj

TITLES = {
    "capability": "The pretrained space at work",
    "summary": "Summary",
    "gallery": "Fields (decoded through the space)",
    "metrics": "Metrics",
    "interpolation": "Interpolation",
    "training": "Training curves",
    "latent-map": "Latent space",
    "probe": "Probing: classes from latents",
    "generation": "Generation: new shapes, and how new they are",
    "classifiers": "Classifiers: accuracy along an interpolation",
}
"""The page's sections, in order, with their titles."""
SECTIONS = tuple(TITLES)


def _family(name: str) -> str:
    return name.rsplit("_", 1)[0] if "_" in name else name


def build_report(run: str | Path, out: str | Path, max_gallery: int = 8) -> dict:
    """Write ``out`` (self-contained HTML) from a run folder made by ``shapezoo demo`` (or the same layout).

    Layout read: fields/*.obj, eval.json, zoo/fit_curves.json, space/space.json + train_latents.safetensors,
    interpolation/ and interpolation_weights/ (step_NN.obj + interpolation.json), renders/*.png. Missing parts
    are noted in their section; a file the report cannot use raises one InputError naming it. Returns what each
    section holds.
    """
    run = Path(run)
    parts: dict[str, str] = {}
    info: dict[str, object] = {}
    gallery = [mesh_json(*read_obj(p), p.stem) for p in sorted((run / "fields").glob("*.obj"))[:max_gallery]]
    info["gallery"] = len(gallery)
    parts["gallery"] = _gallery_section(run, gallery)
    with _laid_out(run / "eval.json"):
        parts["metrics"] = _metrics_section(run, info)
    seqs = {}
    for key in ("interpolation", "interpolation_weights"):
        folder = run / key
        steps = sorted(folder.glob("step_*.obj"))
        if steps:
            with _laid_out(folder / "interpolation.json"):
                seqs[key] = {
                    "meshes": [mesh_json(*read_obj(p), p.stem) for p in steps],
                    "meta": read_json(folder / "interpolation.json", dict)
                    if (folder / "interpolation.json").exists()
                    else {},
                }
    info["interpolation"] = len(seqs.get("interpolation", {}).get("meshes", []))
    with _laid_out(run / "interpolation" / "interpolation.json"):
        parts["interpolation"] = _interpolation_section(run, seqs)
    with _laid_out(run / "zoo" / "fit_curves.json"):
        plots = _fit_curves(run / "zoo" / "fit_curves.json")
    with _laid_out(run / "space" / "space.json"):
        plots += _space_curves(run / "space" / "space.json")
    info["training"] = len(plots)
    parts["training"] = "".join(plots) or "<p>No training curves in this run.</p>"
    parts["latent-map"] = _latent_map_section(run, info)
    with _laid_out(run / "probe.json"):
        parts["probe"] = _probe_section(run, info)
    with _laid_out(run / "generation" / "generation.json"):
        parts["generation"] = _generation_section(run / "generation", info)
    with _laid_out(run / "classifiers"):
        parts["classifiers"] = _classifier_section(run / "classifiers", info)

    with _laid_out(run / "capability.json"):
        parts["capability"] = _capability_section(run, info)
    summary_rows = [(k, str(v)) for k, v in info.items()]
    parts["summary"] = f"<p>Run folder: <code>{html.escape(str(run.resolve()))}</code></p>" + html_table(
        ["section", "items"], summary_rows
    )
    data = {"gallery": gallery, "interp": seqs.get("interpolation", {}).get("meshes", [])}
    atomic_write_bytes(out, page([(k, TITLES[k], parts[k]) for k in SECTIONS], data).encode())
    return info


@contextmanager
def _laid_out(path: Path) -> Iterator[None]:
    """Turn a file the report cannot use (a key missing, a value of the wrong type) into one InputError naming it:
    the report reads what other commands wrote, and a damaged or foreign file must not end in a traceback."""
    try:
        yield
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise InputError(path, f"is not laid out as shapezoo writes it ({type(exc).__name__}: {exc})") from None


def _capability_section(run: Path, info: dict) -> str:
    """The first screen: what the pretrained space does with shapes it never saw - a latent interpolation, new
    shapes beside their nearest training shape, encoded shapes beside their ground truth - from ``capability.json``
    as ``shapezoo demo`` writes it, and its renders."""
    path = run / "capability.json"
    if not path.exists():
        return "<p>No capability summary in this run (made by 'shapezoo demo').</p>"
    c = read_json(path, dict)
    enc, interp, gen = c["encoded"], c["interpolation"], c["generation"]
    bench = gen.get("benchmark", {})
    info["capability"] = enc["shapes"]
    pieces = max(s["components"] for s in interp["steps"])
    floating = max(s["floating_area"] for s in interp["steps"])
    return (
        f"<p>Everything here goes through the pretrained <b>{html.escape(c['space'])}</b> space shipped with shapezoo "
        f"(<code>shapezoo space info default</code> prints its model card), on {enc['shapes']} procedural shapes "
        "generated for this run and never seen by it, each fitted from its base in seconds.</p>"
        f"<h3>A walk through the latent space: {html.escape(interp['a'])} &rarr; {html.escape(interp['b'])}</h3>"
        + png_img(run / "renders" / "interpolation_strip.png")
        + f"<p>Every step extracts as at most {pieces} connected piece(s), at most {100 * floating:.2f}% of the "
        "surface floating.</p><h3>New shapes from its prior (left) beside their nearest training shape (right)</h3>"
        + png_img(run / "generation" / "nearest.png")
        + html_table(
            ["", "1-NNA (50% ideal)", "COV", "pieces (median)"],
            [
                ("this run", gen["1-nna"], gen["cov"], gen["pieces_median"]),
                (bench.get("what", "benchmark"), bench.get("1-nna", "-"), bench.get("cov", "-"), "-"),
            ],
        )
        + (
            f"<p>Each sample is the first of up to {gen['screen']} draws whose mesh has at most "
            f"{gen['screen_pieces']} pieces ({gen['draws']} draws for these {gen['samples']} samples; "
            "<code>shapezoo sample --screen 1</code> keeps every draw).</p>"
            if "screen" in gen
            else ""
        )
        + "<h3>Shapes it never saw, encoded and decoded (right) beside their ground truth (left)</h3>"
        + png_img(run / "renders" / "encoded_vs_truth.png")
        + f"<p>Median IoU against the ground truth {enc['iou_median']:.3f}, Chamfer-L2 "
        f"{1e3 * enc['chamfer_l2_median']:.3f} x1e-3.</p>"
    )


def _gallery_section(run: Path, gallery: list[dict]) -> str:
    """A 3-D viewer with a chooser over the fields' meshes, and the zoo's render grid."""
    if not gallery:
        return "<p>No field meshes in this run.</p>"
    return (
        '<div class="viewer" id="gallery-viewer"></div><p><select id="gallery-select">'
        + "".join(f'<option value="{i}">{html.escape(m["name"])}</option>' for i, m in enumerate(gallery))
        + "</select> drag to rotate, scroll to zoom</p>"
        + png_img(run / "renders" / "zoo_grid.png")
    )


def _metrics_section(run: Path, info: dict) -> str:
    """Summary and per-field metrics from ``eval.json`` as ``shapezoo eval`` writes it."""
    ev = run / "eval.json"
    if not ev.exists():
        return "<p>No eval.json in this run.</p>"
    report = read_json(ev, dict)
    summ = report.get("summary", {})
    rows = [(k, v["mean"], v["median"], v["worst"][0]["name"]) for k, v in summ.items()]
    entries = [
        (e["name"], e["iou"], e["chamfer_l2"] * 1e3, e["fscore"], e["normal_consistency"])
        for e in report.get("entries", [])
    ]
    info["metrics"] = len(entries)
    return (
        f"<p>{html.escape(report.get('units', ''))}</p>"
        + html_table(["metric", "mean", "median", "worst"], rows)
        + "<details><summary>per field</summary>"
        + html_table(["field", "IoU", "CD-L2 x1e3", "F-score", "normal consistency"], entries)
        + "</details>"
    )


def _interpolation_section(run: Path, seqs: dict) -> str:
    """The latent interpolation in a viewer with a slider, its strip and per-step table, the raw-weight strip beside
    it, and Chamfer to the start along both paths."""
    if "interpolation" in seqs:
        meta = seqs["interpolation"]["meta"]
        rows = [
            (
                r["step"],
                r["volume"],
                r.get("chamfer_l2_to_start", float("nan")) * 1e3,
                r.get("chamfer_l2_to_end", float("nan")) * 1e3,
            )
            for r in meta.get("steps", [])
        ]
        n = len(seqs["interpolation"]["meshes"])
        ends = f"{meta.get('a', {}).get('name', 'A')} &rarr; {meta.get('b', {}).get('name', 'B')}"
        plot = svg_lines(
            {
                k.replace("_", " "): (
                    [r["t"] for r in s["meta"].get("steps", [])],
                    [r.get("chamfer_l2_to_start", np.nan) for r in s["meta"].get("steps", [])],
                )
                for k, s in seqs.items()
            },
            "Chamfer-L2 to the start shape",
            "t",
            "CD-L2",
        )
        return (
            f"<p>{ends} through the latent space ({html.escape(str(meta.get('mode', '')))}).</p>"
            f'<div class="viewer" id="interp-viewer"></div>'
            f'<p><input type="range" id="interp-slider" min="0" max="{n - 1}" value="0" step="1"> '
            f'step <span id="interp-step">0</span> of {n - 1}</p>'
            + png_img(run / "renders" / "interpolation_strip.png")
            + (
                (
                    "<p>Raw-weight interpolation between the same fields (baseline):</p>"
                    + png_img(run / "renders" / "interpolation_weights_strip.png")
                )
                if "interpolation_weights" in seqs
                else ""
            )
            + html_table(["step", "volume share", "CD-L2 to A x1e3", "CD-L2 to B x1e3"], rows)
            + plot
        )
    return "<p>No interpolation in this run.</p>"


def _fit_curves(curves: Path) -> list[str]:
    """Training loss and IoU per fitting batch, from ``fit_curves.json``."""
    plots = []
    if curves.exists():
        batches = read_json(curves, dict)["batches"]

        def per_batch(key: str) -> dict:
            return {
                f"batch {i}": ([h["step"] for h in b["history"]], [h[key] for h in b["history"]])
                for i, b in enumerate(batches)
            }

        plots.append(svg_lines(per_batch("loss"), "Field fitting: training loss", "step", "BCE", log_y=True))
        plots.append(svg_lines(per_batch("iou"), "Field fitting: training IoU", "step", "IoU"))
    return plots


def _space_curves(space_json: Path) -> list[str]:
    """The weight space's functional loss and decoded IoU per epoch, from ``space.json``'s history."""
    plots = []
    if space_json.exists():
        record = read_json(space_json, dict)
        hist = record.get("history", [])
        if not hist:  # a shift space: nothing trained, its fields read exactly
            results = record.get("results", {}).get("results", {})
            ious = ", ".join(f"{k} {v['field_iou_median']:.3f}" for k, v in results.items())
            design = html.escape(record["model"]["design"])
            return [
                f"<p><code>space train</code> on this run's fields alone: design {design}, nothing to train (a "
                f"space of a base's fields reads them exactly); decoded vs original field IoU (median): {ious}.</p>"
            ]
        ep = [h["epoch"] for h in hist]
        plots.append(
            svg_lines(
                {
                    "train functional": (ep, [h["train"]["functional"] for h in hist]),
                    "val functional": (
                        ep,
                        [h.get("val", h.get("train_eval", {})).get("functional", np.nan) for h in hist],
                    ),
                },
                "Weight space: functional loss (binary KL)",
                "epoch",
                "KL",
                log_y=True,
            )
        )
        plots.append(
            svg_lines(
                {
                    "val field IoU (mean)": (
                        ep,
                        [h.get("val", h.get("train_eval", {})).get("field_iou_mean", np.nan) for h in hist],
                    )
                },
                "Weight space: decoded vs original",
                "epoch",
                "IoU",
            )
        )
    return plots


def _latent_map_section(run: Path, info: dict) -> str:
    """PCA of the training latents, coloured by family (name prefix)."""
    lat = run / "space" / "train_latents.safetensors"
    if lat.exists():
        from ..fields.space import load_latents

        z, names = load_latents(lat)
        zc = (z - z.mean(0)).double().numpy()
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        xy = zc @ vt[:2].T
        info["latent-map"] = len(names)
        return svg_scatter(xy, [_family(n) for n in names], "Training latents, PCA (2-D)")
    return "<p>No weight space in this run.</p>"


def _probe_section(run: Path, info: dict) -> str:
    """Accuracy and retrieval per kind of features, the confusion matrix of the latents' linear probe, and a
    retrieval strip (a query and its nearest members by latent), from ``probe.json`` as ``shapezoo probe`` writes it
    and ``renders/retrieval_strip.png``."""
    path = run / "probe.json"
    if not path.exists():
        return "<p>No probe in this run.</p>"
    r = read_json(path, dict)
    kinds = [k for k in ("latents", "weights", "pca", "d2") if k in r]
    rows = []
    for k in kinds:
        c, q = r[k].get("classify", {}), r[k].get("retrieve", {}).get("cosine", {})
        rows.append(
            (k, c.get("linear_accuracy", "-"), c.get("mlp_accuracy", "-"), q.get("map", "-"), q.get("p@1", "-"))
        )
    parts = [
        f"<p>{r['members']} members, {len(r['classes'])} classes, folds: {html.escape(str(r['folds']))}.</p>",
        html_table(["features", "linear accuracy", "MLP accuracy", "mAP (cosine)", "P@1"], rows),
    ]
    confusion = r.get(kinds[0], {}).get("classify", {}).get("confusion") if kinds else None
    if confusion:
        parts.append(
            f"<p>Confusion matrix of the {kinds[0]} linear probe (rows: true class, columns: predicted; held-out"
            f" folds)</p>" + heat_table(r["classes"], r["classes"], confusion)
        )
    strip = run / "renders" / "retrieval_strip.png"
    if strip.exists():
        parts.append(
            "<p>Retrieval: a query (left) and its five nearest members by latent (cosine).</p>" + png_img(strip)
        )
    info["probe"] = r["members"]
    return "".join(parts)


def _generation_section(folder: Path, info: dict) -> str:
    """MMD / COV / 1-NNA of sampled shapes against held-out ones, their distance to the nearest training shape
    beside the held-out shapes' own, and each sample rendered beside that nearest training shape, from
    ``generation.json`` and ``nearest.png`` as ``shapezoo eval-generation`` writes them."""
    path = folder / "generation.json"
    if not path.exists():
        return "<p>No generation evaluation in this run.</p>"
    r = read_json(path, dict)
    m, n, sizes = r["metrics"], r["novelty"], r["sizes"]
    parts = [
        f"<p>{sizes['generated']} samples against {sizes['reference']} held-out shapes, {r['points']} surface points"
        f" each; novelty against {sizes['train']} training shapes. {html.escape(r.get('units', ''))}.</p>",
        html_table(
            ["MMD x1e3", "COV", "1-NNA (50% ideal)", "nearest training: samples x1e3", "held-out x1e3", "ratio"],
            [
                (
                    1e3 * m["mmd"],
                    m["cov"],
                    m["1-nna"],
                    1e3 * n["samples_median"],
                    1e3 * n["reference_median"],
                    n["ratio"],
                )
            ],
        ),
    ]
    if (folder / "nearest.png").exists():
        parts.append(
            "<p>Each sample (left) beside its nearest training shape (right).</p>" + png_img(folder / "nearest.png")
        )
    info["generation"] = sizes["generated"]
    return "".join(parts)


def _classifier_section(folder: Path, info: dict) -> str:
    """Accuracy along a classifier interpolation (latent vs raw weights) and original-vs-decoded accuracy, from
    ``interpolation.json`` / ``eval.json`` as ``shapezoo classifiers interpolate`` / ``eval`` write them."""
    parts = []
    path = folder / "interpolation.json"
    if path.exists():
        r = read_json(path, dict)
        series: dict[str, tuple[Sequence[float], Sequence[float]]] = {
            "latent path": (r["t"], [100 * a for a in r["accuracy_latent"]])
        }
        if "accuracy_raw" in r:
            series["raw-weight path"] = (r["t"], [100 * a for a in r["accuracy_raw"]])
        parts.append(svg_lines(series, f"Test accuracy from {r['a']} to {r['b']}", "t", "accuracy %"))
        raw = r.get("accuracy_raw", [None] * len(r["t"]))
        rows: list[tuple] = [
            (f"{t:.2f}", arch, 100 * a, "-" if b is None else 100 * b)
            for t, arch, a, b in zip(r["t"], r["arch_latent"], r["accuracy_latent"], raw)
        ]
        parts.append(html_table(["t", "decoded as", "latent path acc %", "raw-weight acc %"], rows))
        info["classifiers"] = len(r["t"])
    path = folder / "eval.json"
    if path.exists():
        summary = read_json(path, dict)["summary"]
        rows = [
            (
                role,
                v["models"],
                100 * v["accuracy_original_mean"],
                100 * v["accuracy_decoded_mean"],
                v["mean_abs_gap_points"],
                "-" if v["spearman"] is None else v["spearman"],
            )
            for role, v in summary.items()
        ]
        parts.append(
            html_table(["models", "count", "original acc %", "decoded acc %", "mean |gap| pt", "Spearman"], rows)
        )
    return "".join(parts) or "<p>No classifier zoo in this run.</p>"
