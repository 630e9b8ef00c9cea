"""Classifier zoos and their spaces, measured: the numbers of BENCHMARKS.md ("Classifier zoos (issue 6)").

Stages (each prints a table and writes benchmarks/results/classifiers_<stage>_<data>.json; zoos and spaces go
under --work and are reused/resumed on a rerun):

    throughput  zoo training, B models per job vs the same models one by one (same run, models/hour)
    single      one architecture: zoo -> space -> original vs decoded accuracy (train / val / held-out), with and
                without latent refinement; weak -> strong interpolation (latent vs raw weights); latent
                optimisation from the weakest held-out model and from the mean latent
    independent raw-weight interpolation between two models from independent initialisations vs a shared one
    unseen      ordering lenet-4 .. lenet-12: space trained on instances of the first and last widths only;
                generated middle widths vs normally trained instances of them
    multi       one space over mlp, lenet, cnn and resnet zoos: per-architecture accuracy gap, architecture head

Usage: python -m benchmarks.classifiers single --data digits --work /tmp/czoo
       python -m benchmarks.classifiers single --data fashion-mnist --count 256 --epochs 100 --work /tmp/czoo
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.classifiers.archs import ClassifierSpec, parse_arch
from shapezoo.classifiers.data import load_images
from shapezoo.classifiers.operations import (
    LatentOptConfig,
    evaluate_decoded,
    generate_between,
    interpolation_path,
    optimize_latent,
)
from shapezoo.classifiers.space import SpaceConfig, load_classifier_space
from shapezoo.classifiers.train import SpaceTrainConfig, train_classifier_space
from shapezoo.classifiers.zoo import ZooConfig, hyperparameters, model_names, train_models, train_zoo
from shapezoo.core.latents import LATENTS_FILE
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.space import load_latents


def _zoo(spec: ClassifierSpec, data, work: Path, config: ZooConfig):
    out = work / f"{data.name}-{spec.name}-{config.count}"
    t0 = time.perf_counter()
    summary = train_zoo(spec, data, out, config, {"name": data.name})
    print(
        f"zoo {spec.name} x{config.count}: {time.perf_counter() - t0:.1f} s, test acc {summary['accuracy_test']}",
        flush=True,
    )
    return load_zoo(out, kind="classifier"), summary


def _space(zoos, data, out: Path, a, archs=None):
    t0 = time.perf_counter()
    summary = train_classifier_space(
        zoos,
        data,
        out,
        archs,
        SpaceConfig(latent=a.latent, hidden=a.hidden, basis=a.basis),
        SpaceTrainConfig(epochs=a.epochs),
        on_eval=lambda e: (
            print(
                f"  epoch {e['epoch']}: "
                + " ".join(f"{k} {v:.4f}" for k, v in e["train"].items())
                + f" | select {e['select']['distill']:.4f} gap {e['select']['mean_abs_gap_points']:.2f}",
                flush=True,
            )
            if e["epoch"] % 50 == 0
            else None
        ),
    )
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return load_classifier_space(out), summary


def _variant(a) -> str:
    """Space folder suffix for non-default options, so a rerun with other options trains a new space."""
    return (
        (f"-l{a.latent}" if a.latent != 64 else "")
        + (f"-h{a.hidden}" if a.hidden != 256 else "")
        + (f"-b{a.basis}" if a.basis != 256 else "")
    )


def throughput(a, data) -> dict:
    spec = parse_arch(a.arch, data.in_shape, data.classes)
    config = ZooConfig(count=a.models, steps=(a.steps, a.steps))
    from shapezoo.classifiers.archs import init_params

    init = init_params(spec, 0)
    hp = [hyperparameters(config, n) for n in model_names(spec, a.models)]
    for h in hp:
        h["steps"] = a.steps
    rows = []
    for label, groups in (("batched", [hp]), ("one by one", [[h] for h in hp])):
        t0 = time.perf_counter()
        for g in groups:
            train_models(spec, init, data, g, config)
        s = time.perf_counter() - t0
        rows.append(
            {
                "mode": label,
                "models": a.models,
                "steps": a.steps,
                "seconds": round(s, 2),
                "models_per_hour": round(3600 * a.models / s, 1),
            }
        )
        print(
            f"{label:12s} {a.models} x {spec.name}, {a.steps} steps: {s:7.1f} s  "
            f"{rows[-1]['models_per_hour']:9.1f} models/h",
            flush=True,
        )
    return {"arch": spec.name, "rows": rows, "speedup": rows[1]["seconds"] / rows[0]["seconds"]}


def single(a, data) -> dict:
    spec = parse_arch(a.arch, data.in_shape, data.classes)
    zoo, zs = _zoo(spec, data, a.work, ZooConfig(count=a.count))
    space, ss = _space([zoo], data, a.work / f"space-{data.name}-{spec.name}-{a.count}-{a.epochs}{_variant(a)}", a)
    evals = {}
    for refine in (0, a.refine):
        t0 = time.perf_counter()
        r = evaluate_decoded(space, zoo, data, refine=refine, only=None if refine == 0 else {"val", "test"})
        evals[f"refine_{refine}"] = {"seconds": round(time.perf_counter() - t0, 1), **r}
        for role, v in r["summary"].items():
            print(
                f"refine {refine:3d} {role:6s} {v['models']:4d} models  |gap| {v['mean_abs_gap_points']:.2f} pt  "
                f"Spearman {v['spearman']:.3f}  acc {100 * v['accuracy_original_mean']:.2f} -> "
                f"{100 * v['accuracy_decoded_mean']:.2f}",
                flush=True,
            )
    held = [r for r in evals["refine_0"]["models"] if r["role"] == "test"]
    weak = min(held, key=lambda r: r["accuracy_original"])["name"]
    strong = max(held, key=lambda r: r["accuracy_original"])["name"]
    path = interpolation_path(space, (spec, zoo.weights(weak)), (spec, zoo.weights(strong)), data, steps=11)
    path.pop("latents")
    print("interp latent " + " ".join(f"{100 * x:.1f}" for x in path["accuracy_latent"]))
    print("interp raw    " + " ".join(f"{100 * x:.1f}" for x in path["accuracy_raw"]), flush=True)
    opt = {}
    train_z, _ = load_latents(Path(space.meta["results"]["space"]) / LATENTS_FILE)
    starts = {"weakest_held_out": space.encode(spec, zoo.weights(weak)[None])[0], "mean": train_z.mean(0)}
    for label, z0 in starts.items():
        r = optimize_latent(space, spec, z0, data, LatentOptConfig(steps=a.opt_steps))
        opt[label] = {k: v for k, v in r.items() if k not in ("z", "params")}
        print(
            f"optimise from {label}: test {100 * r['accuracy_test_start']:.2f} -> {100 * r['accuracy_test_end']:.2f}",
            flush=True,
        )
    return {
        "arch": spec.name,
        "zoo": zs,
        "space": ss,
        "eval": {k: {"seconds": v["seconds"], "summary": v["summary"]} for k, v in evals.items()},
        "models": evals,
        "interpolation": {"a": weak, "b": strong, **path},
        "optimize": opt,
    }


def independent(a, data) -> dict:
    """Raw-weight interpolation between two fully trained models: from independent initialisations (init seeds
    1 and 2) versus from the zoo's shared initialisation (different data orders)."""
    from shapezoo.classifiers.archs import accuracy, init_params

    spec = parse_arch(a.arch, data.in_shape, data.classes)
    config = ZooConfig(steps=(800, 800))
    hp = [{"seed": s, "steps": 800, "lr": 2e-3} for s in (11, 12)]
    t = torch.linspace(0, 1, 11, device=data.train[0].device)[:, None]
    out = {}
    for label, inits in (("independent inits", (1, 2)), ("shared init", (0, 0))):
        ends = [
            train_models(spec, init_params(spec, i).to(t.device), data, [h], config)[0][0] for i, h in zip(inits, hp)
        ]
        acc = accuracy(spec, (1 - t) * ends[0] + t * ends[1], *data.test).tolist()
        out[label] = acc
        print(f"raw path, {label:17s} " + " ".join(f"{100 * x:.1f}" for x in acc), flush=True)
    return {"arch": spec.name, "t": t[:, 0].tolist(), "accuracy_raw": out}


