"""shapezoo's batched fitter beside the way the field's fastest peer fits (fit-a-nef, CVPR 2024: JAX ``vmap`` +
optax), on the same shapes, start, architecture and schedule, in one run.

Usage: python3 -m benchmarks.peer_jax SAMPLES [--shapes 32] [--steps 500] [--repeats 1]
       (needs the optional extra: pip install "shapezoo[peer]", i.e. jax and optax)

Every contender fits the same B fields: SIREN 3 -> 128 x 3 -> 1 (first ω 18, ω 30) from the bundled learned init,
1024 training points per field and step from shapezoo's training split of each shape (its held-out 10% stay unseen),
BCE on logits, Adam with cosine decay from 5e-4 to 5% of it over the steps. The peer: one jitted step of
``jax.vmap(jax.value_and_grad(loss))`` over the fields and ``jax.vmap(optax.adam(cosine_decay_schedule).update)``,
points drawn at random each step, as fit-a-nef does. shapezoo twice: ``fit_fields`` with the peer's points (no
jitter, no hard points) and with its own recipe (``fit --init learned``: jitter and hard points). Times exclude the
peer's compilation (reported apart) and a warm-up; IoU is each field's on its held-out uniform points (the measure
``fit`` records), the same code for all.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import _common
from shapezoo.core.measure import set_iou
from shapezoo.core.zoo import member_seed
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.learned_init import bundled_init
from shapezoo.fields.network import FieldSpec, field_forward
from shapezoo.fields.samples import load_samples
from shapezoo.fields.training_points import split_holdout


def load(samples: Path, count: int) -> tuple[torch.Tensor, torch.Tensor, int, list[str]]:
    """The first ``count`` shapes of a samples folder: points (B, N, 3), labels (B, N), uniform count, names."""
    files = sorted(samples.glob("*.safetensors"))[:count]
    data = [load_samples(f) for f in files]
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data]).float()
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data]).float()
    return pts, occ, int(data[0]["n_uniform"]), [f.stem for f in files]


def splits(names: list[str], N: int, n_uniform: int, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """shapezoo's per-field training and held-out indices (``fit_fields`` seeds them by name the same way)."""
    parts = [split_holdout(N, n_uniform, holdout, member_seed(FitConfig().init_seed, n)) for n in names]
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def held_out_iou(spec: FieldSpec, params: torch.Tensor, pts, occ, held: np.ndarray, n_uniform: int) -> list[float]:
    """Each field's IoU on its held-out uniform points (the first ``n_uniform * holdout`` held-out indices)."""
    k = round(n_uniform * FitConfig().holdout)
    idx = torch.as_tensor(held[:, :k])
    x = torch.gather(pts, 1, idx[..., None].expand(-1, -1, 3))
    with torch.no_grad():
        logits = field_forward(spec, params, x)[..., 0]
    return set_iou(logits > 0, torch.gather(occ, 1, idx) > 0.5).tolist()


