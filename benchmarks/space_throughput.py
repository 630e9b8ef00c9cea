"""Weight-space training throughput: fields per second through encoder + decoder + functional loss + optimiser step.

Both designs, the default field architecture, measured side by side in one run (random weights: the cost does
not depend on the values).

    python3 benchmarks/space_throughput.py --device cpu --steps 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shapezoo.fields import FieldSpec, field_forward, init_params
from shapezoo.space import ModelConfig, build_model, losses


def measure(design: str, spec: FieldSpec, batch: int, points: int, steps: int, device: str) -> dict:
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
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--points", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/space_throughput.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    rows = [measure(d, FieldSpec(), a.batch, n, a.steps, a.device) for n in a.points for d in ("neuron", "prep")]
    print(f"{'design':8s} {'points':>7s} {'s/step':>8s} {'fields/s':>9s} {'params':>10s}")
    for r in rows:
        print(
            f"{r['design']:8s} {r['points']:7d} {r['seconds_per_step']:8.3f} {r['fields_per_second']:9.1f} "
            f"{r['parameters']:10d}"
        )
    out = {"device": a.device, "threads": torch.get_num_threads(), "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
