"""CPU vs CUDA for a weight space: encode, decode, decoded-field logits and the training losses on the same fields.

python3 benchmarks/space_cuda_check.py SPACE ZOO --out results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from shapezoo.core.zoo import load_zoo
from shapezoo.fields import field_forward
from shapezoo.space import load_space, losses, probe_points
from shapezoo.space.latent import refine_latents


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("space", type=Path)
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--fields", type=int, default=16)
    ap.add_argument("--refine", type=int, default=50, help="latent refinement steps compared too")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/space_cuda_check.json"))
    a = ap.parse_args(argv)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    zoo = load_zoo(a.zoo)
    names = load_space(a.space).meta["split"]["test"][: a.fields]
    params = torch.stack([zoo.weights(n) for n in names])
    x, t = probe_points(zoo.spec, params, 2048, 2048, seed=0)
    res = {}
    for dev in ("cpu", "cuda"):
        s = load_space(a.space, dev)
        z = s.encode(params.to(dev))
        dec = s.decode(z)
        with torch.no_grad():
            logits = field_forward(zoo.spec, dec, x.to(dev))
            terms = losses(s.model, zoo.spec, params.to(dev), x.to(dev), t.to(dev), 0.05)
        refined = refine_latents(s, params.to(dev), z, a.refine)
        with torch.no_grad():
            refined_logits = field_forward(zoo.spec, s.decode(refined), x.to(dev))
        res[dev] = {"z": z.cpu(), "dec": dec.cpu(), "logits": logits.cpu(), "refined": refined.cpu()}
        res[dev] |= {"refined_logits": refined_logits.cpu(), **{k: float(v) for k, v in terms.items()}}
    c, g = res["cpu"], res["cuda"]

    def rel(key):
        return float((c[key] - g[key]).abs().max() / c[key].abs().max())

    out = {
        "device": torch.cuda.get_device_name(),
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
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