def jax_fit(spec: FieldSpec, init: torch.Tensor, train_x: np.ndarray, train_y: np.ndarray, recipe: FitConfig):
    """The peer: B fields fitted with JAX vmap + optax. Returns (params (B, P), compile seconds, fit seconds)."""
    import jax
    import jax.numpy as jnp
    import optax

    layout = spec.layout()
    offsets = np.cumsum([0] + list(layout.numels))
    shapes = [shape for _, shape in layout.entries]
    omegas = [spec.first_omega0] + [spec.omega0] * (spec.depth - 1)

    def logits(p, x):
        parts = [p[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        h = x
        for i in range(spec.depth + 1):
            z = h @ parts[2 * i].T + parts[2 * i + 1]
            h = jnp.sin(omegas[i] * z) if i < spec.depth else z
        return h[..., 0]

    def loss(p, x, y):
        return optax.sigmoid_binary_cross_entropy(logits(p, x), y).mean()

    assert recipe.steps is not None and recipe.lr is not None
    schedule = optax.cosine_decay_schedule(recipe.lr, recipe.steps, alpha=recipe.lr_final)
    opt = optax.adam(schedule, b1=recipe.betas[0], b2=recipe.betas[1], eps=recipe.eps)
    B, n = train_y.shape
    X, Y = jnp.asarray(train_x), jnp.asarray(train_y)

    @jax.jit
    def step(params, state, key):
        idx = jax.random.randint(key, (B, recipe.points_per_step), 0, n)
        x = jnp.take_along_axis(X, idx[..., None], axis=1)
        y = jnp.take_along_axis(Y, idx, axis=1)
        value, grads = jax.vmap(jax.value_and_grad(loss))(params, x, y)
        updates, state = jax.vmap(opt.update)(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    params = jnp.tile(jnp.asarray(init.numpy())[None], (B, 1))
    state = jax.vmap(opt.init)(params)
    keys = jax.random.split(jax.random.PRNGKey(0), recipe.steps + 1)
    tic = time.perf_counter()
    jax.block_until_ready(step(params, state, keys[-1]))  # compiles; its result is dropped
    compiled = time.perf_counter() - tic
    tic = time.perf_counter()
    for s in range(recipe.steps):
        params, state, _ = step(params, state, keys[s])
    jax.block_until_ready(params)
    return torch.from_numpy(np.array(params)), compiled, time.perf_counter() - tic


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "peer_jax.json", device=False)
    ap.add_argument("samples", type=Path, help="a samples folder (shapezoo data sample)")
    ap.add_argument("--shapes", type=int, default=32, help="fields fitted at once by each contender")
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args(argv)
    try:
        import jax
    except ImportError:
        ap.error('the peer needs JAX and optax: pip install "shapezoo[peer]"')
    init = bundled_init(FieldSpec())
    assert init is not None
    spec = init.spec
    pts, occ, n_uniform, names = load(args.samples, args.shapes)
    recipe = replace(FitConfig(steps=args.steps).resolve("learned"), check_every=10**9)
    train, held = splits(names, pts.shape[1], n_uniform, recipe.holdout)
    train_x = torch.gather(pts, 1, torch.as_tensor(train)[..., None].expand(-1, -1, 3)).numpy()
    train_y = torch.gather(occ, 1, torch.as_tensor(train)).numpy()

    rows: dict[str, dict] = {}
    peer, compiled, seconds = jax_fit(spec, init.params, train_x, train_y, recipe)
    rows["jax vmap + optax (peer)"] = {"seconds": seconds, "compile_seconds": compiled, "params": peer}
    contenders = {
        "shapezoo, the peer's points": replace(recipe, jitter_margin=None, hard_fraction=0.0),
        "shapezoo, its recipe": recipe,
    }
    for name, config in contenders.items():
        fit_fields(spec, init.params, pts, occ, n_uniform, names, replace(config, steps=3))  # warm-up
        tic = time.perf_counter()
        result = fit_fields(spec, init.params, pts, occ, n_uniform, names, config)
        rows[name] = {"seconds": time.perf_counter() - tic, "params": result.params}

    print(f"{'contender':<30}{'seconds':>9}{'fields/hour':>13}{'median IoU':>12}")
    for name, row in rows.items():
        ious = held_out_iou(spec, row.pop("params"), pts, occ, held, n_uniform)
        row.update(fields_per_hour=3600 * len(names) / row["seconds"], iou_median=float(np.median(ious)), ious=ious)
        print(f"{name:<30}{row['seconds']:>9.1f}{row['fields_per_hour']:>13.0f}{row['iou_median']:>12.4f}")
    summary = {"shapes": len(names), "steps": args.steps, "jax": jax.__version__, "rows": rows}
    return _common.finish(args.out, summary, "cpu")


if __name__ == "__main__":
    _common.run(main)
