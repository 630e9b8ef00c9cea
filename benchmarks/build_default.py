"""Rebuild the pretrained default shipped in ``shapezoo/assets/default`` (``--space default``) and its model card.

Usage: python3 -m benchmarks.build_default --capod CAPOD_FOLDER --work WORK [--out shapezoo/assets/default]
       [--per-family 56] [--heldout-per-family 16] [--base-steps 8000] [--device cpu]

Data, split by name and never mixed: procedural shapes of every family (``--per-family`` each, seeds from 20000)
and CAPOD's training split (of each class the meshes whose number is not a multiple of 3: 8 of 12) train; new
procedural shapes (``--heldout-per-family`` each, seeds from 30000) and the other CAPOD meshes (4 per class) are
held out. Stages, each resumed from WORK when rerun: meshes -> samples -> shift base (``init base``, every training
shape) -> the training shapes fitted from it (``fit --init BASE``) -> the space (``space train``: shift) -> a learned
prior (``prior train``) -> the held-out shapes fitted from the base, encoded and decoded through the space and scored
against their meshes -> the assets and ``card.json`` (every source's SHA-256, the recipe, the quality measured,
every shipped file's SHA-256) and ``MODEL_CARD.md``. 60-70 min on 2 CPU cores (the base: 36 of them).
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.latents import LATENTS_FILE
from shapezoo.core.prior import PriorConfig, train_prior
from shapezoo.core.space_files import SPACE_JSON
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.evaluation import evaluate_zoo
from shapezoo.fields.extract import ExtractConfig
from shapezoo.fields.fitting import FitConfig
from shapezoo.fields.learned_init import INIT_JSON, INIT_WEIGHTS, load_init
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.pretrained import CARD_JSON, CARD_MD, PRETRAINED, REBUILD
from shapezoo.fields.samples import SampleConfig, sample_meshes
from shapezoo.fields.shift_base import BASE_WIDTH, BaseConfig, learn_base
from shapezoo.fields.space import ModelConfig, TrainConfig, load_space, train_space
from shapezoo.fields.space.model import INIT_FILE
from shapezoo.io import atomic_write_bytes, atomic_write_json, ensure_output_dir, read_json, sha256_file
from shapezoo_datasets import FAMILIES, generate

TRAIN_SEED, HELDOUT_SEED = 20000, 30000
BASE_FIT = FitConfig()  # the shift recipe (FitConfig.resolve): 500 steps, lr 2e-3, biases only
"""``fit --init BASE``'s recipe: the default steps (500) at the bias-only peak learning rate."""
SPACE_FILES = (SPACE_JSON, "model.safetensors", INIT_FILE, LATENTS_FILE)
PRIOR_FILES = ("prior.json", "prior.safetensors")


def code_words(spec: FieldSpec, columns: int) -> str:
    """What a field of the base moves, in words: '769 biases', '3841 entries (769 biases and 6 columns of each
    hidden -> hidden weight)'."""
    biases, moved = int(spec.bias_mask().sum()), int(spec.modulation_mask(columns).sum())
    if not columns:
        return f"{biases} biases"
    return f"{moved} entries ({biases} biases and {columns} columns of each hidden -> hidden weight)"


def limits(spec: FieldSpec, columns: int) -> list[str]:
    """The model card's limits of a base of ``spec`` whose fields move ``columns`` columns besides their biases."""
    return [
        "It knows the five procedural families (airplanes, chairs, mugs, tables, vases) and CAPOD's 15 classes at 8 "
        "meshes each; other kinds of shapes are fitted (their codes) but sit where the base has seen little.",
        f"Real meshes fit less closely than procedural ones: only the {code_words(spec, columns)} of a field move, and "
        "thin parts (legs, wings, branches, spider legs) and trees are the first to go (the held-out numbers below).",
        f"Fields are SIRENs of {spec.width} x {spec.depth} ({spec.layout().size / 1e3:.0f}k weights) in the frame of "
        "DESIGN.md: a mesh is centred and scaled so its longest side is 0.9 before it is fitted.",
    ]


def capod_classes(capod: Path) -> dict[int, str]:
    """Mesh number -> class name, from CAPOD's classification file (Princeton Shape Benchmark format)."""
    classes: dict[int, str] = {}
    current = None
    for line in (capod / "CAPOD.cla").read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) == 3:
            current = parts[0].lower()
        elif len(parts) == 1 and current is not None:
            classes[int(parts[0])] = current
    return classes


