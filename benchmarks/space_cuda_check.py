"""CPU vs CUDA for a weight space: encode, decode, decoded-field logits and the training losses on the same fields.

Usage: python -m benchmarks.space_cuda_check SPACE ZOO [--fields 16] [--refine 50] [--devices cpu,cuda] [--out FILE]
(``--devices cpu,cpu`` runs the same comparison without a GPU: a dry run of the script itself.)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.zoo import load_zoo
from shapezoo.errors import ShapezooError
from shapezoo.fields.network import field_forward
from shapezoo.fields.space import load_space, losses, probe_points
from shapezoo.fields.space.inference import refine_latents


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "space_cuda_check.json")
    ap.add_argument("space", type=Path)
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--fields", type=int, default=16)
    ap.add_argument("--refine", type=int, default=50, help="latent refinement steps compared too")
    ap.add_argument("--devices", default="cpu,cuda", help="the reference device and the one compared with it")
    a = ap.parse_args(argv)
    devices = a.devices.split(",")
    if "cuda" in a.devices and not torch.cuda.is_available():
        raise ShapezooError("space_cuda_check needs a CUDA device (or --devices cpu,cpu)")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    zoo = load_zoo(a.zoo)
    space = load_space(a.space)
    names = space.meta["split"]["test"][: a.fields]
    params = torch.stack([zoo.weights(n) for n in names])
    x, t = probe_points(zoo.spec, params, 2048, 2048, seed=0)
    res = []
    for dev in devices:
        s = load_space(a.space, dev)
        z = s.encode(params.to(dev))
        dec = s.decode(z)
        with torch.no_grad():
            logits = field_forward(zoo.spec, dec, x.to(dev))
            terms = losses(s.model, zoo.spec, params.to(dev), x.to(dev), t.to(dev), 0.05)
        refined = refine_latents(s, params.to(dev), z, a.refine)
        with torch.no_grad():
            refined_logits = field_forward(zoo.spec, s.decode(refined), x.to(dev))
        res.append({"z": z.cpu(), "dec": dec.cpu(), "logits": logits.cpu(), "refined": refined.cpu()})
        res[-1] |= {"refined_logits": refined_logits.cpu(), **{k: float(v) for k, v in terms.items()}}
    c, g = res

    def rel(key):
        return float((c[key] - g[key]).abs().max() / c[key].abs().max())

    out = {
        "devices": a.devices,
        "device": torch.cuda.get_device_name() if "cuda" in a.devices else "cpu",
        "design": space.model.config.design,
        "fields": len(names),
        "z_max_rel_diff": rel("z"),
        "decoded_max_rel_diff": rel("dec"),
        "logits_max_rel_diff": rel("logits"),
        "sign_agreement": float(((c["logits"] > 0) == (g["logits"] > 0)).float().mean()),
        "refine_steps": a.refine,
        "refined_z_max_rel_diff": rel("refined"),
        "refined_logits_max_rel_diff": rel("refined_logits"),
        "refined_sign_agreement": float(((c["refined_logits"] > 0) == (g["refined_logits"] > 0)).float().mean()),
        "losses_cpu": {k: c[k] for k in ("functional", "weight", "total")},
        "losses_cuda": {k: g[k] for k in ("functional", "weight", "total")},
    }
    print(json.dumps(out, indent=1))
    return _common.finish(a.out, out, devices[1])


if __name__ == "__main__":
    _common.run(main)
