"""Generated shapes against the 2025 study's baselines: good *and* new? (issue 21)

On one field space and its zoo, side by side with the same count, seed, extraction and metrics:
- ``learned``: the learned prior (``shapezoo prior train``), unconditional;
- ``gaussian``: the Gaussian fitted to the training latents (today's ``sample``);
- ``noise``: a random training latent plus Gaussian noise, at the scale whose median distance to the nearest
  training latent equals the learned prior's samples' (the study's "training network plus noise"), and at
  ``--noise-scales`` multiples of it (``noise x0.5``: a curve to read the baseline off at the prior's novelty);
- ``avg-latent`` / ``avg-weights``: the decoded average of two random training latents / the average of the same
  two training fields' raw weights;
- ``copies``: the training fields themselves, decoded from their latents (a generator that memorises: the reference
  for what "not new" scores).
Each set is meshed and scored by ``fields.generation`` against the ground-truth meshes of the space's test split
(MMD, COV, 1-NNA by Chamfer-L2 on 2048 points) and for novelty against the training split's ground-truth meshes:
each sample's nearest-training Chamfer, median, over the same median for the held-out shapes themselves (ratio).
That ratio cannot see copying when a field's own error is as large as the gaps between shapes, so novelty is also
measured in the fields' representation: nearest *training field* mesh, over the same for the held-out fields
(``novelty_fields_ratio``; a copy scores ~0). A family-conditional prior is also checked by nearest-class-mean
classification of its samples' latents.

Usage: python -m benchmarks.generation MESHES --space SPACE --zoo ZOO --prior PRIOR [--conditional PRIOR2]
"""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.prior import GaussianPrior, PriorConfig, load_prior, space_latents, train_prior
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.extract import ExtractConfig, extract_meshes
from shapezoo.fields.generation import chamfer_matrix, clouds, generation_metrics, read_shapes, split_of
from shapezoo.fields.space import load_space

METHODS = ("learned", "gaussian", "noise", "avg-latent", "avg-weights", "copies")


def _noise_scale(train_z: torch.Tensor, target: float, count: int, seed: int) -> float:
    """The noise scale whose samples' median nearest-training latent distance is ``target`` (bisection)."""
    g = torch.Generator().manual_seed(seed)
    base = train_z[torch.randint(len(train_z), (count,), generator=g)]
    eps = torch.randn(base.shape, generator=g)
    lo, hi = 0.0, 4.0 * float(train_z.std(0).mean())
    for _ in range(40):
        mid = (lo + hi) / 2
        if float(torch.cdist(base + mid * eps, train_z).min(1).values.median()) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _score(meshes, names, sets: dict, points: int, dev) -> dict:
    keep = [i for i, (_, f) in enumerate(meshes) if len(f)]
    g = clouds([meshes[i] for i in keep], [names[i] for i in keep], points).to(dev)
    novelty = float(chamfer_matrix(g, sets["train"]).min(1).values.median())
    copy = float(chamfer_matrix(g, sets["train_fields"]).min(1).values.median())
    return {
        "empty": len(meshes) - len(keep),
        **generation_metrics(chamfer_matrix(g, g), sets["d_rr"], chamfer_matrix(g, sets["ref"])),
        "novelty_median": novelty,
        "novelty_ratio": novelty / float(sets["d_rt"].min(1).values.median()),
        "novelty_fields_median": copy,
        "novelty_fields_ratio": copy / float(sets["d_ff"].min(1).values.median()),
    }