def lay_out_meshes(work: Path, capod: Path | None, per_family: int, heldout_per_family: int) -> None:
    """WORK/meshes (training) and WORK/heldout: procedural shapes under procedural/, CAPOD meshes under
    capod_CLASS/ (so a shape's label is its family or its CAPOD class)."""
    for family in FAMILIES:
        generate(family, per_family, work / "meshes" / "procedural", seed=TRAIN_SEED)
        generate(family, heldout_per_family, work / "heldout" / "procedural", seed=HELDOUT_SEED)
    if capod is None:
        return
    classes = capod_classes(capod)
    for path in sorted(capod.rglob("m*.obj")):
        number = int(path.stem[1:])
        split = "heldout" if number % 3 == 0 else "meshes"
        target = ensure_output_dir(work / split / f"capod_{classes[number]}") / path.name
        if not target.exists():
            shutil.copyfile(path, target)


def _median(rows: list[dict], key: str) -> float:
    return float(statistics.median(r[key] for r in rows)) if rows else float("nan")


def heldout_quality(work: Path, base: Path, space_dir: Path, device: torch.device) -> dict:
    """The held-out shapes fitted from the base (as ``encode MESH`` fits them), encoded and decoded through the
    space, scored against their meshes at 128^3: median IoU, CD-L2 and connected pieces per group."""
    from shapezoo.core.latents import save_latents
    from shapezoo.fields.fit_job import fit_zoo
    from shapezoo.fields.space.jobs import decode_latents

    init = load_init(base)
    fit_zoo(work / "samples_heldout", work / "zoo_heldout", init.spec, BASE_FIT, device=device, init=init)
    zoo = load_zoo(work / "zoo_heldout")
    space = load_space(space_dir, device)
    names = [n for n in zoo.names if not zoo.unusable(n)]
    z = space.encode(zoo.stack(names)).cpu()
    save_latents(work / "heldout_latents.safetensors", z, names)
    decode_latents(space, space_dir, work / "heldout_latents.safetensors", work / "decoded_heldout")
    report = evaluate_zoo(
        load_zoo(work / "decoded_heldout"), work / "heldout", config=ExtractConfig(resolution=128), device=device
    )
    return {**quality_by_group(report["entries"]), "failed": report.get("failed", [])}


def quality_by_group(entries: list[dict]) -> dict:
    """``evaluate_zoo`` rows against their meshes -> per group (procedural, capod) the median IoU, CD-L2 and
    connected pieces, and the median IoU per class."""
    groups: dict[str, list[dict]] = {"procedural": [], "capod": []}
    for row in entries:
        groups["capod" if row["name"].startswith("capod") else "procedural"].append(row)
    return {
        group: {
            "shapes": len(rows),
            "iou_median": _median(rows, "iou"),
            "chamfer_l2_x1e3_median": 1e3 * _median(rows, "chamfer_l2"),
            "components_median": _median(rows, "components"),
            "components_max": max(r["components"] for r in rows),
            "iou_by_class": {
                c: _median([r for r in rows if _class(r["name"]) == c], "iou")
                for c in sorted({_class(r["name"]) for r in rows})
            },
        }
        for group, rows in groups.items()
        if rows
    }


def _class(name: str) -> str:
    """procedural__chair_30001 and chair_30001 -> chair, capod_tree__m51 -> capod_tree."""
    head, _, tail = name.partition("__")
    return head if head.startswith("capod") else (tail or head).rsplit("_", 1)[0]


def _relative(source: str, work: Path) -> str:
    """A source path as recorded, relative to WORK when it lies there (the card names no builder's folders)."""
    path = Path(source)
    return str(path.relative_to(work)) if path.is_absolute() and path.is_relative_to(work) else source


def _copy(files: list[tuple[Path, str]], out: Path) -> dict[str, str]:
    """Copy (source, relative target) pairs into ``out``; returns relative path -> SHA-256."""
    digests = {}
    for source, rel in files:
        target = out / rel
        ensure_output_dir(target.parent)
        atomic_write_bytes(target, source.read_bytes())
        digests[rel] = sha256_file(target)
    return digests