def unseen(a, data) -> dict:
    widths = [int(w) for w in a.widths.split(",")]
    order = [ClassifierSpec("lenet", w, data.in_shape, data.classes) for w in widths]
    ends = [
        _zoo(order[0], data, a.work, ZooConfig(count=a.count))[0],
        _zoo(order[-1], data, a.work, ZooConfig(count=a.count))[0],
    ]
    normal = {s.name: _zoo(s, data, a.work, ZooConfig(count=a.reference))[0] for s in order[1:-1]}
    space, ss = _space(
        ends, data, a.work / f"unseen-{data.name}-{a.widths}-{a.count}-{a.epochs}{_variant(a)}", a, order
    )
    # pair every first-width model with a last-width model of similar rank (by test accuracy)
    firsts = sorted(ends[0].names, key=lambda n: ends[0].entries[ends[0].index(n)]["metrics"]["accuracy_test"])
    lasts = sorted(ends[1].names, key=lambda n: ends[1].entries[ends[1].index(n)]["metrics"]["accuracy_test"])
    made = generate_between(
        space,
        ends[0].params[[ends[0].index(n) for n in firsts]],
        ends[1].params[[ends[1].index(n) for n in lasts]],
        data,
    )
    rows = {}
    for name, m in made.items():
        ref = [e["metrics"]["accuracy_test"] for e in normal[name].entries]
        ref_mean = sum(ref) / len(ref)
        rows[name] = {
            "t": m["t"],
            "generated_mean": m["accuracy_mean"],
            "generated_best": max(m["accuracy"]),
            "trained_mean": ref_mean,
            "trained_models": len(ref),
            "ratio": m["accuracy_mean"] / ref_mean,
            "arch_predicted_share": m["arch_predicted_share"],
            "generated": len(m["accuracy"]),
        }
        print(
            f"{name:10s} generated {100 * m['accuracy_mean']:.2f}% (n={len(m['accuracy'])})  trained "
            f"{100 * ref_mean:.2f}% (n={len(ref)})  ratio {rows[name]['ratio']:.3f}  arch head "
            f"{m['arch_predicted_share']:.2f}",
            flush=True,
        )
    ends_acc = {z.spec.name: sum(e["metrics"]["accuracy_test"] for e in z.entries) / len(z.entries) for z in ends}
    return {"order": [s.name for s in order], "space": ss, "ends_mean_accuracy": ends_acc, "rows": rows}