def _reference_sets(a, space, zoo, split, train_names, dev) -> dict:
    """Clouds of the held-out and training ground truth and of the zoo's held-out and training fields, with the
    distances every method is compared against; cached in ``--cache`` (they do not depend on the method)."""
    from shapezoo.io import atomic_save_tensors, ensure_output_dir, load_tensors

    key = f"{a.space.resolve()}|{a.meshes.resolve()}|{a.zoo.resolve()}|{a.points}|{a.resolution}|{a.min_component}"
    path = a.cache / f"generation_sets_{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors" if a.cache else None
    if path is not None and path.exists():
        return {k: v.to(dev) for k, v in load_tensors(path, framework="pt")[0].items()}
    ref_names, ref_meshes = read_shapes(a.meshes, split["test"], "reference shapes")
    tr_names, tr_meshes = read_shapes(a.meshes, train_names, "training shapes")
    sets = {"ref": clouds(ref_meshes, ref_names, a.points), "train": clouds(tr_meshes, tr_names, a.points)}
    config = ExtractConfig(resolution=a.resolution, min_component=a.min_component)
    for name, members in (("test_fields", split["test"]), ("train_fields", train_names)):
        params = zoo.stack(members).to(dev)
        meshes = []
        for b in range(0, len(members), 8):
            meshes += extract_meshes(space.spec, params[b : b + 8], config, members[b : b + 8])[0]
        sets[name] = clouds(meshes, members, a.points)
    sets = {k: v.to(dev) for k, v in sets.items()}
    sets["d_rr"] = chamfer_matrix(sets["ref"], sets["ref"])
    sets["d_rt"] = chamfer_matrix(sets["ref"], sets["train"])
    sets["d_ff"] = chamfer_matrix(sets["test_fields"], sets["train_fields"])
    if path is not None:
        ensure_output_dir(a.cache)
        atomic_save_tensors(path, {k: v.cpu().contiguous() for k, v in sets.items()})
    return sets


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "generation.json")
    ap.add_argument("meshes", type=Path, help="ground-truth meshes, named like the fields")
    ap.add_argument("--space", type=Path, required=True)
    ap.add_argument("--zoo", type=Path, required=True, help="the zoo the space was trained on")
    ap.add_argument("--prior", type=Path, required=True, help="learned prior of the space (trained if missing)")
    ap.add_argument("--prior-steps", type=int, default=1500, help="steps of a prior trained here")
    ap.add_argument("--conditional", type=Path, help="family-conditional prior of the space (trained if missing)")
    ap.add_argument("--count", type=int, default=0, help="samples per method (0: as many as test shapes)")
    ap.add_argument("--per-family", type=int, default=100, help="conditional samples per family")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    ap.add_argument(
        "--noise-scales",
        type=float,
        nargs="*",
        default=[1.0],
        help="noise baselines at these multiples of the matched scale",
    )
    ap.add_argument("--temperature", type=float, default=1.0, help="starting-noise scale of learned and gaussian")
    ap.add_argument("--min-component", type=float, default=0.0, help="drop mesh pieces below this share of faces")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, help="folder keeping the reference clouds and distances between runs")
    a = ap.parse_args(argv)
    dev = _common.device(a)
    t0 = time.perf_counter()
    space = load_space(a.space, dev)
    split = split_of(a.space)
    latents = space_latents(a.space)
    train_z, train_names = latents.z, latents.names
    count = a.count or len(split["test"])
    zoo = load_zoo(a.zoo)
    sets = _reference_sets(a, space, zoo, split, train_names, dev)
    reference = {
        "test": len(sets["ref"]),
        "train": len(sets["train"]),
        "held_out_nearest_train_median": float(sets["d_rt"].min(1).values.median()),
        "held_out_fields_nearest_train_fields_median": float(sets["d_ff"].min(1).values.median()),
    }
    print(f"reference: {reference} ({time.perf_counter() - t0:.0f} s)", flush=True)

    g = torch.Generator().manual_seed(a.seed)
    pairs = torch.stack([torch.randperm(len(train_z), generator=g)[:2] for _ in range(count)])
    for path, conditional in ((a.prior, False), (a.conditional, True)):
        if path is not None and not (path / "prior.json").exists():
            config = PriorConfig(steps=a.prior_steps, eval_every=min(50, a.prior_steps), conditional=conditional)
            train_prior(a.space, path, config, dev)
    learned = load_prior(a.prior)
    learned.check_source(latents, a.space)
    z_learned = learned.sample(count, a.seed, temperature=a.temperature)
    target = float(torch.cdist(z_learned, train_z).min(1).values.median())
    sigma = _noise_scale(train_z, target, count, a.seed)

    def latents_of(method: str) -> torch.Tensor | None:
        if method == "learned":
            return z_learned
        if method == "gaussian":
            return GaussianPrior.fit(train_z).sample(count, a.seed, a.temperature)
        if method.startswith("noise"):
            scale = float(method.split("x")[1]) if "x" in method else 1.0
            pick = torch.randint(len(train_z), (count,), generator=torch.Generator().manual_seed(a.seed + 1))
            return train_z[pick] + scale * sigma * torch.randn(
                count, train_z.shape[1], generator=torch.Generator().manual_seed(a.seed + 2)
            )
        if method == "avg-latent":
            return (train_z[pairs[:, 0]] + train_z[pairs[:, 1]]) / 2
        if method == "copies":
            return train_z[torch.randperm(len(train_z), generator=torch.Generator().manual_seed(a.seed))[:count]]
        return None

    config = ExtractConfig(resolution=a.resolution, min_component=a.min_component)
    results: dict = {}
    methods = [m for m in a.methods if m != "noise"]
    if "noise" in a.methods:
        at = a.methods.index("noise")
        methods[at:at] = [f"noise x{k:g}" if k != 1 else "noise" for k in a.noise_scales]
    for method in methods:
        t = time.perf_counter()
        z = latents_of(method)
        if z is None:
            w = zoo.stack([train_names[i] for i in pairs.flatten().tolist()]).reshape(count, 2, -1)
            params = w.mean(1).to(dev)
        else:
            params = space.decode(z)
        names = [f"{method.replace(' ', '')}_{i:03d}" for i in range(count)]
        meshes = []
        for b in range(0, count, 8):
            meshes += extract_meshes(space.spec, params[b : b + 8], config, names[b : b + 8])[0]
        row = _score(meshes, names, sets, a.points, dev)
        if z is not None:
            row["latent_novelty_median"] = float(torch.cdist(z, train_z).min(1).values.median())
        row["seconds"] = round(time.perf_counter() - t, 1)
        results[method] = row
        print(
            f"{method:12s} MMD {1e3 * row['mmd']:.3f}e-3  COV {row['cov']:.3f}  1-NNA {row['1-nna']:.3f}  "
            f"novelty {1e3 * row['novelty_median']:.3f}e-3 (ratio {row['novelty_ratio']:.2f}, fields "
            f"{row['novelty_fields_ratio']:.2f})  empty {row['empty']}",
            flush=True,
        )

    conditional = None
    if a.conditional:
        prior = load_prior(a.conditional)
        prior.check_source(latents, a.space)
        labels = [latents.meta["labels"][n] for n in train_names]
        families = sorted(set(labels))
        means = torch.stack([train_z[[i for i, v in enumerate(labels) if v == f]].mean(0) for f in families])
        test_family = [zoo.entries[zoo.index(n)].get("label") for n in split["test"]]
        per_family = {}
        for k, fam in enumerate(families):
            z = prior.sample(a.per_family, a.seed + k, fam, a.guidance, a.temperature)
            row = {"nearest_mean_accuracy": float((torch.cdist(z, means).argmin(1) == k).double().mean())}
            refs = [i for i, f in enumerate(test_family) if f == fam]
            if len(refs) >= 2:  # the family's samples scored against the family's held-out shapes
                names = [f"{fam}_{i:03d}" for i in range(len(refs))]
                params = space.decode(z[: len(refs)])
                meshes = []
                for b in range(0, len(refs), 8):
                    meshes += extract_meshes(space.spec, params[b : b + 8], config, names[b : b + 8])[0]
                family_sets = {
                    **sets,
                    "ref": sets["ref"][refs],
                    "d_rr": sets["d_rr"][refs][:, refs],
                    "d_rt": sets["d_rt"][refs],
                    "d_ff": sets["d_ff"][refs],
                }
                row.update(_score(meshes, names, family_sets, a.points, dev))
            per_family[fam] = row
            print(f"conditional {fam}: {row}", flush=True)
        conditional = {
            "per_family": per_family,
            "accuracy": statistics.fmean(r["nearest_mean_accuracy"] for r in per_family.values()),
            "classifier": "nearest class mean of the training latents",
            "guidance": a.guidance,
        }
        print(f"conditional: nearest-class-mean accuracy {conditional['accuracy']:.3f}")
    result = {
        "space": str(a.space),
        "prior": str(a.prior),
        "count": count,
        "resolution": a.resolution,
        "temperature": a.temperature,
        "min_component": a.min_component,
        "points": a.points,
        "noise_scale": sigma,
        "reference": reference,
        "methods": results,
        "conditional": conditional,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return _common.finish(a.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