def card_markdown(card: dict) -> str:
    """MODEL_CARD.md from the card's record."""
    q = card["quality"]
    rows = [
        f"| {group} | {v['shapes']} | {v['iou_median']:.3f} | {v['chamfer_l2_x1e3_median']:.3f} | "
        f"{v['components_median']:g} / {v['components_max']} |"
        for group, v in q.items()
        if isinstance(v, dict)
    ]
    per_class = "; ".join(
        f"{c} {iou:.3f}" for v in q.values() if isinstance(v, dict) for c, iou in v["iou_by_class"].items()
    )
    data, prior = card["data"], card["recipe"]["prior"]
    code = card.get("code", "769 biases")  # cards made before modulated columns
    lines = [
        "# Model card: shapezoo's pretrained default (`--space default`)",
        "",
        "A **shift base** (shared SIREN weights; every field fits only its code), the **weight space** "
        "of the fields fitted from it (the `shift` design: the encoder reads a field's code exactly, aligned to the "
        f"base; latent = {code} standardised) and a **learned prior** over its training latents (flow matching). "
        "`shapezoo encode MESH --out Z`, `interpolate A.obj B.obj --out DIR`, `sample`, `optimize`, `decode` and "
        "`probe` use it when no `--space` is given; `shapezoo space info default` prints this record.",
        "",
        "## Data",
        f"- Training: {data['train']['procedural']} procedural shapes ({card['recipe']['per_family']} per family of "
        f"{', '.join(FAMILIES)}; `shapezoo data generate FAMILY --count {card['recipe']['per_family']} --seed "
        f"{TRAIN_SEED}`) and {data['train']['capod']} CAPOD meshes (the training split: of each of the 15 classes "
        "the meshes whose number is not a multiple of 3).",
        f"- Held out (never seen by the base, the space or the prior): {data['heldout']['procedural']} procedural "
        f"shapes (seeds from {HELDOUT_SEED}) and {data['heldout']['capod']} CAPOD meshes (numbers that are multiples "
        "of 3).",
        "- Every training shape's name, source and SHA-256 is in `card.json` (`data.shapes`).",
        "- CAPOD: P. Papadakis, *The Canonically Posed 3D Objects Dataset*, Eurographics Workshop on 3D Object "
        "Retrieval (3DOR), 2014; Creative Commons Attribution 3.0 (https://creativecommons.org/licenses/by/3.0/). "
        "The shipped weights are learned from it; no mesh is shipped.",
        "",
        "## Recipe",
        f"- Rebuild: `{card['recipe']['command']}` (the stages resume; WORK keeps meshes, samples, zoos).",
        f"- Samples: {card['recipe']['samples']['points']} occupancy points per shape (half uniform, half near the "
        "surface).",
        f"- Base: `init base` on every training shape, {card['recipe']['base']['steps']} Adam steps of "
        f"{card['recipe']['base']['batch']} shapes (lr {card['recipe']['base']['lr']:g} shared, "
        f"{card['recipe']['base']['bias_lr']:g} codes), final loss {card['recipe']['base_loss']:.3f}.",
        "- Fields: `fit --init BASE` (500 steps that move the code only, peak lr 2e-3), the same recipe `encode` uses "
        "on a mesh.",
        "- Space: `space train ZOO --val 0 --test 0` (auto -> shift).",
        f"- Prior: `prior train SPACE --family-conditional --hidden {prior['hidden']} --components "
        f"{prior['components']}`, sampled at temperature {prior['temperature']:g} ({prior['steps']} steps; conditional "
        "on the family or CAPOD class, and unconditional through label dropout: `sample --family chair` or `sample`). "
        "Its top principal directions only, narrow noise: with all 769 directions of the first default (biases only) "
        "samples were tangles (a median of "
        '10 pieces at temperature 0.8), with 32 at 0.5 they are one piece (BENCHMARKS.md, "Pretrained default"); '
        "256 wide instead of the library's 512 keeps the wheel under 20 MB.",
        "",
        "## Measured quality (held-out shapes, encoded and decoded through the space, vs their meshes at 128^3)",
        "",
        "| shapes | count | IoU median | CD-L2 x1e3 median | connected pieces median / max |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Per class (IoU median): {per_class}.",
        "",
        "## Limits",
        *[f"- {line}" for line in card["limits"]],
        "",
        "## Size",
        f"{card['size_bytes'] / 1e6:.1f} MB in all ({len(card['files'])} files, each with its SHA-256 in `card.json`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "build_default.json")
    ap.add_argument("--capod", type=Path, help="CAPOD folder (CAPOD.cla + class*/m*.obj); without it: procedural only")
    ap.add_argument("--work", type=Path, required=True, help="working folder (resumed when rerun)")
    ap.add_argument("--assets", type=Path, default=PRETRAINED, help="where the shipped files go")
    ap.add_argument("--per-family", type=int, default=56)
    ap.add_argument("--heldout-per-family", type=int, default=16)
    ap.add_argument("--base-steps", type=int, default=BaseConfig.steps)
    ap.add_argument("--width", type=int, default=BASE_WIDTH)
    ap.add_argument("--columns", type=int, default=BaseConfig.columns, help="the base's modulated columns")
    ap.add_argument("--points", type=int, default=SampleConfig.points)
    ap.add_argument("--prior-steps", type=int, default=PriorConfig.steps)
    ap.add_argument(
        "--prior-hidden", type=int, default=256, help="velocity network width (512, the library default, is 17 MB)"
    )
    ap.add_argument(
        "--prior-components", type=int, default=32, help="principal directions the prior models (BENCHMARKS.md)"
    )
    ap.add_argument("--prior-temperature", type=float, default=0.5, help="the prior's sampling temperature")
    args = ap.parse_args(argv)
    dev = _common.device(args)
    work = ensure_output_dir(args.work)
    lay_out_meshes(work, args.capod, args.per_family, args.heldout_per_family)
    samples = SampleConfig(points=args.points)
    sample_meshes(work / "meshes", work / "samples", samples)
    sample_meshes(work / "heldout", work / "samples_heldout", samples)
    base_config = BaseConfig(steps=args.base_steps, val=0.0, test=0.0, columns=args.columns)
    learn_base([work / "samples"], work / "base", FieldSpec(width=args.width), base_config, dev)
    init = load_init(work / "base")
    from shapezoo.fields.fit_job import fit_zoo

    fit_zoo(work / "samples", work / "zoo", init.spec, BASE_FIT, device=dev, init=init)
    train_space(load_zoo(work / "zoo"), work / "space", ModelConfig(), TrainConfig(val=0.0, test=0.0), dev)
    prior_config = PriorConfig(
        steps=args.prior_steps,
        hidden=args.prior_hidden,
        conditional=True,
        components=args.prior_components,
        temperature=args.prior_temperature,
    )
    train_prior(work / "space", work / "space" / "prior", prior_config, dev)
    quality = heldout_quality(work, work / "base", work / "space", dev)

    out = ensure_output_dir(args.assets)
    for old in [p for p in out.rglob("*") if p.is_file()]:
        old.unlink()
    files = [(work / "base" / f, f"base/{f}") for f in (INIT_JSON, INIT_WEIGHTS)]
    files += [(work / "space" / f, f"space/{f}") for f in SPACE_FILES]
    files += [(work / "space" / "prior" / f, f"space/prior/{f}") for f in PRIOR_FILES]
    digests = _copy(files, out)
    record = read_json(work / "base" / INIT_JSON, dict)
    shapes = [{**s, "source": _relative(s["source"], work), "label": _class(s["name"])} for s in record["shapes"]]
    curve = record.get("curve") or [{}]
    card = {
        "name": "default",
        "data": {
            "train": {
                "procedural": sum(s["name"].startswith("procedural") for s in shapes),
                "capod": sum(s["name"].startswith("capod") for s in shapes),
            },
            "heldout": {
                group: sum(
                    1
                    for p in (work / "heldout").rglob("*.obj")
                    if str(p.relative_to(work / "heldout")).startswith(group)
                )
                for group in ("procedural", "capod")
            },
            "shapes": shapes,
            "attribution": "CAPOD: P. Papadakis, The Canonically Posed 3D Objects Dataset, 3DOR 2014, CC BY 3.0",
        },
        "recipe": {
            "command": REBUILD,
            "per_family": args.per_family,
            "heldout_per_family": args.heldout_per_family,
            "seeds": {"train": TRAIN_SEED, "heldout": HELDOUT_SEED},
            "samples": asdict(samples),
            "base": asdict(base_config),
            "base_loss": float(curve[-1].get("loss", float("nan"))),
            "fit": read_json(work / "zoo" / "zoo.json", dict).get("fit"),
            "prior": asdict(prior_config),
        },
        "quality": quality,
        "limits": limits(FieldSpec(width=args.width), args.columns),
        "code": code_words(FieldSpec(width=args.width), args.columns),
        "files": digests,
        "size_bytes": sum((out / rel).stat().st_size for rel in digests),
        "environment": _common.environment(dev),
    }
    text = card_markdown(card).encode()
    atomic_write_bytes(out / CARD_MD, text)
    card["files"][CARD_MD] = sha256_file(out / CARD_MD)
    card["size_bytes"] += len(text)
    atomic_write_json(out / CARD_JSON, card)
    summary = {"assets": str(out), "quality": quality, "size_bytes": card["size_bytes"]}
    print(f"{'shapes':<12} {'count':>6} {'IoU':>7} {'CD-L2e3':>8} {'pieces':>7}")
    for group, v in quality.items():
        if isinstance(v, dict):
            cd, pieces = v["chamfer_l2_x1e3_median"], v["components_median"]
            print(f"{group:<12} {v['shapes']:>6} {v['iou_median']:>7.3f} {cd:>8.3f} {pieces:>7g}")
    return _common.finish(args.out, summary, dev)


if __name__ == "__main__":
    _common.run(main)