def multi(a, data) -> dict:
    zoos = [
        _zoo(parse_arch(k, data.in_shape, data.classes), data, a.work, ZooConfig(count=a.count))[0]
        for k in ("mlp", "lenet", "cnn", "resnet")
    ]
    space, ss = _space(zoos, data, a.work / f"multi-{data.name}-{a.count}-{a.epochs}{_variant(a)}", a)
    out = {}
    for z in zoos:
        r = evaluate_decoded(space, z, data)
        out[z.spec.name] = r["summary"]
        for role, v in r["summary"].items():
            print(
                f"{z.spec.name:10s} {role:6s} |gap| {v['mean_abs_gap_points']:.2f} pt  Spearman {v['spearman']:.3f}",
                flush=True,
            )
    return {"space": ss, "per_arch": out}


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, None)
    ap.add_argument("stage", choices=["throughput", "single", "independent", "unseen", "multi"])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--root", default=None)
    ap.add_argument("--arch", default="lenet")
    ap.add_argument("--count", type=int, default=384, help="models per zoo")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--basis", type=int, default=256, help="principal directions per kind (0: all weights)")
    ap.add_argument("--refine", type=int, default=300, help="latent refinement steps for the refined row")
    ap.add_argument("--opt-steps", type=int, default=300)
    ap.add_argument("--widths", default="4,6,8,10,12", help="unseen: the lenet width ordering")
    ap.add_argument("--reference", type=int, default=16, help="unseen: normally trained models per middle width")
    ap.add_argument("--models", type=int, default=32, help="throughput: models")
    ap.add_argument("--steps", type=int, default=200, help="throughput: steps per model")
    ap.add_argument("--work", type=Path, default=Path("/tmp/shapezoo-classifiers"))
    a = ap.parse_args(argv)
    a.device = _common.device(a)
    data = load_images(a.data, a.root).to(a.device)
    t0 = time.perf_counter()
    result = {
        "stage": a.stage,
        "data": a.data,
        "args": {k: str(v) for k, v in vars(a).items()},
        **globals()[a.stage](a, data),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return _common.finish(a.out or _common.RESULTS / f"classifiers_{a.stage}_{a.data}.json", result, a.device)


if __name__ == "__main__":
    _common.run(main)
