"""Weight-space training throughput: fields per second through encoder + decoder + functional loss + optimiser step.

Both designs, the default field architecture, measured side by side in one run (random weights: the cost does
not depend on the values).

Usage: python -m benchmarks.space_throughput [--device cpu] [--batch 32] [--points 1024 2048] [--steps 5]
"""

from __future__ import annotations

import time

import torch

from benchmarks import _common
from shapezoo.fields.network import FieldSpec, field_forward, init_params
from shapezoo.fields.space import ModelConfig, build_model, losses


def measure(design: str, spec: FieldSpec, batch: int, points: int, steps: int, device: torch.device) -> dict:
    params = init_params(spec, 0).expand(4 * batch, -1) + 0.01 * torch.randn(4 * batch, spec.layout().size)
    model = build_model(spec, ModelConfig(design=design), params).to(device)
    codes = torch.nn.Parameter(0.1 * torch.randn(batch, model.config.latent, device=device))  # auto-decoding
    opt = torch.optim.AdamW([*model.parameters(), codes], lr=1e-4)
    p = params[:batch].to(device)
    x = torch.rand(batch, points, 3, device=device) - 0.5
    with torch.no_grad():
        t = field_forward(spec, p, x)[..., 0]

    def step():
        terms = losses(model, spec, p, x, t, 0.05, codes, 1e-4)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / steps
    return {
        "design": design,
        "batch": batch,
        "points": points,
        "seconds_per_step": sec,
        "fields_per_second": batch / sec,
        "parameters": sum(q.numel() for q in model.parameters()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_throughput.json")
    ap.add_argument("--width", type=int, default=FieldSpec.width, help="field width (the default architecture's)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--points", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    dev = _common.device(a)
    spec = FieldSpec(width=a.width)
    rows = [measure(d, spec, a.batch, n, a.steps, dev) for n in a.points for d in ("neuron", "prep")]
    print(f"{'design':8s} {'points':>7s} {'s/step':>8s} {'fields/s':>9s} {'params':>10s}")
    for r in rows:
        print(
            f"{r['design']:8s} {r['points']:7d} {r['seconds_per_step']:8.3f} {r['fields_per_second']:9.1f} "
            f"{r['parameters']:10d}"
        )
    return _common.finish(a.out, {"rows": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
